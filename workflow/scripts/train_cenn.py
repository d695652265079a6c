"""Rule train_cenn: fit CENN on one field's training patches (resumes if killed)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "train_cenn")

import pandas as pd  # noqa: E402

from cmbnn import cenn  # noqa: E402
from cmbnn.io import atomic_output, read_patches_h5  # noqa: E402
from cmbnn.plots import plot_history  # noqa: E402
from cmbnn.training import env_summary, write_history  # noqa: E402

train, _ = read_patches_h5(smk.input.train)
val, _ = read_patches_h5(smk.input.validation)
log.info("%s; %d training and %d validation patches of %s", env_summary(), len(train["M"]), len(val["M"]), train["M"].shape[1:])
model, history = cenn.train(
    train["M"],
    train["M0"],
    val["M"],
    val["M0"],
    smk.params.settings,
    smk.params.seed,
    checkpoint_dir=smk.params.checkpoint_dir,
    tensorboard_dir=smk.output.tensorboard,
)
with atomic_output(smk.output.model) as tmp:
    model.save(tmp)
write_history(history, smk.output.history)
plot_history(pd.DataFrame(history), smk.output.plot, title=f"CENN {smk.wildcards.field}")
log.info("saved %s after %d epochs", smk.output.model, len(history))
