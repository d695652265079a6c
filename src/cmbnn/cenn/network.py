"""CENN (Casas et al. 2022, arXiv:2205.05623): a convolutional encoder-decoder
with skip connections that maps multi-frequency patches to the CMB.

Two modes (``settings['mode']``):

- ``per_field``: the paper's network, one per field (T, Q, U, E or B): stride-2
  Conv2D encoder, Conv2DTranspose decoder with skips, a stride-2 last layer.
- ``joint``: one network for polarisation, Q and U of every frequency in
  (2 x n_freq channels: Q of each frequency, then U), Q and U of the CMB out,
  so it can tell E from B. With ``full_res_filters`` > 0 a stride-1 stem keeps
  full-resolution features that the decoder's last upsampling is concatenated
  with before a linear 3x3 output layer (the paper's output comes from a
  stride-2 transposed convolution alone). Training augments with the 8
  symmetries of the square, with the spin-2 signs (see training.dihedral_signs).

Built from Keras 3 layers only, so it trains on TensorFlow (the default),
JAX or PyTorch through KERAS_BACKEND. The exported model carries its own
normalisation: a Normalization layer in front and a Rescaling layer behind,
so it takes and returns uK_CMB.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cmbnn.nn.data import channel_moments, data_digest
from cmbnn.nn.training import PatchBatches, dihedral_signs, distribution_scope, fit_resumable, set_seeds

PAPER = {
    "mode": "per_field",
    "filters": [8, 16, 64, 128],
    "kernels": [9, 9, 7, 7],
    "full_res_filters": 0,
    "linear_kernel": 0,
    "leaky_slope": 0.2,
    "l2": 1e-6,
    "optimizer": "adagrad",
    "learning_rate": 0.005,
    "final_learning_rate": None,
    "batch_size": 32,
    "patience": 20,
    "augment": False,
}

PREDICT_CHUNK = 256  # patches per prediction chunk (a multiple of the prediction batch, 64)


# More than 8 parameters: the architecture's hyper-parameters, one config key each.
def build_core(
    height: int,
    width: int,
    channels: int,
    filters=PAPER["filters"],
    kernels=PAPER["kernels"],
    leaky_slope=PAPER["leaky_slope"],
    l2=PAPER["l2"],
    outputs: int = 1,
    full_res_filters: int = 0,
    linear_kernel: int = 0,
):
    """The network on normalised data.

    Encoder: Conv2D(filters[i], kernels[i], stride 2) + LeakyReLU per stage.
    Decoder: Conv2DTranspose with the encoder's filters in reverse and its kernels
    in reverse, each (but the last) concatenated with the encoder output of the
    same resolution. full_res_filters = 0 is the paper: the last transposed
    convolution gives the ``outputs`` maps. full_res_filters > 0: a stride-1
    3x3 stem at full resolution, the last transposed convolution gives
    full_res_filters maps, concatenated with the stem, then a linear 3x3 Conv2D.
    linear_kernel > 0 adds a linear Conv2D of that kernel on the inputs to the
    output: a learned pixel-space ILC + Wiener-like filter, which the nonlinear
    path then only has to correct.
    """
    import keras
    from keras import layers

    depth = len(filters)
    if len(kernels) != depth:
        raise ValueError(f"CENN needs one kernel per stage: {len(filters)} filters, {len(kernels)} kernels")
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"CENN with {depth} stride-2 stages needs patch sides divisible by {2**depth}, got {height}x{width}")
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((height, width, channels), name="normalised_maps")
    x = inputs
    stem = None
    if full_res_filters:
        stem = layers.Conv2D(full_res_filters, 3, padding="same", kernel_regularizer=reg, name="full_res")(inputs)
        stem = layers.LeakyReLU(negative_slope=leaky_slope, name="full_res_act")(stem)
    skips = []
    for i, (f, k) in enumerate(zip(filters, kernels)):
        x = layers.Conv2D(f, k, strides=2, padding="same", kernel_regularizer=reg, name=f"encode_{i}")(x)
        x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"encode_{i}_act")(x)
        skips.append(x)
    # Decoder mirrors the encoder; each upsampled map is concatenated with the encoder map of its size.
    up_filters = list(filters[-2::-1]) + [full_res_filters or outputs]
    up_kernels = list(kernels[::-1])
    for i, (f, k) in enumerate(zip(up_filters, up_kernels)):
        x = layers.Conv2DTranspose(f, k, strides=2, padding="same", kernel_regularizer=reg, name=f"decode_{i}")(x)
        if i < depth - 1:
            x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"decode_{i}_act")(x)
            x = layers.Concatenate(name=f"skip_{i}")([x, skips[depth - 2 - i]])
    if stem is not None:
        x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"decode_{depth - 1}_act")(x)
        x = layers.Concatenate(name="skip_full_res")([x, stem])
        x = layers.Conv2D(outputs, 3, padding="same", kernel_regularizer=reg, name="output")(x)
    if linear_kernel:
        linear = layers.Conv2D(outputs, linear_kernel, padding="same", kernel_regularizer=reg, name="linear_path")(inputs)
        x = layers.Add(name="output_sum")([x, linear])
    return keras.Model(inputs, x, name="cenn_core")


def with_defaults(settings: dict) -> dict:
    return {**PAPER, **settings}


def _as_list(a):
    return list(a) if isinstance(a, (list, tuple)) else [a]


def normalisation_stats(inputs, labels, mode: str = "per_field") -> dict:
    """Normalisation from the training patches, streamed over float32 chunks.

    inputs / labels: (N, H, W, c) arrays or lists of them (one per field), or
    h5py datasets: :data:`CHUNK` patches are read at a time (two passes: the
    mean, then the centred variance), accumulated in float64, so the numbers do
    not depend on where the patches are held.
    per_field: per-channel input mean and scale (std), label mean and std.
    joint: no offsets and one scale per frequency shared by Q and U (the rms of
    both), one label scale for Q and U: a sign flip or a Q/U mix (spin-2
    augmentation) commutes with it.
    """
    x_parts, y_parts = _as_list(inputs), _as_list(labels)
    xs, ys = [channel_moments(a) for a in x_parts], [channel_moments(a) for a in y_parts]
    if mode == "joint":
        ms = np.mean([m["mean_square"] for m in xs], axis=0)
        scale = np.sqrt(np.tile(ms, len(x_parts)))
        return {
            "input_offset": np.zeros_like(scale),
            "input_scale": scale,
            "label_offset": 0.0,
            "label_scale": float(np.sqrt(np.mean([m["mean_square"] for m in ys]))),
        }
    if len(x_parts) != 1:
        raise ValueError("per_field normalisation takes one field")
    (mx,), (my,) = xs, ys
    return {
        "input_offset": mx["mean"],
        "input_scale": np.sqrt(mx["var"]),
        "label_offset": float(my["mean"][0]),
        "label_scale": float(np.sqrt(my["var"][0])),
    }


def normalise(inputs, labels, stats):
    """Normalised float32 copies (small arrays only: training streams batches instead)."""
    x = (np.asarray(inputs, dtype=np.float32) - np.float32(stats["input_offset"])) / np.float32(stats["input_scale"])
    y = None if labels is None else (np.asarray(labels, dtype=np.float32) - np.float32(stats["label_offset"])) / np.float32(stats["label_scale"])
    return x.astype(np.float32), None if y is None else y.astype(np.float32)


def export_model(core, stats: dict):
    """Wrap the trained core so the saved model takes and returns uK_CMB."""
    import keras
    from keras import layers

    h, w, c = core.input_shape[1:]
    inputs = keras.Input((h, w, c), name="maps_uK_CMB")
    x = layers.Normalization(
        axis=-1, mean=np.asarray(stats["input_offset"]), variance=np.square(stats["input_scale"]), name="input_normalisation"
    )(inputs)
    x = core(x)
    outputs = layers.Rescaling(scale=stats["label_scale"], offset=stats["label_offset"], name="output_uK_CMB")(x)
    return keras.Model(inputs, outputs, name="cenn")


def joint_inputs(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Input of the joint model: Q of every frequency, then U, (N, H, W, 2 n_freq)."""
    return np.concatenate([q, u], axis=-1)


