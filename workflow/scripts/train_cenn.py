"""Rule train_cenn: fit one CENN (joint Q/U or one field) on the training patches (resumes if killed)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "train_cenn")

import contextlib  # noqa: E402

import pandas as pd  # noqa: E402

from cmbnn.cenn import network as cenn  # noqa: E402
from cmbnn.io import atomic_output, open_patches  # noqa: E402
from cmbnn.nn.training import env_summary, in_memory_if_small, write_history  # noqa: E402
from cmbnn.plotting import plot_history  # noqa: E402

fields = list(smk.params.fields)
with contextlib.ExitStack() as files:
    # Large patch sets stay in their open files and are read batch by batch (cenn.train streams its
    # statistics, fingerprint and batches from the datasets), so memory does not grow with them.
    train_files = [files.enter_context(open_patches(path)) for path in smk.input.train]
    val_files = [files.enter_context(open_patches(path)) for path in smk.input.validation]
    datasets = [f[name] for name in ("M", "M0") for f in (*train_files, *val_files)]
    datasets, in_memory = in_memory_if_small(datasets)
    n = len(train_files)
    train_x, val_x, train_y, val_y = datasets[:n], datasets[n : 2 * n], datasets[2 * n : 3 * n], datasets[3 * n :]
    log.info(
        "%s; CENN %s for %s: %d training and %d validation patches of %s, %s",
        env_summary(), smk.params.settings["mode"], fields, len(train_x[0]), len(val_x[0]), train_x[0].shape[1:],
        "read into memory (small)" if in_memory else "streamed from the patch files",
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
