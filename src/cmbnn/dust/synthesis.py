"""The field's classical generators of dust patches, beside the VAEs (issue 20).

* :func:`gaussian_copula`: a Gaussian field pushed through the data's one-point transform. The
  training pixels' empirical distribution F defines y = Phi^-1(F(x)); a Gaussian field with the
  spectrum and patch means of y (:func:`cmbnn.dust.statistics.gaussian_like`) is mapped back by
  x = F^-1(Phi(y)). It has the data's histogram exactly and nearly its spectrum; whatever a
  pointwise transform of a Gaussian field cannot make (filaments, the shapes the Minkowski
  functionals see beyond the one-point distribution) it lacks.
* :func:`scattering_synthesis`: maximum-entropy (microcanonical) synthesis under wavelet
  scattering statistics (Bruna & Mallat 2019; for dust, Allys et al. 2019 and Regaldo-Saint Blancard
  et al. 2020): a Gaussian field with the training spectrum is moved by L-BFGS until its first- and second-order scattering
  coefficients, band powers, mean and one-point moments equal those of a randomly drawn training
  patch. The coefficients are computed here in TensorFlow on a
  periodic grid with Morlet-like filters: kymatio's TensorFlow frontend is too slow on CPU for
  this optimisation, and pywph needs PyTorch.

Both take and return standardised log intensities (N, H, W) (:func:`cmbnn.dust.vae.log_standardise`).
"""

from __future__ import annotations

import time

import numpy as np

from cmbnn.analysis.gaussian_field import patch_stack
from cmbnn.dust.statistics import empirical_cl, gaussian_like, nyquist_lmax


def gaussian_copula(train_x, n: int, reso_arcmin: float, rng: np.random.Generator, n_quantiles: int = 4096, corrections: int = 3) -> np.ndarray:
    """n patches (n, H, W) float32 of a Gaussian copula fitted on ``train_x`` (module docstring).

    The one-point transform is the training pixels' quantile function at ``n_quantiles`` levels,
    linearly interpolated; generated values stay within the training range. The transform
    reshapes the spectrum (by 0.6 in log10 C_ell near the Nyquist frequency, measured on the
  ell^-2.42 log-normal sky),
    so the Gaussian field's spectrum is corrected ``corrections`` times by the ratio of the
    training patches' spectrum to that of the transformed fields. Deterministic for a given
    ``rng`` state."""
    from scipy.special import ndtr, ndtri

    train = patch_stack(train_x).astype(np.float64)
    probs = (np.arange(n_quantiles) + 0.5) / n_quantiles
    quantiles = np.quantile(train, probs)
    # Ties (a floor of log I) map to one Gaussian value: interp on the unique quantiles.
    values, first = np.unique(quantiles, return_index=True)
    gaussianised = ndtri(np.interp(train, values, probs[first]))
    lmax = nyquist_lmax(reso_arcmin)
    target = empirical_cl(train, reso_arcmin, lmax)
    cl = empirical_cl(gaussianised, reso_arcmin, lmax)
    probe = np.random.default_rng(rng.integers(2**32))  # the corrections' own draws
    for _ in range(corrections):
        trial = np.interp(ndtr(gaussian_like(gaussianised, max(n, 200), reso_arcmin, probe, cl=cl)), probs, quantiles)
        got = empirical_cl(trial, reso_arcmin, lmax)
        cl = cl * np.where(got > 0, target / np.where(got > 0, got, 1.0), 1.0)
    fields = gaussian_like(gaussianised, n, reso_arcmin, rng, cl=cl).astype(np.float64)
    return np.interp(ndtr(fields), probs, quantiles).astype(np.float32)


