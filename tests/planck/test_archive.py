"""Planck Legacy Archive readers, on small files written here in the archive's layout.

The files mimic the PLA products: a FITS binary table in HDU 1 with the
archive's column names, ORDERING='NESTED', TUNIT 'K_CMB' / 'K_CMB^2' / 'MJy/sr',
UNSEEN pixels, at nside 16-64 so every test runs in well under a second.
"""

import astropy.units as u
import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from cmbnn.harmonics import gaussian_beam, pixel_window, synalm_teb
from cmbnn.planck.archive import (
    UNSEEN,
    MissingColumnError,
    change_resolution,
    read_planck_map,
    read_planck_mask,
    read_planck_theory,
)
from cmbnn.units import PLANCK_2015_MJYSR_PER_KCMB, mjysr_to_uk_cmb, monochromatic_mjysr_per_kcmb, uk_cmb_to_mjysr, unit_factor
from fake_planck import write_pla_table

NSIDE = 32
NPIX = hp.nside2npix(NSIDE)


def astropy_uk_per_mjysr(nu_ghz):
    eq = u.thermodynamic_temperature(nu_ghz * u.GHz, T_cmb=2.7255 * u.K)
    return (1.0 * u.MJy / u.sr).to(u.uK, equivalencies=eq).value


@pytest.fixture(scope="module")
def sky():
    """Known RING maps in uK_CMB (T, Q, U), some UNSEEN pixels, per-pixel variances in uK^2."""
    rng = np.random.default_rng(7)
    maps = rng.normal(0.0, [[100.0], [3.0], [3.0]], size=(3, NPIX))
    bad = rng.choice(NPIX, 40, replace=False)
    cov = rng.uniform(1.0, 4.0, size=(3, NPIX))  # uK^2
    hits = rng.integers(10, 1000, NPIX).astype(np.int32)
    return maps, bad, cov, hits


def to_file(ring_maps, factor, bad=None):
    """RING uK_CMB -> NESTED values in the file's unit (uK / factor), UNSEEN at bad pixels."""
    m = np.array(ring_maps, dtype=np.float64) / factor
    if bad is not None:
        m[..., bad] = UNSEEN
    return hp.reorder(m, r2n=True).astype(np.float32)


@pytest.fixture()
def hfi_file(tmp_path, sky):
    maps, bad, cov, hits = sky
    fm = to_file(maps, 1e6, bad)
    fc = to_file(cov, 1e12)
    columns = [
        ("I_STOKES", fm[0], "K_CMB", "E"),
        ("Q_STOKES", fm[1], "K_CMB", "E"),
        ("U_STOKES", fm[2], "K_CMB", "E"),
        ("HITS", hp.reorder(hits, r2n=True), "none", "J"),
        ("II_COV", fc[0], "K_CMB^2", "E"),
        ("QQ_COV", fc[1], "K_CMB^2", "E"),
        ("UU_COV", fc[2], "K_CMB^2", "E"),
    ]
    return write_pla_table(tmp_path / "HFI_SkyMap_143_2048_R3.01_full.fits", columns, header=[("FREQ", "143")])


def test_nested_k_cmb_read_as_ring_uk_cmb_with_unseen_flagged(hfi_file, sky):
    maps, bad, cov, _ = sky
    result = read_planck_map(hfi_file)
    assert result.maps.shape == (3, NPIX) and result.nside == NSIDE
    assert result.ordering_in == "NESTED" and result.units == ("K_CMB",) * 3
    good = np.ones(NPIX, bool)
    good[bad] = False
    # RING order and x1e6: a missing reorder or a missing factor fails by orders of magnitude.
    np.testing.assert_allclose(result.maps[:, good], maps[:, good], rtol=1e-6, atol=1e-4)
    assert np.array_equal(result.valid, np.broadcast_to(good, (3, NPIX)))
    assert np.all(result.maps[:, bad] == UNSEEN)
    assert result.n_invalid == {"I_STOKES": 40, "Q_STOKES": 40, "U_STOKES": 40}
    masked = result.masked()
    assert masked.mask.sum() == 120 and abs(masked[0].mean() - maps[0, good].mean()) < 1e-3
    np.testing.assert_allclose(result["Q_STOKES"], result.maps[1])
    # Covariances K_CMB^2 -> uK_CMB^2 (x1e12); HITS dimensionless and unchanged.
    covs = read_planck_map(hfi_file, ("II_COV", "QQ_COV", "UU_COV", "HITS"))
    np.testing.assert_allclose(covs.maps[:3], cov, rtol=1e-6)
    np.testing.assert_array_equal(covs.maps[3], sky[3])
    assert covs.factors == (1e12, 1e12, 1e12, 1.0)


