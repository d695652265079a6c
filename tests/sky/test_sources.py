"""Point sources rendered with the beam profile: shape, position, polarisation, mask."""

import numpy as np
import pytest

from cmbnn import units
from cmbnn.projection import centre_frames, patch_geometry, rotate_qu, sample_maps
from cmbnn.sky import sources
from cmbnn.units import ARCMIN

FWHM = 7.3  # arcmin
SIDE, RESO = 48, 1.0  # patch pixels well below the beam, so its shape can be measured


def catalogue(lon, lat, flux, angle=0.3, fraction=0.05):
    lon, lat, flux = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (lon, lat, flux))
    return {
        "lon_deg": lon,
        "lat_deg": lat,
        "flux_Jy": flux[:, None],
        "pol_angle_rad": np.full(lon.size, angle),
        "pol_fraction": np.full(lon.size, fraction),
    }


def offset_position(center, east_arcmin, north_arcmin):
    """Sky position at tangent-plane offsets (east, north) from a centre, in degrees."""
    c, e, n = (a[0] for a in centre_frames([center[0]], [center[1]]))
    v = c + east_arcmin * ARCMIN * e + north_arcmin * ARCMIN * n
    v /= np.linalg.norm(v)
    return np.degrees(np.arctan2(v[1], v[0])) % 360, np.degrees(np.arcsin(v[2]))


def render(cat, center, nu=143.0):
    centers = np.array([center])
    theta, phi, _ = patch_geometry(centers, SIDE, SIDE, RESO)
    out = sources.render_patches(sources.PatchSources(cat), [nu], [FWHM], centers, theta, phi, RESO, ["T", "Q", "U"])[0]
    return {f: v[0] for f, v in out.items()}


@pytest.mark.parametrize("lat", [30.0, 85.0])
def test_a_source_in_a_patch_has_the_beam_profile_at_its_true_position(lat):
    center = (40.0, lat)
    # 3.3 and 2.6 pixels off-centre, i.e. between pixel centres, not on a HEALPix centre either.
    east, north = -3.3 * RESO, 2.6 * RESO
    lon_s, lat_s = offset_position(center, east, north)
    flux = 1.5
    t = render(catalogue(lon_s, lat_s, flux), center)["T"]
    # No ringing: nothing negative anywhere, nothing beyond a few beams.
    assert t.min() >= 0
    rows, cols = np.indices(t.shape)
    row_s, col_s = (SIDE - 1) / 2 + north / RESO, (SIDE - 1) / 2 - east / RESO  # east is on the left
    far = np.hypot(rows - row_s, cols - col_s) * RESO > 3 * FWHM
    assert t[far].max() < 1e-6 * t.max()
    # Centroid at the true position (to a small fraction of a pixel).
    w = t / t.sum()
    assert np.sum(w * rows) == pytest.approx(row_s, abs=0.02)
    assert np.sum(w * cols) == pytest.approx(col_s, abs=0.02)
    # Width: the second moment of a Gaussian of this FWHM, and its total flux.
    sigma = np.sqrt(np.sum(w * ((rows - row_s) ** 2 + (cols - col_s) ** 2)) / 2) * RESO
    assert sigma * np.sqrt(8 * np.log(2)) == pytest.approx(FWHM, rel=0.01)
    to_jy = (RESO * ARCMIN) ** 2 / units.jy_per_sr_to_uk_cmb(143.0)
    assert t.sum() * to_jy == pytest.approx(flux, rel=0.01)
    # Peak: flux / (2 pi sigma^2) of the analytic beam, at the sub-pixel peak.
    peak = flux * units.jy_per_sr_to_uk_cmb(143.0) / (2 * np.pi * (FWHM * ARCMIN / np.sqrt(8 * np.log(2))) ** 2)
    dist = np.hypot(rows - row_s, cols - col_s) * RESO * ARCMIN
    np.testing.assert_allclose(t, peak * np.exp(-0.5 * (dist / (FWHM * ARCMIN / np.sqrt(8 * np.log(2)))) ** 2), rtol=2e-3, atol=1e-5 * peak)  # profile cut at 5 sigma (4e-6 of the peak)


def test_source_polarisation_fraction_and_angle():
    center = (200.0, -50.0)
    angle, fraction = 0.3, 0.07
    out = render(catalogue(*center, 2.0, angle, fraction), center)
    t, q, u = out["T"], out["Q"], out["U"]
    bright = t > 1e-3 * t.max()
    np.testing.assert_allclose(np.hypot(q, u)[bright] / t[bright], fraction, rtol=1e-10)
    # At the patch centre the patch frame is the local frame turned by 90 degrees (flat-sky Q, U).
    q_frame, u_frame = rotate_qu(np.cos(2 * angle), np.sin(2 * angle), 0.0)
    np.testing.assert_allclose(q[bright] / t[bright], fraction * q_frame, rtol=1e-6)
    np.testing.assert_allclose(u[bright] / t[bright], fraction * u_frame, rtol=1e-6)


