"""Tiling a HEALPix mask with gnomonic patches and putting the patches back (cmbnn.patches.reassembly)."""

import numpy as np
import pytest

from cmbnn.patches.reassembly import cut_patches, reassemble, taper, taper_at, tile_centers

NSIDE = 64  # 55 arcmin pixels
SIZE, RESO = 32, 15.0  # 8 deg patches with pixels finer than the HEALPix ones


@pytest.fixture(scope="module")
def band_and_disc():
    """A |b| < 4 deg band and a 9 deg disc at (lon, lat) = (60, 45): 1 = missing."""
    import healpy as hp

    theta, _ = hp.pix2ang(NSIDE, np.arange(hp.nside2npix(NSIDE)))
    mask = (np.abs(90 - np.degrees(theta)) < 4).astype(np.uint8)
    disc = hp.query_disc(NSIDE, hp.ang2vec(60.0, 45.0, lonlat=True), np.radians(9.0))
    mask[disc] = 1
    return mask


@pytest.fixture(scope="module")
def sky():
    import healpy as hp

    ell = np.arange(3 * NSIDE)
    cl = np.zeros(ell.size)
    cl[2:] = 1e3 / (ell[2:] * (ell[2:] + 1.0))
    rng = np.random.default_rng(0)
    from cmbnn.harmonics import alm_lm

    lm_ell, _ = alm_lm(3 * NSIDE - 1)
    n = lm_ell.size
    alm = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2) * np.sqrt(cl[lm_ell])
    alm[lm_ell == 0] = 0
    return hp.alm2map(alm, NSIDE)


@pytest.fixture(scope="module")
def tiling(band_and_disc):
    return tile_centers(band_and_disc, SIZE, SIZE, RESO)


def test_taper_is_positive_symmetric_and_flat_inside():
    w = taper(16, 20, 0.25)
    assert w.shape == (16, 20)
    assert np.all(w > 0) and np.all(w <= 1)
    assert np.allclose(w, w[::-1]) and np.allclose(w, w[:, ::-1])
    assert np.all(w[4:12, 5:15] == 1.0)
    assert w[0, 0] < 0.05
    assert np.all(taper(8, 8, 0.0) == 1)
    # Continuous: zero on the patch's outer edge, equal to taper() at pixel centres.
    assert taper_at(np.array([-0.5]), np.array([7.0]), 16, 20)[0] == 0.0
    assert taper_at(np.array([2.0]), np.array([3.0]), 16, 20)[0] == pytest.approx(w[2, 3])


def test_every_masked_pixel_is_covered_and_patches_overlap(band_and_disc, tiling):
    assert tiling.shape[1] == 2 and 20 < len(tiling) < 1000
    ones = np.ones((len(tiling), SIZE, SIZE), np.float32)
    out = reassemble(NSIDE, tiling, ones, SIZE, SIZE, RESO, mask=band_and_disc)
    masked = band_and_disc.astype(bool)
    assert out.uncovered.size == 0
    assert out.covered[masked].all()
    assert np.mean(out.n_patches[masked] >= 2) > 0.2  # neighbouring patches overlap
    # Normalised weights sum to 1: patches of ones give exactly one, also where they overlap.
    assert np.allclose(out.map[masked], 1.0, rtol=0, atol=1e-12)
    assert np.all(np.isnan(out.map[~masked]))  # no base map: nothing outside the mask


def test_untouched_patches_give_back_the_map(band_and_disc, tiling, sky):
    patches, masks = cut_patches(sky, band_and_disc, tiling, SIZE, SIZE, RESO)
    assert patches.dtype == np.float32 and masks.dtype == np.uint8
    assert masks.any() and not masks.all()
    # Replace every covered pixel (mask=None) and compare with the float32 map.
    out = reassemble(NSIDE, tiling, patches, SIZE, SIZE, RESO, weights="apodised")
    sky32 = sky.astype(np.float32).astype(np.float64)
    assert out.covered.sum() > band_and_disc.sum()
    assert np.allclose(out.map[out.covered], sky32[out.covered], rtol=1e-12, atol=0)
    # With a base map and a mask, unmasked pixels keep the input exactly.
    filled = reassemble(NSIDE, tiling, patches[..., None], SIZE, SIZE, RESO, base_map=sky, mask=band_and_disc)
    assert np.array_equal(filled.map[band_and_disc == 0], sky[band_and_disc == 0])
    assert np.allclose(filled.map, sky, rtol=1e-6, atol=1e-6 * np.abs(sky).max())


