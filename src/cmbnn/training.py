"""Training loop glue: seeds, devices, resumable checkpoints, early stopping, history.

A training job killed midway leaves ``checkpoint/`` beside its outputs:
the last full model (weights + optimiser state), the best weights so far and
a JSON state (epochs done, best validation loss, patience counter, history).
Started again, it resumes from there instead of starting over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .io import atomic_output

log = logging.getLogger(__name__)


def set_seeds(seed: int) -> None:
    """Seed Python, numpy and the backend; make TensorFlow ops deterministic on CPU."""
    import keras

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def accelerators() -> list[str]:
    """Names of the visible GPUs for the active Keras backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def distribution_scope():
    """Data parallelism over every visible GPU; a no-op on CPU or a single GPU."""
    import keras

    gpus = accelerators()
    if len(gpus) < 2:
        log.info("devices: %s", gpus[0] if gpus else "CPU")
        return contextlib.nullcontext()
    log.info("data-parallel training on %d GPUs: %s", len(gpus), gpus)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    return contextlib.nullcontext()


def _resumable_callback_class():
    import keras

    class ResumableCheckpoint(keras.callbacks.Callback):
        """Early stopping + checkpoint of model, optimiser and history at every epoch end."""

        def __init__(self, directory: Path, patience: int, state: dict, n_train: int):
            super().__init__()
            self.directory = directory
            self.patience = patience
            self.state = state
            self.n_train = n_train
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.perf_counter() - self.started
            logs.update(epoch=epoch, seconds=seconds, patches_per_second=self.n_train / seconds if seconds else 0.0)
            state = self.state
            state["history"].append(logs)
            val = logs.get("val_loss", logs.get("loss"))
            if val < state["best"]:
                state.update(best=val, best_epoch=epoch, wait=0)
                with atomic_output(self.directory / "best.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            else:
                state["wait"] += 1
            state["epoch"] = epoch + 1
            # Model first, then the state that points at it: a kill in between redoes one epoch.
            with atomic_output(self.directory / "last.keras") as tmp:
                self.model.save(tmp)
            with atomic_output(self.directory / "state.json") as tmp:
                tmp.write_text(json.dumps(state, indent=1))
            log.info(
                "epoch %d: loss %.5g val_loss %.5g (best %.5g at %d) %.1f s, %.1f patches/s",
                epoch, logs.get("loss", np.nan), logs.get("val_loss", np.nan), state["best"], state["best_epoch"], seconds, logs["patches_per_second"],
            )
            if state["wait"] >= self.patience:
                log.info("early stopping: no improvement in %d epochs", self.patience)
                self.model.stop_training = True

    return ResumableCheckpoint


def fit_resumable(
    build_and_compile, x, y, x_val, y_val, *, epochs, batch_size, patience, checkpoint_dir, fingerprint="", tensorboard_dir=None, callbacks=()
):
    """Fit a model, resuming from ``checkpoint_dir`` when an earlier run was killed.

    build_and_compile: () -> compiled keras.Model, used when there is nothing to resume.
    fingerprint: identifies settings and data; a checkpoint with another one is discarded.
    Returns (model with the best weights restored, history list of per-epoch dicts).
    The checkpoint is removed once training has finished.
    """
    import keras

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_file = checkpoint_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state is not None and state.get("fingerprint") != fingerprint:
        log.warning("discarding a checkpoint made with other settings or data (%s)", checkpoint_dir)
        state = None
    if state is not None and (checkpoint_dir / "last.keras").exists():
        model = keras.models.load_model(checkpoint_dir / "last.keras")
        log.info("resuming from the checkpoint after epoch %d (best val_loss %.5g)", state["epoch"], state["best"])
    else:
        for stale in checkpoint_dir.iterdir():
            stale.unlink()
        state = {"fingerprint": fingerprint, "epoch": 0, "best": float("inf"), "best_epoch": -1, "wait": 0, "history": []}
        model = build_and_compile()
    checkpoint = _resumable_callback_class()(checkpoint_dir, patience, state, len(x))
    all_callbacks = [checkpoint, *callbacks]
    if tensorboard_dir is not None and keras.backend.backend() == "tensorflow":
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    if state["epoch"] < epochs and state["wait"] < patience:
        model.fit(
            x,
            y,
            validation_data=(x_val, y_val),
            epochs=epochs,
            initial_epoch=state["epoch"],
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=all_callbacks,
        )
    if (checkpoint_dir / "best.weights.h5").exists():
        model.load_weights(checkpoint_dir / "best.weights.h5")
        log.info("restored the best weights (epoch %d, val_loss %.5g)", state["best_epoch"], state["best"])
    history = state["history"]
    shutil.rmtree(checkpoint_dir)
    return model, history


def write_history(history: list, path) -> None:
    import pandas as pd

    with atomic_output(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, sep="\t", index=False)


def env_summary() -> str:
    import keras

    return f"keras {keras.__version__}, backend {keras.backend.backend()}, KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')}"
