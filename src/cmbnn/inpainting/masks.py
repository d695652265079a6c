"""Inpainting masks from the simulated sky itself (CosmoVAE, issue 8): a Galactic part from
thresholding the dust intensity, and holes around the brightest point sources.

Default (offline) recipe, per realisation:

1. The dust temperature map at ``dust_frequency`` (uK_CMB; the foreground rule's alm: K
   templates mixed by the SED matrix), smoothed with a Gaussian of ``dust_smoothing_fwhm_arcmin``
   so the band is made of contiguous regions, not of single bright pixels.
2. Patch centres lie at |b| > 20 deg, where a latitude cut alone would rarely enter a patch.
   The threshold is therefore a quantile of that dust map over the pixels of every patch of the
   realisation (all splits): the Galactic part masks the fraction
   ``hole_fraction - source fraction`` of those pixels (the source holes, measured on the same
   patches, make up the rest), so the configured hole fraction is reached on the patches on
   average. Patches near the brightest dust get large holes, most get none: the bank keeps the
   training-position masks with at least ``bank_min_fraction`` missing.
3. The sphere mask (1 = missing) is dust > threshold, plus discs of ``source_mask_radius_fwhm``
   label-beam FWHM around sources brighter than ``source_mask_flux_Jy`` at the label frequency
   (the same sources the patch cutter masks).

A patch's real holes are the Galactic part sampled at its pixels (nearest HEALPix pixel) OR the
patch file's own ``mask`` (the exact source discs at the patch pixels).
"""

from __future__ import annotations

import numpy as np

from cmbnn.projection import patch_geometry
from cmbnn.sky.foregrounds import alm_at_frequency
from cmbnn.units import ARCMIN

# Hole classes: a patch whose holes cover less than this fraction of it has only point-source
# discs (3-17 pixels at the default beam); more is a Galactic hole.
SOURCE_HOLE_MAX_FRACTION = 0.01


def dust_temperature_map(templates: np.ndarray, sed: np.ndarray, i_freq: int, nside: int, fwhm_arcmin: float) -> np.ndarray:
    """Smoothed dust T map (uK_CMB, RING) at frequency index i_freq from the foreground alm (K, 3, nalm)."""
    import healpy as hp

    alm = np.asarray(alm_at_frequency(np.asarray(templates, dtype=np.complex128), np.asarray(sed, dtype=np.float64), i_freq)[0])
    lmax = hp.Alm.getlmax(alm.size)
    if fwhm_arcmin > 0:
        alm = hp.almxfl(alm, hp.gauss_beam(fwhm_arcmin * ARCMIN, lmax=lmax))
    return hp.alm2map(alm, nside, lmax=lmax)


def sample_at_patches(sky_map: np.ndarray, centers: np.ndarray, height: int, width: int, reso_arcmin: float, chunk: int = 256) -> np.ndarray:
    """Nearest-pixel values of a HEALPix map (RING) at every patch pixel: (N, H, W)."""
    import healpy as hp

    nside = hp.npix2nside(len(sky_map))
    out = np.empty((len(centers), height, width), dtype=np.asarray(sky_map).dtype)
    for start in range(0, len(centers), chunk):
        theta, phi, _ = patch_geometry(centers[start : start + chunk], height, width, reso_arcmin)
        out[start : start + chunk] = sky_map[hp.ang2pix(nside, theta, phi)]
    return out


def galactic_threshold(dust_at_patches: np.ndarray, galactic_fraction: float) -> float:
    """Dust level above which ``galactic_fraction`` of the given pixels lie (inf for 0)."""
    if galactic_fraction <= 0:
        return float("inf")
    if galactic_fraction >= 1:
        return float("-inf")
    return float(np.quantile(np.asarray(dust_at_patches, dtype=np.float64), 1.0 - galactic_fraction))


def source_disc_mask(nside: int, lon_deg, lat_deg, radius_arcmin: float) -> np.ndarray:
    """uint8 RING map, 1 within radius of each (lon, lat) and at every pixel that holds a source."""
    import healpy as hp

    mask = np.zeros(12 * nside**2, dtype=np.uint8)
    lon, lat = np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64)
    if lon.size == 0:
        return mask
    vecs = hp.ang2vec(lon, lat, lonlat=True)
    for v in np.atleast_2d(vecs):
        mask[hp.query_disc(nside, v, radius_arcmin * ARCMIN, inclusive=False)] = 1
    mask[hp.ang2pix(nside, lon, lat, lonlat=True)] = 1
    return mask