def morlet_bank(height: int, width: int, scales: int, orientations: int) -> np.ndarray:
    """Fourier transforms (scales, orientations, H, W) float32 of Morlet-like wavelets on a periodic
    grid: Gaussians centred on k = xi_j (cos t, sin t), xi_j = 3 pi / 4 / 2^j rad/pixel, t = pi l / L,
    radial width 0.4 xi_j and azimuthal width matched to L orientations; zero at k = 0. Adjacent
    scales and orientations overlap at about half their peak, so the bank tiles the plane between
    the largest scale and the Nyquist frequency."""
    ky = 2 * np.pi * np.fft.fftfreq(height)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(width)[None, :]
    bank = np.zeros((scales, orientations, height, width), np.float64)
    for j in range(scales):
        xi = 0.75 * np.pi / 2**j
        for l in range(orientations):
            t = np.pi * l / orientations
            along = kx * np.cos(t) + ky * np.sin(t)
            across = -kx * np.sin(t) + ky * np.cos(t)
            width_across = xi * np.sin(np.pi / (2 * orientations)) * 1.2
            bank[j, l] = np.exp(-0.5 * ((along - xi) / (0.4 * xi)) ** 2 - 0.5 * (across / width_across) ** 2)
    bank[..., 0, 0] = 0.0
    return bank.astype(np.float32)


