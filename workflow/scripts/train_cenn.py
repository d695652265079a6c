"""Rule train_cenn: fit one CENN (joint Q/U or one field) on the training patches (resumes if killed)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "train_cenn")

import h5py  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn import cenn  # noqa: E402
from cmbnn.io import atomic_output  # noqa: E402
from cmbnn.plots import plot_history  # noqa: E402
from cmbnn.training import env_summary, write_history  # noqa: E402


def read(paths, name):
    """One float32 dataset per field file, read as is (no float64 copies)."""
    out = []
    for path in paths:
        with h5py.File(path, "r") as f:
            out.append(f[name][...])
    return out


fields = list(smk.params.fields)
train_x, train_y = read(smk.input.train, "M"), read(smk.input.train, "M0")
val_x, val_y = read(smk.input.validation, "M"), read(smk.input.validation, "M0")
log.info(
    "%s; CENN %s for %s: %d training and %d validation patches of %s",
    env_summary(), smk.params.settings["mode"], fields, len(train_x[0]), len(val_x[0]), train_x[0].shape[1:],
)
model, history = cenn.train(
    train_x,
    train_y,
    val_x,
    val_y,
    smk.params.settings,
    smk.params.seed,
    checkpoint_dir=smk.params.checkpoint_dir,
    tensorboard_dir=smk.output.tensorboard,
    fields=fields,
)
with atomic_output(smk.output.model) as tmp:
    model.save(tmp)
write_history(history, smk.output.history)
plot_history(pd.DataFrame(history), smk.output.plot, title=f"CENN {smk.wildcards.model}")
log.info("saved %s after %d epochs", smk.output.model, len(history))
