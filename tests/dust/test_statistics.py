"""Statistics of dust patches (cmbnn.dust.statistics) against fields whose answers are known:
white noise, Gaussian fields of a known power law, smooth Gaussian fields for the Minkowski
functionals."""

import numpy as np
import pytest
from scipy.stats import norm

pytest.importorskip("pymaster")

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations  # noqa: E402
from cmbnn.analysis.powspec import linear_bin_edges  # noqa: E402
from cmbnn.dust import statistics as ds  # noqa: E402
from cmbnn.units import ARCMIN  # noqa: E402

SIDE, RESO = 32, 15.0  # 8 x 8 deg, as the paper's patches, at a coarser pixel
LMAX = ds.nyquist_lmax(RESO)
ELL = np.arange(LMAX + 1, dtype=np.float64)
THRESHOLDS = np.linspace(-2, 2, 9)


def mean_subtracted_variance(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(axis=(1, 2), keepdims=True)).var(axis=(1, 2))


@pytest.fixture(scope="module")
def power_law():
    """C_ell ~ ell^-2.42 (the dust slope) up to the Nyquist multipole, unit pixel variance, and
    two independent sets of 128 patches drawn from it."""
    cl = np.where(ELL >= 2, np.maximum(ELL, 2.0) ** -2.42, 0.0)
    cl /= FlatSkyCovariance(cl, SIDE, SIDE, RESO).variance
    cov = FlatSkyCovariance(cl, SIDE, SIDE, RESO)
    return cl, gaussian_realisations(cov, 128, np.random.default_rng(0)), gaussian_realisations(cov, 128, np.random.default_rng(1))