def test_ring_file_is_not_reordered(tmp_path, sky):
    maps = sky[0]
    path = write_pla_table(tmp_path / "ring.fits", [("I_STOKES", (maps[0] / 1e6).astype(np.float32), "K_CMB", "E")], ordering="RING")
    np.testing.assert_allclose(read_planck_map(path, "I_STOKES").maps[0], maps[0], rtol=1e-6, atol=1e-4)


def test_columns_read_by_name_whatever_their_order(tmp_path, sky):
    maps, bad, _, _ = sky
    fm = to_file(maps, 1e3, bad)  # mK_CMB this time
    mask = hp.reorder((np.arange(NPIX) % 3 == 0).astype(np.float32), r2n=True)
    # Commander-like: masks first, Stokes columns shuffled, beams in HDU 2.
    beams = fits.BinTableHDU.from_columns([fits.Column(name="INT_BEAM", format="E", array=np.ones(10))], name="BEAMS")
    columns = [("TMASK", mask, "", "E"), ("U_STOKES", fm[2], "mK_CMB", "E"), ("PMASK", mask, "", "E"), ("I_STOKES", fm[0], "mK_CMB", "E"), ("Q_STOKES", fm[1], "mK_CMB", "E")]
    path = write_pla_table(tmp_path / "COM_CMB_IQU-commander_2048_R3.00_full.fits", columns, extname="COMP-MAP", extra_hdus=[beams])
    result = read_planck_map(path)
    good = np.setdiff1d(np.arange(NPIX), bad)
    np.testing.assert_allclose(result.maps[:, good], maps[:, good], rtol=1e-6, atol=1e-4)
    assert result.file_columns == ("I_STOKES", "Q_STOKES", "U_STOKES")
    # The order asked for is the order returned.
    swapped = read_planck_map(path, ("U_STOKES", "I_STOKES"))
    np.testing.assert_allclose(swapped.maps[:, good], maps[[2, 0]][:, good], rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(read_planck_mask(path, "TMASK"), (np.arange(NPIX) % 3 == 0).astype(float))


def test_ordering_and_partial_sky_are_checked(tmp_path):
    path = write_pla_table(tmp_path / "noorder.fits", [("I_STOKES", np.zeros(NPIX, np.float32), "K_CMB", "E")], ordering="SPIRAL")
    with pytest.raises(ValueError, match=r"noorder\.fits: ORDERING is 'SPIRAL'"):
        read_planck_map(path, "I_STOKES")
    partial = write_pla_table(tmp_path / "partial.fits", [("I_STOKES", np.zeros(NPIX, np.float32), "K_CMB", "E")], header=[("INDXSCHM", "EXPLICIT")])
    with pytest.raises(ValueError, match="partial-sky"):
        read_planck_map(partial, "I_STOKES")
    short = write_pla_table(tmp_path / "short.fits", [("I_STOKES", np.zeros(1000, np.float32), "K_CMB", "E")])
    with pytest.raises(ValueError, match=r"short\.fits: column I_STOKES has 1000 pixels"):
        read_planck_map(short, "I_STOKES")


def test_missing_column_names_file_column_and_what_exists(hfi_file):
    with pytest.raises(MissingColumnError) as err:
        read_planck_map(hfi_file, ("I_STOKES", "TMASK"))
    assert isinstance(err.value, KeyError)
    message = str(err.value)
    assert "HFI_SkyMap_143_2048_R3.01_full.fits" in message and "TMASK" in message
    for existing in ("I_STOKES", "HITS", "II_COV", "UU_COV"):
        assert existing in message


def test_unknown_unit_is_an_error_naming_file_column_unit(tmp_path):
    path = write_pla_table(tmp_path / "odd.fits", [("I_STOKES", np.zeros(NPIX, np.float32), "furlongs", "E")])
    with pytest.raises(ValueError, match=r"odd\.fits: column I_STOKES.*'furlongs'"):
        read_planck_map(path, "I_STOKES")
    # ... unless the caller says what the unit is.
    assert read_planck_map(path, "I_STOKES", units={"I_STOKES": "uK_CMB"}).factors == (1.0,)


def test_unitless_stokes_refused_and_cov_read_as_variance(tmp_path):
    path = write_pla_table(
        tmp_path / "bare.fits",
        [("I_STOKES", np.ones(NPIX, np.float32), "", "E"), ("II_COV", np.full(NPIX, 2e-12, np.float32), "K_CMB", "E"), ("TMASK", np.ones(NPIX, np.float32), "", "E")],
    )
    with pytest.raises(ValueError, match=r"bare\.fits: column I_STOKES: a Stokes map with no unit"):
        read_planck_map(path, "I_STOKES")
    result = read_planck_map(path, ("II_COV", "TMASK"))
    np.testing.assert_allclose(result.maps[0], 2.0, rtol=1e-6)  # uK^2, not 2e-6
    np.testing.assert_array_equal(result.maps[1], 1.0)


def test_reads_maps_written_by_cmbnn_io(tmp_path, sky):
    """The pipeline's own FITS maps (healpy layout: RING, TEMPERATURE/Q_POLARISATION/..., uK_CMB) read back."""
    from cmbnn.io import write_maps_fits

    maps = sky[0]
    path = tmp_path / "cmb.fits"
    write_maps_fits(path, maps, ["TEMPERATURE", "Q_POLARISATION", "U_POLARISATION"])
    result = read_planck_map(path)  # asks for I/Q/U_STOKES, finds the healpy names
    assert result.ordering_in == "RING" and result.factors == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(result.maps, maps, rtol=1e-6, atol=1e-4)


def test_gnilc_545_mjysr_alias_i_and_frequency_from_file_name(tmp_path):
    rng = np.random.default_rng(3)
    intensity = rng.lognormal(0.0, 1.0, NPIX)  # MJy/sr, RING
    bad = np.array([5, 500, 5000])
    values = intensity.copy()
    values[bad] = np.nan
    path = write_pla_table(
        tmp_path / "COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits",
        [("I", hp.reorder(values, r2n=True).astype(np.float32), "MJy/sr", "E")],
        extname="COMP-MAP",
    )
    result = read_planck_map(path, "I_STOKES")  # the alias finds the R2.00 column 'I'
    assert result.file_columns == ("I",) and result.freq_ghz == 545
    good = np.setdiff1d(np.arange(NPIX), bad)
    np.testing.assert_allclose(result.maps[0, good], intensity[good].astype(np.float32) * astropy_uk_per_mjysr(545.0), rtol=1e-6)
    assert not result.valid[0, bad].any() and np.all(result.maps[0, bad] == UNSEEN)  # NaN -> flagged
    # Planck's band-integrated coefficient instead of the monochromatic one.
    planck = read_planck_map(path, "I", mjysr_per_kcmb=PLANCK_2015_MJYSR_PER_KCMB[545])
    np.testing.assert_allclose(planck.maps[0, good], intensity[good].astype(np.float32) * 1e6 / 58.04, rtol=1e-6)
    # An explicit frequency wins over the file name.
    assert read_planck_map(path, "I", freq_ghz=353.0).factors[0] == pytest.approx(astropy_uk_per_mjysr(353.0), rel=1e-9)


def test_mjysr_without_frequency_asks_for_one(tmp_path):
    path = write_pla_table(tmp_path / "dust.fits", [("I", np.ones(NPIX, np.float32), "MJy/sr", "E")])
    with pytest.raises(ValueError, match=r"dust\.fits: column I.*freq_ghz"):
        read_planck_map(path, "I")


@pytest.mark.parametrize("nu", [30.0, 100.0, 143.0, 217.0, 353.0, 545.0, 857.0])
def test_mjysr_conversion_matches_astropy(nu):
    assert mjysr_to_uk_cmb(nu) == pytest.approx(astropy_uk_per_mjysr(nu), rel=1e-6)
    assert uk_cmb_to_mjysr(nu) * mjysr_to_uk_cmb(nu) == pytest.approx(1.0, rel=1e-12)
    assert unit_factor("MJy/sr", nu) == pytest.approx(astropy_uk_per_mjysr(nu), rel=1e-6)
    assert unit_factor("Jy/sr", nu) == pytest.approx(astropy_uk_per_mjysr(nu) * 1e-6, rel=1e-6)
    # K_RJ -> K_CMB through astropy: K_RJ -> MJy/sr (Rayleigh-Jeans) -> K_CMB.
    eq_rj = u.brightness_temperature(nu * u.GHz)
    mjysr_per_krj = (1.0 * u.K).to(u.MJy / u.sr, equivalencies=eq_rj).value
    assert unit_factor("K_RJ", nu) == pytest.approx(mjysr_per_krj * astropy_uk_per_mjysr(nu), rel=1e-6)


def test_monochromatic_545_differs_from_planck_band_coefficient_by_percent():
    mono = monochromatic_mjysr_per_kcmb(545.0)
    assert mono == pytest.approx(57.117, rel=1e-4)
    assert 0.005 < abs(PLANCK_2015_MJYSR_PER_KCMB[545] / mono - 1) < 0.05
    assert mjysr_to_uk_cmb(545.0, 58.04) == pytest.approx(1e6 / 58.04)


def test_unit_strings():
    assert unit_factor("K_CMB") == 1e6 and unit_factor("Kcmb") == 1e6
    assert unit_factor("uK_CMB") == 1.0 and unit_factor("mK_CMB") == 1e3
    assert unit_factor("K_CMB^2") == pytest.approx(1e12) and unit_factor("(K_CMB)**2") == pytest.approx(1e12)
    assert unit_factor("none") == 1.0 and unit_factor("") == 1.0
    with pytest.raises(ValueError, match="K_RJ.*freq_ghz"):
        unit_factor("K_RJ", None, where="x.fits: column Q_STOKES")


def test_vector_columns_and_nside_out(tmp_path, sky):
    """1024 pixels per row (TFORM 1024E, healpy's layout); ud_grade keeps variances as variances."""
    maps = sky[0]
    columns = [
        ("I_STOKES", to_file(maps[0], 1e6), "K_CMB", "E"),
        ("II_COV", to_file(np.full(NPIX, 4e-12), 1.0), "K_CMB^2", "E"),
        ("HITS", hp.reorder(np.full(NPIX, 10, np.int32), r2n=True), "none", "J"),
    ]
    path = write_pla_table(tmp_path / "vec.fits", columns, vector=True)
    full = read_planck_map(path, ("I_STOKES",))
    np.testing.assert_allclose(full.maps[0], maps[0], rtol=1e-6, atol=1e-4)
    low = read_planck_map(path, ("I_STOKES", "II_COV", "HITS"), nside_out=NSIDE // 2)
    assert low.nside == NSIDE // 2
    np.testing.assert_allclose(low.maps[0], hp.ud_grade(maps[0], NSIDE // 2), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(low.maps[1], 1.0, rtol=1e-6)  # 4 uK^2 / 4 pixels averaged
    np.testing.assert_allclose(low.maps[2], 40.0)  # hits add up


def test_read_planck_mask_single_column_nested(tmp_path):
    ring = (hp.pix2ang(NSIDE, np.arange(NPIX), lonlat=True)[1] > 20).astype(np.float32)  # not symmetric under reorder
    path = write_pla_table(tmp_path / "COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits", [("TMASK", hp.reorder(ring, r2n=True), "", "E")])
    np.testing.assert_array_equal(read_planck_mask(path), ring)
    assert read_planck_mask(path, "TMASK", as_bool=True).dtype == bool
    two = write_pla_table(tmp_path / "two.fits", [("GAL060", ring, "", "E"), ("GAL070", ring, "", "E")])
    with pytest.raises(ValueError, match=r"GAL060.*GAL070.*column="):
        read_planck_mask(two)


def _maps_from_alm(alm, fwhm, nside, lmax, extra=None):
    bl = gaussian_beam(fwhm, lmax) * (1.0 if extra is None else extra)
    ell = hp.Alm.getlm(lmax)[0]
    return hp.alm2map(np.ascontiguousarray(alm * bl.T[:, ell]), nside, lmax=lmax, pol=True)


def test_change_resolution_matches_direct_synthesis():
    lmax_sky, nside_in, nside_out = 95, 64, 32
    ell = np.arange(lmax_sky + 1)
    cl = np.zeros(lmax_sky + 1)
    cl[2:] = 1e3 / ell[2:] ** 2
    alm = synalm_teb({"TT": cl, "EE": cl / 10, "BB": cl / 30, "TE": cl * 0.2}, lmax_sky, np.random.default_rng(11))
    at_a = _maps_from_alm(alm, 60.0, nside_in, lmax_sky)
    direct = _maps_from_alm(alm, 120.0, nside_out, lmax_sky)
    changed = change_resolution(at_a, 60.0, 120.0, nside_out, lmax=lmax_sky)
    for i in range(3):  # T, Q, U
        assert np.max(np.abs(changed[i] - direct[i])) < 1e-3 * np.std(direct[i])
    # The test can fail: pixel averaging alone, or T's beam ratio on Q/U, misses by far more.
    assert np.std(hp.ud_grade(at_a[1], nside_out) - direct[1]) > 0.05 * np.std(direct[1])
    # b_ell arrays work too: T's beam ratio given for all three components still gets T right.
    t_beams = np.repeat(gaussian_beam(120.0, lmax_sky)[:, :1], 3, axis=1)
    t_only_beams = change_resolution(at_a, np.repeat(gaussian_beam(60.0, lmax_sky)[:, :1], 3, axis=1), t_beams, nside_out, lmax=lmax_sky)
    assert np.max(np.abs(t_only_beams[0] - direct[0])) < 1e-3 * np.std(direct[0])
    # Temperature alone, as a single map.
    t_only = change_resolution(at_a[0], 60.0, 120.0, nside_out, lmax=lmax_sky)
    assert np.max(np.abs(t_only - direct[0])) < 1e-3 * np.std(direct[0])
    # Pixel windows: a map carrying the nside-64 window, changed to one carrying the nside-32 window.
    pw = {n: pixel_window(n, lmax_sky) for n in (nside_in, nside_out)}
    with_pw_in = _maps_from_alm(alm, 60.0, nside_in, lmax_sky, extra=pw[nside_in])
    with_pw_out = _maps_from_alm(alm, 120.0, nside_out, lmax_sky, extra=pw[nside_out])
    changed_pw = change_resolution(with_pw_in, 60.0, 120.0, nside_out, lmax=lmax_sky, pixwin_in=True, pixwin_out=True)
    assert np.max(np.abs(changed_pw - with_pw_out)) < 1e-3 * np.std(with_pw_out)
    assert np.max(np.abs(changed - with_pw_out)) > 1e-2 * np.std(with_pw_out)  # the windows matter at this level
    # A b_ell array is accepted for the input beam.
    bl = gaussian_beam(60.0, lmax_sky)
    np.testing.assert_allclose(change_resolution(at_a, bl, 120.0, nside_out, lmax=lmax_sky), changed, atol=1e-10)


def test_change_resolution_unseen_policy():
    m = np.ones((3, hp.nside2npix(16)))
    m[0, 7] = UNSEEN
    with pytest.raises(ValueError, match="1 UNSEEN"):
        change_resolution(m, 30.0, 60.0, 16)
    out = change_resolution(m, 30.0, 60.0, 16, unseen="zero")
    assert np.all(np.isfinite(out)) and m[0, 7] == UNSEEN  # the caller's array is untouched


def test_read_planck_theory_converts_d_ell_to_c_ell(tmp_path):
    lmax = 2500
    ell = np.arange(2, lmax + 1)
    # A D_ell table with a first TT peak of ~5700 uK^2 at ell ~ 220.
    dl = {
        "TT": 1000 + 4700 * np.exp(-0.5 * ((ell - 220) / 80.0) ** 2),
        "TE": 100 * np.sin(ell / 50.0),
        "EE": 0.05 + 40 * np.exp(-0.5 * ((ell - 1000) / 300.0) ** 2),
        "BB": 0.1 * np.ones(ell.size),
        "PP": 1e-7 * np.ones(ell.size),
    }
    path = tmp_path / "COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt"
    with open(path, "w") as f:
        f.write("#    L    TT             TE             EE             BB             PP\n")
        for i, l in enumerate(ell):
            f.write(f"{l:6d}" + "".join(f"   {dl[n][i]:.6E}" for n in ("TT", "TE", "EE", "BB", "PP")) + "\n")
    cls = read_planck_theory(path)
    assert set(cls) == {"TT", "TE", "EE", "BB", "PP"}
    for name in ("TT", "TE", "EE", "BB"):
        cl = cls[name]
        assert cl.size == lmax + 1 and cl[0] == 0 and cl[1] == 0
        np.testing.assert_allclose(cl[2:], dl[name] * 2 * np.pi / (ell * (ell + 1)), rtol=1e-6)
    assert cls["TT"][220] == pytest.approx(5700 * 2 * np.pi / (220 * 221), rel=1e-5)  # ~0.74, not 5700
    np.testing.assert_allclose(cls["PP"][2:], 1e-7 * 2 * np.pi / (ell * (ell + 1.0)) ** 2, rtol=1e-6)
    assert read_planck_theory(path, lmax=100)["TT"].size == 101
    # A file holding C_ell (or K^2) by mistake is refused.
    wrong = tmp_path / "cl.txt"
    with open(wrong, "w") as f:
        f.write("#    L    TT             TE             EE             BB             PP\n")
        for l in ell:
            f.write(f"{l:6d}   {cls['TT'][l]:.6E}   0   0   0   0\n")
    with pytest.raises(ValueError, match="D_ell"):
        read_planck_theory(wrong)
