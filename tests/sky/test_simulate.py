import healpy as hp
import numpy as np
import pytest

from cmbnn.harmonics import gaussian_beam, pixel_side_arcmin, pixel_window, synalm_teb
from cmbnn.seeding import rng_for
from cmbnn.settings import RunSettings
from cmbnn.sky import simulate
from cmbnn.sky.noise import white_noise
from cmbnn.units import ARCMIN
from conftest import binned_z_scores

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
    run = RunSettings(nside=nside, seed=7, freqs=[143.0], observation=OBS_NOISELESS)
    alm, _ = simulate.cmb_realisation(run, camb_cls, realisation=0)
    _, maps = simulate.observe(run, alm, [], realisation=0)
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
    _, maps = simulate.observe(RunSettings(nside=nside, seed=1, freqs=[100.0, 143.0], observation=obs), zero, [], realisation=0)
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


@pytest.mark.parametrize("scatter", [0.0, 0.1])
def test_observe_mixes_foregrounds_by_their_seds(camb_cls, scatter):
    """Observed signal minus CMB, per frequency, is the component scaled by its SED."""
    from cmbnn.sky import foregrounds as fg

    nside, freqs = 32, [100.0, 143.0, 217.0, 353.0]
    lmax = 3 * nside - 1
    dust = {
        "reference_GHz": 353.0, "beta": 1.6, "beta_scatter": scatter, "temperature_K": 20.0, "temperature_scatter_K": 10 * scatter,
        "sed_lmax": 8, "d80_ee": 100.0, "alpha": -2.42, "bb_over_ee": 0.5, "tt_over_ee": 10.0, "te_correlation": 0.3,
        "modulation_sigma": 0.3, "modulation_lmax": 4, "galactic_profile": False, "max_polarization_fraction": 0.2,
    }  # fmt: skip
    run = RunSettings(nside=nside, seed=3, freqs=freqs)
    templates, sed, extra, _ = simulate.foreground_realisation(run, "dust", dust, 0, 20.0)
    cmb, _ = simulate.cmb_realisation(run, camb_cls, 0)
    obs = {
        "beam_fwhm_arcmin": [0.0] * 4,
        "noise_T_uK_arcmin": [0.0] * 4,
        "noise_P_uK_arcmin": [0.0] * 4,
        "pixel_window": False,
        "scalar_eb": False,
    }
    signal, _ = simulate.observe(RunSettings(nside=nside, seed=3, freqs=freqs, observation=obs), cmb, [(templates, sed)], 0)
    dust_alm = signal - cmb[None]
    ref = dust_alm[freqs.index(353.0)]
    if scatter == 0:
        # One template: every frequency is the 353 GHz sky times the mean modified black body.
        for i, nu in enumerate(freqs):
            np.testing.assert_allclose(dust_alm[i], fg.dust_sed(nu, 1.6, 20.0, 353.0) * ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())
    else:
        # Per-pixel SEDs: the map at nu over the 353 GHz map follows each pixel's own beta_d, T_d.
        beta = hp.alm2map(extra["beta_alm"], nside, lmax=8)
        temperature = hp.alm2map(extra["temperature_alm"], nside, lmax=8)
        t_ref = hp.alm2map(np.ascontiguousarray(ref[0]), nside, lmax=lmax)
        for i, nu in enumerate(freqs[:-1]):
            t_nu = hp.alm2map(np.ascontiguousarray(dust_alm[i, 0]), nside, lmax=lmax)
            own = fg.dust_sed(nu, beta, temperature, 353.0)
            assert np.median(np.abs(t_nu / t_ref / own - 1)) < 0.01, nu
            assert np.median(np.abs(t_nu / t_ref / fg.dust_sed(nu, 1.6, 20.0, 353.0) - 1)) > 0.03, nu
