import healpy as hp
import numpy as np
import pytest

from cmbnn import projection as proj
from cmbnn.analysis.powspec import FlatSpectra
from cmbnn.harmonics import gaussian_beam, synalm_teb
from cmbnn.seeding import rng_for


@pytest.fixture(scope="module")
def small_sky():
    nside = 64
    lmax = 3 * nside - 1
    flat = {k: np.ones(lmax + 1) * v for k, v in (("TT", 1.0), ("EE", 0.5), ("BB", 0.2), ("TE", 0.3))}
    alm = synalm_teb(flat, lmax, rng_for(11, "proj"))
    return nside, lmax, alm, hp.alm2map(alm, nside, lmax=lmax, pol=True)


def test_exact_evaluation_equals_alm2map_at_pixel_centres(small_sky):
    nside, lmax, alm, maps = small_sky
    pix = np.arange(0, 12 * nside**2, 97)
    theta, phi = hp.pix2ang(nside, pix)
    t = proj.evaluate_alm(alm[0], lmax, theta, phi, spin=0)
    q, u = proj.evaluate_alm(alm[1:], lmax, theta, phi, spin=2)
    scale = np.abs(maps).max()
    np.testing.assert_allclose(t, maps[0, pix], atol=1e-6 * scale)
    np.testing.assert_allclose(q, maps[1, pix], atol=1e-6 * scale)
    np.testing.assert_allclose(u, maps[2, pix], atol=1e-6 * scale)


@pytest.mark.parametrize("lon, lat", [(40.0, 0.0), (200.0, 30.0), (310.0, -60.0), (10.0, 80.0)])
def test_pixel_patch_equals_healpy_gnomview(small_sky, lon, lat):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nside, _, _, maps = small_sky
    height, width, reso = 24, 32, 20.0
    theta, phi, _ = proj.patch_geometry(np.array([[lon, lat]]), height, width, reso)
    ours = proj.sample_maps(maps, theta[0], phi[0], "nearest")
    for k in range(3):
        ref = hp.gnomview(maps[k], rot=(lon, lat), xsize=width, ysize=height, reso=reso, return_projected_map=True, no_plot=True)
        plt.close("all")
        # Pixel centres on HEALPix pixel borders may round either way; nearly all must agree exactly.
        agree = np.isclose(np.asarray(ref), ours[k], rtol=0, atol=1e-6)
        assert agree.mean() > 0.98, (k, agree.mean())


def test_rotation_angle_matches_finite_differences():
    centers = np.array([[0.0, 80.0], [120.0, -45.0]])
    height = width = 41
    reso = 10.0
    theta, phi, psi = proj.patch_geometry(centers, height, width, reso)
    assert np.allclose(psi[:, 20, 20], 0.0, atol=1e-12)
    # Direction of increasing row on the sphere, from neighbouring pixels, versus local north/east.
    vec = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    d = vec[:, 2:, 1:-1] - vec[:, :-2, 1:-1]
    th, ph = theta[:, 1:-1, 1:-1], phi[:, 1:-1, 1:-1]
    east = np.stack([-np.sin(ph), np.cos(ph), np.zeros_like(ph)], axis=-1)
    north = np.stack([-np.cos(th) * np.cos(ph), -np.cos(th) * np.sin(ph), np.sin(th)], axis=-1)
    psi_fd = np.arctan2(np.sum(d * east, -1), np.sum(d * north, -1))
    assert np.max(np.abs(psi_fd - psi[:, 1:-1, 1:-1])) < 2e-3
    # Near the pole the frame rotates by tens of degrees across a patch.
    assert np.ptp(psi[0]) > np.radians(30)


@pytest.fixture(scope="module")
def e_only_alm(camb_cls):
    lmax = 3000
    ee = camb_cls["EE"][: lmax + 1] * gaussian_beam(10.0, lmax)[:, 1] ** 2
    return lmax, synalm_teb({"EE": ee}, lmax, rng_for(2, "e-only"))


@pytest.fixture(scope="module")
def flat_spectra():
    return FlatSpectra(128, 128, 3.0, np.arange(100, 1600, 100), spin=2, aposize_deg=1.0)


def _bb_over_ee(e_only_alm, flat_spectra, lat, sign=1):
    lmax, alm = e_only_alm
    theta, phi, psi = proj.patch_geometry(np.array([[75.0, lat]]), 128, 128, 3.0)
    q, u = proj.evaluate_alm(alm[1:], lmax, theta[0], phi[0], spin=2)
    q, u = proj.rotate_qu(q, u, sign * psi[0])
    cl = flat_spectra([q, u])
    return cl[3] / cl[0]


