"""Generative models of dust intensity patches: the dust VAE (Thorne et al. 2021), the beta-VAE
and the conditional VAE ("cvae2": the scalar condition joins the encoder's flattened output and z).

Data are log dust intensities, standardised with one mean and one standard deviation of log I
taken over the training split (:func:`log_standardise`); the paper standardised each image, which
would erase the amplitude that the conditional model is asked to follow (brighter towards the
Galactic plane), so the statistics are global and stored with the model.

Model (Keras 3, ``keras.ops`` only): an encoder of stride-2 4x4 convolutions (batch norm, ReLU),
Dense(dense_units) (none when 0, as in the reference code) and a diagonal Gaussian latent (256 by
default); a decoder Dense (ReLU, or linear as in the reference code) -> (h0, w0, c0)
-> stride-2 4x4 transposed convolutions -> 1x1 convolution to a per-pixel Gaussian (mean, log
scale). Loss per patch: -log p(x|z) summed over pixels + beta KL(q(z|x) || N(0, 1)) summed over
the latent (beta = 1: the dust VAE; beta = 0.1: the beta-VAE default).

Tools: :func:`sample` (prior draws, decoded means), :func:`encode`, :func:`slerp` (angle between
the unit vectors; DustVAEder used dot(z1, z2) * pi / 180), :func:`impute` (the MAP latent of
|z|^2 + |A g(z) - d|^2 / sigma^2, the objective DustVAEder's notebook had with the prior's sign
flipped, optimised with Adam through ``model.fit`` so it runs on every backend).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cmbnn.analysis.gaussian_field import conditional_mean, conditional_std, patch_stack
from cmbnn.dust.statistics import empirical_cl, hann_window
from cmbnn.io import atomic_output
from cmbnn.nn.data import data_digest
from cmbnn.nn.training import PatchBatches, distribution_scope, fit_resumable, register_serializable, set_seeds

DEFAULTS = {
    "latent_dim": 256,
    "encoder_filters": [256, 128, 64],   # the paper's, 4x4 stride 2 each
    "dense_units": 512,                  # 0: the flattened convolutions feed the latent directly (the reference code)
    "decoder_dense_activation": "relu",  # the reference code's decoder Dense is linear
    "decoder_filters": [128, 64, 32, 16],  # 4x4 stride-2 transposed convolutions (the paper's, for 256x256)
    "decoder_channels": 32,              # channels of the first decoder grid (paper: Dense 8192 -> 16x16x32)
    "decoder_upsampling": "transposed",  # the paper's; resize: bilinear x2 then a 3x3 convolution (no checkerboard)
    "beta": 1.0,
    "conditional": False,
    "encoder_input": "patch",            # demeaned: the encoder sees each patch minus its mean (see build_encoder)
    "condition_offset": False,           # conditional: add a learned function of the condition to the decoded mean (see build_decoder)
    "likelihood": "pixel",               # pixel: a Gaussian per pixel (the paper's) | calibrated: one variance, the batch's MSE | fourier: one per |k| ring (fourier_nll)
    "normalization": "batch",            # batch (the paper's) | group (GroupNorm, no running statistics) | none
    "sampler_residual": "level",         # the sampler: level (decoder means through their transfer to the data, fit_transfer; residual amplitude a function of the decoder mean, level_scales) | stationary
    # training (through cmbnn.nn.training.fit_resumable, as CENN and CosmoVAE)
    "epochs": 100,
    "batch_size": 8,
    "learning_rate": 1.0e-4,
    "beta_1": 0.5,                       # the paper's Adam beta1
    "patience": 100,
    "augment": True,                     # flips and quarter turns (dust intensity is a scalar)
}
LOG2PI = float(np.log(2 * np.pi))


def with_defaults(settings: dict | None) -> dict:
    return {**DEFAULTS, **(settings or {})}


def log_standardise(intensity: np.ndarray, stats: dict | None = None) -> tuple[np.ndarray, dict]:
    """(log I - mean) / std with the given stats, or stats computed from ``intensity`` (the training split)."""
    intensity = np.asarray(intensity, dtype=np.float64)
    if not np.all(np.isfinite(intensity) & (intensity > 0)):
        raise ValueError("dust intensities must be positive and finite to take their log")
    log_i = np.log(intensity)
    if stats is None:
        stats = {"log_mean": float(log_i.mean()), "log_std": float(log_i.std())}
    return ((log_i - stats["log_mean"]) / stats["log_std"]).astype(np.float32), stats


def intensity_from_standardised(x: np.ndarray, stats: dict) -> np.ndarray:
    """The inverse of :func:`log_standardise`."""
    return np.exp(np.asarray(x, dtype=np.float64) * stats["log_std"] + stats["log_mean"])


# ----------------------------------------------------------------------------- loss terms


def gaussian_nll(x, mean, log_scale):
    """-log N(x | mean, exp(log_scale)^2) summed over pixels, per sample (keras.ops)."""
    from keras import ops

    z = (x - mean) * ops.exp(-log_scale)
    return ops.sum(0.5 * z * z + log_scale + 0.5 * LOG2PI, axis=tuple(range(1, len(ops.shape(x)))))


def ring_index(height: int, width: int) -> np.ndarray:
    """The |k| ring (rounded integer wavenumber, in units of the fundamental) of each 2-D FFT mode (H, W)."""
    ky = np.fft.fftfreq(height) * height
    kx = np.fft.fftfreq(width) * width
    return np.rint(np.hypot(*np.meshgrid(ky, kx, indexing="ij"))).astype(np.int64)


def fourier_nll(x, mean, rings: np.ndarray):
    """-log p(x | mean) per sample for a stationary Gaussian residual, diagonal in Fourier space,
    each |k| ring's variance set to the batch's mean residual power there (keras.ops); ``rings``
    from :func:`ring_index`, all zeros for one variance over every mode: the batch's MSE.

    That is the calibrated decoder of Rybkin et al. (2021): the decoder variance at its optimum,
    so the reconstruction and KL terms keep their balance as the fit improves, and no per-pixel
    scale can run off. Ring by ring, each mode's error counts relative to the error at its scale,
    so small scales weigh as much as large ones and the few large-scale modes, which hold most of
    the variance, barely count: that variant is not the default. Periodic FFT of the residual, no
    window, so the edge pixels count."""
    from keras import ops

    r = (x - mean)[..., 0]
    if not rings.any():  # one ring: by Parseval the mean power is the batch's MSE, no FFT needed
        mse = ops.stop_gradient(ops.mean(r * r)) + 1e-12
        return 0.5 * ops.sum(r * r / mse + ops.log(mse) + LOG2PI, axis=(1, 2))
    n_rings = int(rings.max()) + 1
    onehot = np.zeros((rings.size, n_rings), np.float32)
    onehot[np.arange(rings.size), rings.reshape(-1)] = 1.0
    counts = onehot.sum(axis=0)
    re, im = ops.fft2((r, ops.zeros_like(r)))
    power = ops.reshape(re * re + im * im, (-1, rings.size)) / float(rings.size)  # unitary: E = pixel variance per mode
    ring_power = ops.matmul(ops.mean(power, axis=0, keepdims=True), onehot) / counts
    mode_power = ops.stop_gradient(ops.matmul(ring_power, onehot.T)) + 1e-12
    return 0.5 * ops.sum(power / mode_power + ops.log(mode_power) + LOG2PI, axis=-1)


def standard_kl(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, 1)) summed over the latent, per sample (keras.ops)."""
    from keras import ops

    return 0.5 * ops.sum(ops.exp(log_var) + mu * mu - 1.0 - log_var, axis=-1)