def bright_sources(catalogues: list, i_label: int, flux_cut_jy: float) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) in degrees of the catalogued sources brighter than the cut at the label frequency."""
    lon, lat = [], []
    for cat in catalogues:
        bright = np.asarray(cat["flux_Jy"])[:, i_label] > flux_cut_jy
        lon.append(np.asarray(cat["lon_deg"])[bright])
        lat.append(np.asarray(cat["lat_deg"])[bright])
    return (np.concatenate(lon) if lon else np.zeros(0)), (np.concatenate(lat) if lat else np.zeros(0))


def sky_mask(dust_map: np.ndarray, threshold: float, source_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(total, galactic) uint8 masks on the sphere, 1 = missing."""
    galactic = (np.asarray(dust_map) > threshold).astype(np.uint8)
    total = galactic if source_mask is None else np.maximum(galactic, source_mask)
    return total, galactic


def patch_holes(galactic_at_patches: np.ndarray, source_holes: np.ndarray) -> np.ndarray:
    """A patch's real holes: the Galactic part at its pixels OR its source holes, uint8 (N, H, W)."""
    return np.maximum(np.asarray(galactic_at_patches, dtype=np.uint8), np.asarray(source_holes, dtype=np.uint8))


def bank_indices(masks: np.ndarray, min_fraction: float) -> np.ndarray:
    """Indices of the masks with at least min_fraction of their pixels missing (and not all)."""
    frac = np.asarray(masks, dtype=np.float64).mean(axis=(1, 2))
    return np.flatnonzero((frac >= min_fraction) & (frac < 1.0))


def hole_fraction(masks: np.ndarray) -> float:
    return float(np.asarray(masks, dtype=np.float64).mean())


def busiest_disc(mask: np.ndarray, radius_deg: float, lat_cut_deg: float, target_fraction: float = 0.3, nside_grid: int = 16) -> tuple[float, float]:
    """(lon, lat) of a disc of radius_deg at |b| > lat_cut_deg whose masked fraction is closest to
    ``target_fraction`` (a region with holes to fill and sky around them), on an nside_grid grid."""
    import healpy as hp

    nside = hp.npix2nside(len(mask))
    low = hp.ud_grade(np.asarray(mask, dtype=np.float64), min(nside, 64))
    lon, lat = hp.pix2ang(nside_grid, np.arange(12 * nside_grid**2), lonlat=True)
    best, best_score = None, np.inf
    for lo, la in zip(lon, lat):
        if abs(la) <= lat_cut_deg:
            continue
        pix = hp.query_disc(hp.npix2nside(len(low)), hp.ang2vec(lo, la, lonlat=True), np.radians(radius_deg))
        score = abs(low[pix].mean() - target_fraction)
        if score < best_score:
            best, best_score = (float(lo), float(la)), score
    return best


def spread_subset(masks: np.ndarray, n: int | None) -> np.ndarray | None:
    """Indices of n patches with holes (None: keep all), half with source holes and half with
    Galactic ones (cmbnn.inpainting.metrics.SOURCE_HOLE_MAX_FRACTION tells them apart), each half
    evenly spread over the set; a class with too few patches gives its share to the other."""
    if n is None:
        return None
    fraction = np.asarray(masks).reshape(len(masks), -1).mean(axis=1)
    source = np.flatnonzero((fraction > 0) & (fraction < SOURCE_HOLE_MAX_FRACTION))
    galactic = np.flatnonzero(fraction >= SOURCE_HOLE_MAX_FRACTION)
    n_galactic = min(len(galactic), max(n // 2, n - len(source)))
    n_source = min(len(source), n - n_galactic)

    def spread(ids, k):
        return ids[np.round(np.linspace(0, len(ids) - 1, k)).astype(int)] if k < len(ids) else ids

    return np.sort(np.concatenate([spread(source, n_source), spread(galactic, n_galactic)]))
