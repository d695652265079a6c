"""Gaussian conditional mean / constrained realisations on flat patches (cmbnn.analysis.gaussian_field).

C_ell from ell = 0 in uK^2 (the session CAMB fixture's TT), maps in uK_CMB.
"""

import warnings

import numpy as np
import pytest
from scipy.special import eval_legendre

from cmbnn.analysis import gaussian_field as gf
from cmbnn.analysis.gaussian_field import (
    FlatSkyCovariance,
    LocalConditionalMean,
    conditional_mean,
    conditional_std,
    constrained_realisation,
    correlation_function,
    gaussian_realisations,
)

LMAX = 2000


@pytest.fixture(scope="module")
def cl_tt(camb_cls):
    return camb_cls["TT"][: LMAX + 1]


@pytest.fixture(scope="module")
def cov12(cl_tt):
    return FlatSkyCovariance(cl_tt, 12, 12, 5.0, beam_fwhm_arcmin=10.0)


def hole_mask(h, w):
    """A band plus a disc, ~25% of the pixels, 1 = missing."""
    mask = np.zeros((h, w), np.uint8)
    mask[h // 3 : h // 3 + max(h // 6, 1), :] = 1
    r, c = np.mgrid[:h, :w]
    mask[(r - 0.75 * h) ** 2 + (c - 0.7 * w) ** 2 <= (0.12 * h) ** 2] = 1
    return mask


def brute_force(cov, data, mask, noise_var):
    """Conditional mean and std in the hole with numpy.linalg.solve on the full dense matrix."""
    c = cov.dense()
    obs = mask.ravel() == 0
    c_oo = c[np.ix_(obs, obs)] + (noise_var + gf.JITTER * cov.variance) * np.eye(obs.sum())
    c_ho = c[np.ix_(~obs, obs)]
    mean = (c_ho @ np.linalg.solve(c_oo, data.reshape(data.shape[0], -1)[:, obs].T)).T
    var = np.diag(c[np.ix_(~obs, ~obs)]) - np.einsum("ij,ji->i", c_ho, np.linalg.solve(c_oo, c_ho.T))
    return mean, np.sqrt(var)


def test_variance_is_the_legendre_sum_with_beam_and_pixel_window(cl_tt):
    import healpy as hp

    ell = np.arange(LMAX + 1)
    bl = hp.gauss_beam(np.radians(7.0 / 60), lmax=LMAX)
    cov = FlatSkyCovariance(cl_tt, 8, 8, 3.0, beam_fwhm_arcmin=7.0)
    assert cov.variance == pytest.approx(np.sum((2 * ell + 1) / (4 * np.pi) * cl_tt * bl**2), rel=1e-10)
    pw = hp.pixwin(512, lmax=LMAX)
    cov_pw = FlatSkyCovariance(cl_tt, 8, 8, 3.0, beam_fwhm_arcmin=7.0, pixwin_nside=512)
    assert cov_pw.variance == pytest.approx(np.sum((2 * ell + 1) / (4 * np.pi) * cl_tt * (bl * pw) ** 2), rel=1e-10)
    assert cov_pw.variance < 0.99 * cov.variance  # the window matters at these scales
    # The kernel at one-pixel offsets is C(theta) of the Legendre series at 3 arcmin and 3 sqrt(2) arcmin.
    theta = np.radians(np.array([3.0, 3.0 * np.sqrt(2)]) / 60)
    direct = [np.sum((2 * ell + 1) / (4 * np.pi) * cl_tt * bl**2 * eval_legendre(ell, np.cos(t))) for t in theta]
    assert cov.kernel[[0, 1], [1, 1]] == pytest.approx(direct, rel=1e-9)


def test_correlation_function_of_a_single_multipole():
    cl = np.zeros(11)
    cl[10] = 2.0
    theta = np.linspace(0, np.pi, 7)
    assert correlation_function(cl, theta) == pytest.approx(21 / (4 * np.pi) * 2.0 * eval_legendre(10, np.cos(theta)), abs=1e-12)


def test_dense_cross_and_fft_matvec_agree(cl_tt):
    cov = FlatSkyCovariance(cl_tt, 10, 14, 4.0, beam_fwhm_arcmin=5.0)
    x = np.random.default_rng(0).standard_normal((3, 10, 14))
    dense = cov.dense()
    assert dense.shape == (140, 140)
    assert np.allclose(dense, dense.T)
    expected = (dense @ x.reshape(3, -1).T).T.reshape(x.shape)
    assert np.allclose(cov.matvec(x), expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    pix = np.array([0, 5, 17, 139])
    assert np.array_equal(cov.dense(pix), dense[np.ix_(pix, pix)])
    assert np.array_equal(cov.cross(pix, pix[:2]), dense[np.ix_(pix, pix[:2])])


@pytest.mark.parametrize("method", ["dense", "fft"])
def test_realisations_have_the_covariance(cl_tt, method):
    cov = FlatSkyCovariance(cl_tt, 16, 16, 5.0, beam_fwhm_arcmin=10.0)
    n = 2000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 16 px patches: clipping error ~1e-3 of C(0)
        maps = gaussian_realisations(cov, n, np.random.default_rng(1), method=method)
    assert maps.shape == (n, 16, 16)
    # Pixel variance at the centre pixel and the covariance at offsets 1, 4 px, within their scatter.
    centre = maps[:, 8, 8]
    for dr, dc in ((0, 0), (0, 1), (4, 0)):
        prod = centre * maps[:, 8 + dr, 8 + dc]
        sigma = prod.std() / np.sqrt(n)
        assert abs(prod.mean() - cov.kernel[dr, dc]) < 4 * sigma, (dr, dc, prod.mean(), cov.kernel[dr, dc])
    # Pooled over all pixels (correlated: test the mean of per-map variances, map-to-map scatter).
    per_map = np.mean(maps**2, axis=(1, 2))
    assert abs(per_map.mean() - cov.variance) < 4 * per_map.std() / np.sqrt(n)


@pytest.mark.parametrize("method", ["dense", "cg"])
def test_conditional_mean_matches_brute_force(cov12, method):
    rng = np.random.default_rng(2)
    mask = hole_mask(12, 12)
    data = gaussian_realisations(cov12, 4, rng)
    # CG converges only with real noise (module docstring): test it at 1% of the pixel variance.
    noise_var = 0.0 if method == "dense" else 1e-2 * cov12.variance
    out = conditional_mean(data[..., None].astype(np.float32), mask, cov12, noise_var=noise_var, method=method)
    assert out.shape == (4, 12, 12, 1)
    out = out[..., 0]
    expected, _ = brute_force(cov12, data, mask, noise_var)
    hole = mask.astype(bool)
    assert np.allclose(out[:, hole], expected, rtol=0, atol=1e-4)
    assert np.array_equal(out[:, ~hole], data.astype(np.float32).astype(np.float64)[:, ~hole])
    # The hole is predicted, not copied: the data's hole values do not enter.
    scrambled = data.copy()
    scrambled[:, hole] = 1e6
    assert np.allclose(conditional_mean(scrambled, mask, cov12, noise_var=noise_var, method=method)[:, hole], expected, atol=1e-4)


@pytest.mark.parametrize("method", ["dense", "cg"])
def test_conditional_std_matches_brute_force(cov12, method):
    mask = hole_mask(12, 12)
    noise_var = 0.0 if method == "dense" else 1e-2 * cov12.variance
    std = conditional_std(mask, cov12, noise_var=noise_var, method=method)
    _, expected = brute_force(cov12, np.zeros((1, 12, 12)), mask, noise_var)
    hole = mask.astype(bool)
    assert std.shape == (12, 12)
    assert np.allclose(std[hole], expected, rtol=1e-5, atol=1e-6)
    assert np.all(std[~hole] == 0)
    # Observed neighbours pin the field (and without noise some hole pixels much more than others).
    assert 0 < std[hole].min() < std[hole].max() < 0.5 * np.sqrt(cov12.variance)
    if noise_var == 0:
        assert std[hole].min() < 0.5 * std[hole].max()


def test_per_patch_masks_equal_one_patch_at_a_time(cov12):
    rng = np.random.default_rng(3)
    data = gaussian_realisations(cov12, 3, rng)
    masks = np.stack([hole_mask(12, 12), hole_mask(12, 12)[::-1], np.zeros((12, 12), np.uint8)])
    masks[2, 5:7, 5:7] = 1
    for method, noise_var in (("dense", 0.0), ("cg", 1e-2 * cov12.variance)):
        together = conditional_mean(data, masks, cov12, noise_var=noise_var, method=method)
        std = conditional_std(masks, cov12, noise_var=noise_var, method=method)
        for i in range(3):
            alone = conditional_mean(data[i], masks[i], cov12, noise_var=noise_var, method=method)
            assert np.allclose(together[i], alone, atol=1e-5)
            assert np.allclose(std[i], conditional_std(masks[i], cov12, noise_var=noise_var, method=method), atol=1e-6)


def test_jitter_floor_changes_the_mean_negligibly(cl_tt):
    cov = FlatSkyCovariance(cl_tt, 24, 24, 3.4, beam_fwhm_arcmin=10.0)  # beam ~3 px: ill-conditioned
    mask = hole_mask(24, 24)
    data = gaussian_realisations(cov, 2, np.random.default_rng(4))
    hole = mask.astype(bool)
    # Noiseless: the floor sets the (tiny) error of a nearly determined hole; 100x less moves it by < 0.5% of the rms.
    default = conditional_mean(data, mask, cov, method="dense")[:, hole]
    smaller = conditional_mean(data, mask, cov, method="dense", jitter=gf.JITTER * 100)[:, hole]
    assert np.max(np.abs(default - smaller)) < 5e-3 * np.sqrt(cov.variance)
    # With real noise (1e-4 C(0), ~1 uK) the floor is irrelevant: < 1% of the conditional std.
    noise = 1e-4 * cov.variance
    std = conditional_std(mask, cov, noise_var=noise, method="dense")[hole]
    default = conditional_mean(data, mask, cov, noise_var=noise, method="dense")[:, hole]
    smaller = conditional_mean(data, mask, cov, noise_var=noise, method="dense", jitter=gf.JITTER / 100)[:, hole]
    assert np.max(np.abs(default - smaller) / std) < 0.01


def test_calibration_on_gaussian_simulations(cl_tt):
    """z = (truth - mean) / std in the hole has mean 0 and variance 1 within its scatter."""
    cov = FlatSkyCovariance(cl_tt, 16, 16, 5.0, beam_fwhm_arcmin=10.0)
    mask = hole_mask(16, 16)
    hole = mask.astype(bool)
    truth = gaussian_realisations(cov, 1000, np.random.default_rng(5))
    mean = conditional_mean(truth, mask, cov, method="dense")
    std = conditional_std(mask, cov, method="dense")
    z = (truth - mean)[:, hole] / std[hole]
    per_sim_mean, per_sim_sq = z.mean(axis=1), np.mean(z**2, axis=1)
    n = z.shape[0]
    assert abs(per_sim_mean.mean()) < 4 * per_sim_mean.std() / np.sqrt(n)
    assert abs(per_sim_sq.mean() - 1) < 4 * per_sim_sq.std() / np.sqrt(n)
    # The conditional mean beats the unconditional guess (zero) by a wide margin.
    assert np.mean((truth - mean)[:, hole] ** 2) < 0.5 * np.mean(truth[:, hole] ** 2)


def sphere_patches(cl, beam_fwhm, lmax, size, reso, n_real, rng):
    """Patches of beam-smoothed skies drawn on the sphere (alm -> exact values at gnomonic pixel centres)."""
    from cmbnn import projection as proj
    from cmbnn.harmonics import alm_lm, gaussian_beam, synalm_teb

    lat = np.repeat([-60.0, -20.0, 20.0, 60.0], 6)
    lon = np.tile(np.arange(6) * 60.0, 4) + np.repeat([0, 30, 0, 30], 6)
    centers = np.stack([lon, lat], axis=1)
    theta, phi, _ = proj.patch_geometry(centers, size, size, reso)
    ell, _ = alm_lm(lmax)
    out = []
    for _ in range(n_real):
        alm = synalm_teb({"TT": cl[: lmax + 1]}, lmax, rng)[0] * gaussian_beam(beam_fwhm, lmax)[ell, 0]
        out.append(proj.evaluate_alm(alm, lmax, theta, phi, spin=0))
    return np.concatenate(out)


def test_calibration_on_sphere_skies_and_physics_errors_fail(cl_tt):
    """Skies drawn on the sphere: the flat-separation covariance is calibrated; D_ell or a missing beam is not."""
    lmax, size, reso, fwhm = 1500, 20, 6.0, 20.0
    truth = sphere_patches(cl_tt, fwhm, lmax, size, reso, 6, np.random.default_rng(6))
    mask = hole_mask(size, size)
    hole = mask.astype(bool)

    def z_variance(cov):
        mean = conditional_mean(truth, mask, cov, method="dense")
        std = conditional_std(mask, cov, method="dense")
        z2 = np.mean(((truth - mean)[:, hole] / std[hole]) ** 2, axis=1)
        return z2.mean(), z2.std() / np.sqrt(z2.size)

    right, sigma = z_variance(FlatSkyCovariance(cl_tt[: lmax + 1], size, size, reso, beam_fwhm_arcmin=fwhm))
    assert abs(right - 1) < 4 * sigma, (right, sigma)
    ell = np.arange(lmax + 1)
    dl = cl_tt[: lmax + 1] * ell * (ell + 1) / (2 * np.pi)
    for wrong in (FlatSkyCovariance(dl, size, size, reso, beam_fwhm_arcmin=fwhm), FlatSkyCovariance(cl_tt[: lmax + 1], size, size, reso)):
        value, _ = z_variance(wrong)
        assert abs(value - 1) > 10 * sigma, value


def test_constrained_realisations_have_the_conditional_distribution(cov12):
    mask = hole_mask(12, 12)
    hole = mask.astype(bool)
    data = gaussian_realisations(cov12, 1, np.random.default_rng(7))
    n = 3000
    draws = constrained_realisation(np.repeat(data, n, axis=0), mask, cov12, np.random.default_rng(8))
    assert np.array_equal(draws[:, ~hole], np.repeat(data, n, axis=0)[:, ~hole])
    mean = conditional_mean(data, mask, cov12)[0]
    std = conditional_std(mask, cov12)
    # Mean of the draws -> the conditional mean; their variance -> the conditional variance.
    assert np.all(np.abs(draws[:, hole].mean(axis=0) - mean[hole]) < 4.5 * std[hole] / np.sqrt(n))
    ratio = draws[:, hole].var(axis=0) / std[hole] ** 2
    assert np.all(np.abs(ratio - 1) < 4.5 * np.sqrt(2 / n)), ratio
    # Different draws differ (not just the mean).
    assert not np.allclose(draws[0, hole], draws[1, hole])


def test_bad_inputs_are_refused(cov12):
    with pytest.raises(ValueError, match="patch shape"):
        conditional_mean(np.zeros((2, 10, 12)), np.zeros((12, 12)), cov12)
    with pytest.raises(ValueError, match="method"):
        conditional_mean(np.zeros((1, 12, 12)), hole_mask(12, 12), cov12, method="lu")
    with pytest.raises(ValueError, match="C_ell"):
        FlatSkyCovariance(np.zeros((3, 10)), 4, 4, 1.0)
    with pytest.raises(ValueError, match="noise_var"):
        conditional_std(hole_mask(12, 12), cov12, noise_var=-1.0)


def test_auto_picks_cg_only_with_noise_and_falls_back_to_dense(cl_tt, monkeypatch):
    assert gf.choose_method(500, 1e-2) == "dense"
    assert gf.choose_method(5000, 1e-2) == "cg"
    assert gf.choose_method(5000, 1e-8) == "dense"
    assert gf.choose_method(gf.DENSE_MAX_OBSERVED + 1, 0.0) == "cg"
    cov = FlatSkyCovariance(cl_tt, 16, 16, 5.0, beam_fwhm_arcmin=10.0)
    mask = hole_mask(16, 16)
    data = gaussian_realisations(cov, 3, np.random.default_rng(9))
    noise = 1e-2 * cov.variance
    dense = conditional_mean(data, mask, cov, noise_var=noise, method="dense")
    monkeypatch.setattr(gf, "AUTO_CG_MIN_OBSERVED", 10)
    assert np.allclose(conditional_mean(data, mask, cov, noise_var=noise, method="auto"), dense, atol=1e-4)
    # CG stopped early: explicit "cg" warns (and is off), "auto" falls back to the dense answer silently.
    with pytest.warns(RuntimeWarning, match="did not reach"):
        off = conditional_mean(data, mask, cov, noise_var=noise, method="cg", maxiter=3)
    assert not np.allclose(off, dense, atol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.allclose(conditional_mean(data, mask, cov, noise_var=noise, method="auto", maxiter=3), dense, atol=1e-8)


def test_local_conditional_mean_of_source_discs_matches_the_whole_patch_solve(camb_cls):
    """Kriging screens: a source disc's fill from 12 pixels around it equals the 64 x 64 patch's
    conditional mean to well inside the conditional std, so its hole MSE is the bound's. Larger
    components are left alone."""
    cov = FlatSkyCovariance(camb_cls["TT"], 64, 64, 6.87, beam_fwhm_arcmin=7.3)
    rng = np.random.default_rng(11)
    truth = gaussian_realisations(cov, 6, rng)
    rows, cols = np.mgrid[:64, :64]
    mask = np.zeros((6, 64, 64), bool)
    for i in range(6):
        for cy, cx in rng.uniform(2, 62, (3, 2)):
            mask[i] |= (rows - cy) ** 2 + (cols - cx) ** 2 <= 1.2**2
    mask[0, 40:, :] = True  # a band of 24 x 64 pixels: the network's job, not the local solve's
    local = LocalConditionalMean(mask, cov, max_pixels=64, pad=12)
    assert not local.covered[0, 40:].any() and np.array_equal(local.covered[1:], mask[1:])
    observed = np.where(mask, 0.0, truth)
    filled = local.apply(observed)
    assert np.array_equal(filled[~local.covered], observed[~local.covered])
    exact = conditional_mean(truth, mask, cov, method="dense")
    std = conditional_std(mask, cov, method="dense")
    c = local.covered
    assert np.max(np.abs(filled[c] - exact[c]) / std[c]) < 0.1
    assert np.mean((filled[c] - truth[c]) ** 2) / np.mean((exact[c] - truth[c]) ** 2) == pytest.approx(1.0, abs=0.01)
    # Linear: the weights apply to any field on the same masks.
    other = gaussian_realisations(cov, 6, rng)
    np.testing.assert_allclose(local.apply(2 * observed + other)[c], 2 * filled[c] + local.apply(other)[c], rtol=1e-9, atol=1e-6)
