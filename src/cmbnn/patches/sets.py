"""Patch sets: sky regions per split, patch centres, and cutting all fields.

Splits own disjoint sets of coarse HEALPix regions, and a patch is kept
only if its whole footprint lies in regions of its own split, so train,
validation and test patches never share sky.
"""

from __future__ import annotations

import numpy as np

from cmbnn.projection import patch_geometry
from cmbnn.seeding import rng_for
from cmbnn.settings import RunSettings

SPLITS = ("train", "validation", "test")


def assign_regions(region_nside: int, fractions: dict, rng) -> np.ndarray:
    """Split index (order of SPLITS) of every RING pixel at region_nside, by area share."""
    nreg = 12 * region_nside**2
    share = np.array([fractions[s] for s in SPLITS], dtype=np.float64)
    bounds = np.round(np.cumsum(share / share.sum()) * nreg).astype(int)
    owner = np.searchsorted(bounds, np.arange(nreg), side="right")
    return owner[rng.permutation(nreg)]


def footprint_grid(height: int, width: int, reso_arcmin: float, region_nside: int) -> tuple[int, int]:
    """Points per side sampled to test a footprint: spaced below a quarter region, corners included."""
    region_arcmin = np.degrees(np.sqrt(4 * np.pi / (12 * region_nside**2))) * 60
    step = region_arcmin / 4
    rows = int(min(height, max(3, np.ceil(height * reso_arcmin / step) + 1)))
    cols = int(min(width, max(3, np.ceil(width * reso_arcmin / step) + 1)))
    return rows, cols


def sample_centers(n: int, lat_cut_deg: float, rng, batch: int, footprint_ok, centre_ok=None, max_rounds: int = 200) -> np.ndarray:
    """Up to n centres (lon, lat) in degrees, drawn uniformly on the sphere ``batch`` at a time,
    kept where |b| > lat_cut_deg, ``centre_ok(lon, lat)`` (optional) and ``footprint_ok(candidates
    (M, 2)) -> (M,) bool``. Fewer than n after ``max_rounds`` batches: the caller says why."""
    accepted, n_have = [], 0
    for _ in range(max_rounds):
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, batch)))
        lon = rng.uniform(0.0, 360.0, batch)
        keep = np.abs(lat) > lat_cut_deg
        if centre_ok is not None:
            keep &= centre_ok(lon, lat)
        cand = np.stack([lon[keep], lat[keep]], axis=1)
        if len(cand):
            ok = footprint_ok(cand)
            accepted.append(cand[ok])
            n_have += int(ok.sum())
        if n_have >= n:
            break
    return np.concatenate(accepted)[:n] if accepted else np.empty((0, 2))


def draw_centers(n: int, split: str, region_owner: np.ndarray, footprint, rng, mask: np.ndarray | None = None, max_rounds: int = 200) -> np.ndarray:
    """n patch centres (lon, lat) in degrees at |b| > lat_cut whose footprint is all in ``split``'s regions.

    footprint: a mapping with the patches' ``height``, ``width`` (pixels), ``reso_arcmin`` and
    ``lat_cut_deg`` (a ``patches`` config section). mask: optional RING HEALPix map; centres must
    fall on pixels where it is > 0.5.
    """
    import healpy as hp

    height, width, reso_arcmin, lat_cut_deg = (footprint[k] for k in ("height", "width", "reso_arcmin", "lat_cut_deg"))

    region_nside = hp.npix2nside(region_owner.size)
    target = SPLITS.index(split)
    rows, cols = footprint_grid(height, width, reso_arcmin, region_nside)
    # Sample the footprint on a coarser grid with the same extent as the patch.
    scale_r = (height - 1) / max(rows - 1, 1)
    scale_c = (width - 1) / max(cols - 1, 1)

    def in_regions(cand):
        theta, phi, _ = patch_geometry(cand, rows, cols, reso_arcmin * max(scale_r, scale_c))
        owner = region_owner[hp.ang2pix(region_nside, theta, phi)]
        return np.all(owner.reshape(len(cand), -1) == target, axis=1)

    def on_mask(lon, lat):
        return mask[hp.ang2pix(hp.npix2nside(mask.size), lon, lat, lonlat=True)] > 0.5

    centers = sample_centers(n, lat_cut_deg, rng, max(4 * n, 256), in_regions, None if mask is None else on_mask, max_rounds)
    if len(centers) < n:
        raise RuntimeError(
            f"placed only {len(centers)} of {n} '{split}' patches of {height}x{width} at {reso_arcmin} arcmin: "
            f"the sky left by lat_cut_deg={lat_cut_deg}, the mask and region_nside={region_nside} is too small; "
            "lower the cut, the patch size or the counts, or use larger regions (smaller region_nside)"
        )
    return centers


def split_centers(run: RunSettings, realisation: int, split: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Patch centres of one split and realisation (same config -> same centres)."""
    patches = run.patches
    owner = assign_regions(patches["region_nside"], patches["split_fractions"], rng_for(run.seed, "regions"))
    return draw_centers(patches["counts"][split], split, owner, patches, rng_for(run.seed, "centers", realisation, split), mask=mask)


def centers_in_mask(n: int, keep: np.ndarray, lat_cut_deg: float, height: int, width: int, reso_arcmin: float, rng, max_rounds: int = 200) -> np.ndarray:
    """n centres (lon, lat deg) at |b| > lat_cut whose every patch pixel falls on ``keep`` (RING booleans)."""
    import healpy as hp

    nside = hp.npix2nside(keep.size)

    def on_keep(lon, lat):
        return keep[hp.ang2pix(nside, lon, lat, lonlat=True)]

    def footprint_kept(cand):
        theta, phi, _ = patch_geometry(cand, height, width, reso_arcmin)
        return keep[hp.ang2pix(nside, theta, phi)].reshape(len(cand), -1).all(axis=1)

    # Candidates per round: every pixel of every footprint is looked up (~4M lookups a round).
    batch = int(max(16, min(4 * n, 4_000_000 // (height * width))))
    centers = sample_centers(n, lat_cut_deg, rng, batch, footprint_kept, on_keep, max_rounds)
    if len(centers) < n:
        raise RuntimeError(
            f"placed only {len(centers)} of {n} patches of {height}x{width} at {reso_arcmin} arcmin whose footprint avoids the mask "
            f"(|b| > {lat_cut_deg} deg, {keep.mean():.1%} of the sky kept): lower the count or the patch size"
        )
    return centers
