"""Rule dust_wph_synthesis: maximum-entropy syntheses of standardised log-intensity patches under
wavelet phase harmonic statistics of training patches (pywph; cmbnn.dust.wph), the field's
classical generator beside the dust VAEs, with each synthesis' convergence."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_wph_synthesis")

import numpy as np  # noqa: E402

from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.dust.wph import wph_synthesis  # noqa: E402
from cmbnn.io import read_h5, write_h5  # noqa: E402
from cmbnn.nn.training import limit_threads  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

limit_threads(smk.threads)
p = smk.params
knobs = p.wph
train, _ = read_h5(smk.input.train)
# The models standardise log I with the training split's mean and std: the same numbers here.
x_train, stats = dustvae.log_standardise(train["intensity"])
rng = rng_for(p.seed, "dust-samples", "wph")
n = knobs["n_samples"]
targets = x_train[rng.choice(len(x_train), n, replace=n > len(x_train))]
samples, info = wph_synthesis(targets, n, rng, J=knobs["J"], L=knobs["L"], dn=knobs["dn"], steps=knobs["steps"], tol=knobs["tol"], log=log)
seconds = float(np.mean(info["seconds"]))
converged = int(np.sum(info["converged"]))
log.info("WPH synthesis: %d patches, %.3g s each, %d converged within %d iterations; final loss median %.3g (start %.3g)",
         n, seconds, converged, knobs["steps"], np.median(info["loss"]), np.median([h[0] for h in info["history"]]))
# Loss histories padded with NaN to one length: the convergence of every synthesis, kept with it.
length = max(len(h) for h in info["history"])
history = np.full((n, length), np.nan)
for i, h in enumerate(info["history"]):
    history[i, : len(h)] = h
write_h5(smk.output[0], {"samples": samples.astype(np.float32), "loss_history": history, "iterations": np.asarray(info["iterations"]),
                         "converged": np.asarray(info["converged"], dtype=np.uint8)},
         {"units": "standardised log I", "log_mean": stats["log_mean"], "log_std": stats["log_std"], "seconds_per_sample": seconds,
          "J": info["J"], "L": info["L"], "dn": info["dn"], "max_iterations": knobs["steps"]})
