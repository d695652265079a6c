"""Training loop glue: seeds, devices, resumable checkpoints, early stopping, history.

A training job killed midway leaves ``checkpoint/`` beside its outputs:
the last full model (weights + optimiser state), the best weights so far and
a JSON state (epochs done, best validation loss, patience counter, history).
Started again, it resumes from there instead of starting over. The model and
best-weight files carry the epoch in their names and ``state.json`` names the
ones it belongs to: renaming the state is the one step that commits an epoch,
so a kill between any two writes resumes from a model, best weights and state
of the same epoch.
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

from cmbnn.io import atomic_output
from cmbnn.seeding import rng_for

log = logging.getLogger(__name__)


def set_seeds(seed: int) -> None:
    """Seed Python, numpy and the backend; make TensorFlow ops deterministic on CPU."""
    import keras

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


# Patch sets up to this size are read into memory once (batches read at random from HDF5 are
# slower); larger sets (the paper presets) are streamed.
IN_MEMORY_MAX_BYTES = 2 * 2**30


def in_memory_if_small(datasets, max_bytes: int = IN_MEMORY_MAX_BYTES) -> tuple[list, bool]:
    """(arrays, True) when the datasets (h5py or numpy) together hold at most ``max_bytes``, read
    whole; else (the datasets unchanged, False), for :class:`PatchBatches` to read batch by batch."""
    datasets = list(datasets)
    total = sum(int(np.prod(d.shape)) * np.dtype(d.dtype).itemsize for d in datasets)
    if total <= max_bytes:
        return [np.asarray(d[...]) for d in datasets], True
    return datasets, False


def limit_threads(n: int) -> None:
    """Keep the backend's CPU thread pools to the ``n`` cores the job was given (Snakemake
    ``threads``; a SLURM job's cpus_per_task): TensorFlow otherwise sizes them by the machine's
    cores and jobs that share a node oversubscribe it. Call before the first backend op."""
    import keras

    n = max(1, int(n))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:  # the runtime already started: its pools are fixed
            log.warning("TensorFlow already initialised: its thread pools stay as they are")
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(n)


def register_serializable(cls):
    """Register a custom Keras layer or model under package 'cmbnn' so saved models load."""
    import keras

    return keras.saving.register_keras_serializable(package="cmbnn")(cls)


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


def dihedral(x: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 symmetries of the square on (H, W, C) pixels: code // 2 quarter turns, then a mirror if odd."""
    x = np.rot90(x, code // 2, axes=(0, 1))
    return x[:, ::-1] if code % 2 else x


def dihedral_signs(fields, code: int) -> np.ndarray:
    """Sign of each field's values under :func:`dihedral` (fields like ('Q', 'U')).

    T, E and B are scalars on the patch: pixels move, values stay (B is a
    pseudo-scalar, but B maps are not augmented: see ``augment_fields``).
    Q and U are spin 2 with Q along the patch axes: a quarter turn moves the
    reference axis by 90 degrees, P = Q + iU -> P exp(2i 90deg) = -P; a
    mirror along either axis conjugates P, so U -> -U and Q stays.
    """
    turns, mirror = code // 2, code % 2
    signs = []
    for f in fields:
        s = (-1) ** turns if f in ("Q", "U") else 1
        signs.append(-s if (mirror and f == "U") else s)
    return np.asarray(signs, dtype=np.float32)


class PatchBatches:
    """Batches of normalised float32 patches without a normalised copy of the whole set.

    inputs / labels: lists of (N, H, W, c) float32 arrays, one per field,
    concatenated along channels batch by batch. They may as well be h5py
    datasets (or anything with ``shape``, ``len`` and row indexing by a slice
    or an increasing index array): each batch reads its rows with
    :func:`read_rows`, so only a batch of patches is resident at a time.
    Normalisation is (x - offset) * inv_scale per channel. Each epoch's order and (with
    ``augment``) dihedral transforms come from rng_for(seed, stage, epoch)
    (stage 'cenn-epoch' by default), so a resumed run sees exactly the batches
    an uninterrupted one would. Set ``epoch`` before iterating an epoch (see
    :class:`EpochSetter`). ``hook(x, y, idx, epoch) -> (x, y)``, if given, is
    applied last to every normalised batch (idx: the patch indices of the
    batch; x or y may become tuples of arrays, e.g. a cVAE's (patch, condition)); it must itself be a pure function of its arguments (e.g. CosmoVAE
    draws masks from (seed, epoch)) to keep resumed runs exact.
    """

    # More than 8 parameters: the arrays, their normalisation and the batch options (shuffle, augment, hook), each named by the train() functions.
    def __init__(self, inputs, labels, fields, norm, batch_size, seed, shuffle=True, augment=False, stage="cenn-epoch", hook=None):
        self.inputs, self.labels, self.fields = list(inputs), list(labels), list(fields)
        self.n = len(self.inputs[0])
        self.in_fields = [f for f, a in zip(self.fields, self.inputs) for _ in range(a.shape[-1])]
        self.out_fields = [f for f, a in zip(self.fields, self.labels) for _ in range(a.shape[-1])]
        self.in_offset = np.asarray(norm["input_offset"], dtype=np.float32)
        self.in_inv = (1 / np.asarray(norm["input_scale"], dtype=np.float64)).astype(np.float32)
        self.out_offset = np.float32(norm["label_offset"])
        self.out_inv = np.float32(1 / norm["label_scale"])
        self.batch_size, self.seed, self.shuffle, self.augment = int(batch_size), int(seed), shuffle, augment
        self.stage, self.hook = stage, hook
        if augment and (np.any(self.in_offset != 0) or self.out_offset != 0):
            raise ValueError("sign-flipping augmentation needs zero normalisation offsets")
        if augment and self.inputs[0].shape[1] != self.inputs[0].shape[2]:
            raise ValueError("quarter-turn augmentation needs square patches")
        self.epoch = 0
        self._plan = None

    def __len__(self):
        return -(-self.n // self.batch_size)

    def plan(self, epoch):
        """(order, transform codes) of one epoch, a pure function of (seed, epoch)."""
        if self._plan is None or self._plan[0] != epoch:
            rng = rng_for(self.seed, self.stage, epoch)
            order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            codes = rng.integers(0, 8, self.n) if self.augment else np.zeros(self.n, dtype=int)
            self._plan = (epoch, order, codes)
        return self._plan[1], self._plan[2]

    def batch(self, i, epoch):
        order, codes = self.plan(epoch)
        idx = order[i * self.batch_size : (i + 1) * self.batch_size]
        # Sorted reads are faster (and h5py-friendly); the permutation is restored after.
        sort = np.argsort(idx)
        inv = np.empty_like(sort)
        inv[sort] = np.arange(len(sort))
        x = np.concatenate([read_rows(a, idx[sort]) for a in self.inputs], axis=-1)[inv]
        y = np.concatenate([read_rows(a, idx[sort]) for a in self.labels], axis=-1)[inv]
        x = (x - self.in_offset) * self.in_inv
        y = (y - self.out_offset) * self.out_inv
        if self.augment:
            for j, code in enumerate(codes[idx]):
                if code:
                    x[j] = dihedral(x[j], code) * dihedral_signs(self.in_fields, code)
                    y[j] = dihedral(y[j], code) * dihedral_signs(self.out_fields, code)
        if self.hook is not None:
            x, y = self.hook(x, y, idx, epoch)
        return _float32(x), _float32(y)


def read_rows(a, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (strictly increasing) of an array or an h5py dataset, as a numpy array.

    Numpy arrays are indexed as they are; other datasets read one slice when the
    rows are consecutive (e.g. unshuffled batches), else one fancy-indexed read
    (h5py needs increasing indices).
    """
    if isinstance(a, np.ndarray):
        return a[rows]
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return np.asarray(a[int(rows[0]) : int(rows[-1]) + 1])
    return np.asarray(a[rows])


def _float32(a):
    """float32 arrays, also inside the tuples a hook may return (e.g. a cVAE's (patch, condition))."""
    if isinstance(a, (tuple, list)):
        return tuple(_float32(b) for b in a)
    return np.asarray(a).astype(np.float32, copy=False)


def keras_batches(batches: PatchBatches):
    """A keras.utils.PyDataset over :class:`PatchBatches` (shuffling and augmentation are its own).

    Batch i of an epoch is a pure function of (seed, epoch, i), read when Keras asks
    for it; with TensorFlow, Keras' tf.data pipeline prefetches a few batches within
    the epoch. workers=1: no thread pool that could fetch ahead of the epoch setter.
    """
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.batches = batches

        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches.batch(i, batches.epoch)

    return _Batches()


def _callback_classes():
    import keras

    class EpochSetter(keras.callbacks.Callback):
        """Tells the data which epoch starts (before Keras iterates it)."""

        def __init__(self, batches: PatchBatches):
            super().__init__()
            self.batches = batches

        def on_epoch_begin(self, epoch, logs=None):
            self.batches.epoch = epoch

    class ResumableCheckpoint(keras.callbacks.Callback):
        """NaN guard, early stopping and a checkpoint of model, optimiser and history at every epoch end."""

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
            bad = {k: v for k, v in logs.items() if k in ("loss", "val_loss") and not np.isfinite(v)}
            if bad:
                # Before any checkpoint of this epoch: a rerun would resume from the last finite one.
                raise NonFiniteLoss(
                    f"training stopped at epoch {epoch}: non-finite {bad}; no model written. "
                    "Lower the learning rate or check the inputs for NaN/inf."
                )
            seconds = time.perf_counter() - self.started
            logs.update(epoch=epoch, seconds=seconds, patches_per_second=self.n_train / seconds if seconds else 0.0)
            state = self.state
            state["history"].append(logs)
            val = logs.get("val_loss", logs.get("loss"))
            if val < state["best"]:
                state.update(best=val, best_epoch=epoch, wait=0, best_file=f"best.e{epoch + 1}.weights.h5")
                with atomic_output(self.directory / state["best_file"]) as tmp:
                    self.model.save_weights(tmp)
            else:
                state["wait"] += 1
            state["epoch"] = epoch + 1
            state["last_file"] = f"last.e{epoch + 1}.keras"
            with atomic_output(self.directory / state["last_file"]) as tmp:
                self.model.save(tmp)
            with atomic_output(self.directory / "state.json") as tmp:
                tmp.write_text(json.dumps(state, indent=1))
            for stale in self.directory.iterdir():  # what the committed state no longer names
                if stale.name not in ("state.json", state["last_file"], state.get("best_file")):
                    stale.unlink()
            log.info(
                "epoch %d: loss %.5g val_loss %.5g (best %.5g at %d) %.1f s, %.1f patches/s",
                epoch, logs.get("loss", np.nan), logs.get("val_loss", np.nan), state["best"], state["best_epoch"], seconds, logs["patches_per_second"],
            )
            if state["wait"] >= self.patience:
                log.info("early stopping: no improvement in %d epochs", self.patience)
                self.model.stop_training = True

    return EpochSetter, ResumableCheckpoint


class NonFiniteLoss(FloatingPointError):
    """The training or validation loss became NaN or infinite."""


# More than 8 parameters: keyword-only loop options after the model builder and the two batch streams.
def fit_resumable(
    build_and_compile, train: PatchBatches, validation: PatchBatches, *, epochs, patience, checkpoint_dir, fingerprint="", tensorboard_dir=None, callbacks=()
):
    """Fit a model, resuming from ``checkpoint_dir`` when an earlier run was killed.

    build_and_compile: () -> compiled keras.Model, used when there is nothing to resume.
    train, validation: :class:`PatchBatches` (per-epoch order and augmentation from the seed).
    fingerprint: identifies settings and data; a checkpoint with another one is discarded.
    Returns (model with the best weights restored, history list of per-epoch dicts).
    The checkpoint is removed once training has finished; a non-finite loss raises
    :class:`NonFiniteLoss` and leaves the last finite checkpoint.
    """
    import keras

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_file = checkpoint_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    if state is not None and state.get("fingerprint") != fingerprint:
        log.warning("discarding a checkpoint made with other settings or data (%s)", checkpoint_dir)
        state = None
    if state is not None and (checkpoint_dir / state.get("last_file", "-")).exists():
        model = keras.models.load_model(checkpoint_dir / state["last_file"])
        log.info("resuming from the checkpoint after epoch %d (best val_loss %.5g)", state["epoch"], state["best"])
    else:
        for stale in checkpoint_dir.iterdir():
            stale.unlink()
        state = {"fingerprint": fingerprint, "epoch": 0, "best": float("inf"), "best_epoch": -1, "wait": 0, "history": []}
        model = build_and_compile()
    epoch_setter, resumable = _callback_classes()
    train.epoch = state["epoch"]
    all_callbacks = [epoch_setter(train), resumable(checkpoint_dir, patience, state, train.n), *callbacks]
    if tensorboard_dir is not None and keras.backend.backend() == "tensorflow":
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    if state["epoch"] < epochs and state["wait"] < patience:
        model.fit(
            keras_batches(train),
            validation_data=keras_batches(validation),
            epochs=epochs,
            initial_epoch=state["epoch"],
            shuffle=False,  # the batches shuffle themselves, from (seed, epoch)
            verbose=0,
            callbacks=all_callbacks,
        )
    if state.get("best_file") and (checkpoint_dir / state["best_file"]).exists():
        model.load_weights(checkpoint_dir / state["best_file"])
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
