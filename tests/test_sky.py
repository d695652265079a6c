import healpy as hp
import numpy as np
import pytest
from conftest import binned_z_scores

from cmbnn import simulate
from cmbnn.seeding import rng_for
from cmbnn.sky import ARCMIN, gaussian_beam, pixel_side_arcmin, pixel_window, synalm_teb, white_noise

OBS_NOISELESS = {
    "beam_fwhm_arcmin": [30.0],
    "noise_T_uK_arcmin": [0.0],
    "noise_P_uK_arcmin": [0.0],
    "pixel_window": True,
    "scalar_eb": False,
}


def test_observed_map_recovers_input_spectra_after_beam_and_pixel_window(camb_cls):
    nside = 128
    lmax = 3 * nside - 1
    alm, _ = simulate.cmb_realisation(camb_cls, nside, seed=7, realisation=0)
    _, maps = simulate.observe(alm, [], [143.0], OBS_NOISELESS, nside, seed=7, realisation=0)
    measured = hp.anafast(maps[0], lmax=lmax, pol=True, iter=3)
    transfer = (gaussian_beam(30.0, lmax) * pixel_window(nside, lmax)) ** 2
    for k, name in enumerate(("TT", "EE", "BB")):
        corrected = np.zeros(lmax + 1)
        corrected[2:] = measured[k][2:] / transfer[2:, k]
        z = binned_z_scores(corrected, camb_cls[name][: lmax + 1], 10, 2 * nside, 20)
        assert np.all(np.abs(z) < 4), (name, z)
        assert np.mean(z**2) < 2.5, (name, z)
        # A spectrum shifted by 3 multipoles (the CENN CSV trap) is far outside cosmic variance.
        if name == "TT":
            shifted = np.concatenate([np.zeros(3), camb_cls[name][: lmax - 2]])
            z_bad = binned_z_scores(corrected, shifted, 10, 2 * nside, 20)
            assert np.max(np.abs(z_bad)) > 6


def test_synalm_te_correlation_and_independence(camb_cls):
    lmax = 200
    alm = synalm_teb(camb_cls, lmax, rng_for(1, "test"))
    cl = hp.alm2cl(alm)
    # TE cross-correlation coefficient matches the input over a broad band.
    ell = np.arange(50, 200)
    rho_in = camb_cls["TE"][ell] / np.sqrt(camb_cls["TT"][ell] * camb_cls["EE"][ell])
    rho_out = cl[3][ell] / np.sqrt(cl[0][ell] * cl[1][ell])
    assert np.corrcoef(rho_in, rho_out)[0, 1] > 0.9
    # EB and TB (alm2cl order: TT EE BB TE EB TB) vanish within their scatter.
    for k, (a, b) in ((4, (1, 2)), (5, (0, 2))):
        assert abs(np.mean(cl[k][ell] / np.sqrt(cl[a][ell] * cl[b][ell]))) < 0.05


def test_white_noise_level_matches_uk_arcmin_definition():
    nside = 256
    area = pixel_side_arcmin(nside) ** 2
    noise = white_noise(12 * nside**2, 30.0, area, rng_for(3, "noise"))
    assert noise.std() == pytest.approx(30.0 / np.sqrt(area), rel=0.01)
    # White noise of sigma uK-arcmin has N_ell = (sigma * 1 arcmin in rad)^2 at every ell.
    nl = hp.anafast(noise, lmax=2 * nside)
    assert np.mean(nl[20:]) == pytest.approx((30.0 * ARCMIN) ** 2, rel=0.02)


def test_observation_noise_per_frequency_and_field():
    nside = 64
    obs = {
        "beam_fwhm_arcmin": [10.0, 5.0],
        "noise_T_uK_arcmin": [40.0, 20.0],
        "noise_P_uK_arcmin": [60.0, 30.0],
        "pixel_window": False,
        "scalar_eb": False,
    }
    zero = np.zeros((3, hp.Alm.getsize(3 * nside - 1)), complex)
    _, maps = simulate.observe(zero, [], [100.0, 143.0], obs, nside, seed=1, realisation=0)
    side = pixel_side_arcmin(nside)
    for i in range(2):
        assert maps[i, 0].std() == pytest.approx(obs["noise_T_uK_arcmin"][i] / side, rel=0.02)
        for k in (1, 2):
            assert maps[i, k].std() == pytest.approx(obs["noise_P_uK_arcmin"][i] / side, rel=0.02)
    # Different frequencies and fields get independent noise.
    assert abs(np.corrcoef(maps[0, 1], maps[1, 1])[0, 1]) < 0.02
    assert abs(np.corrcoef(maps[0, 1], maps[0, 2])[0, 1]) < 0.02


def test_negative_noise_level_is_refused():
    with pytest.raises(ValueError, match="noise level"):
        white_noise(10, -1.0, 1.0, rng_for(0, "x"))