# ----------------------------------------------------------------------------- model


def decoder_grid(height: int, width: int, n_up: int) -> tuple[int, int]:
    f = 2**n_up
    if height % f or width % f:
        raise ValueError(f"{n_up} stride-2 decoder blocks need patch sides divisible by {f}, got {height}x{width}")
    return height // f, width // f


def normalization(s: dict, name: str, filters: int):
    """The layer after each convolution: batch (the paper's), group (GroupNorm over up to 8
    groups: no running statistics) or none. Why the choice: batch norm's running averages
    (momentum 0.99, 50 steps an epoch here) lag the weights, so the validation loss computed with
    them can jump between epochs."""
    from keras import layers

    kind = s["normalization"]
    if kind == "batch":
        return layers.BatchNormalization(name=name)
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(8, int(filters)), name=name)
    if kind == "none":
        return layers.Identity(name=name)
    raise ValueError(f"normalization must be 'batch', 'group' or 'none', got {kind!r}")


def build_encoder(height, width, s, conditional: bool):
    import keras
    from keras import layers

    x_in = keras.Input((height, width, 1), name="patch")
    inputs = [x_in]
    h = x_in
    if s["encoder_input"] == "demeaned":
        # The patch mean (its brightness) cannot reach z, so the decoder has to take it from the
        # condition: with the whole patch in view the cVAE's z carried it and the |b| was ignored.
        h = h - keras.ops.mean(h, axis=(1, 2, 3), keepdims=True)
    elif s["encoder_input"] != "patch":
        raise ValueError(f"encoder_input must be 'patch' or 'demeaned', got {s['encoder_input']!r}")
    for i, f in enumerate(s["encoder_filters"]):
        h = layers.Conv2D(f, 4, strides=2, padding="same", name=f"enc_conv{i}")(h)
        h = normalization(s, f"enc_bn{i}", f)(h)
        h = layers.ReLU()(h)
    h = layers.Flatten()(h)
    if conditional:
        c_in = keras.Input((1,), name="condition")
        inputs.append(c_in)
        h = layers.Concatenate()([h, c_in])
    if s["dense_units"]:
        h = layers.Dense(s["dense_units"], activation="relu", name="enc_dense")(h)
    mu = layers.Dense(s["latent_dim"], name="z_mean")(h)
    log_var = layers.Dense(s["latent_dim"], name="z_log_var")(h)
    return keras.Model(inputs, [mu, log_var], name="encoder")


