"""Per-patch statistics of dust patches and the classical Gaussian generator.

Flat-sky power spectra (NaMaster, 1 deg C1 apodisation), pixel histograms and one-point moments
of standardised log intensities x = (log I - mean) / std (:func:`cmbnn.dust.vae.log_standardise`),
patches (N, H, W) of square pixels of ``reso_arcmin``. Generators are compared with real patches
in :mod:`cmbnn.dust.structure`, on each patch's amplitude and its standardised structure.

Also here: the classical baseline generator (:func:`gaussian_like`: Gaussian fields with the
training patches' power spectrum, estimated by :func:`empirical_cl`), the per-patch summaries the
conditional model is checked with (:func:`conditional_summary`) and the imputation masks
(:func:`imputation_masks`).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations, patch_stack
from cmbnn.analysis.powspec import FlatSpectra, linear_bin_edges
from cmbnn.units import ARCMIN

# The paper's histogram binning, in units of the standardised log intensity.
HIST_EDGES = np.linspace(-3, 5, 21)
# The paper's disc: radius 50 px on 256 px patches.
DISC_RADIUS_FRACTION = 50 / 256
# Two rectangles (row_start, row_stop, col_start, col_stop) as fractions of the height and width:
# a horizontal bar in the upper left and a vertical bar in the lower right, 6% of the patch each,
# 12% together (the disc: pi (50/256)^2 = 12.0%), disjoint in rows and columns.
RECTANGLE_FRACTIONS = ((0.20, 0.35, 0.15, 0.55), (0.45, 0.85, 0.65, 0.80))


# ----------------------------------------------------------------------------- power spectra


@lru_cache(maxsize=8)
def _flat_spectra(height: int, width: int, reso_arcmin: float, n_bins: int, aposize_deg: float) -> FlatSpectra:
    """One FlatSpectra per geometry and binning: its mode-coupling matrix takes seconds at 256^2
    and is the same for every patch and every generated set.

    Besides the n_bins linear bins, two guard bins are decoupled and dropped by the callers: one
    from ell = 0 to the first bin and one from the last bin to the grid's corner modes (sqrt 2 x
    Nyquist). Without them, power there leaks into the end bins through the mask unmodelled."""
    side_deg = min(height, width) * reso_arcmin / 60
    if 2 * aposize_deg >= side_deg:
        raise ValueError(f"apodisation of {aposize_deg} deg leaves nothing of a {side_deg:.2f} deg patch")
    edges = linear_bin_edges(height, width, reso_arcmin, n_bins)
    edges = np.concatenate([[0.0], edges, [np.sqrt(2) * np.pi / (reso_arcmin * ARCMIN) + 1]])
    return FlatSpectra(height, width, reso_arcmin, edges, spin=0, aposize_deg=aposize_deg)


def patch_spectra(x, reso_arcmin: float, n_bins: int = 8, aposize_deg: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """NaMaster flat-sky decoupled bandpowers of every patch: ell (n_bins,), cl (N, n_bins).

    Spin 0, C1 apodisation of ``aposize_deg`` (the paper's 1 deg), n_bins linear bins from twice
    the patch's fundamental multipole to 90% of its Nyquist (:func:`cmbnn.analysis.powspec.linear_bin_edges`).
    cl is C_ell (not D_ell) in x^2 sr. Each patch's mean is subtracted first: through the mask a
    constant leaks into the lowest bins (measured on 8 deg patches: a patch mean of 1 sigma doubled
    the first bandpower), and the mean is a separate statistic (the histogram sees it). Nothing
    else is subtracted (noiseless patches: no noise bias). Guard bins below and above the band
    absorb most of the leakage from outside it (:func:`_flat_spectra`), but for a steep spectrum the
    lowest bin still reads high (power from scales larger than the patch): compare sets with each
    other there, not with a theory curve.
    """
    x = patch_stack(x)
    spectra = _flat_spectra(x.shape[1], x.shape[2], float(reso_arcmin), int(n_bins), float(aposize_deg))
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return spectra.ell[1:-1].copy(), np.array([spectra(m)[0, 1:-1] for m in x])


def hann_window(height: int, width: int) -> np.ndarray:
    """The 2-D Hann window, zero only beyond the patch: the window of the samplers' residual power
    and transfer (:mod:`cmbnn.dust.vae`) and of the structure band powers (:mod:`cmbnn.dust.structure`)."""
    return np.outer(np.hanning(height + 2)[1:-1], np.hanning(width + 2)[1:-1])


def _hann(height: int, width: int) -> np.ndarray:
    """Separable Hann window sampled at pixel centres. Its DFT is non-zero only at |k_y|, |k_x| <= 1,
    so every mode with a component of 2 or more is blind to the patch mean."""
    wy = np.sin(np.pi * (np.arange(height) + 0.5) / height) ** 2
    wx = np.sin(np.pi * (np.arange(width) + 0.5) / width) ** 2
    return wy[:, None] * wx[None, :]


def empirical_cl(x, reso_arcmin: float, lmax: int, width_fundamentals: float = 2.0, n_iter: int = 50, tol: float = 1e-4) -> np.ndarray:
    """The angular power spectrum C_ell (x^2 sr, ell = 0..lmax) of an isotropic field whose flat
    patches are x (N, H, W), in the form :class:`cmbnn.analysis.gaussian_field.FlatSkyCovariance` takes.

    Why not bandpowers at bin centres: the dust spectrum is steep (ell^-2.4), so a bandpower is not
    the spectrum at the bin centre, and power from scales larger than the patch leaks into the low
    bins (both biased the variance by ~10-25% in tests). Instead this fits a model through the exact
    expectation of the estimator:

    * data: mean power |FFT(w x)|^2 over patches with a Hann window w (:func:`_hann`; per-patch
      means subtracted, which changes none of the modes used), averaged in annuli of
      ``width_fundamentals`` x the fundamental 2 pi / (min(H, W) reso), from 1.5 fundamentals
      (the modes with |k_y|, |k_x| <= 1, which see the mean through the window, are left out) up
      to the Nyquist multipole pi / reso;
    * model: C_ell log-log interpolated between one node per annulus (at its mean multipole);
      below the first node, a power law with the slope of the first two nodes (clipped to
      [-3, 0]; flat when the data are flat; from ell = 2 down, constant), because a flat C_ell
      there lost 45% of the within-patch variance of an ell^-2.4 field (gradients across the patch
      come from those scales); above the last node, a power law with the slope of the last two
      (clipped to [-6, 0]) up to ``lmax``;
    * expectation: E |FFT(w x)|^2 (k) = sum_d A_w(d) C(d) e^{-i k d}, A_w the window's
      autocorrelation, C(d) the FlatSkyCovariance kernel of the model: one FFT on a 2H x 2W grid;
    * fit: node values multiplied by data / expectation per annulus until they agree to ``tol``.

    ``lmax``: the patches' Nyquist multipole pi / reso is the natural choice (a sampled grid holds
    nothing finer along its axes; its corner modes up to sqrt(2) x that are then left empty).
    Returns cl (lmax + 1,), non-negative. Warns if the fit did not converge.
    """
    x = patch_stack(x)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    _, h, w = x.shape
    pix = reso_arcmin * ARCMIN
    window = _hann(h, w)
    power = np.mean(np.abs(np.fft.rfft2(x * window)) ** 2, axis=0)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    ell_k = 2 * np.pi * np.sqrt(fy**2 + fx**2) / pix
    # Weights of the rfft half-plane so that annulus means are means over the full plane.
    weight = np.full(fx.shape, 2.0)
    weight[0, 0] = 1.0
    if w % 2 == 0:
        weight[0, -1] = 1.0
    weight = np.broadcast_to(weight, ell_k.shape)
    fundamental = 2 * np.pi / (min(h, w) * pix)
    edges = np.arange(1.5 * fundamental, np.pi / pix, width_fundamentals * fundamental)
    n_nodes = edges.size - 1
    if n_nodes < 2:
        raise ValueError(f"patches of {h} x {w} pixels hold fewer than two annuli of {width_fundamentals} fundamentals")
    annulus = np.digitize(ell_k, edges) - 1
    used = (annulus >= 0) & (annulus < n_nodes)
    counts = np.bincount(annulus[used], weight[used], n_nodes)

    def binned(values):
        return np.bincount(annulus[used], (weight * values)[used], n_nodes) / counts

    measured = binned(power)
    log_nodes = np.log(binned(ell_k))
    ell = np.arange(lmax + 1, dtype=np.float64)
    log_ell = np.log(np.maximum(ell, 2.0))

    def model(nodes):
        log_c = np.log(nodes)
        out = np.interp(log_ell, log_nodes, log_c)
        low_slope = np.clip((log_c[1] - log_c[0]) / (log_nodes[1] - log_nodes[0]), -3.0, 0.0)
        high_slope = np.clip((log_c[-1] - log_c[-2]) / (log_nodes[-1] - log_nodes[-2]), -6.0, 0.0)
        low, high = log_ell < log_nodes[0], log_ell > log_nodes[-1]
        out[low] = log_c[0] + low_slope * (log_ell[low] - log_nodes[0])
        out[high] = log_c[-1] + high_slope * (log_ell[high] - log_nodes[-1])
        return np.exp(out)

    # Window autocorrelation on the 2H x 2W grid (exact: its support is |d| < (H, W)), and the
    # covariance kernel's offsets laid out on the same periodic grid.
    auto = np.fft.irfft2(np.abs(np.fft.rfft2(window, s=(2 * h, 2 * w))) ** 2, s=(2 * h, 2 * w))
    rows = np.minimum(np.minimum(np.arange(2 * h), 2 * h - np.arange(2 * h)), h - 1)
    cols = np.minimum(np.minimum(np.arange(2 * w), 2 * w - np.arange(2 * w)), w - 1)

    def expected(cl):
        kernel = FlatSkyCovariance(cl, h, w, reso_arcmin).kernel[rows[:, None], cols[None, :]]
        return binned(np.fft.rfft2(auto * kernel).real[::2, ::2])

    nodes = measured * pix**2 / np.sum(window**2)  # white-noise normalisation as a start
    ratio = np.full(n_nodes, np.inf)
    for _ in range(n_iter):
        ratio = measured / expected(model(nodes))
        nodes = np.maximum(nodes * ratio, 1e-14 * nodes.max())  # float64 dynamic range of the FFT power
        if np.max(np.abs(ratio - 1)) < tol:
            break
    else:
        warnings.warn(f"empirical_cl: the model's expected power differs from the data by up to {np.max(np.abs(ratio - 1)):.1e} after {n_iter} iterations", RuntimeWarning, stacklevel=2)
    return model(nodes)


def nyquist_lmax(reso_arcmin: float) -> int:
    """The Nyquist multipole pi / reso of a grid of ``reso_arcmin`` pixels."""
    return int(np.pi / (reso_arcmin * ARCMIN))


def gaussian_like(train_x, n: int, reso_arcmin: float, rng: np.random.Generator, lmax: int | None = None, cl: np.ndarray | None = None) -> np.ndarray:
    """The classical baseline generator: n patches (n, H, W) float32 of a Gaussian field with the
    training patches' power spectrum and patch means.

    Fields with covariance FlatSkyCovariance(:func:`empirical_cl` (train_x), lmax default
    :func:`nyquist_lmax`), each with its own mean removed and replaced by a training patch's mean
    drawn with replacement: the field alone would give the means of a Gaussian with the
    extrapolated super-patch power, not the data's. Everything a Gaussian field can match is
    matched (spectrum, patch means); what is left (skewness, Minkowski functionals) is what the
    generative models must add. ``cl``: use this spectrum instead of the training patches' (the
    patch means still come from them). Deterministic for a given ``rng`` state. Above 64 x 64 pixels the
    realisations are drawn by circulant embedding, which warns about its clipped eigenvalues for a
    spectrum this red (measured at 256^2 for ell^-2.4: ~1% of C(0); see
    :func:`cmbnn.analysis.gaussian_field.gaussian_realisations`).
    """
    train = patch_stack(train_x)
    _, h, w = train.shape
    if cl is None:
        cl = empirical_cl(train, reso_arcmin, nyquist_lmax(reso_arcmin) if lmax is None else int(lmax))
    fields = gaussian_realisations(FlatSkyCovariance(cl, h, w, reso_arcmin), n, rng)
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    means = rng.choice(train.mean(axis=(1, 2)), size=n, replace=True)
    return (fields + means[:, None, None]).astype(np.float32)


# ----------------------------------------------------------------------------- one-point and morphology


def pixel_histograms(x, edges=HIST_EDGES) -> np.ndarray:
    """Normalised pixel densities of every patch, (N, n_bins): sum(density * width) = 1.

    Values outside [edges[0], edges[-1]] are clipped into the end bins (counted, not dropped), so
    every patch integrates to one and a generator with too heavy tails shows up in the end bins.
    """
    x = patch_stack(x)
    edges = np.asarray(edges, dtype=np.float64)
    n, n_bins = x.shape[0], edges.size - 1
    flat = x.reshape(n, -1)
    index = np.clip(np.searchsorted(edges, flat, side="right") - 1, 0, n_bins - 1)
    index += n_bins * np.arange(n)[:, None]
    counts = np.bincount(index.ravel(), minlength=n * n_bins).reshape(n, n_bins)
    return counts / (flat.shape[1] * np.diff(edges))


def patch_moments(x) -> np.ndarray:
    """Skewness and excess kurtosis of every patch's pixels, (N, 2): the shape of the one-point
    distribution, which the shared-threshold histogram barely sees (a Gaussian field with the
    data's patch means and spectrum can match the histogram)."""
    x = patch_stack(x).reshape(len(x), -1).astype(np.float64)
    u = x - x.mean(axis=1, keepdims=True)
    var = np.mean(u**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skewness = np.mean(u**3, axis=1) / var**1.5
        kurtosis = np.mean(u**4, axis=1) / var**2 - 3.0
    return np.stack([skewness, kurtosis], axis=1)


# ----------------------------------------------------------------------------- conditional model and imputation


def conditional_summary(x, reso_arcmin: float, ell_targets=(200, 500), n_bins: int | None = None, aposize_deg: float = 1.0) -> "pandas.DataFrame":  # noqa: F821
    """Per-patch summaries the conditional model is checked with: one row per patch.

    Columns: mean_log (the patch mean of x: the amplitude that follows the condition) and
    log10_power_ell{L} for each target L: log10 of the :func:`patch_spectra` bandpower (the same
    NaMaster estimator as the compared spectra; NaN if not positive) in the bin containing L.
    ``n_bins`` linear bins (:func:`cmbnn.analysis.powspec.linear_bin_edges`); by default as many as make
    them about two fundamentals wide (90 on 8 deg patches, at any pixel size: 200 and 500 fall in
    different bins, where the 8 bins of :func:`statistics` would put both in the first, and
    NaMaster still decouples bins that wide). Raises ValueError when a target is outside the bins
    or two targets share a bin.
    """
    import pandas as pd

    x = patch_stack(x)
    if n_bins is None:
        edges = linear_bin_edges(x.shape[1], x.shape[2], reso_arcmin, 1)
        n_bins = max(1, int((edges[1] - edges[0]) / edges[0]))  # edges[0] = 2 fundamentals
    ell, cl = patch_spectra(x, reso_arcmin, n_bins, aposize_deg)
    edges = linear_bin_edges(x.shape[1], x.shape[2], reso_arcmin, n_bins)
    table = {"mean_log": x.mean(axis=(1, 2))}
    used = {}
    for target in ell_targets:
        k = int(np.searchsorted(edges, target, side="right") - 1)
        if not 0 <= k < n_bins:
            raise ValueError(f"ell = {target} is outside the bins [{edges[0]:.0f}, {edges[-1]:.0f}) of these patches")
        if k in used:
            raise ValueError(f"ell = {target} and {used[k]} fall in the same bin [{edges[k]:.0f}, {edges[k + 1]:.0f}): use more bins")
        used[k] = target
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"log10_power_ell{target:g}"] = np.where(cl[:, k] > 0, np.log10(np.where(cl[:, k] > 0, cl[:, k], 1.0)), np.nan)
    return pd.DataFrame(table)


def imputation_masks(height: int, width: int, kinds=("disc", "rectangles")) -> dict:
    """The paper's two kinds of hole, as bool (H, W) masks with True = missing, for any patch size.

    "disc": centred on the patch centre, radius round(50 / 256 x height) pixels (the paper's 50 px
    at 256; 12.0% of a square patch). "rectangles": the two rectangles of
    :data:`RECTANGLE_FRACTIONS` (fractions of height and width, rounded to pixels): 12% together,
    disjoint, off centre, so a method has to work near the edges as well. Deterministic.
    """
    masks = {}
    for kind in kinds:
        if kind == "disc":
            radius = round(DISC_RADIUS_FRACTION * height)
            r, c = np.mgrid[:height, :width]
            masks[kind] = (r - (height - 1) / 2) ** 2 + (c - (width - 1) / 2) ** 2 <= radius**2
        elif kind == "rectangles":
            mask = np.zeros((height, width), dtype=bool)
            for r0, r1, c0, c1 in RECTANGLE_FRACTIONS:
                mask[round(r0 * height) : round(r1 * height), round(c0 * width) : round(c1 * width)] = True
            masks[kind] = mask
        else:
            raise ValueError(f"unknown mask kind {kind!r}: 'disc' or 'rectangles'")
    return masks
