"""Rule train_cosmovae: fit CosmoVAE on hole-free T truth patches with masks drawn from the bank
(resumes from its checkpoint if killed)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "train_cosmovae")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.inpainting import cosmovae, gated  # noqa: E402
from cmbnn.io import atomic_output, read_h5  # noqa: E402
from cmbnn.nn.training import env_summary, write_history  # noqa: E402
from cmbnn.plotting import plot_history  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
settings = dict(p.settings)
train, _ = read_h5(smk.input.train)
val, _ = read_h5(smk.input.validation)
bank, _ = read_h5(smk.input.bank)
n_train = min(settings.pop("train_patches", None) or len(train["M0"]), len(train["M0"]))
# Evenly spread over the file, so every realisation contributes.
truth_train = train["M0"][np.round(np.linspace(0, len(train["M0"]) - 1, n_train)).astype(int)]
if settings["model"] == "gated":
    log.info("%s; gated U-net on %d training and %d validation patches of %s, %d bank masks (mean hole fraction %.3f)",
             env_summary(), len(truth_train), len(val["M0"]), truth_train.shape[1:], len(bank["mask"]), bank["mask"].mean())
    model, history = gated.train(
        truth_train, val["M0"], bank["mask"], {**settings, **settings["gated"]}, p.seed, checkpoint_dir=p.checkpoint_dir, tensorboard_dir=smk.output.tensorboard,
    )
else:
    cls = read_cls(smk.input.cls)
    if settings.get("ell_max") is None:
        settings["ell_max"] = min(p.lmax, len(cls["TT"]) - 1)
    log.info("%s; CosmoVAE on %d training and %d validation patches of %s, %d bank masks (mean hole fraction %.3f), latent ell 2..%d",
             env_summary(), len(truth_train), len(val["M0"]), truth_train.shape[1:], len(bank["mask"]), bank["mask"].mean(), settings["ell_max"])
    model, history = cosmovae.train(
        truth_train, val["M0"], bank["mask"], cls["TT"], settings, p.seed, checkpoint_dir=p.checkpoint_dir,
        beam_fwhm_arcmin=p.beam_fwhm_arcmin, pixwin_nside=p.pixwin_nside, tensorboard_dir=smk.output.tensorboard,
    )
with atomic_output(smk.output.model) as tmp:
    model.save(tmp)
write_history(history, smk.output.history)
plot_history(pd.DataFrame(history), smk.output.plot, title=f"CosmoVAE ({settings['model']})")
log.info("saved %s after %d epochs", smk.output.model, len(history))