def build_decoder(height, width, s, conditional: bool):
    import keras
    from keras import layers

    h0, w0 = decoder_grid(height, width, len(s["decoder_filters"]))
    z_in = keras.Input((s["latent_dim"],), name="z")
    inputs = [z_in]
    h = z_in
    if conditional:
        c_in = keras.Input((1,), name="condition")
        inputs.append(c_in)
        h = layers.Concatenate()([h, c_in])
    h = layers.Dense(h0 * w0 * s["decoder_channels"], activation=s["decoder_dense_activation"], name="dec_dense")(h)
    h = layers.Reshape((h0, w0, s["decoder_channels"]))(h)
    if s["decoder_upsampling"] not in ("transposed", "resize"):
        raise ValueError(f"decoder_upsampling must be 'transposed' or 'resize', got {s['decoder_upsampling']!r}")
    for i, f in enumerate(s["decoder_filters"]):
        if s["decoder_upsampling"] == "transposed":
            h = layers.Conv2DTranspose(f, 4, strides=2, padding="same", name=f"dec_deconv{i}")(h)
        else:
            # A 4x4 stride-2 transposed convolution covers the output pixels unevenly, a
            # checkerboard in its means at the highest |k|; bilinear x2 then a convolution does not.
            h = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec_resize{i}")(h)
            h = layers.Conv2D(f, 3, padding="same", name=f"dec_conv{i}")(h)
        h = normalization(s, f"dec_bn{i}", f)(h)
        h = layers.ReLU()(h)
    out = layers.Conv2D(2, 1, name="mean_log_scale")(h)  # per-pixel Gaussian: mean and log scale
    if conditional and s["condition_offset"]:
        # A direct path from the condition to the mean level: through the Dense and the
        # convolutions alone the decoder falls short of the brightness range its condition sets.
        offset = layers.Dense(16, activation="tanh", name="cond_offset_hidden")(c_in)
        offset = layers.Reshape((1, 1, 1))(layers.Dense(1, name="cond_offset")(offset))
        # Broadcast to the full map before adding: Keras' TensorFlow add takes a (B, 1, 1, 1)
        # operand for a channel bias when the static batch B equals the height (predict's batches
        # of 64 on 64-pixel patches) and added sample i's offset to row i of every patch.
        mean = out[..., :1]
        out = layers.Concatenate(name="mean_log_scale_offset")([mean + keras.ops.ones_like(mean) * offset, out[..., 1:]])
    return keras.Model(inputs, out, name="decoder")


@functools.cache  # defines and registers the Keras class once per process
def _model_class():
    import keras
    from keras import ops

    @register_serializable
    class DustVAE(keras.Model):
        """Encoder, reparametrised sample, decoder. Inputs: x (B, H, W, 1) standardised log I, or
        [x, condition (B, 1)] when conditional. ``call`` returns (mean, log_scale, mu, log_var)."""

        def __init__(self, height, width, settings=None, seed=0, stats=None, condition_stats=None, **kwargs):
            super().__init__(**kwargs)
            self.settings = with_defaults(settings)
            self.height, self.width, self.seed = int(height), int(width), int(seed)
            self.stats = dict(stats or {})
            self.condition_stats = dict(condition_stats or {})
            self.conditional = bool(self.settings["conditional"])
            self.encoder = build_encoder(self.height, self.width, self.settings, self.conditional)
            self.decoder = build_decoder(self.height, self.width, self.settings, self.conditional)
            self.seed_generator = keras.random.SeedGenerator(self.seed)
            # Keras saves a model's own variables, not its seed generators' states: tracked as an
            # attribute, the reparametrisation's state is checkpointed, so a resumed run draws the
            # same noise (without it the resumed loss differed from the uninterrupted one).
            self.sampler_state = self.seed_generator.state
            if self.settings["sampler_residual"] not in ("level", "stationary"):
                raise ValueError(f"sampler_residual must be 'level' or 'stationary', got {self.settings['sampler_residual']!r}")
            if self.settings["likelihood"] not in ("pixel", "calibrated", "fourier"):
                raise ValueError(f"likelihood must be 'pixel', 'calibrated' or 'fourier', got {self.settings['likelihood']!r}")
            # calibrated: one ring holding every mode
            fourier = self.settings["likelihood"] == "fourier"
            self.rings = ring_index(self.height, self.width) if fourier else np.zeros((self.height, self.width), np.int64)

        def _split(self, inputs):
            if self.conditional:
                x, c = inputs
                return x, [c]
            return (inputs[0] if isinstance(inputs, (list, tuple)) else inputs), []

        def call(self, inputs, training=False):
            x, cond = self._split(inputs)
            mu, log_var = self.encoder([x, *cond], training=training)
            eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
            z = mu + ops.exp(0.5 * log_var) * eps
            out = self.decoder([z, *cond], training=training)
            return out[..., :1], out[..., 1:2], mu, log_var

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            mean, log_scale, mu, log_var = y_pred
            target, _ = self._split(x)
            if self.settings["likelihood"] == "pixel":
                nll = gaussian_nll(target, mean, log_scale)
            else:  # one ring (calibrated) or each |k| ring its own variance (fourier); the log scale output is unused
                nll = fourier_nll(target, mean, self.rings)
            return ops.mean(nll + self.settings["beta"] * standard_kl(mu, log_var))

        def get_config(self):
            return {**super().get_config(), "height": self.height, "width": self.width, "settings": self.settings, "seed": self.seed,
                    "stats": self.stats, "condition_stats": self.condition_stats}

        @classmethod
        def from_config(cls, config):
            keys = ("name", "trainable", "dtype")
            return cls(**{k: v for k, v in config.items() if k not in keys}, name=config.get("name"))

    return DustVAE


