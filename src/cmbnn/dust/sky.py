"""Dust intensity skies and patches for the generative models (issue 9).

The default sky is close to log-normal, as real dust intensity roughly is: I = I0 exp(s g' - s^2 / 2) P(b),
with g' = g + k (g^2 - 1) (normalised; k = ``skew``) and g a unit-variance Gaussian field whose power spectrum is the dust's C_ell ~ ell^alpha
(alpha = -2.42, Planck 2018 XI), s the rms of log I at fixed latitude and P(b) = 1 / sin|b|
(floored at a few degrees) the brightening towards the Galactic plane. Exponentiating a Gaussian
field makes the intensity positive, skewed, with bright compact (filament-like) peaks and faint
broad valleys: its Minkowski functionals are not those of a Gaussian field, which is what the
generative models are asked to learn. Units: MJy/sr at 545 GHz by convention (I0 ~ 1 MJy/sr at
high latitude).

Patches are evaluated exactly from the alm of g at the gnomonic patch pixels (no HEALPix
pixelisation), then exponentiated; each keeps its centre and Galactic latitude.
"""

from __future__ import annotations

import numpy as np

from cmbnn.harmonics import alm_lm, unit_gaussian_alm
from cmbnn.patches.sets import assign_regions, draw_centers
from cmbnn.projection import evaluate_alm, patch_geometry, sample_maps
from cmbnn.seeding import rng_for


def skewed(g: np.ndarray, skew: float) -> np.ndarray:
    """g + skew (g^2 - 1), rescaled to unit variance (for a unit Gaussian g): a quadratic
    non-Gaussianity of the log intensity, so that log I is not a Gaussian field either (with
    skew = 0 it would be, and the Gaussian conditional mean of log I would be the exact answer)."""
    return (np.asarray(g) + skew * (np.asarray(g) ** 2 - 1.0)) / np.sqrt(1.0 + 2.0 * skew**2)


def log_field_alm(lmax: int, alpha: float, rng, fwhm_arcmin: float = 0.0) -> np.ndarray:
    """alm of a Gaussian field with C_ell ~ ell^alpha b_ell^2 for ell >= 2 (b_ell: a Gaussian beam of
    ``fwhm_arcmin``, the sky model's resolution), normalised to unit variance."""
    import healpy as hp

    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.where(ell >= 2, np.maximum(ell, 1.0) ** alpha, 0.0)
    if fwhm_arcmin > 0:
        cl *= hp.gauss_beam(np.radians(fwhm_arcmin / 60.0), lmax=lmax) ** 2
    cl /= np.sum((2 * ell + 1) / (4 * np.pi) * cl)  # variance sum (2l+1) C_l / 4 pi = 1
    ell_alm, _ = alm_lm(lmax)
    return unit_gaussian_alm(lmax, 1, rng)[0] * np.sqrt(cl[ell_alm])


def latitude_profile(lat_deg, floor_deg: float = 5.0) -> np.ndarray:
    """1 / sin|b|, floored at ``floor_deg`` (a plane-parallel slab seen from inside it)."""
    return 1.0 / np.sin(np.radians(np.maximum(np.abs(lat_deg), floor_deg)))


def intensity(g: np.ndarray, lat_deg, sigma_log: float, i0: float, galactic_profile: bool = True, floor_deg: float = 5.0, skew: float = 0.0) -> np.ndarray:
    """I = I0 exp(sigma_log g' - sigma_log^2 / 2) P(b), g' = :func:`skewed` (g, skew): log-normal
    for skew = 0 (mean I0 P(b) at each latitude)."""
    out = i0 * np.exp(sigma_log * skewed(g, skew) - 0.5 * sigma_log**2)
    return out * latitude_profile(lat_deg, floor_deg) if galactic_profile else out


def dust_centers(settings: dict, seed: int, split: str) -> np.ndarray:
    """Patch centres of one split (lon, lat deg) at |b| > lat_cut, splits on disjoint sky regions."""
    owner = assign_regions(settings["region_nside"], settings["split_fractions"], rng_for(seed, "dust-regions"))
    return draw_centers(settings["counts"][split], split, owner, settings, rng_for(seed, "dust-centers", split))


def cut_dust_patches(alm: np.ndarray, lmax: int, centers: np.ndarray, settings: dict, nthreads: int = 1, chunk: int = 256) -> np.ndarray:
    """Intensity patches (N, H, W) float32 of the log-normal sky at ``centers``: g evaluated exactly
    from its alm at every patch pixel, then exponentiated with the latitude of each pixel."""
    h, w, reso = settings["height"], settings["width"], settings["reso_arcmin"]
    out = np.empty((len(centers), h, w), np.float32)
    for start in range(0, len(centers), chunk):
        idx = slice(start, min(start + chunk, len(centers)))
        theta, phi, _ = patch_geometry(centers[idx], h, w, reso)
        g = evaluate_alm(alm, lmax, theta, phi, spin=0, nthreads=nthreads)
        lat = 90.0 - np.degrees(theta)
        out[idx] = intensity(g, lat, settings["sigma_log"], settings["i0_mjysr"], settings["galactic_profile"], skew=settings["skew"])
    return out


def cut_map_patches(sky_map: np.ndarray, centers: np.ndarray, settings: dict, interpolation: str = "bilinear", chunk: int = 256) -> np.ndarray:
    """Patches (N, H, W) float32 of a RING HEALPix intensity map (e.g. GNILC 545 GHz, MJy/sr) at
    ``centers``, interpolated at the gnomonic pixel positions."""
    h, w, reso = settings["height"], settings["width"], settings["reso_arcmin"]
    out = np.empty((len(centers), h, w), np.float32)
    for start in range(0, len(centers), chunk):
        idx = slice(start, min(start + chunk, len(centers)))
        theta, phi, _ = patch_geometry(centers[idx], h, w, reso)
        out[idx] = sample_maps(sky_map, theta, phi, interpolation)[0]
    return out


def read_intensity_map(path) -> np.ndarray:
    """The intensity column (the first) of a HEALPix FITS map (MJy/sr, as GNILC 545 GHz) as RING
    float64, with a clear error for another unit or pixels whose log cannot be taken."""
    import healpy as hp
    from astropy.io import fits

    unit = str(fits.getheader(str(path), 1).get("TUNIT1", "")).strip()
    if unit and unit.replace(" ", "").lower() not in ("mjy/sr", "mjysr-1", "mjy/sr-1", "mjy.sr-1", "mjy.sr**-1"):
        raise ValueError(f"{path}: the intensity column is in {unit!r}; dust intensity patches expect MJy/sr")
    sky_map = hp.read_map(str(path), field=0, nest=False, dtype=np.float64)
    bad = ~np.isfinite(sky_map) | (sky_map <= 0) | (sky_map == hp.UNSEEN)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} of {sky_map.size} pixels are not positive and finite; dust intensity patches need log I")
    return sky_map