def predict_symmetrised(model, inputs: np.ndarray, input_fields, output_fields, batch_size: int = 64) -> np.ndarray:
    """Mean prediction over the 8 symmetries of the square (test-time augmentation).

    Each input is turned or mirrored with the spin-2 signs (as in training),
    predicted, and the prediction mapped back by the inverse transform, so
    the mean is exactly equivariant: a turned sky gives the turned output.
    The network saw all 8 in training; averaging them lowers the variance of
    its output. input_fields / output_fields name each channel ('Q', 'U', ...).
    """
    if "B" in list(input_fields) + list(output_fields):
        raise ValueError("B is a pseudo-scalar: a mirror negates it, which dihedral_signs does not model")
    total = None
    for code in range(8):
        turned = np.rot90(inputs, code // 2, axes=(1, 2))
        turned = turned[:, :, ::-1] if code % 2 else turned
        out = model.predict(np.ascontiguousarray(turned * dihedral_signs(input_fields, code)), batch_size=batch_size, verbose=0)
        out = out * dihedral_signs(output_fields, code)  # the signs are their own inverse
        out = out[:, :, ::-1] if code % 2 else out
        out = np.rot90(out, -(code // 2), axes=(1, 2)).astype(np.float64)
        total = out if total is None else total + out
    return (total / 8).astype(np.float32)


def iter_predictions(model, patch_sets: list, fields, test_time_augmentation: bool, label: str = "", chunk: int | None = None):
    """A network's outputs, ``chunk`` patches at a time: yields (start, (n, H, W, n_fields)).

    patch_sets: one patch set per input field, each a mapping with ``M`` and
    ``centers`` (an open h5py File, or a dict from ``read_patches_h5``), all at
    the same centres (checked); their inputs are joined channel-wise as in
    training. Only a chunk of inputs is read at a time. The default chunk,
    :data:`PREDICT_CHUNK`, is a multiple of the prediction batch (64), so the
    batches are those of one predict over the whole set.
    """
    fields, chunk = list(fields), chunk or PREDICT_CHUNK
    centers = np.asarray(patch_sets[0]["centers"])
    for data, f in zip(patch_sets, fields):
        if not np.array_equal(np.asarray(data["centers"]), centers):
            raise ValueError(f"{f} patches of {label} are not at the {fields[0]} centres")
    # Channels of the joint input: Q of every frequency, then U (joint_inputs).
    channel_fields = [f for f, data in zip(fields, patch_sets) for _ in range(data["M"].shape[-1])]
    for start in range(0, len(centers), chunk):
        inputs = np.concatenate([np.asarray(data["M"][start : start + chunk]) for data in patch_sets], axis=-1)
        if test_time_augmentation:
            yield start, predict_symmetrised(model, inputs, channel_fields, fields)
        else:
            yield start, model.predict(inputs, batch_size=64, verbose=0)


def predict_patch_sets(model, patch_sets: list, fields, test_time_augmentation: bool, label: str = "") -> np.ndarray:
    """A network's outputs (N, H, W, n_fields) for patch sets as in :func:`iter_predictions`, in one array."""
    out = [net for _, net in iter_predictions(model, patch_sets, fields, test_time_augmentation, label)]
    if not out:
        raise ValueError(f"no patches to predict in {label}")
    return np.concatenate(out)


def optimizer(settings: dict, steps_per_epoch: int):
    """Adagrad (paper) or Adam; with final_learning_rate a cosine decay to it over all epochs."""
    import keras

    lr = settings["learning_rate"]
    if settings.get("final_learning_rate") is not None:
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, settings["epochs"] * steps_per_epoch), alpha=settings["final_learning_rate"] / lr
        )
    name = settings["optimizer"]
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=lr)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    raise ValueError(f"cenn.optimizer must be 'adagrad' or 'adam', got {name!r}")