@pytest.mark.parametrize("lat", [0.0, 30.0, 60.0, 80.0])
def test_e_only_sky_has_no_b_modes_in_exact_patches(e_only_alm, flat_spectra, lat):
    ratio = _bb_over_ee(e_only_alm, flat_spectra, lat)
    assert np.all(np.abs(ratio) < 1e-3), ratio


def test_wrong_rotation_sign_mixes_e_into_b(e_only_alm, flat_spectra):
    # The check above can fail: flipping the rotation sign leaks E into B at high latitude.
    assert np.max(_bb_over_ee(e_only_alm, flat_spectra, 80.0, sign=-1)) > 0.1


def test_patch_q_u_convention_matches_namaster_te_tb_eb(camb_cls):
    """TE pins the sign of Q, TB and EB pin the handedness of U.

    The full sky is given a known parity-odd signal by rotating E into B by
    alpha (as cosmic birefringence would): TE' = TE cos 2a, TB' = TE sin 2a,
    EB' = sin(4a)/2 (EE - BB). Flat-sky NaMaster on exact patches must find
    the same signs and amplitudes; a flipped U (mirror image) reverses TB and
    EB, a flipped Q reverses TE as well.
    """
    from cmbnn.analysis.powspec import ARCMIN, apodized_mask
    from cmbnn.patches.cutting import fields_from_alm

    nmt = pytest.importorskip("pymaster")
    lmax, side, reso = 2500, 96, 4.0
    beam = gaussian_beam(10.0, lmax)
    cls = {k: camb_cls[k][: lmax + 1] * beam[:, 0] ** 2 for k in ("TT", "EE", "BB", "TE")}
    alm = synalm_teb(cls, lmax, rng_for(8, "parity"))
    a = np.radians(12.0)
    c, s = np.cos(2 * a), np.sin(2 * a)
    alm[1], alm[2] = c * alm[1] - s * alm[2], s * alm[1] + c * alm[2]
    ell = np.arange(lmax + 1, dtype=float)
    te, tb = cls["TE"] * c, cls["TE"] * s
    ee, bb = c**2 * cls["EE"] + s**2 * cls["BB"], s**2 * cls["EE"] + c**2 * cls["BB"]
    eb = 0.5 * np.sin(4 * a) * (cls["EE"] - cls["BB"])

    lx = side * reso * ARCMIN
    mask = apodized_mask(side, side, reso, 1.5, border_px=2)
    edges = np.arange(150, 1350, 200)
    bins = nmt.NmtBinFlat(edges[:-1], edges[1:])
    centers = np.array([[20.0, 45.0], [140.0, -60.0], [260.0, 75.0], [330.0, -35.0], [90.0, 30.0], [200.0, -80.0]])
    theta, phi, psi = proj.patch_geometry(centers, side, side, reso)
    values = fields_from_alm(["T", "Q", "U"], alm, lmax, theta, phi, psi)
    w02 = w22 = None
    measured = []
    for i in range(len(centers)):
        f0 = nmt.NmtFieldFlat(lx, lx, mask, [values["T"][i]])
        f2 = nmt.NmtFieldFlat(lx, lx, mask, [values["Q"][i], values["U"][i]], purify_b=True)
        if w02 is None:
            w02, w22 = nmt.NmtWorkspaceFlat(), nmt.NmtWorkspaceFlat()
            w02.compute_coupling_matrix(f0, f2, bins)
            w22.compute_coupling_matrix(f2, f2, bins)
        cl02 = w02.decouple_cell(nmt.compute_coupled_cell_flat(f0, f2, bins))
        cl22 = w22.decouple_cell(nmt.compute_coupled_cell_flat(f2, f2, bins))
        measured.append([cl02[0], cl02[1], cl22[1]])
    measured = np.mean(measured, axis=0)
    expected = [
        w02.decouple_cell(w02.couple_cell(ell, [te, tb]))[0],
        w02.decouple_cell(w02.couple_cell(ell, [te, tb]))[1],
        w22.decouple_cell(w22.couple_cell(ell, [ee, eb, eb, bb]))[1],
    ]
    for name, m, e in zip(("TE", "TB", "EB"), measured, expected):
        strong = np.abs(e) > 0.3 * np.abs(e).max()
        assert np.all(np.sign(m[strong]) == np.sign(e[strong])), (name, m, e)
        # Amplitudes agree to within the sample variance of six patches.
        assert np.corrcoef(m, e)[0, 1] > 0.8, (name, m, e)
