"""The inpainting truth's small scales (cmbnn.inpainting.truth): a band-limited sky makes small holes
rebuildable from the band limit; with the missing multipoles added the conditional mean of the full
spectrum is calibrated and its small-hole error is the real sky's."""

import numpy as np
import pytest

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, conditional_mean, conditional_std, gaussian_realisations
from cmbnn.inpainting.truth import extended_spectra, small_scales

LMAX_SKY = 1535  # nside 512
RESO, BEAM = 6.87, 7.3


def discs(n, size, rng):
    rows, cols = np.mgrid[:size, :size]
    mask = np.zeros((n, size, size), bool)
    for i, (cy, cx) in enumerate(rng.uniform(4, size - 4, (n, 2))):
        mask[i] = (rows - cy) ** 2 + (cols - cx) ** 2 <= 1.06**2  # a 1-FWHM source disc: 5 pixels
    return mask


def test_small_scales_make_source_holes_as_hard_as_on_the_sky(camb_cls):
    rng = np.random.default_rng(3)
    full = camb_cls["TT"][:3001]
    band_limited = FlatSkyCovariance(full[: LMAX_SKY + 1], 32, 32, RESO, beam_fwhm_arcmin=BEAM)
    extended = FlatSkyCovariance(full, 32, 32, RESO, beam_fwhm_arcmin=BEAM)
    n = 160
    sky = gaussian_realisations(band_limited, n, rng)
    mask = discs(n, 32, rng)
    # Band-limited truth: the hole is rebuilt from the band limit (1e-4 of the pixel variance or less).
    limited_mse = np.mean((conditional_mean(sky, mask, band_limited, method="dense") - sky)[mask] ** 2)
    assert limited_mse < 1e-4 * band_limited.variance
    truth = sky + small_scales(full, LMAX_SKY, 32, 32, RESO, BEAM, n, rng)
    assert np.var(truth) == pytest.approx(extended.variance, rel=0.15)
    z = (conditional_mean(truth, mask, extended, method="dense") - truth)[mask] / conditional_std(mask, extended, method="dense")[mask]
    assert np.var(z) == pytest.approx(1.0, abs=0.2)  # 800 pixels in 160 discs: the extended covariance is the truth's
    mse = np.mean((conditional_mean(truth, mask, extended, method="dense") - truth)[mask] ** 2)
    assert mse > 100 * limited_mse and mse > 10.0  # uK^2: the real sky's small-hole bound is tens to hundreds


def test_small_scales_have_no_power_below_the_band_limit(camb_cls):
    full = camb_cls["TT"][:3001]
    field = small_scales(full, LMAX_SKY, 64, 64, RESO, BEAM, 64, np.random.default_rng(1))
    power = np.abs(np.fft.fft2(field)) ** 2
    ell = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij")) * 2 * np.pi / np.deg2rad(RESO / 60)
    # Mostly above the band limit (the patch window leaks a little below it).
    assert power.mean(axis=0)[ell > LMAX_SKY].sum() > 4 * power.mean(axis=0)[ell < 0.6 * LMAX_SKY].sum()
    with pytest.raises(ValueError, match="nothing beyond"):
        small_scales(full[: LMAX_SKY + 1], LMAX_SKY, 8, 8, RESO, BEAM, 1, np.random.default_rng(0))


def test_extended_spectra_keep_the_sky_to_its_lmax():
    sky = {"TT": np.arange(11.0), "EE": np.ones(11)}
    camb = {"TT": -np.arange(21.0), "EE": np.zeros(21), "BB": np.zeros(21)}
    out = extended_spectra(sky, camb, 10)
    assert set(out) == {"TT", "EE"} and out["TT"].size == 21
    np.testing.assert_array_equal(out["TT"][:11], sky["TT"]) and np.testing.assert_array_equal(out["TT"][11:], camb["TT"][11:])
    with pytest.raises(ValueError, match="below its lmax"):
        extended_spectra(sky, camb, 12)