# More than 8 parameters: the data splits, the settings, the seed and where the run keeps its state (checkpoint, TensorBoard), as every train() here.
def train(x_train, y_train, x_val, y_val, settings: dict, seed: int, checkpoint_dir, tensorboard_dir=None, callbacks=(), fields=None):
    """Train CENN; returns (exported model in uK_CMB, history).

    x_*, y_*: (N, H, W, c) float32 arrays or h5py datasets, or lists of them, one
    per field (joint mode: [Q, U]); either way statistics, fingerprint and
    batches read a chunk or a batch of patches at a time, so datasets stream
    from their files. fields names them (default: one scalar-like field 'T'
    for per_field, ['Q', 'U'] for joint). settings: see PAPER and the schema's
    ``cenn`` keys; missing keys take the paper's values. Checkpoints go to
    checkpoint_dir so a killed run resumes.
    """

    settings = with_defaults(settings)
    mode = settings["mode"]
    xs, ys, xvs, yvs = (_as_list(a) for a in (x_train, y_train, x_val, y_val))
    if fields is None:
        fields = ["Q", "U"] if mode == "joint" else ["T"]
    if mode == "joint" and list(fields) != ["Q", "U"]:
        raise ValueError(f"joint CENN takes fields [Q, U], got {fields}")
    if mode not in ("joint", "per_field"):
        raise ValueError(f"cenn.mode must be 'joint' or 'per_field', got {mode!r}")

    set_seeds(seed)
    stats = normalisation_stats(xs, ys, mode)
    fingerprint_data = data_digest(*xs, *ys, *xvs, *yvs)
    fingerprint = hashlib.sha256(json.dumps([settings, seed, fingerprint_data, list(fields)], sort_keys=True).encode()).hexdigest()[:16]
    batch_size = settings["batch_size"]
    train_batches = PatchBatches(xs, ys, fields, stats, batch_size, seed, shuffle=True, augment=settings["augment"])
    val_batches = PatchBatches(xvs, yvs, fields, stats, batch_size, seed, shuffle=False, augment=False)
    height, width = xs[0].shape[1:3]
    channels = sum(a.shape[-1] for a in xs)
    outputs = sum(a.shape[-1] for a in ys)

    def build_and_compile():
        core = build_core(
            height,
            width,
            channels,
            settings["filters"],
            settings["kernels"],
            settings["leaky_slope"],
            settings["l2"],
            outputs=outputs,
            full_res_filters=settings["full_res_filters"],
            linear_kernel=settings["linear_kernel"],
        )
        core.compile(optimizer=optimizer(settings, len(train_batches)), loss="mse")
        return core

    with distribution_scope():
        core, history = fit_resumable(
            build_and_compile,
            train_batches,
            val_batches,
            epochs=settings["epochs"],
            patience=settings["patience"],
            checkpoint_dir=checkpoint_dir,
            fingerprint=fingerprint,
            tensorboard_dir=tensorboard_dir,
            callbacks=callbacks,
        )
    return export_model(core, stats), history
