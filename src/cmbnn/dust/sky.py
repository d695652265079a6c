"""Dust intensity skies and patches for the generative models (issue 9).

The default sky is close to log-normal, as real dust intensity roughly is: I = I0 exp(s g' - s^2 / 2) P(b),
with g' = g + k (g^2 - 1) (normalised; k = ``skew``) and g a unit-variance Gaussian field whose power spectrum is the dust's C_ell ~ ell^alpha
(alpha = -2.9 by default: the intensity then has the ell^-2.9 of high-latitude cirrus, Miville-Deschenes et al.
2007; -2.42, Planck 2018 XI, is the polarised slope), s the rms of log I at fixed latitude and P(b) = 1 / sin|b|
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
from cmbnn.units import UNIT_FACTORS, normalise_unit


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


def cut_map_patches(sky_map: np.ndarray, centers: np.ndarray, settings: dict, interpolation: str = "bilinear", chunk: int = 256, where: str = "map") -> np.ndarray:
    """Patches (N, H, W) float32 of a RING HEALPix intensity map (e.g. GNILC 545 GHz, MJy/sr) at
    ``centers``, interpolated at the gnomonic pixel positions.

    Only the HEALPix pixels the patches read must be positive and finite (log I is taken
    downstream): a bad pixel anywhere else on the sky (the Galactic plane, a masked source) does
    not matter. A bad pixel that is read raises ValueError naming ``where``, the count of bad
    pixels, the first ones' positions and the patches they fall in.
    """
    import healpy as hp

    h, w, reso = settings["height"], settings["width"], settings["reso_arcmin"]
    nside = hp.npix2nside(sky_map.shape[-1])
    unusable = ~np.isfinite(sky_map) | (sky_map <= 0)
    out = np.empty((len(centers), h, w), np.float32)
    bad_pixels, bad_patches = [], []
    for start in range(0, len(centers), chunk):
        idx = slice(start, min(start + chunk, len(centers)))
        theta, phi, _ = patch_geometry(centers[idx], h, w, reso)
        read = _pixels_read(nside, theta, phi, interpolation)  # (n_neighbours, n, H, W)
        hit = unusable[read]
        if hit.any():
            bad_pixels.append(np.unique(read[hit]))
            bad_patches.append(start + np.flatnonzero(hit.any(axis=(0, 2, 3))))
        out[idx] = sample_maps(sky_map, theta, phi, interpolation)[0]
    if bad_pixels:
        pixels, patches = np.unique(np.concatenate(bad_pixels)), np.concatenate(bad_patches)
        lon, lat = hp.pix2ang(nside, pixels[:5], lonlat=True)
        first = ", ".join(f"pixel {p} (l={a:.2f}, b={b:.2f} deg) = {sky_map[p]:.4g}" for p, a, b in zip(pixels, lon, lat))
        raise ValueError(
            f"{where}: {pixels.size} HEALPix pixels read by {patches.size} of {len(centers)} patches are not positive and "
            f"finite (log I is needed), e.g. {first}; first patches {patches[:5].tolist()} centred at "
            f"{np.round(centers[patches[:3]], 2).tolist()} (lon, lat deg). Raise lat_cut_deg or use another map"
        )
    return out


def _pixels_read(nside: int, theta: np.ndarray, phi: np.ndarray, interpolation: str) -> np.ndarray:
    """RING pixels :func:`cmbnn.projection.sample_maps` reads at (theta, phi): (1 or 4, ...)."""
    import healpy as hp

    if interpolation == "nearest":
        return hp.ang2pix(nside, theta, phi)[None]
    if interpolation == "bilinear":
        return hp.get_interp_weights(nside, theta.ravel(), phi.ravel())[0].reshape((4,) + theta.shape)
    raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")


def read_intensity_map(path) -> np.ndarray:
    """The intensity column (the first) of a HEALPix FITS map (MJy/sr, as GNILC 545 GHz) as RING
    float64 MJy/sr; Jy/sr is converted, another or unknown TUNIT refused with its name.
    Positivity is checked where the patches are cut (:func:`cut_map_patches`), not here."""
    import healpy as hp
    from astropy.io import fits

    unit = str(fits.getheader(str(path), 1).get("TUNIT1", "")).strip()
    name, power = normalise_unit(unit)
    if unit and (name not in UNIT_FACTORS["intensity"] or power != 1):
        raise ValueError(f"{path}: the intensity column is in {unit!r} (TUNIT1); dust intensity patches expect MJy/sr or Jy/sr")
    scale = UNIT_FACTORS["intensity"][name] if unit else 1.0
    return hp.read_map(str(path), field=0, nest=False, dtype=np.float64) * scale