def test_constant_offset_patches_give_the_offset_in_the_hole(band_and_disc, tiling, sky):
    patches, _ = cut_patches(sky, band_and_disc, tiling, SIZE, SIZE, RESO)
    rng = np.random.default_rng(1)
    offsets = np.full(len(tiling), 7.5)
    out = reassemble(NSIDE, tiling, patches.astype(np.float64) + offsets[:, None, None], SIZE, SIZE, RESO, base_map=sky, mask=band_and_disc)
    masked = band_and_disc.astype(bool)
    assert np.allclose(out.map[masked] - sky.astype(np.float32)[masked], 7.5, atol=1e-4)
    # Different offsets per patch: the hole holds weighted means, within the offsets' range and
    # smooth across seams (apodised) -> every value between min and max offset.
    offsets = rng.uniform(-5, 5, len(tiling))
    out = reassemble(NSIDE, tiling, np.broadcast_to(offsets[:, None, None], patches.shape), SIZE, SIZE, RESO, mask=band_and_disc)
    assert offsets.min() - 1e-9 <= out.map[masked].min() and out.map[masked].max() <= offsets.max() + 1e-9
    assert np.all(out.n_patches[masked] >= 2)  # 50% overlap: every masked pixel in two patches or more
    # One patch alone: its footprint takes its offset exactly, whatever the taper weight.
    one = reassemble(NSIDE, tiling[:1], np.full((1, SIZE, SIZE), offsets[0]), SIZE, SIZE, RESO)
    assert one.covered.sum() > 50
    assert np.allclose(one.map[one.covered], offsets[0], rtol=1e-14, atol=0)
    assert np.all(one.n_patches[one.covered] == 1)


def test_apodised_weights_blend_seams():
    """Patches of random constants +-1: apodised weights blend them continuously, uniform weights jump at patch edges."""
    import healpy as hp

    nside = 256  # 14 arcmin pixels: the 2 deg taper spans ~9 of them
    mask = np.zeros(hp.nside2npix(nside), np.uint8)
    mask[hp.query_disc(nside, hp.ang2vec(30.0, -50.0, lonlat=True), np.radians(8.0))] = 1
    centers = tile_centers(mask, SIZE, SIZE, RESO)
    offsets = np.random.default_rng(2).choice([-1.0, 1.0], len(centers))
    field = np.broadcast_to(offsets[:, None, None], (len(centers), SIZE, SIZE))
    masked = np.flatnonzero(mask)
    neigh = hp.get_all_neighbours(nside, masked).T
    inner = np.all(mask[neigh] == 1, axis=1)  # pixels whose neighbours are all in the hole
    jumps = {}
    for weights in ("uniform", "apodised"):
        out = reassemble(nside, centers, field, SIZE, SIZE, RESO, weights=weights, mask=mask)
        jumps[weights] = np.max(np.abs(out.map[masked[inner]][:, None] - out.map[neigh[inner]]))
    assert jumps["uniform"] > 0.3
    assert jumps["apodised"] < 0.5 * jumps["uniform"], jumps


def test_uncovered_masked_pixels_are_reported(band_and_disc, tiling, sky):
    patches, _ = cut_patches(sky, band_and_disc, tiling, SIZE, SIZE, RESO)
    out = reassemble(NSIDE, tiling[:3], patches[:3], SIZE, SIZE, RESO, base_map=sky, mask=band_and_disc)
    assert out.uncovered.size > 0
    assert np.array_equal(out.map[out.uncovered], sky[out.uncovered])
    assert not out.covered[out.uncovered].any()
    with pytest.raises(ValueError, match="weights"):
        reassemble(NSIDE, tiling[:1], patches[:1], SIZE, SIZE, RESO, weights="median")
    with pytest.raises(ValueError, match="do not match"):
        reassemble(NSIDE, tiling[:2], patches[:1], SIZE, SIZE, RESO)


def test_coarse_patch_pixels_fall_back_to_the_nearest_patch_pixel(band_and_disc):
    """Patch pixels coarser than HEALPix pixels leave pixels unhit: they are still covered."""
    centers = tile_centers(band_and_disc, 8, 8, 120.0, overlap=0.25)
    ones = np.ones((len(centers), 8, 8))
    out = reassemble(NSIDE, centers, ones, 8, 8, 120.0, mask=band_and_disc)
    assert out.uncovered.size == 0
    assert np.allclose(out.map[band_and_disc == 1], 1.0)