class ScatteringStatistics:
    """Per-patch statistics the synthesis matches: log mean modulus of every wavelet band (S1),
    log band power, log power in annuli two fundamentals wide, log second-order scattering ||x * psi_1| * psi_2| for every pair with a larger
    second scale (S2), the patch mean, skewness and excess kurtosis. Callable on a TensorFlow
    tensor (B, H, W) -> (B, n_coefficients), differentiable."""

    def __init__(self, height: int, width: int, scales: int = 5, orientations: int = 4):
        import tensorflow as tf

        self.scales, self.orientations = scales, orientations
        bank = morlet_bank(height, width, scales, orientations)
        self.bank = tf.constant(bank.reshape(scales * orientations, height, width), tf.complex64)
        self.pairs = [(a, b) for a in range(scales * orientations) for b in range(scales * orientations) if b // orientations > a // orientations]
        # Annuli 2 fundamentals wide out to the grid's corner: a wavelet band an octave wide cannot
        # pin a spectrum that falls by 2 dex across it (measured: without these the syntheses held
        # 100x the data's power near the Nyquist frequency).
        k = np.sqrt(np.fft.fftfreq(height)[:, None] ** 2 + np.fft.fftfreq(width)[None, :] ** 2) * min(height, width)
        annulus = np.minimum((k / 2).astype(int), int(k.max() / 2))
        onehot = (annulus[..., None] == np.arange(annulus.max() + 1)).astype(np.float32)
        onehot[0, 0] = 0.0  # the mean is matched separately
        self.annuli = tf.constant(onehot / np.maximum(onehot.sum(axis=(0, 1)), 1.0))
        self.first = tf.constant([a for a, _ in self.pairs])
        self.second = tf.constant([b for _, b in self.pairs])

    def __call__(self, x):
        import tensorflow as tf

        eps = 1e-12  # far below the smallest band power of a beam-smoothed patch (~1e-8 at the Nyquist band)
        spectrum = tf.signal.fft2d(tf.complex(x, tf.zeros_like(x)))[:, None]  # (B, 1, H, W)
        modulus = tf.abs(tf.signal.ifft2d(spectrum * self.bank))  # (B, JL, H, W)
        s1 = tf.math.log(tf.reduce_mean(modulus, axis=(2, 3)) + eps)
        power = tf.math.log(tf.reduce_mean(modulus**2, axis=(2, 3)) + eps)
        modulus_spectrum = tf.signal.fft2d(tf.complex(modulus, tf.zeros_like(modulus)))
        second = tf.abs(tf.signal.ifft2d(tf.gather(modulus_spectrum, self.first, axis=1) * tf.gather(self.bank, self.second)))
        s2 = tf.math.log(tf.reduce_mean(second, axis=(2, 3)) + eps)
        annular = tf.math.log(tf.einsum("bhw,hwk->bk", tf.abs(spectrum[:, 0]) ** 2, self.annuli) / (x.shape[1] * x.shape[2]) + eps)
        mean = tf.reduce_mean(x, axis=(1, 2))
        u = x - mean[:, None, None]
        var = tf.reduce_mean(u**2, axis=(1, 2)) + eps
        skewness = tf.reduce_mean(u**3, axis=(1, 2)) / var**1.5
        kurtosis = tf.reduce_mean(u**4, axis=(1, 2)) / var**2 - 3.0
        return tf.concat([s1, power, s2, annular, tf.stack([mean, skewness, 0.5 * kurtosis], axis=1)], axis=1)


# More than 8 parameters: the training patches, count, pixel size and generator, then the synthesis's own knobs (keyword defaults).
def scattering_synthesis(train_x, n: int, reso_arcmin: float, rng: np.random.Generator, scales: int = 5, orientations: int = 4, steps: int = 200, batch: int = 50, log=None) -> np.ndarray:
    """n patches (n, H, W) float32 by maximum-entropy synthesis under :class:`ScatteringStatistics`
    (module docstring): each from a Gaussian field with the training spectrum, matched to the statistics of a training patch drawn
    with replacement, by ``steps`` L-BFGS iterations (scipy, gradients from TensorFlow) on ``batch``
    patches at a time. ``scales`` must leave the
    largest wavelet (2^scales pixels) inside the patch. Deterministic for a given ``rng`` state (up
    to TensorFlow's floating-point reductions)."""
    import tensorflow as tf
    from scipy.optimize import minimize

    train = patch_stack(train_x).astype(np.float32)
    _, h, w = train.shape
    if 2**scales > min(h, w):
        raise ValueError(f"{scales} scales need patches of at least {2**scales} pixels, not {h} x {w}")
    stats = ScatteringStatistics(h, w, scales, orientations)
    targets = rng.integers(0, len(train), n)
    # Start from Gaussian fields with the training spectrum: from white noise, the modes between
    # the wavelets' passbands (grid corners) kept their white power (measured).
    start_fields = gaussian_like(train, n, reso_arcmin, rng).astype(np.float64)
    # Optimise white coordinates w, x = F^-1[A F[w]] with A the training patches' mean Fourier
    # amplitude: the log statistics of a red field differ in their sensitivity to x by decades
    # between large and small scales, and L-BFGS on x itself barely moved the small ones.
    amplitude = np.sqrt(np.mean(np.abs(np.fft.fft2(train - train.mean(axis=(1, 2), keepdims=True))) ** 2, axis=0))
    amplitude[0, 0] = np.sqrt(h * w) * max(train.mean(axis=(1, 2)).std(), 1e-3)  # the patch mean's scale
    amplitude = np.maximum(amplitude, 1e-6 * amplitude.max())
    gain = tf.constant(amplitude.astype(np.complex64))

    def colour(w_):
        return tf.math.real(tf.signal.ifft2d(gain * tf.signal.fft2d(tf.complex(w_, tf.zeros_like(w_)))))

    def whiten(x_):
        return np.fft.ifft2(np.fft.fft2(x_) / amplitude).real

    out = np.empty((n, h, w), np.float32)
    started = time.perf_counter()
    for start in range(0, n, batch):
        idx = targets[start : start + batch]
        goal = stats(tf.constant(train[idx]))
        ref = train[idx]
        x0 = start_fields[start : start + batch] - start_fields[start : start + batch].mean(axis=(1, 2), keepdims=True) + ref.mean(axis=(1, 2), keepdims=True)

        def loss_and_grad(flat, goal=goal, shape=ref.shape):
            white = tf.constant(flat.reshape(shape).astype(np.float32))
            with tf.GradientTape() as tape:
                tape.watch(white)
                loss = tf.reduce_sum((stats(colour(white)) - goal) ** 2)
            return float(loss), tape.gradient(loss, white).numpy().astype(np.float64).ravel()

        result = minimize(loss_and_grad, whiten(x0).ravel(), jac=True, method="L-BFGS-B", options={"maxiter": steps})
        out[start : start + len(idx)] = colour(tf.constant(result.x.reshape(ref.shape).astype(np.float32))).numpy()
        if log is not None:
            log.info("scattering synthesis: %d / %d patches, loss per patch %.3g after %d iterations (%.0f s)",
                     min(start + batch, n), n, result.fun / len(idx), result.nit, time.perf_counter() - started)
    return out