def bin_average(cl, edges):
    """Flat-sky mode-weighted average of C_ell over each bin (modes per ell ~ ell)."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (ELL >= lo) & (ELL < hi)
        out.append(np.sum(ELL[sel] * cl[sel]) / np.sum(ELL[sel]))
    return np.array(out)


def band_variance(cl, lo, hi):
    sel = (ELL >= lo) & (ELL < hi)
    return np.sum((2 * ELL[sel] + 1) / (4 * np.pi) * cl[sel])


# ----------------------------------------------------------------------------- spectra


def test_white_noise_spectrum_is_flat_at_the_pixel_variance_times_the_pixel_area():
    sigma = 2.0
    x = sigma * np.random.default_rng(3).standard_normal((64, SIDE, SIDE)) + 5.0  # a mean too: subtracted
    ell, cl = ds.patch_spectra(x, RESO)
    assert ell.shape == (8,) and cl.shape == (64, 8)
    want = sigma**2 * (RESO * ARCMIN) ** 2
    mean, err = cl.mean(axis=0), cl.std(axis=0, ddof=1) / np.sqrt(len(cl))
    assert np.all(np.abs(mean - want) < 4 * err), (mean / want, err / want)
    assert mean.mean() == pytest.approx(want, rel=0.03)


def test_power_law_bandpowers_follow_the_input(power_law):
    cl, x, _ = power_law
    ell, bp = ds.patch_spectra(x, RESO)
    edges = linear_bin_edges(SIDE, SIDE, RESO, 8)
    np.testing.assert_allclose(ell, 0.5 * (edges[1:] + edges[:-1]), rtol=0.05)
    ratio = bp.mean(axis=0) / bin_average(cl, edges)
    np.testing.assert_allclose(ratio[2:], 1.0, atol=0.1)
    # The two lowest bins: power leaked from scales larger than the patch (documented; measured
    # 1.41 and 0.89 here, 1.24 and 0.94 on 64 px patches).
    assert ratio[0] > 1.0 and abs(ratio[1] - 1) < 0.15


# ----------------------------------------------------------------------------- histograms and Minkowski


def test_histograms_integrate_to_one_and_match_a_gaussian_pdf():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 64, 64))
    x[0, 0, 0], x[0, 0, 1] = -10.0, 10.0  # clipped into the end bins, not dropped
    hist = ds.pixel_histograms(x)
    width = np.diff(ds.HIST_EDGES)
    assert hist.shape == (10, 20)
    np.testing.assert_allclose(hist @ width, 1.0)
    cdf = norm.cdf(ds.HIST_EDGES)
    cdf[0], cdf[-1] = 0.0, 1.0  # the end bins take the tails
    prob = np.diff(cdf)
    n_pix = x[0].size * len(x)
    got = hist.mean(axis=0) * width
    assert np.all(np.abs(got - prob) < 4 * np.sqrt(prob * (1 - prob) / n_pix) + 1e-4)
    single = ds.pixel_histograms(np.array([[[-10.0, 10.0]]]))
    assert single[0, 0] * width[0] == pytest.approx(0.5) and single[0, -1] * width[-1] == pytest.approx(0.5)


def smooth_gaussian_fields(n, side, smoothing_px, rng):
    """Periodic Gaussian fields with a Gaussian power spectrum, standardised over the set."""
    k2 = np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None, :] ** 2
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, side, side))) * np.exp(-k2 * (2 * np.pi * smoothing_px) ** 2 / 4)).real
    return (field - field.mean()) / field.std()


def test_patch_moments_of_gaussian_and_lognormal_pixels():
    g = np.random.default_rng(4).standard_normal((4, 128, 128))
    m = ds.patch_moments(g)
    np.testing.assert_allclose(m, 0.0, atol=0.1)
    s = 0.5  # log-normal: skewness (e^s2 + 2) sqrt(e^s2 - 1), excess kurtosis e^4s2 + 2e^3s2 + 3e^2s2 - 6
    e = np.exp(s**2)
    m = ds.patch_moments(np.exp(s * g)).mean(axis=0)
    assert m[0] == pytest.approx((e + 2) * np.sqrt(e - 1), rel=0.1) and m[1] == pytest.approx(e**4 + 2 * e**3 + 3 * e**2 - 6, rel=0.25)


# ----------------------------------------------------------------------------- empirical C_ell and the Gaussian baseline


def test_empirical_cl_recovers_a_power_law(power_law):
    cl, x, _ = power_law
    got = ds.empirical_cl(x, RESO, LMAX)
    assert got.shape == (LMAX + 1,) and np.all(got > 0)
    fundamental = 2 * np.pi / (SIDE * RESO * ARCMIN)
    assert band_variance(got, 1.5 * fundamental, LMAX) == pytest.approx(band_variance(cl, 1.5 * fundamental, LMAX), rel=0.04)
    for lo, hi in ((90, 200), (200, 350), (350, 500), (500, LMAX)):
        assert band_variance(got, lo, hi) == pytest.approx(band_variance(cl, lo, hi), rel=0.06), (lo, hi)


def test_empirical_cl_of_white_noise_is_the_pixel_variance_times_the_pixel_area():
    sigma = 0.5
    got = ds.empirical_cl(sigma * np.random.default_rng(6).standard_normal((64, SIDE, SIDE)), RESO, LMAX)
    want = sigma**2 * (RESO * ARCMIN) ** 2
    np.testing.assert_allclose(got[100:], want, rtol=0.1)  # one node of few modes per ~90 in ell
    assert np.mean(got[100:]) == pytest.approx(want, rel=0.03)


def test_realisations_of_the_empirical_cl_have_the_input_variance_and_bandpowers(power_law):
    _, x, _ = power_law
    got = ds.empirical_cl(x, RESO, LMAX)
    y = gaussian_realisations(FlatSkyCovariance(got, SIDE, SIDE, RESO), 256, np.random.default_rng(7))
    vx, vy = mean_subtracted_variance(x), mean_subtracted_variance(y)
    err = np.hypot(vx.std() / np.sqrt(len(vx)), vy.std() / np.sqrt(len(vy)))
    assert abs(vy.mean() - vx.mean()) < 3 * err, (vx.mean(), vy.mean(), err)
    _, bx = ds.patch_spectra(x, RESO)
    _, by = ds.patch_spectra(y, RESO)
    ratio = by.mean(axis=0) / bx.mean(axis=0)
    rel_err = np.sqrt(by.var(axis=0) / len(by) / by.mean(axis=0) ** 2 + bx.var(axis=0) / len(bx) / bx.mean(axis=0) ** 2)
    assert np.all(np.abs(ratio - 1) < np.maximum(0.06, 3 * rel_err)), (ratio, rel_err)


def test_gaussian_like_is_deterministic_and_matches_variance_and_means(power_law):
    _, x, _ = power_law
    a = ds.gaussian_like(x, 256, RESO, np.random.default_rng(8))
    b = ds.gaussian_like(x, 256, RESO, np.random.default_rng(8))
    c = ds.gaussian_like(x, 256, RESO, np.random.default_rng(9))
    assert a.shape == (256, SIDE, SIDE) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Each patch's mean is one of the training means.
    train_means = x.mean(axis=(1, 2))
    gap = np.abs(a.astype(np.float64).mean(axis=(1, 2))[:, None] - train_means[None, :]).min(axis=1)
    assert gap.max() < 1e-5
    vx, va = mean_subtracted_variance(x), mean_subtracted_variance(a)
    err = np.hypot(vx.std() / np.sqrt(len(vx)), va.std() / np.sqrt(len(va)))
    assert abs(va.mean() - vx.mean()) < 3 * err, (vx.mean(), va.mean(), err)


# ----------------------------------------------------------------------------- conditional summary and masks


def test_conditional_summary_columns_and_scaling(power_law):
    _, x, _ = power_law
    table = ds.conditional_summary(x[:16], RESO)
    assert list(table.columns) == ["mean_log", "log10_power_ell200", "log10_power_ell500"]
    assert len(table) == 16
    np.testing.assert_allclose(table.mean_log, x[:16].mean(axis=(1, 2)))
    assert np.isfinite(table.to_numpy()).all()
    assert (table.log10_power_ell200 > table.log10_power_ell500).mean() > 0.9  # a red spectrum
    doubled = ds.conditional_summary(2 * x[:16], RESO)
    np.testing.assert_allclose(doubled.log10_power_ell200 - table.log10_power_ell200, np.log10(4), atol=1e-8)
    with pytest.raises(ValueError, match="outside"):
        ds.conditional_summary(x[:2], RESO, ell_targets=(200, 5000))
    with pytest.raises(ValueError, match="same bin"):
        ds.conditional_summary(x[:2], RESO, ell_targets=(200, 201))


def test_imputation_masks_shapes_and_hole_fractions():
    masks = ds.imputation_masks(256, 256)
    assert set(masks) == {"disc", "rectangles"}
    disc, rect = masks["disc"], masks["rectangles"]
    assert disc.shape == rect.shape == (256, 256) and disc.dtype == bool
    assert disc.mean() == pytest.approx(np.pi * 50**2 / 256**2, rel=0.02)
    assert disc[128, 128] and not disc[0, 0] and disc[128, 128 - 49] and not disc[128, 128 - 52]
    assert rect.mean() == pytest.approx(0.12, abs=0.005)
    # Two disjoint rectangles: their total area is the sum of the two.
    areas = [(round(r1 * 256) - round(r0 * 256)) * (round(c1 * 256) - round(c0 * 256)) for r0, r1, c0, c1 in ds.RECTANGLE_FRACTIONS]
    assert rect.sum() == sum(areas)
    small = ds.imputation_masks(64, 48, kinds=("rectangles",))
    assert set(small) == {"rectangles"} and small["rectangles"].shape == (64, 48)
    np.testing.assert_array_equal(ds.imputation_masks(64, 64)["disc"], ds.imputation_masks(64, 64)["disc"])
    with pytest.raises(ValueError, match="kind"):
        ds.imputation_masks(64, 64, kinds=("star",))
