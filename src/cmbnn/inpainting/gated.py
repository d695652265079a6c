"""The default CosmoVAE network: a mask-gated linear U-net with constrained-realisation samples.

Why this shape. For a Gaussian CMB the best inpainting is the conditional mean, which is linear
in the observed pixels with weights that depend on the mask. The network is built to be such an
operator: its data path has convolutions without bias or activation, each multiplied by gates
(sigmoids) computed from the mask alone, so for a given mask its output is a linear function of
the observed pixels; the mask path is an ordinary nonlinear CNN. Down to 1/16 of the patch side,
it reaches across Galactic bands; its full-resolution levels handle source discs.

Training minimises the mean over patches of log(hole MSE) (:func:`log_hole_mse`): a 3-pixel source
disc, whose best error is about 1e-4 of the signal variance, counts as much as a Galactic band,
whose best error is most of it. Masks are drawn from a bank that holds both kinds.

The latent. A posterior sample of the hole is f(d) + m (z - f(z_obs)) (Hoffman & Ribak 1991),
f the network, d the observed patch, m the hole and z a draw of the CMB prior on the patch
(C_ell^TT x beam^2 on the flat patch grid, :func:`cmbnn.analysis.gaussian_field.gaussian_realisations`):
z carries exactly what the observed pixels leave open. When f is the conditional-mean operator
these are exact posterior draws; their spread and calibration therefore measure how close the
network is to it. The posterior mean is f(d); the per-pixel std is the samples' scatter.

Small holes. With ``small_holes`` (config cosmovae.small_holes) f fills hole components of a few
pixels with their local Gaussian conditional mean instead (:class:`LocalConditionalMean`), which
keeps f linear, so the same formula samples them exactly; the tables keep the network's own fill
beside it (README).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging

import numpy as np

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, LocalConditionalMean, gaussian_realisations
from cmbnn.inpainting import cosmovae
from cmbnn.inpainting.cosmovae import MaskSampler, truth_scale
from cmbnn.nn.data import data_digest
from cmbnn.nn.training import PatchBatches, distribution_scope, fit_resumable, register_serializable, set_seeds
from cmbnn.seeding import rng_for

log = logging.getLogger(__name__)
SAMPLES_PER_DRAW = 50
DEFAULTS = {"width": 32, "levels": 4, "diffusion_steps": 0, "epochs": 10, "batch_size": 32, "learning_rate": 2e-3, "patience": 10, "augment": True}


def log_hole_mse(y_true, y_pred):
    """Mean over patches of log(MSE over the hole + 1e-6): y_true (B, H, W, 2) = (truth, mask),
    normalised units; patches without a hole do not count."""
    from keras import ops

    truth, mask = y_true[..., :1], y_true[..., 1:2]
    squared = ops.sum(ops.square(y_pred - truth) * mask, axis=(1, 2, 3))
    count = ops.sum(mask, axis=(1, 2, 3))
    has_hole = ops.cast(count > 0, "float32")
    per_patch = ops.log(squared / ops.maximum(count, 1.0) + 1e-6) * has_hole
    return ops.sum(per_patch) / ops.maximum(ops.sum(has_hole), 1.0)


@functools.cache  # defines and registers the Keras class once per process
def diffusive_fill_layer():
    """The Keras layer class of diffusive inpainting, defined on first use (Keras is imported
    lazily): ``steps`` Jacobi sweeps of Laplace's equation in the hole (each hole pixel becomes
    the mean of its 4 neighbours; observed pixels stay; edges reflect), started from 0. Linear in
    the observed data; the diffusive inpainting of point sources in Planck maps (Gruetjen et al. 2017)."""
    import keras
    from keras import ops

    @register_serializable
    class DiffusiveFill(keras.layers.Layer):
        def __init__(self, steps: int, **kwargs):
            super().__init__(**kwargs)
            self.steps = int(steps)

        def call(self, inputs):
            data, mask = inputs
            observed = data * (1 - mask)
            x = observed
            for _ in range(self.steps):
                p = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")
                x = observed + mask * 0.25 * (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:])
            return x

        def get_config(self):
            return {**super().get_config(), "steps": self.steps}

    return DiffusiveFill


def build_gated_unet(height: int, width: int, channels: int = 32, levels: int = 4, seed: int = 0, diffusion_steps: int = 0):
    """keras Model [(B, H, W, 1) observed data with 0 in the hole, (B, H, W, 1) mask] -> the fill
    (B, H, W, 1), linear in the data for a fixed mask (module docstring). H and W must be
    divisible by 2**levels. diffusion_steps > 0: the network sees a diffusive fill of the hole
    (:func:`diffusive_fill_layer`) beside the data and adds its output to it (the last layer
    starts at zero, so training starts from the diffusive fill)."""
    import keras
    from keras import layers

    if height % 2**levels or width % 2**levels:
        raise ValueError(f"patches of {height} x {width} are not divisible by 2**{levels}, which the gated U-net's {levels} levels need")
    init = keras.initializers.GlorotUniform(seed=seed)

    def data_conv(x, stride=1, name=None):
        return layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False, kernel_initializer=init, name=name)(x)

    def gated(x, q, name):
        return layers.Multiply(name=f"{name}_gated")([x, layers.Conv2D(channels, 1, activation="sigmoid", kernel_initializer=init, name=f"{name}_gate")(q)])

    def mask_conv(q, stride, name):
        return layers.LeakyReLU(0.2, name=f"{name}_act")(layers.Conv2D(channels, 3, strides=stride, padding="same", kernel_initializer=init, name=name)(q))

    data = keras.Input((height, width, 1), name="observed")
    mask = keras.Input((height, width, 1), name="mask")
    q = mask_conv(layers.Concatenate(name="mask_and_observed")([mask, 1 - mask]), 1, "mask0")
    prefill = diffusive_fill_layer()(int(diffusion_steps), name="diffusive_fill")([data, mask]) if diffusion_steps > 0 else None
    d = gated(data_conv(data if prefill is None else layers.Concatenate(name="data_and_diffusive")([data, prefill]), name="data0"), q, "enc0")
    skips, gates = [d], [q]
    for level in range(1, levels + 1):
        q = mask_conv(mask_conv(q, 2, f"mask{level}_down"), 1, f"mask{level}")
        d = gated(data_conv(d, 2, name=f"data{level}_down"), q, f"enc{level}a")
        d = gated(data_conv(d, name=f"data{level}"), q, f"enc{level}b")
        skips.append(d)
        gates.append(q)
    u = d
    for level in range(levels - 1, -1, -1):
        u = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init, name=f"up{level}")(u)
        u = layers.Add(name=f"skip{level}")([u, skips[level]])
        u = gated(data_conv(u, name=f"dec{level}"), gates[level], f"dec{level}")
    if prefill is None:
        fill = layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer=init, name="fill")(u)
    else:
        fill = layers.Add(name="diffusive_plus_correction")([prefill, layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="zeros", name="fill")(u)])
    return keras.Model([data, mask], fill, name="gated_unet")


class _Sampler(MaskSampler):
    """Batches for the gated U-net: x = (observed, mask), y = (truth, mask) stacked."""

    def __call__(self, x, y, idx, epoch):
        mask = self.masks(idx, epoch).astype(np.float32)[..., None]
        return (x * (1 - mask), mask), np.concatenate([y, mask], axis=-1)


# More than 8 parameters: the data splits, the settings, the seed and where the run keeps its state (checkpoint, TensorBoard), as every train() here.
def train(truth_train, truth_val, bank, settings: dict, seed: int, checkpoint_dir, tensorboard_dir=None, callbacks=()):
    """Fit the gated U-net on hole-free truth patches (N, H, W, 1) uK_CMB with masks drawn from
    ``bank`` (Nb, H, W) uint8, resumable; returns (model in uK_CMB, history). Trained in units of
    the truth's rms, which the returned model applies and removes itself (:func:`in_uk`)."""
    import keras

    s = {**DEFAULTS, **{k: v for k, v in settings.items() if k in DEFAULTS}}
    set_seeds(seed)
    scale = truth_scale(truth_train)
    height, width = truth_train.shape[1:3]
    fingerprint = hashlib.sha256(json.dumps([s, seed, data_digest(truth_train, truth_val, bank)], sort_keys=True, default=str).encode()).hexdigest()[:16]
    norm = {"input_offset": [0.0], "input_scale": [scale], "label_offset": 0.0, "label_scale": scale}
    train_batches = PatchBatches(
        [truth_train], [truth_train], ["T"], norm, s["batch_size"], seed, shuffle=True, augment=s["augment"],
        stage="gated-epoch", hook=_Sampler(bank, len(truth_train), seed),
    )
    val_batches = PatchBatches(
        [truth_val], [truth_val], ["T"], norm, s["batch_size"], seed, shuffle=False, augment=False,
        stage="gated-epoch", hook=_Sampler(bank, len(truth_val), seed + 1, fixed=True),
    )
    steps = len(train_batches) * s["epochs"]

    def build_and_compile():
        model = build_gated_unet(height, width, s["width"], s["levels"], seed, s["diffusion_steps"])
        schedule = keras.optimizers.schedules.CosineDecay(s["learning_rate"], steps, alpha=0.01)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=log_hole_mse)
        return model

    register_serializable(log_hole_mse)
    with distribution_scope():
        core, history = fit_resumable(
            build_and_compile, train_batches, val_batches, epochs=s["epochs"], patience=s["patience"],
            checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, tensorboard_dir=tensorboard_dir, callbacks=callbacks,
        )
    return in_uk(core, scale), history