def build_dustvae(height: int, width: int, settings: dict | None = None, seed: int = 0, stats=None, condition_stats=None):
    """A DustVAE, built (weights created) for (height, width) patches."""
    import keras

    model = _model_class()(height, width, settings, seed=seed, stats=stats, condition_stats=condition_stats, name="dustvae")
    x = keras.ops.zeros((1, height, width, 1))
    model([x, keras.ops.zeros((1, 1))] if model.conditional else x)
    return model


def load_model(path):
    import keras

    _model_class()
    return keras.models.load_model(path)


def standardise_condition(values, stats: dict | None = None) -> tuple[np.ndarray, dict]:
    """(c - mean) / std of a scalar condition per patch (N,) -> (N, 1) float32, with the given stats
    or stats from ``values`` (the training split); the model keeps them to condition on raw values."""
    c = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(c)):
        raise ValueError("the condition must be finite for every patch")
    if stats is None:
        stats = {"mean": float(c.mean()), "std": float(c.std()) or 1.0}
    return ((c - stats["mean"]) / stats["std"]).astype(np.float32)[:, None], stats


class ConditionHook:
    """PatchBatches hook of the conditional VAE: the batch becomes ((patch, condition), patch).
    A pure function of the patch indices, so resumed runs stay exact (|b| and mean log I do not
    change under the flips and quarter turns of the augmentation)."""

    def __init__(self, condition: np.ndarray):
        self.condition = np.asarray(condition, dtype=np.float32).reshape(-1, 1)

    def __call__(self, x, y, idx, epoch):
        return (x, self.condition[idx]), y


