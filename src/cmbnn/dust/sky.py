"""Dust intensity skies and patches for the generative models (issues 9 and 20).

Two simulated skies, both I = I0 exp(s h - s^2 / 2) P(b) with h a unit-variance field of log
intensity whose power spectrum is the dust's C_ell ~ ell^alpha (alpha = -2.9 by default: high-latitude
cirrus intensity, Miville-Deschenes et al. 2007; -2.42, Planck 2018 XI, is the polarised slope), s
the rms of log I at fixed latitude and P(b) = 1 / sin|b| (floored at a few degrees) the brightening
towards the Galactic plane. Units: MJy/sr at 545 GHz by convention (I0 ~ 1 MJy/sr at high latitude).

- ``filaments`` (default): h concentrates emission on ridges. Ridge fields exp(-d_k^2 / 2 w^2) of
  Gaussian fields d_k band-limited around ell_k = lmin, 2 lmin, 4 lmin, ... light up the zero
  contours of each d_k: a network of lines whose width is w / |grad d_k| (about w / ell_k, so every
  scale has its filaments), locally anisotropic, added to a Gaussian background. The sum is then
  given the target spectrum and a heavy-tailed, positively skewed one-point law (a sinh-arcsinh
  transform of a Gaussian, Jones & Pewsey 2009) by iterating the two projections (spectrum, then
  rank order) as in IAAFT surrogates (Schreiber & Schmitz 1996). The last step sets the
  spectrum, so h is a band-limited field kept as alm and the patches are exact evaluations of it. Why not a published dust model:
  the filament-population model of Hervias-Caimapo & Huffenberger (2022) needs millions of
  rendered filaments and a HEALPix map (no exact patches); GNILC itself is the ``gnilc545`` source.
  The filaments have no preferred direction on the sky (real ones follow the magnetic field).
- ``lognormal`` (issue 9's sky): h = g + k (g^2 - 1) (normalised; k = ``skew``), g Gaussian: the
  non-Gaussianity is pointwise, log I has a hard floor at -1 / (2 k) of g, and the exact Bayes fill
  of a hole is within 5-10% of the Gaussian conditional mean.

Patches are evaluated exactly from the alm of h (``lognormal``: of g) at the gnomonic patch pixels
(no HEALPix pixelisation), then exponentiated; each keeps its centre and Galactic latitude.
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


def work_nside(lmax: int) -> int:
    """HEALPix resolution for the filament sky's pointwise steps: twice the smallest power of two
    whose 3 nside - 1 reaches lmax (ridges are sharper than the band limit; capped at 2048)."""
    nside = 1
    while 3 * nside - 1 < lmax:
        nside *= 2
    return min(2 * nside, 2048)


def ridge_scales(lmax: int, lmin: float, sharpness: float) -> np.ndarray:
    """Centres ell_k = lmin 2^k of the ridge drivers whose lines (width about ``sharpness`` / ell_k)
    are resolved below lmax."""
    scales = float(lmin) * 2.0 ** np.arange(32)
    return scales[scales <= sharpness * lmax]


def band_alm(lmax: int, ell_center: float, rng, log_width: float = 0.35) -> np.ndarray:
    """alm of a unit-variance Gaussian field with C_ell ~ exp(-ln^2(ell / ell_center) / (2 log_width^2)):
    about an octave of multipoles around ``ell_center``."""
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.where(ell >= 2, np.exp(-np.log(np.maximum(ell, 1.0) / ell_center) ** 2 / (2 * log_width**2)), 0.0)
    cl /= np.sum((2 * ell + 1) / (4 * np.pi) * cl)
    ell_alm, _ = alm_lm(lmax)
    return unit_gaussian_alm(lmax, 1, rng)[0] * np.sqrt(cl[ell_alm])


def ridge(d: np.ndarray, sharpness: float) -> np.ndarray:
    """exp(-d^2 / 2 w^2) of a unit Gaussian d, standardised with its exact moments
    (mean w / sqrt(w^2 + 1), second moment w / sqrt(w^2 + 2)): bright on the zero contours of d."""
    w = float(sharpness)
    mean = w / np.sqrt(w**2 + 1.0)
    var = w / np.sqrt(w**2 + 2.0) - mean**2
    return (np.exp(-np.asarray(d) ** 2 / (2 * w**2)) - mean) / np.sqrt(var)


def sinh_arcsinh_quantiles(n: int, epsilon: float, delta: float) -> np.ndarray:
    """n sorted values of sinh((asinh z + epsilon) / delta), z at the Gaussian's n quantiles,
    standardised: epsilon > 0 skews to the right, delta < 1 fattens both tails, (0, 1) is Gaussian;
    no floor (unlike a quadratic transform)."""
    from scipy.special import ndtri

    z = ndtri((np.arange(n) + 0.5) / n)
    x = np.sinh((np.arcsinh(z) + epsilon) / delta)
    return (x - x.mean()) / x.std()


def power_law_cl(lmax: int, alpha: float, fwhm_arcmin: float = 0.0) -> np.ndarray:
    """C_ell ~ ell^alpha b_ell^2 for ell >= 2 (0 below), normalised to unit variance."""
    import healpy as hp

    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.where(ell >= 2, np.maximum(ell, 1.0) ** alpha, 0.0)
    if fwhm_arcmin > 0:
        cl *= hp.gauss_beam(np.radians(fwhm_arcmin / 60.0), lmax=lmax) ** 2
    return cl / np.sum((2 * ell + 1) / (4 * np.pi) * cl)


def filament_alm(lmax: int, alpha: float, fwhm_arcmin: float, filaments: dict, rng, log=None) -> np.ndarray:
    """alm of the unit-variance log-intensity field h of the ``filaments`` sky (module docstring).

    ``filaments``: fraction (of the raw field's variance in ridges), sharpness (w), lmin,
    epsilon and delta (the one-point law of h), iterations (of the spectrum / rank projections).
    h gets the spectrum ell^alpha b_ell^2 (log I's); the intensity's measured on the default sky's
    patches is within 0.15 of alpha (tests). h's target is not tilted by the full-sky intensity's
    slope: that slope is set by the rare brightest pixels, which the patches at |b| > 20 deg hardly
    see.
    """
    import healpy as hp

    f, w = float(filaments["fraction"]), float(filaments["sharpness"])
    nside = work_nside(lmax)
    target = power_law_cl(lmax, alpha, fwhm_arcmin)
    scales = ridge_scales(lmax, filaments["lmin"], w)
    weights = scales ** ((alpha + 2.0) / 2.0)  # equal share of ell^2 C_ell per octave for a self-similar network
    weights /= np.sqrt(np.sum(weights**2)) if weights.size else 1.0
    h = np.sqrt(1.0 - f) * hp.alm2map(log_field_alm(lmax, alpha, rng), nside, lmax=lmax)
    for ell_k, a_k in zip(scales, weights):
        h += np.sqrt(f) * a_k * ridge(hp.alm2map(band_alm(lmax, ell_k, rng), nside, lmax=lmax), w)
    one_point = sinh_arcsinh_quantiles(h.size, filaments["epsilon"], filaments["delta"])
    alm = hp.map2alm(h, lmax=lmax, iter=1)
    for step in range(int(filaments["iterations"])):
        h = hp.alm2map(_with_spectrum(alm, target), nside, lmax=lmax)
        if log is not None:
            z = (h - h.mean()) / h.std()
            log.info("filament sky: iteration %d of %d, h with the target spectrum has skewness %.2f, excess kurtosis %.2f", step + 1, filaments["iterations"], np.mean(z**3), np.mean(z**4) - 3)
        h[np.argsort(h)] = one_point
        alm = hp.map2alm(h, lmax=lmax, iter=1)
    return _with_spectrum(alm, target)


def _with_spectrum(alm: np.ndarray, cl: np.ndarray) -> np.ndarray:
    """alm rescaled per ell to the spectrum cl normalised to unit variance (phases kept)."""
    import healpy as hp

    ell = np.arange(cl.size)
    cl = cl / np.sum((2 * ell + 1) / (4 * np.pi) * cl)
    return hp.almxfl(alm, np.sqrt(np.divide(cl, hp.alm2cl(alm), out=np.zeros(cl.size), where=cl > 0)))


def sky_alm(sky: dict, seed: int, log=None) -> np.ndarray:
    """alm of the simulated sky's log-intensity field (``filaments``: h; ``lognormal``: g)."""
    rng = rng_for(seed, "dust-sky")
    if sky["model"] == "filaments":
        return filament_alm(sky["lmax"], sky["alpha"], sky["fwhm_arcmin"], sky["filaments"], rng, log)
    if sky["model"] == "lognormal":
        return log_field_alm(sky["lmax"], sky["alpha"], rng, fwhm_arcmin=sky["fwhm_arcmin"])
    raise ValueError(f"dustvae.sky.model must be 'filaments' or 'lognormal', got {sky['model']!r}")


def pointwise_skew(sky: dict) -> float:
    """The quadratic skew applied at the patch pixels: the lognormal sky's; the filament sky's
    one-point law is already in its alm."""
    return float(sky["skew"]) if sky["model"] == "lognormal" else 0.0


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
    """Intensity patches (N, H, W) float32 of the simulated sky at ``centers``: its log-intensity
    field evaluated exactly from its alm at every patch pixel, then exponentiated with the latitude
    of each pixel (``settings``: the patches' and the sky's)."""
    h, w, reso = settings["height"], settings["width"], settings["reso_arcmin"]
    out = np.empty((len(centers), h, w), np.float32)
    for start in range(0, len(centers), chunk):
        idx = slice(start, min(start + chunk, len(centers)))
        theta, phi, _ = patch_geometry(centers[idx], h, w, reso)
        g = evaluate_alm(alm, lmax, theta, phi, spin=0, nthreads=nthreads)
        lat = 90.0 - np.degrees(theta)
        out[idx] = intensity(g, lat, settings["sigma_log"], settings["i0_mjysr"], settings["galactic_profile"], skew=pointwise_skew(settings))
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