def in_uk(core, scale: float):
    """The trained network with its normalisation as layers: takes and returns uK_CMB."""
    import keras
    from keras import layers

    data, mask = keras.Input(core.inputs[0].shape[1:], name="observed_uK"), keras.Input(core.inputs[1].shape[1:], name="mask")
    fill = core([layers.Rescaling(1.0 / scale, name="to_units")(data), mask])
    return keras.Model([data, mask], layers.Rescaling(scale, name="to_uK")(fill), name="gated_unet_uK")


def fill(model, observed: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The network's hole fill (N, H, W) in uK_CMB of observed patches (N, H, W) (holes ignored)."""
    m = np.asarray(mask, dtype=np.float32)[..., None]
    x = np.asarray(observed, dtype=np.float32)[..., None] * (1 - m)
    return model.predict([x, m], batch_size=batch_size, verbose=0)[..., 0].astype(np.float64)


# More than 8 parameters: the model, the patches, the prior, the sampling and the small-hole route.
def inpaint(model, observed, mask, cov: FlatSkyCovariance, n_samples: int, seed: int, batch_size: int = 64, small_holes: dict | None = None, keep_samples: int = 0):
    """Posterior mean (the fill operator f applied to the data) and per-pixel std over ``n_samples``
    constrained realisations (module docstring), uK_CMB, each (N, H, W, 1) float32, composites that
    keep the observed pixels (std 0 there), and the first ``keep_samples`` samples (N, k, H, W),
    k = min(keep_samples, n_samples),
    float32. Prior draws from rng_for(seed, 'gated-samples', first sample of each group of
    :data:`SAMPLES_PER_DRAW`).

    small_holes {max_pixels, pad}: f fills hole components of at most max_pixels pixels with their
    local Gaussian conditional mean (:class:`LocalConditionalMean`) instead of the network, and so
    samples them as exact local constrained realisations; None or max_pixels 0: the network fills
    every hole. Why: on source discs the local solve, from a few hundred pixels, reaches the
    Gaussian bound, which the network's fill does not."""
    observed = np.asarray(observed, dtype=np.float64)
    observed = observed[..., 0] if observed.ndim == 4 else observed
    hole = np.asarray(mask, dtype=bool)
    hole = hole[..., 0] if hole.ndim == 4 else hole
    route = small_holes or {}
    local = LocalConditionalMean(hole, cov, route["max_pixels"], route.get("pad", 12)) if route.get("max_pixels", 0) else None
    if local is not None:
        log.info("local Gaussian conditional mean fills %d of %d hole pixels (components <= %d px)", int(local.covered.sum()), int(hole.sum()), route["max_pixels"])

    def operator(x):
        out = np.where(hole, fill(model, x, hole, batch_size), x)
        return out if local is None else local.apply(out)

    mean = operator(observed)
    total = np.zeros_like(mean)
    total_sq = np.zeros_like(mean)
    kept = np.zeros((len(mean), min(int(keep_samples), int(n_samples))) + mean.shape[1:], dtype=np.float32)
    for start in range(0, int(n_samples), SAMPLES_PER_DRAW):
        k = min(SAMPLES_PER_DRAW, int(n_samples) - start)  # one prior factorisation per k samples
        draws = gaussian_realisations(cov, k * len(observed), rng_for(seed, "gated-samples", start)).reshape((k,) + observed.shape)
        for j, z in enumerate(draws):
            sample = mean + np.where(hole, z - operator(z), 0.0)
            total += sample
            total_sq += sample * sample
            if start + j < kept.shape[1]:
                kept[:, start + j] = sample
    n = max(int(n_samples), 1)
    var = np.maximum(total_sq / n - (total / n) ** 2, 0.0) * (n / max(n - 1, 1))
    return mean[..., None].astype(np.float32), (np.sqrt(var) * hole)[..., None].astype(np.float32), kept


# More than 8 parameters: which model, the model, the patches, the prior, the sampling and the small-hole route.
def posterior(kind: str, model, observed, mask, cov: FlatSkyCovariance, n_samples: int, seed: int, small_holes: dict | None = None):
    """(mean, std) of either CosmoVAE model (config cosmovae.model): 'gated' through :func:`inpaint`
    (``small_holes`` as there), 'vae' through :func:`cmbnn.inpainting.cosmovae.inpaint` (its latent,
    not ``cov``; every hole its own)."""
    if kind == "gated":
        return inpaint(model, observed, mask, cov, n_samples, seed, small_holes=small_holes)[:2]
    if kind == "vae":
        return cosmovae.inpaint(model, observed, mask, n_samples, seed)
    raise ValueError(f"cosmovae.model must be 'gated' or 'vae', got {kind!r}")


def load_model(path):
    """Either CosmoVAE model from its .keras file (the gated one's nested training model names its loss)."""
    register_serializable(log_hole_mse)
    diffusive_fill_layer()
    return cosmovae.load_model(path)
