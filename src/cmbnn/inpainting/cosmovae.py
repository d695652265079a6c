"""CosmoVAE (Yi et al. 2020, arXiv:2001.11651): inpainting masked CMB temperature patches
with a U-net variational autoencoder whose Gaussian latent has one component per multipole.

Architecture (:func:`build_encoder`, :func:`build_decoder`)
    Input (H, W, 2): the normalised masked map (holes set to 0) and the hole mask (1 = missing).
    Encoder: per stage a Conv2D(filters[i], kernels[i], strides[i]) + LeakyReLU (or a partial
    convolution, ``partial_conv``; the paper says it replaced them by vanilla convolutions,
    the default here). The bottleneck is flattened, goes through the optional Dense
    ``dense_units`` (paper: 6400, 3200) and two Dense layers give the latent mean and log
    variance, one component per multipole ell = 2..ell_max (``latent_dim = ell_max - 1``).
    Decoder: Dense back to the bottleneck shape, then per stage (deepest first) an
    UpSampling2D by that stage's stride, a concatenation with the encoder output of the same
    size (the masked input itself at full size) and Conv2D + LeakyReLU; a linear 1x1
    convolution gives the map (the paper's sigmoid suited its [0, 1] PNGs; ours are uK_CMB
    divided by a scale).

The prior (:func:`prior_variance`)
    z_ell ~ N(0, p_ell) independently, with
        p_ell = (2 ell + 1) / (4 pi) * C_ell^TT * b_ell^2 * w_ell^2 / scale^2,
    C_ell the CAMB TT spectrum in uK^2 (C_ell, not D_ell: the paper's code took the log of
    the PR3 file's D_ell), b_ell the label beam, w_ell the HEALPix pixel window (1 for
    exactly evaluated patches, the default: only patches cut from maps carry one) and ``scale``
    the uK_CMB value of one unit of the network's data (the rms of the training truth
    patches). p_ell is the variance of the normalised map carried by multipole ell, so
    sum_ell p_ell is the variance of the normalised full-sky map (about 1 at the patch
    scale): the latent has the data's units and total variance. The encoder's last Dense
    layers predict the mean and log variance in units of the prior (mu = sqrt(p) m,
    log var = log p + v), so training starts at the prior; the KL term is the closed form
    for the diagonal Gaussians. (A linear first decoder layer can absorb any diagonal
    rescaling of z, so the prior shapes the optimisation and the sampling scale rather than
    the family of models.)

Loss (:func:`loss_terms`; per-pixel means over batch and pixels, normalised units)
    valid * mean |(1 - m)(y - t)| + hole * mean |m (y - t)|
    + kl * KL(q(z|x) || prior) / (H W)       (per sample, summed over the latent, / pixels)
    + perceptual * sum_{pool1..3} (mean |phi(y) - phi(t)| + mean |phi(c) - phi(t)|)
    + tv * total variation of the composite c = m y + (1 - m) t over neighbour pairs both in
      the hole dilated by one pixel (3x3).
    phi: VGG16 block1..3 pool features of the map repeated on 3 channels (ImageNet weights from a
    local file: :func:`vgg_features`); the default turns the term off (weight 0, no file).

Uncertainty
    :func:`inpaint` returns the mean and per-pixel std of the composite over latent draws, as the
    paper's figure 6. The encoder sees only the masked map, and every reconstruction term is a
    per-sample L1 that extra noise can only raise, so the decoder has no reason to use z (the U-net
    skips carry the observed pixels): the sample scatter is a lower bound, not a calibrated
    posterior width (rule inpainting_metrics reports its coverage beside the Gaussian's).

Keras 3 only (keras.ops), so it trains on TensorFlow, JAX or PyTorch; training goes through
:mod:`cmbnn.nn.training` (resumable checkpoints, (seed, epoch) batches, NaN stop, history).
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

from cmbnn.harmonics import gaussian_beam, pixel_window
from cmbnn.io import write_h5
from cmbnn.nn.data import channel_moments, data_digest
from cmbnn.nn.training import PatchBatches, dihedral, distribution_scope, fit_resumable, register_serializable, set_seeds
from cmbnn.seeding import rng_for

PAPER = {
    "filters": [64, 128, 256, 512, 512, 512],
    "kernels": [7, 5, 5, 3, 3, 3],
    "strides": [2, 2, 2, 2, 5, 1],
    "dense_units": [6400, 3200],
    "ell_max": 2508,
    "partial_conv": False,
    "leaky_slope": 0.2,
    "batch_size": 4,
    "learning_rate": 2e-4,
    "beta_1": 0.5,
    "epochs": 100,
    "patience": 10,
    "augment": True,
    "loss_weights": {"valid": 1.0, "hole": 6.0, "kl": 1.0, "perceptual": 0.05, "tv": 0.1},
    "perceptual_weights_file": None,
    "perceptual_filters": [64, 128, 256],
}
LOSS_TERMS = ("valid", "hole", "kl", "perceptual", "tv")


def with_defaults(settings: dict) -> dict:
    out = {**PAPER, **settings}
    out["loss_weights"] = {**PAPER["loss_weights"], **(settings.get("loss_weights") or {})}
    return out


# ----------------------------------------------------------------------------- prior


def prior_variance(cl_tt, ell_max: int, scale: float, beam_fwhm_arcmin: float = 0.0, pixwin_nside: int | None = None) -> np.ndarray:
    """Prior variance of z_ell for ell = 2..ell_max (see the module docstring), float64 (ell_max - 1,).

    cl_tt: C_ell^TT in uK^2 from ell = 0. scale: uK_CMB per unit of the normalised data.
    """
    cl = np.asarray(cl_tt, dtype=np.float64)
    if len(cl) <= ell_max:
        raise ValueError(f"C_ell has {len(cl)} multipoles; the latent needs ell up to {ell_max}")
    ell = np.arange(ell_max + 1, dtype=np.float64)
    transfer = gaussian_beam(beam_fwhm_arcmin, ell_max)[:, 0] ** 2
    if pixwin_nside:
        lmax_pw = min(ell_max, 4 * pixwin_nside)
        pw = np.ones(ell_max + 1)
        pw[: lmax_pw + 1] = pixel_window(pixwin_nside, lmax_pw)[:, 0]
        transfer = transfer * pw**2
    p = (2 * ell + 1) / (4 * np.pi) * cl[: ell_max + 1] * transfer / float(scale) ** 2
    p = p[2:]
    if np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("the prior variance must be finite and positive for ell = 2..ell_max (check C_ell^TT and the beam)")
    return p


def kl_divergence(mu, log_var, prior_var):
    """KL(N(mu, exp(log_var)) || N(0, prior_var)) per sample, summed over the latent (keras.ops).

    0.5 * sum( (exp(log_var) + mu^2) / p - 1 - log_var + log p ).
    """
    from keras import ops

    p = ops.convert_to_tensor(np.asarray(prior_var, dtype=np.float32))
    terms = (ops.exp(log_var) + ops.square(mu)) / p - 1.0 - log_var + ops.log(p)
    return 0.5 * ops.sum(terms, axis=-1)


# ----------------------------------------------------------------------------- losses


def dilate(mask, size: int = 3):
    """Binary dilation of (B, H, W, 1) masks by a size x size square (one pixel for 3)."""
    from keras import ops

    return ops.max_pool(mask, pool_size=size, strides=1, padding="same")


def total_variation(image, region):
    """Mean |difference| of vertical and horizontal neighbours whose pixels are both in ``region``
    (both (B, H, W, 1)), normalised by the number of pixels like the L1 terms."""
    from keras import ops

    dv = ops.abs(image[:, 1:] - image[:, :-1]) * region[:, 1:] * region[:, :-1]
    dh = ops.abs(image[:, :, 1:] - image[:, :, :-1]) * region[:, :, 1:] * region[:, :, :-1]
    return ops.mean(dv) + ops.mean(dh)


def perceptual_loss(features, pred, truth, composite):
    """sum over feature maps of mean |phi(pred) - phi(t)| + mean |phi(composite) - phi(t)|."""
    from keras import ops

    def rgb(a):
        return ops.concatenate([a, a, a], axis=-1)

    f_t, f_p, f_c = features(rgb(truth)), features(rgb(pred)), features(rgb(composite))
    total = 0.0
    for a, b, c in zip(f_t, f_p, f_c):
        total = total + ops.mean(ops.abs(b - a)) + ops.mean(ops.abs(c - a))
    return total


def loss_terms(truth, pred, mask, mu, log_var, prior_var, features=None) -> dict:
    """Each term of the loss (see the module docstring); images (B, H, W, 1), mask 1 = hole."""
    from keras import ops

    mask = ops.cast(mask, pred.dtype if hasattr(pred, "dtype") else "float32")
    valid = 1.0 - mask
    composite = mask * pred + valid * truth
    n_pix = float(np.prod(ops.shape(pred)[1:3]))
    terms = {
        "valid": ops.mean(ops.abs(valid * (pred - truth))),
        "hole": ops.mean(ops.abs(mask * (pred - truth))),
        "kl": ops.mean(kl_divergence(mu, log_var, prior_var)) / n_pix,
        "tv": total_variation(composite, dilate(mask)),
    }
    terms["perceptual"] = perceptual_loss(features, pred, truth, composite) if features is not None else ops.convert_to_tensor(0.0)
    return terms


# ----------------------------------------------------------------------------- layers


@functools.cache  # defines and registers the Keras class once per process
def _layers():
    """Custom layers, defined on first use (Keras is imported lazily)."""
    import keras
    from keras import layers, ops

    @register_serializable
    class PartialConv2D(layers.Layer):
        """Partial convolution (Liu et al. 2018): conv of x * valid, rescaled by k^2 / sum(valid
        in the window) (the mask is one channel, shared by all inputs), and the updated mask
        (1 where any valid pixel fell in the window). Inputs/outputs: [x, valid]."""

        def __init__(self, filters, kernel_size, strides=1, **kwargs):
            super().__init__(**kwargs)
            self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
            self.conv = layers.Conv2D(self.filters, self.kernel_size, strides=self.strides, padding="same", use_bias=False)

        def build(self, input_shape):
            x_shape, _ = input_shape
            self.conv.build(x_shape)
            self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

        def call(self, inputs):
            x, valid = inputs
            ones = ops.ones((self.kernel_size, self.kernel_size, 1, 1), dtype=x.dtype)
            count = ops.conv(valid, ones, strides=self.strides, padding="same")
            new_valid = ops.cast(count > 0, x.dtype)
            ratio = self.kernel_size**2 / ops.maximum(count, 1.0) * new_valid
            out = self.conv(x * valid) * ratio + self.bias
            return out * new_valid, new_valid

        def compute_output_shape(self, input_shape):
            x_shape, _ = input_shape
            h = None if x_shape[1] is None else -(-x_shape[1] // self.strides)
            w = None if x_shape[2] is None else -(-x_shape[2] // self.strides)
            return (x_shape[0], h, w, self.filters), (x_shape[0], h, w, 1)

        def get_config(self):
            return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides}

    @register_serializable
    class PriorScale(layers.Layer):
        """Mean and log variance of the latent in units of the prior: mu = sqrt(p) m, log var = log p + v."""

        def __init__(self, prior_var, **kwargs):
            super().__init__(**kwargs)
            self.prior_var = [float(v) for v in prior_var]

        def call(self, inputs):
            m, v = inputs
            p = ops.convert_to_tensor(np.asarray(self.prior_var, dtype=np.float32))
            return m * ops.sqrt(p), v + ops.log(p)

        def compute_output_shape(self, input_shape):
            return input_shape[0], input_shape[1]

        def get_config(self):
            return {**super().get_config(), "prior_var": self.prior_var}

    return {"PartialConv2D": PartialConv2D, "PriorScale": PriorScale, "keras": keras}


def bottleneck_shape(height: int, width: int, strides) -> tuple[int, int]:
    total = int(np.prod(strides))
    if height % total or width % total:
        raise ValueError(f"CosmoVAE strides {list(strides)} need patch sides divisible by {total}, got {height}x{width}")
    return height // total, width // total


# More than 8 parameters: the architecture's hyper-parameters, one config key each.
def build_encoder(height, width, filters, kernels, strides, latent_dim, prior_var, dense_units=(), partial_conv=False, leaky_slope=0.2):
    """Functional encoder: (H, W, 2) -> [mu, log_var, skip_0, ..., skip_{depth-2}]."""
    import keras
    from keras import layers

    lay = _layers()
    if not (len(filters) == len(kernels) == len(strides)):
        raise ValueError(f"CosmoVAE needs one kernel and stride per filter entry: {filters}, {kernels}, {strides}")
    bottleneck_shape(height, width, strides)
    inputs = keras.Input((height, width, 2), name="masked_and_mask")
    x = inputs
    valid = None
    if partial_conv:
        valid = layers.Lambda(lambda a: 1.0 - a[..., 1:2], name="valid")(inputs)
    skips = []
    for i, (f, k, s) in enumerate(zip(filters, kernels, strides)):
        if partial_conv:
            x, valid = lay["PartialConv2D"](f, k, s, name=f"encode_{i}")([x, valid])
        else:
            x = layers.Conv2D(f, k, strides=s, padding="same", name=f"encode_{i}")(x)
        x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"encode_{i}_act")(x)
        skips.append(x)
    h = layers.Flatten(name="flatten")(x)
    for j, units in enumerate(dense_units):
        h = layers.Dense(units, name=f"encode_dense_{j}")(h)
        h = layers.LeakyReLU(negative_slope=leaky_slope, name=f"encode_dense_{j}_act")(h)
    m = layers.Dense(latent_dim, name="z_mean_unit", kernel_initializer="zeros")(h)
    v = layers.Dense(latent_dim, name="z_log_var_unit", kernel_initializer="zeros")(h)
    mu, log_var = lay["PriorScale"](prior_var, name="prior_scale")([m, v])
    return keras.Model(inputs, [mu, log_var, *skips[:-1]], name="encoder")


def build_decoder(height, width, filters, kernels, strides, latent_dim, dense_units=(), leaky_slope=0.2):
    """Functional decoder: [z, skip_0 .. skip_{depth-2}, masked input] -> (H, W, 1) map."""
    import keras
    from keras import layers

    depth = len(filters)
    bh, bw = bottleneck_shape(height, width, strides)
    z = keras.Input((latent_dim,), name="z")
    sizes = [(height, width)]
    for s in strides:
        sizes.append((sizes[-1][0] // s, sizes[-1][1] // s))
    skip_inputs = [keras.Input((*sizes[i + 1], filters[i]), name=f"skip_{i}") for i in range(depth - 1)]
    image = keras.Input((height, width, 2), name="masked_and_mask")
    h = z
    for j, units in enumerate(reversed(list(dense_units))):
        h = layers.Dense(units, name=f"decode_dense_{j}")(h)
        h = layers.LeakyReLU(negative_slope=leaky_slope, name=f"decode_dense_{j}_act")(h)
    h = layers.Dense(bh * bw * filters[-1], name="decode_bottleneck")(h)
    x = layers.Reshape((bh, bw, filters[-1]), name="bottleneck")(h)
    x = layers.LeakyReLU(negative_slope=leaky_slope, name="bottleneck_act")(x)
    for i in reversed(range(depth)):
        if strides[i] > 1:
            x = layers.UpSampling2D(strides[i], name=f"upsample_{i}")(x)
        skip = skip_inputs[i - 1] if i > 0 else image
        x = layers.Concatenate(name=f"skip_concat_{i}")([x, skip])
        out_filters = filters[i - 1] if i > 0 else filters[0]
        x = layers.Conv2D(out_filters, kernels[i], padding="same", name=f"decode_{i}")(x)
        x = layers.LeakyReLU(negative_slope=leaky_slope, name=f"decode_{i}_act")(x)
    out = layers.Conv2D(1, 1, name="output")(x)
    return keras.Model([z, *skip_inputs, image], out, name="decoder")


def vgg_features(filters=(64, 128, 256), weights_file=None, name="vgg_features"):
    """VGG16 blocks 1-3 (2, 2, 3 3x3 convolutions, ReLU, 2x2 max pooling), outputs pool1..pool3,
    any input size with 3 channels, frozen. Layer names are Keras VGG16's, so ImageNet weights
    from a local ``weights_file`` (a keras.applications.VGG16(include_top=False) weights file,
    e.g. vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5) are copied in by name. Without a
    file the weights stay random (the tests use a narrow random VGG-shaped network)."""
    import keras
    from keras import layers

    inputs = keras.Input((None, None, 3), name=f"{name}_input")
    x = inputs
    outputs = []
    for block, (f, n_conv) in enumerate(zip(filters, (2, 2, 3)), start=1):
        for c in range(1, n_conv + 1):
            x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{block}_conv{c}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        outputs.append(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights_file:
        if tuple(filters) != (64, 128, 256):
            raise ValueError("ImageNet VGG16 weights need perceptual_filters [64, 128, 256]")
        full = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
        full.load_weights(str(weights_file))
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
    model.trainable = False
    return model


def build_cosmovae(height, width, prior_var, settings: dict, data_scale: float = 1.0, seed: int = 0, perceptual_weights_file=None):
    """A :class:`CosmoVAE` for (height, width) patches from ``settings`` (see PAPER)."""
    cls = _model_class()
    s = with_defaults(settings)
    return cls(
        height=height,
        width=width,
        prior_var=[float(v) for v in prior_var],
        filters=list(s["filters"]),
        kernels=list(s["kernels"]),
        strides=list(s["strides"]),
        dense_units=list(s["dense_units"]),
        partial_conv=bool(s["partial_conv"]),
        leaky_slope=float(s["leaky_slope"]),
        loss_weights=dict(s["loss_weights"]),
        perceptual_filters=list(s["perceptual_filters"]),
        data_scale=float(data_scale),
        seed=int(seed),
        perceptual_weights_file=perceptual_weights_file,
    )


@functools.cache  # defines and registers the Keras class once per process
def _model_class():
    import keras
    from keras import ops

    @register_serializable
    class CosmoVAE(keras.Model):
        """Encoder + reparametrised sample + decoder; ``call`` returns (map, mu, log_var) in
        normalised units (``data_scale`` uK_CMB per unit). The loss is :meth:`compute_loss`."""

        # More than 8 parameters: a Keras model's constructor arguments are its saved config (get_config/from_config round-trip them by name).
        def __init__(
            self, height, width, prior_var, filters, kernels, strides, dense_units=(), partial_conv=False, leaky_slope=0.2,
            loss_weights=None, perceptual_filters=(64, 128, 256), data_scale=1.0, seed=0, perceptual_weights_file=None, **kwargs,
        ):
            super().__init__(**kwargs)
            self.settings = {
                "height": int(height), "width": int(width), "prior_var": [float(v) for v in prior_var], "filters": list(filters),
                "kernels": list(kernels), "strides": list(strides), "dense_units": list(dense_units), "partial_conv": bool(partial_conv),
                "leaky_slope": float(leaky_slope), "loss_weights": {**PAPER["loss_weights"], **(loss_weights or {})},
                "perceptual_filters": list(perceptual_filters), "data_scale": float(data_scale), "seed": int(seed),
            }
            latent_dim = len(prior_var)
            self.prior_var = np.asarray(prior_var, dtype=np.float32)
            self.loss_weights_ = self.settings["loss_weights"]
            self.data_scale = float(data_scale)
            self.encoder = build_encoder(height, width, filters, kernels, strides, latent_dim, prior_var, dense_units, partial_conv, leaky_slope)
            self.decoder = build_decoder(height, width, filters, kernels, strides, latent_dim, dense_units, leaky_slope)
            self.features = None
            if self.loss_weights_["perceptual"] > 0:
                self.features = vgg_features(perceptual_filters, perceptual_weights_file)
            self.seed_generator = keras.random.SeedGenerator(int(seed))
            # Keras saves a model's own variables, not its seed generators' states: tracked as an
            # attribute, the sampling state is saved and restored, so a resumed run draws the same noise.
            self.sampler_state = self.seed_generator.state

        def call(self, inputs, training=False):
            mu, log_var, *skips = self.encoder(inputs, training=training)
            eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
            z = mu + ops.exp(0.5 * log_var) * eps
            return self.decoder([z, *skips, inputs], training=training), mu, log_var

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            pred, mu, log_var = y_pred
            terms = loss_terms(y, pred, x[..., 1:2], mu, log_var, self.prior_var, self.features)
            return sum(self.loss_weights_[k] * terms[k] for k in LOSS_TERMS if self.loss_weights_[k] or k != "perceptual")

        def get_config(self):
            return {**super().get_config(), **self.settings}

        @classmethod
        def from_config(cls, config):
            keys = ("name", "trainable", "dtype")
            return cls(**{k: v for k, v in config.items() if k not in keys}, name=config.get("name"))

    return CosmoVAE


# ----------------------------------------------------------------------------- data


def load_model(path):
    """keras.models.load_model with CosmoVAE's custom classes registered."""
    import keras

    _layers()
    _model_class()
    return keras.models.load_model(path)