# More than 8 parameters: the data splits and their conditions, the settings, the seed and where the run keeps its state, as every train() here.
def train(x_train, x_val, settings: dict, seed: int, checkpoint_dir, stats: dict, condition_train=None, condition_val=None,
          condition_stats=None, tensorboard_dir=None, callbacks=()):
    """Fit a dust VAE (or beta / conditional VAE, from ``settings``) on standardised log-intensity
    patches (N, H, W[, 1]); conditions are standardised values (N, 1) (:func:`standardise_condition`).
    Resumes from ``checkpoint_dir`` if an earlier run was killed. Returns (model, history)."""
    import hashlib
    import json

    import keras

    s = with_defaults(settings)
    _model_class()  # registered before a checkpoint is loaded to resume
    set_seeds(seed)
    x_train = np.asarray(x_train, np.float32).reshape(*np.shape(x_train)[:3], 1)
    x_val = np.asarray(x_val, np.float32).reshape(*np.shape(x_val)[:3], 1)
    if s["conditional"] and (condition_train is None or condition_val is None):
        raise ValueError("a conditional VAE needs the condition of every training and validation patch")
    conds = [c for c in (condition_train, condition_val) if c is not None and s["conditional"]]
    fingerprint = hashlib.sha256(
        json.dumps([s, seed, stats, condition_stats, data_digest(x_train, x_val, *[np.asarray(c, np.float32) for c in conds])], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    norm = {"input_offset": [0.0], "input_scale": [1.0], "label_offset": 0.0, "label_scale": 1.0}
    hooks = (ConditionHook(condition_train), ConditionHook(condition_val)) if s["conditional"] else (None, None)
    train_batches = PatchBatches([x_train], [x_train], ["I"], norm, s["batch_size"], seed, shuffle=True, augment=s["augment"],
                                 stage="dustvae-epoch", hook=hooks[0])
    val_batches = PatchBatches([x_val], [x_val], ["I"], norm, s["batch_size"], seed, shuffle=False, augment=False,
                               stage="dustvae-epoch", hook=hooks[1])
    height, width = x_train.shape[1:3]

    def build_and_compile():
        model = build_dustvae(height, width, s, seed=seed, stats=stats, condition_stats=condition_stats)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"], beta_1=s["beta_1"]))
        return model

    with distribution_scope():
        return fit_resumable(build_and_compile, train_batches, val_batches, epochs=s["epochs"], patience=s["patience"],
                             checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, tensorboard_dir=tensorboard_dir, callbacks=callbacks)


# ----------------------------------------------------------------------------- using a model


def _cond(model, condition, n):
    if not model.conditional:
        return []
    if condition is None:
        raise ValueError("a conditional model needs the condition of every patch")
    c = np.broadcast_to(np.asarray(condition, dtype=np.float32).reshape(-1, 1), (n, 1))
    return [np.ascontiguousarray(c)]


def encode(model, x: np.ndarray, condition=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log variances (N, latent) of standardised patches (N, H, W[, 1])."""
    x = np.asarray(x, dtype=np.float32)
    x = x[..., None] if x.ndim == 3 else x
    mu, log_var = model.encoder.predict([x, *_cond(model, condition, len(x))], batch_size=batch_size, verbose=0)
    return mu, log_var


def decode(model, z: np.ndarray, condition=None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and scale (N, H, W) of the decoder at latents z (N, latent)."""
    out = model.decoder.predict([np.asarray(z, dtype=np.float32), *_cond(model, condition, len(z))], batch_size=batch_size, verbose=0)
    return out[..., 0], np.exp(out[..., 1])


def sample(model, n: int, rng, condition=None, latent=None, sampler: dict | None = None) -> np.ndarray:
    """n new patches (N, H, W), standardised units: decoder means at z drawn from ``rng``, from the
    prior N(0, 1) or, with ``latent`` = (mean, cholesky factor) of :func:`fit_latent_gaussian`,
    from a Gaussian fitted to the encodings of real patches. ``sampler`` (:func:`fit_sampler`, saved
    with the model) takes its latent from there and adds its residual field to the decoder means;
    a conditional model's condition (standardised, (N, 1) or one value), when not given, is drawn
    from the training patches' conditions the sampler keeps: the model's own p(c)."""
    if model.conditional and condition is None and (sampler is None or "conditions" not in sampler):
        raise ValueError("a conditional model samples at given conditions or from its sampler's training conditions")
    if sampler is not None:
        network, residual = sample_parts(model, n, rng, sampler, condition)
        return network + residual
    z = rng.standard_normal((n, model.settings["latent_dim"]))
    if latent is not None:
        mean, chol = latent
        z = mean + z @ np.asarray(chol).T
    return decode(model, z.astype(np.float32), condition)[0]


def sample_parts(model, n: int, rng, sampler: dict, condition=None) -> tuple[np.ndarray, np.ndarray]:
    """The sampler's draws of :func:`sample` in their two parts, (network, residual) (N, H, W):
    the decoder means through their transfer, and the residual field added after training. Their
    sum is ``sample(model, n, rng, condition, sampler=sampler)`` for the same ``rng`` state."""
    if model.conditional and condition is None:
        condition = rng.choice(np.asarray(sampler["conditions"], dtype=np.float32), n)[:, None]
    z = sampler["latent_mean"] + rng.standard_normal((n, model.settings["latent_dim"])) @ np.asarray(sampler["latent_chol"]).T
    means = sampler_means(sampler, decode(model, z.astype(np.float32), condition)[0])
    return means, residual_field(sampler, n, means.shape[1:], rng, means)


def sample_without_network(sampler: dict, patches: np.ndarray, n: int, rng, transfer=None) -> np.ndarray:
    """The sampler with the network taken out: n training ``patches`` (drawn with replacement) in
    place of the decoder means, low-passed by the decoder's transfer to the data (the sampler's,
    or ``transfer`` = (k, T) of :func:`fit_transfer` for a sampler fitted without one), plus the
    same residual field. Where this scores like the sampler, the network adds nothing that the
    post-hoc parts and a low-passed real patch do not."""
    k, t = (sampler["transfer_k"], sampler["transfer"]) if "transfer" in sampler else transfer
    means = apply_transfer(np.asarray(patches, dtype=np.float64)[rng.choice(len(patches), n)], k, t)
    return means + residual_field(sampler, n, means.shape[1:], rng, means)


def network_fraction(network: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fraction of the samples' variance, per |k| ring, that the network's part carries:
    (cycles per patch, P_network / (P_network + P_residual)), the powers Hann-windowed with the
    patch means removed (the two parts are drawn independently, so their powers add)."""
    network, residual = np.asarray(network, dtype=np.float64), np.asarray(residual, dtype=np.float64)
    h, w = network.shape[1:]
    rings = ring_index(h, w).ravel()
    powers = [np.bincount(rings, windowed_power(a - a.mean(axis=(1, 2), keepdims=True)).ravel()) for a in (network, residual)]
    total = powers[0] + powers[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(total > 0, powers[0] / total, np.nan)
    return np.arange(len(fraction)), fraction


def fit_sampler(model, x: np.ndarray, condition=None) -> dict:
    """The model's generative distribution, fitted once after training and saved with it
    (:func:`save_sampler`): z from the Gaussian fitted to the training encodings
    (:func:`fit_latent_gaussian`), a conditional model's c from its training conditions (kept as
    they are: the condition is an input, the sampler draws from them, :func:`sample`), and p(x | z)
    the decoder mean plus a Gaussian residual: a field with the 2-D power the training
    reconstructions (decoder means at the posterior means) lack against the training patches,
    drawn on the periodic patch grid, and a constant per patch for the patch means the
    reconstructions miss (their mean and scatter). With ``sampler_residual: level`` the decoder
    means are first filtered by their transfer to the data (:func:`fit_transfer`) and the field is
    multiplied by an amplitude that follows the decoder mean (:func:`level_scales`). Why: the decoder's mean
    is the average over what z cannot hold, so it is smooth; the small scales it leaves out are
    what the field puts back, as a VAE with a Fourier-diagonal decoder variance would when sampled,
    not averaged. The field has a 2-D power, not an isotropic C_ell fit, so that it holds only the
    modes the patch has (nothing extrapolated to larger scales)."""
    x = patch_stack(np.asarray(x, dtype=np.float64))
    mu, log_var = encode(model, x, condition)  # once: the latent fit and the reconstructions share it
    mean, chol = _latent_gaussian(mu, log_var)
    recon = decode(model, mu, condition)[0]
    transfer = {}
    if model.settings["sampler_residual"] == "level":
        # The decoder's modes that do not follow the data shrunk away first: they are noise that
        # a residual field, which only adds, cannot take out.
        transfer["transfer_k"], transfer["transfer"] = fit_transfer(x, recon)
        recon = apply_transfer(recon, transfer["transfer_k"], transfer["transfer"])
    # The power the decoder means lack, mode by mode (that of x - recon would count the transposed
    # convolutions' checkerboard twice), Hann-windowed so the edges' jump leaks no large scales into
    # small ones, and without the patch means, which the window leaks into the lowest modes.
    x_means, recon_means = x.mean(axis=(1, 2)), recon.mean(axis=(1, 2))
    power = np.maximum(windowed_power(x - x_means[:, None, None]) - windowed_power(recon - recon_means[:, None, None]), 0.0)
    power[0, 0] = 0.0
    missed = x_means - recon_means
    sampler = {"latent_mean": mean, "latent_chol": chol, "residual_power": power, "residual_mean": np.float64(missed.mean()),
               "residual_mean_std": np.float64(missed.std()), "residual_variance": np.float64(power.sum() / power.size**2 + missed.var()), **transfer}
    if model.settings["sampler_residual"] == "level":
        # How much the decoder misses depends on where it is (less in the faint valleys than on
        # the bright ridges): a stationary field would make the valleys as rough as the ridges.
        sampler["residual_levels"], sampler["residual_scales"] = level_scales(recon, x - recon - missed[:, None, None])
    if model.conditional:
        sampler["conditions"] = np.asarray(condition, dtype=np.float32).reshape(-1)
    return sampler


def windowed_power(x: np.ndarray) -> np.ndarray:
    """Mean 2-D power |FFT(w x)|^2 / mean(w^2) over patches (N, H, W), w a 2-D Hann window: the
    patch's spectrum without the leakage of its edges, normalised so a white field of variance s^2
    has s^2 H W in every mode, as a bare FFT gives."""
    x = np.asarray(x, dtype=np.float64)
    window = hann_window(*x.shape[1:])
    return np.mean(np.abs(np.fft.fft2(x * window)) ** 2, axis=0) / np.mean(window**2)


def fit_transfer(x: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoder mean's transfer to the data, per |k| ring: (k in cycles per pixel, T(k)) with
    T = Re sum x_k conj(r_k) / sum |r_k|^2 over the ring's modes and the patches (Hann-windowed,
    patch means removed), clipped to [0, 1]: the least-squares shrinkage of each Fourier mode of
    the reconstructions r towards the patches x. Where the decoder's modes are noise that does
    not follow the data, T goes to 0 and the residual field takes their place."""
    x, recon = np.asarray(x, dtype=np.float64), np.asarray(recon, dtype=np.float64)
    h, w = x.shape[1:]
    window = hann_window(h, w)
    fx = np.fft.fft2((x - x.mean(axis=(1, 2), keepdims=True)) * window)
    fr = np.fft.fft2((recon - recon.mean(axis=(1, 2), keepdims=True)) * window)
    side = max(h, w)
    rings = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")) * side).astype(np.int64)
    cross = np.bincount(rings.ravel(), np.real(fx * np.conj(fr)).sum(axis=0).ravel())
    power = np.bincount(rings.ravel(), (np.abs(fr) ** 2).sum(axis=0).ravel())
    with np.errstate(divide="ignore", invalid="ignore"):
        transfer = np.clip(np.where(power > 0, cross / power, 0.0), 0.0, 1.0)
    transfer[0] = 1.0  # the patch means pass unchanged (the sampler's constant handles what they miss)
    return np.arange(len(transfer)) / side, transfer


def sampler_means(sampler: dict | None, means: np.ndarray) -> np.ndarray:
    """The mean of the sampler's p(x | z) at decoder means (N, H, W): through the decoder's transfer
    to the data (:func:`apply_transfer`) where the sampler was fitted with one, else as decoded."""
    if sampler is None or "transfer" not in sampler:
        return np.asarray(means, dtype=np.float64)
    return apply_transfer(means, sampler["transfer_k"], sampler["transfer"])


def apply_transfer(maps: np.ndarray, k: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Patches (N, H, W) filtered by T(|k|) (:func:`fit_transfer`), their means kept; mirrored to
    2H x 2W first, so the filter does not wrap one edge's structure onto the other."""
    maps = np.asarray(maps, dtype=np.float64)
    h, w = maps.shape[1:]
    means = maps.mean(axis=(1, 2), keepdims=True)
    a = maps - means
    a = np.concatenate([a, a[:, ::-1]], axis=1)
    a = np.concatenate([a, a[:, :, ::-1]], axis=2)
    kk = np.hypot(*np.meshgrid(np.fft.fftfreq(2 * h), np.fft.fftfreq(2 * w), indexing="ij"))
    filtered = np.fft.ifft2(np.fft.fft2(a) * np.interp(kk, k, transfer)).real[:, :h, :w]
    return filtered + means


def level_scales(means: np.ndarray, residual: np.ndarray, n_levels: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The residual's rms as a function of the decoder mean's value: (levels, scales) (n_levels,),
    the mean of ``means`` and the rms of ``residual`` in equal-count bins of ``means``, the scales
    divided by their pixel-weighted rms (so sum over pixels of scale^2 is that of 1: the residual's
    variance stays what its 2-D power says, redistributed between faint and bright pixels)."""
    m, r = np.asarray(means, dtype=np.float64).ravel(), np.asarray(residual, dtype=np.float64).ravel()
    order = np.argsort(m, kind="stable")
    bins = np.array_split(order, n_levels)
    levels = np.array([m[b].mean() for b in bins])
    scales = np.array([np.sqrt(np.mean(r[b] ** 2)) for b in bins])
    scales = scales / np.sqrt(np.mean(scales**2))  # equal-count bins: this is the pixel-weighted rms
    return levels, scales


def residual_scale(sampler: dict, means: np.ndarray) -> np.ndarray:
    """The residual's relative amplitude at decoder means (:func:`level_scales`), linear between the
    fitted levels and constant beyond them; 1 for samplers fitted without it."""
    if "residual_scales" not in sampler:
        return np.ones_like(np.asarray(means, dtype=np.float64))
    return np.interp(means, np.asarray(sampler["residual_levels"]), np.asarray(sampler["residual_scales"]))


def residual_field(sampler: dict, n: int, shape: tuple[int, int], rng, means: np.ndarray | None = None) -> np.ndarray:
    """n draws (N, H, W) of the sampler's Gaussian residual: white noise filtered to its 2-D power
    (E |FFT|^2 = the power), times the amplitude the decoder ``means`` (N, H, W) call for
    (:func:`residual_scale`; stationary without them), plus a constant per draw, the patch mean the
    decoder misses."""
    power = np.asarray(sampler["residual_power"])
    if power.shape != tuple(shape):
        raise ValueError(f"the sampler's residual field is {power.shape}, the patches {tuple(shape)}")
    white = rng.standard_normal((n,) + tuple(shape))
    field = np.fft.ifft2(np.fft.fft2(white) * np.sqrt(power / power.size)).real
    if means is not None:
        field = field * residual_scale(sampler, means)
    # Samplers written before the patch means were split off carry them in power[0, 0].
    offset = float(sampler.get("residual_mean", 0.0)) + float(sampler.get("residual_mean_std", 0.0)) * rng.standard_normal(n)
    return field + offset[:, None, None]


def save_sampler(path, sampler: dict) -> None:
    """Write a sampler (:func:`fit_sampler`) as .npz, atomically."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in sampler.items()})


def load_sampler(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def fit_latent_gaussian(model, x: np.ndarray, condition=None, jitter: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Cholesky factor of the aggregate posterior's Gaussian fit: the covariance of the
    encoder means over ``x`` plus the mean posterior variance per dimension ("ex-post density
    estimation", Ghosh et al. 2020). A short-trained VAE's encodings do not fill N(0, 1): its
    prior draws then land where the decoder has seen no data, draws from this fit do not."""
    return _latent_gaussian(*encode(model, x, condition), jitter)


def _latent_gaussian(mu: np.ndarray, log_var: np.ndarray, jitter: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_latent_gaussian` from the encodings (posterior means and log variances)."""
    mu = mu.astype(np.float64)
    cov = np.atleast_2d(np.cov(mu.T)) + np.diag(np.exp(log_var.astype(np.float64)).mean(axis=0))
    chol = np.linalg.cholesky(cov + jitter * np.trace(cov) / len(cov) * np.eye(len(cov)))
    return mu.mean(axis=0), chol


def slerp(z1: np.ndarray, z2: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation between two latents at fractions t (K,) -> (K, latent).

    The angle is the one between the unit vectors; the magnitude is interpolated linearly, so
    t = 0 and t = 1 give z1 and z2 exactly. Parallel vectors fall back to linear interpolation.
    """
    z1, z2 = np.asarray(z1, dtype=np.float64), np.asarray(z2, dtype=np.float64)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))[:, None]
    n1, n2 = np.linalg.norm(z1), np.linalg.norm(z2)
    u1, u2 = z1 / n1, z2 / n2
    omega = np.arccos(np.clip(u1 @ u2, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t) * z1 + t * z2
    direction = (np.sin((1 - t) * omega) * u1 + np.sin(t * omega) * u2) / np.sin(omega)
    out = direction * ((1 - t) * n1 + t * n2)
    out[t[:, 0] == 0] = z1
    out[t[:, 0] == 1] = z2
    return out


@functools.cache  # defines and registers the Keras class once per process
def _latent_fit_class():
    import keras
    from keras import ops

    class LatentFit(keras.Model):
        """The latents of N patches as trainable weights in front of a frozen decoder; the loss is
        the MAP objective |z|^2 + |A g(z) - d|^2 / sigma^2 per patch (A: the observed pixels)."""

        def __init__(self, decoder, z0, sigma, condition=None, **kwargs):
            super().__init__(**kwargs)
            self.decoder = decoder
            self.decoder.trainable = False
            self.z = self.add_weight(shape=z0.shape, initializer=keras.initializers.Constant(z0), name="z")
            self.sigma2 = float(sigma) ** 2
            self.condition = None if condition is None else ops.convert_to_tensor(condition)

        def call(self, inputs, training=False):
            cond = [] if self.condition is None else [self.condition]
            return self.decoder([self.z, *cond], training=False)[..., :1]

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            d, observed = x[..., :1], x[..., 1:2]
            residual = observed * (y_pred - d)
            per_patch = ops.sum(self.z * self.z, axis=-1) + ops.sum(residual * residual, axis=(1, 2, 3)) / self.sigma2
            return ops.sum(per_patch)

    return LatentFit


def impute(model, data: np.ndarray, mask: np.ndarray, sigma: float = 0.2, steps: int = 200, learning_rate: float = 0.05, condition=None, z0=None):
    """MAP imputation: for each patch the latent minimising |z|^2 + |A g(z) - d|^2 / sigma^2, with
    A the observed pixels (mask 0) and g the decoder mean; Adam for ``steps`` steps from the
    encoder's mean of the masked patch (or ``z0``). Returns (composite (N, H, W): observed pixels
    kept, holes from g(z); g(z) itself (N, H, W); z (N, latent); objective per patch before and after)."""
    import keras

    d = np.asarray(data, dtype=np.float32)
    d = d[..., 0] if d.ndim == 4 else d
    m = np.asarray(mask, dtype=np.float32)
    observed = 1.0 - m
    n = len(d)
    cond = _cond(model, condition, n)
    if z0 is None:
        z0 = encode(model, d * observed, condition)[0]
    fit = _latent_fit_class()(model.decoder, np.asarray(z0, dtype=np.float32), sigma, cond[0] if cond else None)
    fit.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
    x = np.stack([d, observed], axis=-1)

    def objective():
        g = fit.predict(x, batch_size=n, verbose=0)[..., 0]
        z = keras.ops.convert_to_numpy(fit.z)
        return np.sum(z * z, axis=-1) + np.sum((observed * (g - d)) ** 2, axis=(1, 2)) / sigma**2

    before = objective()
    fit.fit(x, np.zeros((n, 1), np.float32), batch_size=n, epochs=int(steps), shuffle=False, verbose=0)
    after = objective()
    g = fit.predict(x, batch_size=n, verbose=0)[..., 0]
    return m * g + observed * d, g, keras.ops.convert_to_numpy(fit.z), before, after


def decoder_error_cl(model, x: np.ndarray, reso_arcmin: float, lmax: int, condition=None, sampler: dict | None = None) -> np.ndarray:
    """C_ell of the decoder's error x - g(mu(x)) on patches x (decoder means at the posterior
    means, through the ``sampler``'s transfer when given: :func:`sampler_means`): the spectrum of
    what the decoder mean misses, for a Gaussian decoder likelihood p(x | z) = N(g(z), C_err) with
    that isotropic covariance (:func:`krige_decoder_error`)."""
    x = patch_stack(np.asarray(x, dtype=np.float64))
    recon = sampler_means(sampler, decode(model, encode(model, x, condition)[0], condition)[0])
    return empirical_cl(x - recon, reso_arcmin, lmax)


def krige_decoder_error(means: np.ndarray, data: np.ndarray, mask: np.ndarray, error_cov) -> tuple[np.ndarray, np.ndarray]:
    """The holes' posterior mean and std under p(x | z) = N(g(z), C_err) at a fitted z: the decoder
    mean g(z) plus the Gaussian conditional mean of the observed error d - g(z) (about its observed
    mean, as the Gaussian baseline fills about the patch's), and the conditional std of that error.
    means, data (N, H, W); mask (H, W) shared, True = missing; error_cov a
    :class:`cmbnn.analysis.gaussian_field.FlatSkyCovariance` (from :func:`decoder_error_cl`).
    Why: the decoder mean alone is smooth (its error is the spectrum above), and where the hole
    meets the observed pixels that error is correlated with what the observed pixels show."""
    hole = np.asarray(mask, dtype=bool)
    observed = ~hole
    error = np.asarray(data, dtype=np.float64) - np.asarray(means, dtype=np.float64)
    offset = error[:, observed].mean(axis=1)[:, None, None]
    fill = np.where(hole, means + conditional_mean(error - offset, hole, error_cov) + offset, data)
    return fill, np.broadcast_to(conditional_std(hole, error_cov), fill.shape)


# ----------------------------------------------------------------------------- the workflow's stage

CONDITIONS = ("abs_latitude", "mean_log_intensity")


def patch_conditions(kind: str, latitude_deg: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The raw scalar condition of each patch: |b| of its centre (deg) or its mean standardised log I."""
    if kind == "abs_latitude":
        return np.abs(np.asarray(latitude_deg, dtype=np.float64))
    if kind == "mean_log_intensity":
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1).mean(axis=1)
    raise ValueError(f"unknown condition {kind!r}: one of {CONDITIONS}")


def model_conditions(model, latitude_deg: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A trained conditional model's condition for patches: (raw values (N,), standardised with the
    model's own statistics (N, 1)); the kind of condition is the one the model was trained on."""
    raw = patch_conditions(model.condition_stats["kind"], latitude_deg, x)
    return raw, standardise_condition(raw, model.condition_stats)[0]
