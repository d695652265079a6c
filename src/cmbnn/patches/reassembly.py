"""Full-sky reassembly of inpainted gnomonic patches into a HEALPix map.

Workflow: :func:`tile_centers` chooses overlapping patch centres that cover
every masked pixel of a HEALPix mask; :func:`cut_patches` cuts the map and
the mask at those centres (nearest-pixel sampling through
cmbnn.projection); a model fills the holes of the patches;
:func:`reassemble` puts the patches back.

Conventions: maps RING ordered, uK_CMB; masks 1 = missing; centres (N, 2)
Galactic (lon, lat) in degrees; patches (N, H, W) or (N, H, W, 1) with
square pixels of ``reso_arcmin`` in the orientation of cmbnn.projection
(row 0 at the bottom, north up, east on the left).

Reassembly: every patch gives a value to each HEALPix pixel whose centre
lies inside its footprint: the mean of the patch pixels that were sampled
from that HEALPix pixel (nearest-pixel sampling, as in :func:`cut_patches`),
or, if none was (possible when patch pixels are coarser than HEALPix
pixels), the patch pixel nearest to the HEALPix pixel centre. The pixel's
value is the weighted mean over the patches covering it, the weight of a
patch being its apodisation at the HEALPix pixel centre (:func:`taper_at`,
a cosine taper to zero at the patch edge, continuous, so overlapping
patches blend without seams; "uniform" gives plain means). Unmasked pixels
keep the input map; masked pixels covered by no patch keep their input
value and are listed in the result. With patch pixels finer than the
HEALPix pixels every footprint pixel is sampled, and untouched patches (cut
from the map itself) give the input map back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmbnn import projection as proj
from cmbnn.units import ARCMIN


def _taper_axis(d: np.ndarray, n: float) -> np.ndarray:
    """sin^2(pi/2 min(1, (d + 0.5) / n)) for distances d (pixels, fractional) from the nearest edge pixel centre."""
    if n <= 0:
        return np.ones_like(d, dtype=np.float64)
    return np.sin(0.5 * np.pi * np.clip((d + 0.5) / n, 0.0, 1.0)) ** 2


def taper_at(row: np.ndarray, col: np.ndarray, height: int, width: int, fraction: float = 0.25) -> np.ndarray:
    """The :func:`taper` weight at fractional (row, col) inside the patch: continuous, 0 on the pixel edges."""
    d_row = np.minimum(row, height - 1 - row)
    d_col = np.minimum(col, width - 1 - col)
    return _taper_axis(d_row, fraction * height) * _taper_axis(d_col, fraction * width)


def taper(height: int, width: int, fraction: float = 0.25) -> np.ndarray:
    """Apodisation weights (H, W) in (0, 1] at the pixel centres: a cosine (sin^2) taper over ``fraction`` of each side.

    Along each axis w(d) = sin^2(pi/2 * min(1, (d + 0.5) / n)), d the pixel
    distance to the nearest edge pixel and n = fraction x side pixels, so the
    weight reaches 0 on the patch's outer edge (d = -0.5); the 2-D weight is
    the product. fraction 0 gives uniform weights.
    """
    if not 0 <= fraction <= 0.5:
        raise ValueError(f"taper fraction must be in [0, 0.5], got {fraction}")
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    return taper_at(rows, cols, height, width, fraction)


def _half_diagonal(height: int, width: int, reso_arcmin: float) -> float:
    """Angular radius (rad) of the circle through the patch corners (pixel edges), plus a margin."""
    x = 0.5 * width * reso_arcmin * ARCMIN
    y = 0.5 * height * reso_arcmin * ARCMIN
    return float(np.arctan(np.hypot(x, y))) * 1.01 + 1e-6


def _footprint(nside: int, center, height: int, width: int, reso_arcmin: float, candidates: np.ndarray | None = None, margin: float = 0.0):
    """HEALPix pixels whose centres fall inside the patch and their fractional (row, col).

    Inside: within the patch's pixel edges shrunk by ``margin`` of the side
    on every side (0: the whole footprint). candidates: bool (npix,) to
    restrict the search to.
    """
    import healpy as hp

    lon, lat = center
    vec = proj.unit_vectors(lon, lat)
    disc = hp.query_disc(nside, vec, _half_diagonal(height, width, reso_arcmin), inclusive=False)
    if candidates is not None:
        disc = disc[candidates[disc]]
    vectors = np.stack(hp.pix2vec(nside, disc), axis=-1)
    row, col, front = proj.gnomonic_pixels((lon, lat), vectors, height, width, reso_arcmin)
    mr, mc = margin * height, margin * width
    inside = front & (row >= mr - 0.5) & (row < height - 0.5 - mr) & (col >= mc - 0.5) & (col < width - 0.5 - mc)
    return disc[inside], row[inside], col[inside]


def tile_centers(mask: np.ndarray, height: int, width: int, reso_arcmin: float, overlap: float = 0.5, max_patches: int = 100000) -> np.ndarray:
    """Patch centres (N, 2) lon/lat deg whose H x W gnomonic patches cover every masked pixel.

    mask: RING HEALPix map, 1 (nonzero) = missing. Every masked pixel ends up
    in the central part of some patch, at least ``overlap / 2`` of the side
    from its edges, so neighbouring patches overlap by at least ``overlap``
    of their side and no masked pixel relies on a patch's tapered rim alone
    (reassemble's default taper covers 0.25 of the side: overlap 0.5 makes
    every seam a smooth blend). Candidates are the centres of a coarse
    HEALPix grid whose diamond pixels fit in that central square, kept where
    they hold masked pixels; a masked pixel still outside every central
    square then gets a patch centred on it, repeatedly, until all are in
    one. North is up in every patch.
    """
    import healpy as hp

    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    masked = np.asarray(mask).astype(bool)
    nside = hp.npix2nside(masked.size)
    if not masked.any():
        return np.zeros((0, 2))
    side = min(height, width) * reso_arcmin * ARCMIN
    # A HEALPix diamond of side s spans about s sqrt(2) in lon and lat: s <= (1 - overlap) side / sqrt(2).
    nside_c = max(1, int(np.ceil(np.sqrt(np.pi / 3) / ((1 - overlap) * side / np.sqrt(2)))))
    theta, phi = hp.pix2ang(nside, np.flatnonzero(masked))
    coarse = np.unique(hp.ang2pix(nside_c, theta, phi))
    c_theta, c_phi = hp.pix2ang(nside_c, coarse)
    centers = [np.stack([np.degrees(c_phi), 90 - np.degrees(c_theta)], axis=1)]
    covered = np.zeros(masked.size, dtype=bool)
    for lon, lat in centers[0]:
        covered[_footprint(nside, (lon, lat), height, width, reso_arcmin, masked, overlap / 2)[0]] = True
    extra = []
    while True:
        missing = np.flatnonzero(masked & ~covered)
        if missing.size == 0:
            break
        if len(centers[0]) + len(extra) >= max_patches:
            raise RuntimeError(f"more than {max_patches} patches needed to cover the mask")
        t, p = hp.pix2ang(nside, missing[0])
        centre = (float(np.degrees(p)), float(90 - np.degrees(t)))
        extra.append(centre)
        covered[_footprint(nside, centre, height, width, reso_arcmin, masked, overlap / 2)[0]] = True
    if extra:
        centers.append(np.array(extra))
    return np.concatenate(centers)


def cut_patches(hpx_map: np.ndarray, mask: np.ndarray | None, centers: np.ndarray, height: int, width: int, reso_arcmin: float):
    """Patches of a RING map and its mask at ``centers`` (nearest-pixel sampling).

    Returns (patches (N, H, W) float32 in the map's units, masks (N, H, W)
    uint8 with 1 = missing, or None without a mask).
    """
    theta, phi, _ = proj.patch_geometry(centers, height, width, reso_arcmin)
    patches = proj.sample_maps(np.asarray(hpx_map, dtype=np.float64), theta, phi, "nearest")[0].astype(np.float32)
    if mask is None:
        return patches, None
    masks = proj.sample_maps(np.asarray(mask).astype(np.uint8)[None], theta, phi, "nearest")[0]
    return patches, (masks != 0).astype(np.uint8)


@dataclass
class Reassembly:
    """Result of :func:`reassemble`.

    map: (npix,) float64 in the patches' units; weight: (npix,) total raw
    weight each pixel received (0 = no patch); n_patches: (npix,) int, how
    many patches contributed; covered: bool (npix,) pixels with a patch
    value; uncovered: indices of masked pixels no patch covered (they keep
    the input value, NaN without an input map).
    """

    map: np.ndarray
    weight: np.ndarray
    n_patches: np.ndarray
    covered: np.ndarray
    uncovered: np.ndarray


# More than 8 parameters: the patches' geometry and keyword options (weights, taper, base map, mask), each defaulted.
def reassemble(nside: int, centers: np.ndarray, patches: np.ndarray, height: int, width: int, reso_arcmin: float, weights: str = "apodised", base_map: np.ndarray | None = None, mask: np.ndarray | None = None, taper_fraction: float = 0.25) -> Reassembly:
    """HEALPix map (RING, ``nside``) from patches (N, H, W[, 1]) at ``centers`` (N, 2) lon/lat deg.

    weights: "apodised" (:func:`taper_at` with ``taper_fraction`` of the side) or "uniform".
    base_map: the input map (npix,); its values are kept outside ``mask``
    and where no patch reaches. mask: (npix,) 1 = missing, the pixels to
    replace; None replaces every covered pixel. See the module docstring
    for how patch pixels map to HEALPix pixels.
    """
    import healpy as hp

    patches = np.asarray(patches)
    if patches.ndim == 4:
        patches = patches[..., 0]
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
    if patches.shape != (centers.shape[0], height, width):
        raise ValueError(f"patches {patches.shape} do not match {centers.shape[0]} centres of {height} x {width}")
    if weights not in ("apodised", "uniform"):
        raise ValueError(f"weights must be 'apodised' or 'uniform', got {weights!r}")
    if not 0 <= taper_fraction <= 0.5:
        raise ValueError(f"taper fraction must be in [0, 0.5], got {taper_fraction}")
    npix = hp.nside2npix(nside)
    values = patches.astype(np.float64)
    theta, phi, _ = proj.patch_geometry(centers, height, width, reso_arcmin)
    sampled = hp.ang2pix(nside, theta, phi).reshape(len(centers), -1)
    num = np.zeros(npix)
    den = np.zeros(npix)
    n_patches = np.zeros(npix, dtype=np.int64)
    for k, centre in enumerate(centers):
        disc, row, col = _footprint(nside, centre, height, width, reso_arcmin)
        if disc.size == 0:
            continue
        # This patch's value at each footprint pixel: the mean of its pixels sampled from it ...
        hit_pix, inverse = np.unique(sampled[k], return_inverse=True)
        sums = np.bincount(inverse.ravel(), values[k].ravel(), minlength=hit_pix.size)
        counts = np.bincount(inverse.ravel(), minlength=hit_pix.size)
        pos = np.minimum(np.searchsorted(hit_pix, disc), hit_pix.size - 1)
        is_hit = hit_pix[pos] == disc
        # ... or, for a pixel none of its pixel centres fell in, its nearest pixel.
        r = np.clip(np.rint(row).astype(int), 0, height - 1)
        c = np.clip(np.rint(col).astype(int), 0, width - 1)
        value = np.where(is_hit, sums[pos] / np.maximum(counts[pos], 1), values[k, r, c])
        # Weight: the continuous taper at the HEALPix pixel centre (a tiny floor keeps rim pixels covered).
        wk = taper_at(row, col, height, width, taper_fraction) if weights == "apodised" else np.ones(disc.size)
        wk = np.maximum(wk, 1e-12)
        num[disc] += wk * value
        den[disc] += wk
        n_patches[disc] += 1
    covered = den > 0
    result = np.full(npix, np.nan) if base_map is None else np.asarray(base_map, dtype=np.float64).copy()
    replace = covered if mask is None else covered & np.asarray(mask).astype(bool)
    result[replace] = num[replace] / den[replace]
    wanted = np.ones(npix, bool) if mask is None else np.asarray(mask).astype(bool)
    return Reassembly(map=result, weight=den, n_patches=n_patches, covered=covered, uncovered=np.flatnonzero(wanted & ~covered))