@pytest.mark.parametrize("lat", [40.0, 88.5])  # near the pole local frames turn fast across a beam
def test_healpix_rendering_agrees_with_the_patch_rendering(lat):
    """Full-sky maps (local Q/U frames) sampled into a patch give the patch rendering (patch frame)."""
    nside = 2048
    center = (120.0, lat)
    lon_s, lat_s = offset_position(center, 4.0, -3.0)
    cat = catalogue(lon_s, lat_s, 3.0, angle=1.1, fraction=0.1)
    maps = sources.render_healpix(cat, [143.0], [FWHM], nside)[0]
    omega = 4 * np.pi / (12 * nside**2)
    assert maps[0].min() >= 0
    assert maps[0].sum() * omega / units.jy_per_sr_to_uk_cmb(143.0) == pytest.approx(3.0, rel=0.01)
    pixel_pol = np.hypot(maps[1], maps[2])[maps[0] > 0] / maps[0][maps[0] > 0]
    np.testing.assert_allclose(pixel_pol, 0.1, rtol=1e-10)
    theta, phi, psi = patch_geometry(np.array([center]), SIDE, SIDE, RESO)
    t, q, u = sample_maps(maps, theta[0], phi[0], "bilinear")
    q, u = rotate_qu(q, u, psi[0])
    exact = render(cat, center)
    peak = exact["T"].max()
    near = exact["T"] > 0.3 * peak
    for name, sampled in (("T", t), ("Q", q), ("U", u)):
        # Bilinear interpolation of 1.7 arcmin pixels across a 7.3 arcmin beam errs by a few
        # per cent; a wrong frame rotation or sign errs by order one.
        scale = np.max(np.abs(exact[name]))
        assert scale > 0.05 * peak, name
        assert np.max(np.abs(sampled - exact[name])[near]) < 0.08 * scale, name


def test_no_catalogue_masks_nothing_and_renders_nothing():
    """A config without point sources (foregrounds.components without radio or infrared sources)
    merges no catalogue: the empty one keeps its frequency axis, so the label frequency's fluxes
    are looked up (and found empty) instead of failing, as cut_patches once did."""
    empty = sources.merge([], 3)
    assert empty["flux_Jy"].shape == (0, 3) and all(len(v) == 0 for v in empty.values())
    centers = np.array([(10.0, 45.0), (100.0, -40.0)])
    theta, phi, _ = patch_geometry(centers, SIDE, SIDE, RESO)
    mask, rows = sources.bright_source_mask(sources.PatchSources(empty), 1, 0.2, FWHM, centers, theta, phi, RESO)
    assert mask.shape == (2, SIDE, SIDE) and not mask.any() and rows == []
    maps = sources.render_patches(sources.PatchSources(empty), [100.0, 143.0, 217.0], [FWHM] * 3, centers, theta, phi, RESO, ["T", "Q", "U"])
    assert len(maps) == 3 and all(m[f].shape == (2, SIDE, SIDE) and not m[f].any() for m in maps for f in ("T", "Q", "U"))


def test_bright_sources_are_masked_and_listed():
    center = (10.0, 45.0)
    bright_pos = offset_position(center, 5.0, 5.0)
    faint_pos = offset_position(center, -8.0, -6.0)
    outside = offset_position(center, 200.0, 0.0)
    cat = catalogue([bright_pos[0], faint_pos[0], outside[0]], [bright_pos[1], faint_pos[1], outside[1]], [0.5, 0.1, 5.0])
    centers = np.array([center])
    theta, phi, _ = patch_geometry(centers, SIDE, SIDE, RESO)
    mask, rows = sources.bright_source_mask(sources.PatchSources(cat), 0, 0.2, FWHM, centers, theta, phi, RESO)
    assert mask.dtype == np.uint8 and mask.shape == (1, SIDE, SIDE)
    assert [r["source"] for r in rows] == [0]
    row_s, col_s = (SIDE - 1) / 2 + 5.0 / RESO, (SIDE - 1) / 2 - 5.0 / RESO
    assert rows[0]["y"] == pytest.approx(row_s, abs=1e-3) and rows[0]["x"] == pytest.approx(col_s, abs=1e-3)
    rr, cc = np.indices((SIDE, SIDE))
    disc = np.hypot(rr - row_s, cc - col_s) * RESO
    # A disc of one label FWHM (to within the small-angle projection, well under a pixel).
    assert np.all(mask[0][disc < FWHM - 0.1] == 1) and np.all(mask[0][disc > FWHM + 0.1] == 0)
