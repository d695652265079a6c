"""Instrument noise: white at a uK-arcmin depth, or inhomogeneous with a per-pixel covariance
(the Planck maps' own II/QQ/UU/QU, :func:`cmbnn.planck.maps.noise_variance`)."""

from __future__ import annotations

import numpy as np


def white_noise(shape, level_uk_arcmin: float, pixel_area_arcmin2: float, rng) -> np.ndarray:
    """White noise whose depth is ``level_uk_arcmin`` on pixels of the given area.

    A level of sigma uK-arcmin means a pixel of 1 arcmin^2 has rms sigma, so a
    pixel of area A arcmin^2 has rms sigma / sqrt(A).
    """
    if level_uk_arcmin < 0:
        raise ValueError(f"noise level must be >= 0 uK-arcmin, got {level_uk_arcmin}")
    return (level_uk_arcmin / np.sqrt(pixel_area_arcmin2)) * rng.standard_normal(shape)


def correlated_noise(variance: np.ndarray, rng) -> np.ndarray:
    """T, Q, U noise maps (3, npix) with per-pixel covariance ``variance`` = (II, QQ, UU, QU).

    T ~ N(0, II); (Q, U) ~ N(0, [[QQ, QU], [QU, UU]]) through the 2x2 Cholesky factor
    Q = sqrt(QQ) n1, U = QU / sqrt(QQ) n1 + sqrt(UU - QU^2 / QQ) n2 (T is drawn
    independently: the HFI IQ/IU covariances are ignored).
    """
    ii, qq, uu, qu = np.asarray(variance, dtype=np.float64)
    n = rng.standard_normal((3, ii.size))
    sq = np.sqrt(qq)
    return np.stack([np.sqrt(ii) * n[0], sq * n[1], qu / sq * n[1] + np.sqrt(np.maximum(uu - qu**2 / qq, 0.0)) * n[2]])
