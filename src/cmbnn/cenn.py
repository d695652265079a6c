"""CENN (Casas et al. 2022, arXiv:2205.05623): a convolutional encoder-decoder
with skip connections that maps multi-frequency patches to the CMB.

Built from Keras 3 layers only, so it trains on TensorFlow (the default),
JAX or PyTorch through KERAS_BACKEND. The exported model carries its own
normalisation: a Normalization layer with the training inputs' per-channel
mean and variance in front, a Rescaling layer with the label's scale and
offset behind, so it takes and returns uK_CMB.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

PAPER = {
    "filters": [8, 16, 64, 128],
    "kernels": [9, 9, 7, 7],
    "leaky_slope": 0.2,
    "l2": 1e-6,
    "learning_rate": 0.005,
    "batch_size": 32,
    "patience": 20,
}


def build_core(height: int, width: int, channels: int, filters=PAPER["filters"], kernels=PAPER["kernels"], leaky_slope=PAPER["leaky_slope"], l2=PAPER["l2"]):
    """The network on normalised data: stride-2 Conv2D encoder, Conv2DTranspose decoder with skips."""
    import keras
    from keras import layers

    depth = len(filters)
    if height % 2**depth or width % 2**depth:
        raise ValueError(f"CENN with {depth} stride-2 stages needs patch sides divisible by {2**depth}, got {height}x{width}")
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((height, width, channels), name="normalised_maps")
    x = inputs
    skips = []
    for i, (f, k) in enumerate(zip(filters, kernels)):
        x = layers.Conv2D(f, k, strides=2, padding="same", kernel_regularizer=reg, name=f"encode_{i}")(x)
        x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"encode_{i}_act")(x)
        skips.append(x)
    # Decoder mirrors the encoder; each upsampled map is concatenated with the encoder map of its size.
    up_filters = list(filters[-2::-1]) + [1]
    up_kernels = list(kernels[::-1])
    for i, (f, k) in enumerate(zip(up_filters, up_kernels)):
        x = layers.Conv2DTranspose(f, k, strides=2, padding="same", kernel_regularizer=reg, name=f"decode_{i}")(x)
        if i < depth - 1:
            x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"decode_{i}_act")(x)
            x = layers.Concatenate(name=f"skip_{i}")([x, skips[depth - 2 - i]])
    return keras.Model(inputs, x, name="cenn_core")


def normalisation_stats(inputs: np.ndarray, labels: np.ndarray) -> dict:
    """Per-channel input mean/variance and label mean/std from training patches."""
    axes = tuple(range(inputs.ndim - 1))
    return {
        "input_mean": inputs.mean(axis=axes, dtype=np.float64),
        "input_var": inputs.var(axis=axes, dtype=np.float64),
        "label_mean": float(labels.mean(dtype=np.float64)),
        "label_std": float(labels.std(dtype=np.float64)),
    }


def normalise(inputs, labels, stats):
    x = (inputs - stats["input_mean"]) / np.sqrt(stats["input_var"])
    y = None if labels is None else (labels - stats["label_mean"]) / stats["label_std"]
    return x.astype(np.float32), None if y is None else y.astype(np.float32)


def export_model(core, stats: dict):
    """Wrap the trained core so the saved model takes and returns uK_CMB."""
    import keras
    from keras import layers

    h, w, c = core.input_shape[1:]
    inputs = keras.Input((h, w, c), name="maps_uK_CMB")
    x = layers.Normalization(axis=-1, mean=stats["input_mean"], variance=stats["input_var"], name="input_normalisation")(inputs)
    x = core(x)
    outputs = layers.Rescaling(scale=stats["label_std"], offset=stats["label_mean"], name="output_uK_CMB")(x)
    return keras.Model(inputs, outputs, name="cenn")


def train(x_train, y_train, x_val, y_val, settings: dict, seed: int, checkpoint_dir, tensorboard_dir=None, callbacks=()):
    """Train CENN; returns (exported model in uK_CMB, history).

    settings: filters, kernels, leaky_slope, l2, learning_rate, batch_size,
    epochs, patience. Checkpoints go to checkpoint_dir so a killed run resumes.
    """
    import keras

    from .training import distribution_scope, fit_resumable, set_seeds

    set_seeds(seed)
    stats = normalisation_stats(x_train, y_train)
    x, y = normalise(x_train, y_train, stats)
    xv, yv = normalise(x_val, y_val, stats)
    data_hash = hashlib.sha256(x_train.tobytes() + y_train.tobytes() + x_val.tobytes()).hexdigest()
    fingerprint = hashlib.sha256(json.dumps([settings, seed, data_hash], sort_keys=True).encode()).hexdigest()[:16]

    def build_and_compile():
        core = build_core(
            x.shape[1], x.shape[2], x.shape[3], settings["filters"], settings["kernels"], settings["leaky_slope"], settings["l2"]
        )
        core.compile(optimizer=keras.optimizers.Adagrad(learning_rate=settings["learning_rate"]), loss="mse")
        return core

    with distribution_scope():
        core, history = fit_resumable(
            build_and_compile,
            x,
            y,
            xv,
            yv,
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            patience=settings["patience"],
            checkpoint_dir=checkpoint_dir,
            fingerprint=fingerprint,
            tensorboard_dir=tensorboard_dir,
            callbacks=callbacks,
        )
    return export_model(core, stats), history
