"""Full-sky harmonic synthesis: Gaussian alm from spectra, beams, white noise.

healpy.synalm draws from numpy's global RNG; here every draw comes from an
explicit Generator (see :mod:`cmbnn.seeding`) so realisations are
reproducible and independent.
"""

from __future__ import annotations

import numpy as np

from cmbnn.units import ARCMIN


def alm_lm(lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """(ell, m) of every coefficient in healpy's m-major ordering."""
    import healpy as hp

    return hp.Alm.getlm(lmax)


def unit_gaussian_alm(lmax: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n sets of complex alm with <|a_lm|^2> = 1 and real a_l0 (healpy ordering)."""
    ell, m = alm_lm(lmax)
    nalm = ell.size
    re = rng.standard_normal((n, nalm))
    im = rng.standard_normal((n, nalm))
    real_m0 = m == 0
    scale = np.where(real_m0, 1.0, np.sqrt(0.5))
    im[:, real_m0] = 0.0
    return (re + 1j * im) * scale


def synalm_teb(cls: dict[str, np.ndarray], lmax: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated (T, E, B) alm with spectra TT, EE, BB, TE (C_ell from ell = 0).

    T and E are drawn through the Cholesky factor of [[TT, TE], [TE, EE]], B
    independently. Spectra shorter than lmax are zero-padded.
    """
    ell, _ = alm_lm(lmax)

    def spectrum(name):
        cl = np.zeros(lmax + 1)
        given = np.asarray(cls.get(name, np.zeros(0)), dtype=np.float64)[: lmax + 1]
        cl[: given.size] = given
        return cl

    tt, ee, bb, te = (spectrum(n) for n in ("TT", "EE", "BB", "TE"))
    if np.any(tt < 0) or np.any(ee < 0) or np.any(bb < 0):
        raise ValueError("auto-spectra must be non-negative")
    with np.errstate(divide="ignore", invalid="ignore"):
        te_over_t = np.where(tt > 0, te / np.sqrt(tt), 0.0)
        e_rest = ee - te_over_t**2
    if np.any(e_rest < -1e-10 * np.maximum(ee, 1e-300)):
        raise ValueError("TE^2 > TT*EE at some multipole: spectra are not a valid covariance")
    e_rest = np.sqrt(np.clip(e_rest, 0, None))
    z = unit_gaussian_alm(lmax, 3, rng)
    alm = np.empty_like(z)
    alm[0] = np.sqrt(tt)[ell] * z[0]
    alm[1] = te_over_t[ell] * z[0] + e_rest[ell] * z[1]
    alm[2] = np.sqrt(bb)[ell] * z[2]
    return alm


def gaussian_beam(fwhm_arcmin: float, lmax: int) -> np.ndarray:
    """Beam transfer functions b_ell, shape (lmax+1, 3) for T, E, B."""
    import healpy as hp

    bl = hp.gauss_beam(fwhm_arcmin * ARCMIN, lmax=lmax, pol=True)
    return bl[:, :3]


def smooth_alm(alm: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply (T, E, B) alm by per-component transfer functions (lmax+1, 3)."""
    lmax = transfer.shape[0] - 1
    ell, _ = alm_lm(lmax)
    return alm * transfer.T[:, ell]


def pixel_window(nside: int, lmax: int) -> np.ndarray:
    """HEALPix pixel window (lmax+1, 3) for T, E, B, from files shipped with the set-up."""
    import healpy as hp

    pw_t, pw_p = hp.pixwin(nside, pol=True, lmax=lmax)
    return np.stack([pw_t, pw_p, pw_p], axis=1)


def alm_to_maps(alm: np.ndarray, nside: int, lmax: int) -> np.ndarray:
    """(T, E, B) alm -> (T, Q, U) RING maps, healpy's polarisation convention."""
    import healpy as hp

    return np.asarray(hp.alm2map(np.ascontiguousarray(alm), nside, lmax=lmax, pol=True))


def pixel_side_arcmin(nside: int) -> float:
    """Side of a square with the area of one HEALPix pixel, in arcmin."""
    return float(np.sqrt(4 * np.pi / (12 * nside**2)) / ARCMIN)


def scalar_eb_maps(teb_alm: np.ndarray, nside: int, lmax: int) -> np.ndarray:
    """Scalar E and B maps (spin-0 synthesis of the E and B alm)."""
    import healpy as hp

    return np.asarray(hp.alm2map(np.ascontiguousarray(teb_alm[1:3]), nside, lmax=lmax, pol=False))
