"""Minkowski functionals of 2-D maps (flat patches) as functions of a threshold.

For a map u on a patch of area A and the excursion set {u > nu}:

* V0(nu): the area fraction of the excursion set;
* V1(nu): a quarter of its boundary length per unit area, (1 / 4A) int delta(u - nu) |grad u| dA;
* V2(nu): its Euler characteristic per unit area (components minus holes), from the geodesic
  curvature of the boundary, (1 / 2 pi A) int delta(u - nu) kappa |grad u| dA with
  kappa = (2 u_x u_y u_xy - u_x^2 u_yy - u_y^2 u_xx) / |grad u|^3.

The integrals are estimated with finite-difference derivatives and delta(u - nu) as a top hat
of width ``bin_width`` around each threshold (Schmalzing & Buchert 1997; Schmalzing & Gorski
1998); this is accurate when the map is smooth on the pixel scale (correlation length of a few
pixels or more), as beam-smoothed skies are. Lengths are in pixels unless ``pixel_size`` is given.

For a Gaussian random field of variance sigma0^2 and gradient variance sigma1^2 = <|grad u|^2>,
with nu in units of sigma0 and tau = sigma1^2 / (2 sigma0^2) (Tomita 1986; Schmalzing & Gorski 1998):

    V0 = erfc(nu / sqrt 2) / 2,
    V1 = sqrt(tau) exp(-nu^2 / 2) / 8,
    V2 = tau nu exp(-nu^2 / 2) / (2 pi)^(3/2).

:func:`gaussian_minkowski` gives these; the tests compare the estimator with them.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

NAMES = ("V0", "V1", "V2")


def _derivatives(u: np.ndarray, pixel_size: float):
    uy, ux = np.gradient(u, pixel_size, axis=(-2, -1))
    uyy, uyx = np.gradient(uy, pixel_size, axis=(-2, -1))
    uxy, uxx = np.gradient(ux, pixel_size, axis=(-2, -1))
    return ux, uy, uxx, uyy, 0.5 * (uxy + uyx)


def minkowski_functionals(maps: np.ndarray, thresholds: np.ndarray, bin_width: float | None = None, pixel_size: float = 1.0, border: int = 2) -> np.ndarray:
    """V0, V1, V2 of each map at each threshold: maps (..., H, W) -> (..., 3, n_thresholds).

    Thresholds are in the maps' own units (standardise the maps first to use units of sigma).
    ``bin_width``: width of the top hat standing for delta(u - nu) (default: the threshold
    spacing). ``border``: pixels dropped at each edge, where the one-sided differences of
    np.gradient are less accurate. V1 and V2 are per unit area in ``pixel_size`` units.
    """
    u = np.asarray(maps, dtype=np.float64)
    nu = np.asarray(thresholds, dtype=np.float64)
    if bin_width is None:
        bin_width = float(np.median(np.diff(nu))) if nu.size > 1 else 0.1
    ux, uy, uxx, uyy, uxy = _derivatives(u, pixel_size)
    crop = (Ellipsis, slice(border, u.shape[-2] - border), slice(border, u.shape[-1] - border))
    u, ux, uy, uxx, uyy, uxy = (a[crop] for a in (u, ux, uy, uxx, uyy, uxy))
    grad2 = ux**2 + uy**2
    grad = np.sqrt(grad2)
    # kappa |grad u| = (2 u_x u_y u_xy - u_x^2 u_yy - u_y^2 u_xx) / |grad u|^2
    with np.errstate(divide="ignore", invalid="ignore"):
        curvature = np.where(grad2 > 0, (2 * ux * uy * uxy - ux**2 * uyy - uy**2 * uxx) / grad2, 0.0)
    n_pix = u.shape[-2] * u.shape[-1]
    area = n_pix * pixel_size**2
    out = np.empty(u.shape[:-2] + (3, nu.size))
    flat = u.reshape(u.shape[:-2] + (-1,))
    grad_f = grad.reshape(flat.shape)
    curv_f = curvature.reshape(flat.shape)
    for k, level in enumerate(nu):
        out[..., 0, k] = (flat > level).mean(axis=-1)
        near = np.abs(flat - level) < bin_width / 2
        delta_da = near * (pixel_size**2 / bin_width)  # delta(u - nu) dA per pixel
        out[..., 1, k] = (delta_da * grad_f).sum(axis=-1) / (4 * area)
        out[..., 2, k] = (delta_da * curv_f).sum(axis=-1) / (2 * np.pi * area)
    return out


def gaussian_minkowski(thresholds: np.ndarray, tau: float) -> np.ndarray:
    """The expected V0, V1, V2 (3, n_thresholds) of a Gaussian random field at thresholds in units
    of its standard deviation, with tau = sigma1^2 / (2 sigma0^2) in inverse pixel_size^2."""
    nu = np.asarray(thresholds, dtype=np.float64)
    g = np.exp(-(nu**2) / 2)
    return np.stack([0.5 * erfc(nu / np.sqrt(2)), np.sqrt(tau) * g / 8, tau * nu * g / (2 * np.pi) ** 1.5])


def gradient_tau(maps: np.ndarray, pixel_size: float = 1.0, border: int = 2) -> float:
    """tau = <|grad u|^2> / (2 <u^2>) measured on mean-subtracted maps (the Gaussian prediction's one
    parameter), with the same central differences as :func:`minkowski_functionals`, whose damping of
    the gradient on small scales (sin k instead of k) then cancels in the comparison."""
    u = np.asarray(maps, dtype=np.float64)
    u = u - u.mean(axis=(-2, -1), keepdims=True)
    ux, uy, *_ = _derivatives(u, pixel_size)
    crop = (Ellipsis, slice(border, u.shape[-2] - border), slice(border, u.shape[-1] - border))
    return float(np.mean(ux[crop] ** 2 + uy[crop] ** 2) / (2 * np.mean(u[crop] ** 2)))
