"""Flat-sky Fourier helpers shared by the harmonic baselines and the Gaussian field: the 2D
multipole grid, beams at any ell, padding of patch edges, Q/U <-> E/B rotation, bin merging."""

from __future__ import annotations

import numpy as np

from cmbnn.units import ARCMIN

# ---------------------------------------------------------------------------
# Harmonic ILC (+ Wiener filter) on flat patches
#
# Patch axes (see cmbnn.projection): row index grows to the north (y), column
# index grows to the west, so x_east = -column. The spin-2 angle of a Fourier
# mode is phi_k = atan2(k_north, k_east), and
#     E = Q cos 2phi + U sin 2phi,   B = -Q sin 2phi + U cos 2phi,
# which is the convention under which flat-sky E/B of these patches equal
# healpy's E/B (tested against scalar E/B patches of the same sky).
# ---------------------------------------------------------------------------
EDGE_MODES = ("periodic", "mirror", "zero")



def gaussian_beam_ell(fwhm_arcmin: float, ell: np.ndarray, spin: int = 0) -> np.ndarray:
    """Gaussian beam at (non-integer) multipoles, healpy's form: exp(-(l(l+1) - s^2) sigma^2 / 2)."""
    sigma = fwhm_arcmin * ARCMIN / np.sqrt(8 * np.log(2))
    return np.exp(-0.5 * (ell * (ell + 1.0) - spin**2) * sigma**2)



def pad_patches(x: np.ndarray, edge: str, odd: bool = False) -> np.ndarray:
    """Extend (N, H, W, ...) patches to (N, 2H, 2W, ...) so their FFT sees no wrap-around jump.

    mirror: even reflections in both axes (periodic and continuous); with
    ``odd`` (the U Stokes parameter) the once-reflected copies change sign,
    because a reflection of the sky flips U: the copies of an E-only sky stay
    E-only. zero: zeros around the patch. periodic: the patch as it is.
    """
    if edge == "periodic":
        return x
    n, h, w = x.shape[:3]
    if edge == "zero":
        out = np.zeros((n, 2 * h, 2 * w) + x.shape[3:], dtype=x.dtype)
        out[:, :h, :w] = x
        return out
    if edge == "mirror":
        sign = -1.0 if odd else 1.0
        top = np.concatenate([x, sign * x[:, :, ::-1]], axis=2)
        bottom = np.concatenate([sign * x[:, ::-1], x[:, ::-1, ::-1]], axis=2)
        return np.concatenate([top, bottom], axis=1)
    raise ValueError(f"edge must be one of {EDGE_MODES}, not {edge!r}")



def fourier_grid(height: int, width: int, reso_arcmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Multipole ell = 2 pi |k| and spin-2 angle phi_k of every np.fft.fft2 mode of an (H, W) grid."""
    d = reso_arcmin * ARCMIN
    k_north = np.fft.fftfreq(height, d)[:, None] * np.ones((1, width))
    k_east = -np.fft.fftfreq(width, d)[None, :] * np.ones((height, 1))  # columns run westward
    return 2 * np.pi * np.hypot(k_north, k_east), np.arctan2(k_north, k_east)



def qu_to_eb(q: np.ndarray, u: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E and B Fourier modes from Q and U Fourier modes (phi broadcast over the last two mode axes)."""
    c, s = np.cos(2 * phi), np.sin(2 * phi)
    return q * c + u * s, -q * s + u * c



def eb_to_qu(e: np.ndarray, b: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`qu_to_eb`."""
    c, s = np.cos(2 * phi), np.sin(2 * phi)
    return e * c - b * s, e * s + b * c



def merge_sparse_bins(edges: np.ndarray, counts: np.ndarray, min_count: float) -> np.ndarray:
    """Drop inner edges until every bin holds at least min_count modes (the last bin merges downward)."""
    edges, counts = list(edges), list(counts)
    i = 0
    while i < len(counts):
        if counts[i] >= min_count or len(counts) == 1:
            i += 1
            continue
        if i + 1 < len(counts):  # merge with the next bin
            counts[i] += counts.pop(i + 1)
            edges.pop(i + 1)
        else:  # last bin: merge with the previous one
            counts[i - 1] += counts.pop(i)
            edges.pop(i)
            i -= 1
    return np.asarray(edges, dtype=np.float64)