def masked_input(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Network input (N, H, W, 2): truth (N, H, W[, 1]) with the holes set to 0, and the mask."""
    t = np.asarray(truth, dtype=np.float32)
    t = t[..., 0] if t.ndim == 4 else t
    m = np.asarray(mask, dtype=np.float32)
    return np.stack([t * (1 - m), m], axis=-1)


class MaskSampler:
    """Batch hook for :class:`cmbnn.nn.training.PatchBatches`: draws a mask of the bank for every
    sample, from rng_for(seed, 'cosmovae-masks', epoch) (bank index and one of the 8 symmetries
    of the square per patch), so a resumed run sees the same masks. ``fixed``: always epoch 0
    (validation: the same masks every epoch). Returns (masked input (B, H, W, 2), truth)."""

    def __init__(self, bank: np.ndarray, n: int, seed: int, fixed: bool = False, turns: bool = True):
        self.bank = np.asarray(bank, dtype=np.uint8)
        if len(self.bank) == 0:
            raise ValueError("the mask bank is empty: lower inpainting.bank_min_fraction or raise hole_fraction")
        self.n, self.seed, self.fixed, self.turns = int(n), int(seed), fixed, turns and bank.shape[1] == bank.shape[2]
        self._plan = None

    def plan(self, epoch):
        epoch = 0 if self.fixed else int(epoch)
        if self._plan is None or self._plan[0] != epoch:
            rng = rng_for(self.seed, "cosmovae-masks", epoch)
            choice = rng.integers(0, len(self.bank), self.n)
            codes = rng.integers(0, 8, self.n) if self.turns else np.zeros(self.n, dtype=int)
            self._plan = (epoch, choice, codes)
        return self._plan[1], self._plan[2]

    def masks(self, idx, epoch) -> np.ndarray:
        choice, codes = self.plan(epoch)
        return np.stack([dihedral(self.bank[choice[i]][..., None], codes[i])[..., 0] for i in idx])

    def __call__(self, x, y, idx, epoch):
        return masked_input(x, self.masks(idx, epoch)), y


def truth_scale(truth: np.ndarray) -> float:
    """rms of the training truth patches (uK_CMB): one unit of the network's data."""
    return float(np.sqrt(channel_moments(np.asarray(truth))["mean_square"][0]))


def optimizer(settings: dict):
    import keras

    return keras.optimizers.Adam(learning_rate=settings["learning_rate"], beta_1=settings["beta_1"])


# More than 8 parameters: the data splits, the settings, the seed and where the run keeps its state (checkpoint, TensorBoard), as every train() here.
def train(truth_train, truth_val, bank, cl_tt, settings: dict, seed: int, checkpoint_dir, beam_fwhm_arcmin=0.0, pixwin_nside=None, tensorboard_dir=None, callbacks=()):
    """Train CosmoVAE on hole-free truth patches (N, H, W, 1) uK_CMB with masks drawn from ``bank``
    (Nb, H, W) uint8; returns (model, history). The model works in normalised units: it carries
    ``data_scale`` (uK_CMB per unit) for :func:`inpaint`."""
    s = with_defaults(settings)
    _layers()
    _model_class()  # registered before a checkpoint is loaded to resume
    set_seeds(seed)
    scale = truth_scale(truth_train)
    height, width = truth_train.shape[1:3]
    prior = prior_variance(cl_tt, s["ell_max"], scale, beam_fwhm_arcmin, pixwin_nside)
    fingerprint = hashlib.sha256(
        json.dumps([s, seed, beam_fwhm_arcmin, pixwin_nside, data_digest(truth_train, truth_val, bank), float(np.sum(prior))], sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    norm = {"input_offset": [0.0], "input_scale": [scale], "label_offset": 0.0, "label_scale": scale}
    train_batches = PatchBatches(
        [truth_train], [truth_train], ["T"], norm, s["batch_size"], seed, shuffle=True, augment=s["augment"],
        stage="cosmovae-epoch", hook=MaskSampler(bank, len(truth_train), seed),
    )
    val_batches = PatchBatches(
        [truth_val], [truth_val], ["T"], norm, s["batch_size"], seed, shuffle=False, augment=False,
        stage="cosmovae-epoch", hook=MaskSampler(bank, len(truth_val), seed + 1, fixed=True),
    )

    def build_and_compile():
        model = build_cosmovae(height, width, prior, s, data_scale=scale, seed=seed, perceptual_weights_file=s["perceptual_weights_file"])
        model.compile(optimizer=optimizer(s))
        return model

    with distribution_scope():
        model, history = fit_resumable(
            build_and_compile, train_batches, val_batches, epochs=s["epochs"], patience=s["patience"],
            checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, tensorboard_dir=tensorboard_dir, callbacks=callbacks,
        )
    return model, history


def inpaint(model, truth_or_data: np.ndarray, mask: np.ndarray, n_samples: int, seed: int, batch_size: int = 64):
    """Posterior mean and per-pixel std (uK_CMB) of the composite over n_samples latent draws.

    truth_or_data: observed patches (N, H, W[, 1]) in uK_CMB (hole pixels are ignored);
    mask: (N, H, W), 1 = hole. Each sample: z = mu + sigma eps with eps from
    rng_for(seed, 'cosmovae-samples', k); the composite keeps the observed pixels,
    so the std is 0 there. Returns (mean, std), each (N, H, W, 1) float32.
    """
    scale = float(model.data_scale)
    x = masked_input(np.asarray(truth_or_data, dtype=np.float32) / scale, mask)
    m = x[..., 1:2].astype(np.float64)
    observed = x[..., :1].astype(np.float64)
    mu, log_var, *skips = model.encoder.predict(x, batch_size=batch_size, verbose=0)
    sigma = np.exp(0.5 * log_var)
    total = np.zeros(x.shape[:3] + (1,))
    total_sq = np.zeros_like(total)
    for k in range(int(n_samples)):
        eps = rng_for(seed, "cosmovae-samples", k).standard_normal(mu.shape).astype(np.float32)
        pred = model.decoder.predict([mu + sigma * eps, *skips, x], batch_size=batch_size, verbose=0).astype(np.float64)
        comp = m * pred + (1 - m) * observed
        total += comp
        total_sq += comp * comp
    mean = total / n_samples
    var = np.maximum(total_sq / n_samples - mean**2, 0.0) * (n_samples / max(n_samples - 1, 1))
    return (mean * scale).astype(np.float32), (np.sqrt(var) * m * scale).astype(np.float32)


def parameter_count(settings: dict, height: int, width: int) -> int:
    """Weights of the encoder and decoder at a size, from the layer shapes alone (no tensors)."""
    s = with_defaults(settings)
    latent = s["ell_max"] - 1
    count, c_in = 0, 2
    for f, k in zip(s["filters"], s["kernels"]):
        count += k * k * c_in * f + f
        c_in = f
    bh, bw = bottleneck_shape(height, width, s["strides"])
    flat = bh * bw * s["filters"][-1]
    dims = [flat, *s["dense_units"]]
    for a, b in zip(dims[:-1], dims[1:]):
        count += a * b + b
    count += 2 * (dims[-1] * latent + latent)
    ddims = [latent, *reversed(s["dense_units"]), flat]
    for a, b in zip(ddims[:-1], ddims[1:]):
        count += a * b + b
    c = s["filters"][-1]
    for i in reversed(range(len(s["filters"]))):
        skip = s["filters"][i - 1] if i > 0 else 2
        out = s["filters"][i - 1] if i > 0 else s["filters"][0]
        count += s["kernels"][i] ** 2 * (c + skip) * out + out
        c = out
    return count + c + 1


def paper_geometry() -> dict:
    """Patch geometry of the paper: 400 x 400 pixels over 20 x 10 degrees (3' x 1.5' pixels)."""
    return {"height": 400, "width": 400, "width_deg": 20.0, "height_deg": 10.0, "pixel_arcmin": (3.0, 1.5)}


__all__ = [
    "PAPER", "LOSS_TERMS", "prior_variance", "kl_divergence", "loss_terms", "total_variation", "dilate", "perceptual_loss",
    "build_encoder", "build_decoder", "build_cosmovae", "vgg_features", "masked_input", "MaskSampler", "train", "inpaint",
    "parameter_count", "truth_scale", "write_inpainting", "load_model",
]


# More than 8 parameters: the two predictions, the patches they fill and what to record beside them.
def write_inpainting(path, net, std, patches: dict, patch_attrs: dict, patches_path, method: str, extra_attrs: dict | None = None, extra_datasets: dict | None = None) -> None:
    """Inpainting predictions, the layout of io.write_predictions_h5 where it fits: ``net`` (the
    composite: observed pixels kept, holes estimated) and ``std`` (0 on observed pixels),
    (N, H, W, 1) float32 uK_CMB; ``sim`` the truth, ``input`` the masked truth (holes 0),
    ``mask`` (N, H, W) uint8 1 = missing, ``centers``, ``realisation``; ``extra_datasets`` as given
    (posterior samples (N, S, H, W), other fills)."""
    sim = np.asarray(patches["M0"], dtype=np.float32)
    mask = np.asarray(patches["mask"], dtype=np.uint8)
    datasets = {
        "net": np.asarray(net, dtype=np.float32).reshape(sim.shape),
        "std": np.asarray(std, dtype=np.float32).reshape(sim.shape),
        "sim": sim,
        "input": sim * (1 - mask[..., None]).astype(np.float32),
        "mask": mask,
        "centers": patches["centers"],
        "realisation": patches["realisation"],
        **(extra_datasets or {}),
    }
    attrs = {**patch_attrs, "method": method, "inputs_file": str(patches_path), "units": "uK_CMB", **(extra_attrs or {})}
    write_h5(path, datasets, attrs)
