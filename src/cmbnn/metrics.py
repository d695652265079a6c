"""Pixel metrics of predicted patches against their labels.

Each metric is computed per patch and averaged over patches, except R^2
which pools all pixels. PSNR uses each label patch's peak-to-peak range,
SSIM the Gaussian-window form of Wang et al. (2004) with that same range.
"""

from __future__ import annotations

import numpy as np

METRICS = ("MSE", "MAE", "PSNR", "SSIM", "R2")


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, sigma: float = 1.5) -> float:
    """Mean structural similarity of two 2-D images."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = pred.astype(np.float64), truth.astype(np.float64)
    mx, my = gaussian_filter(x, sigma), gaussian_filter(y, sigma)
    sxx = gaussian_filter(x * x, sigma) - mx * mx
    syy = gaussian_filter(y * y, sigma) - my * my
    sxy = gaussian_filter(x * y, sigma) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def pixel_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """MSE, MAE (uK^2, uK), PSNR (dB), SSIM and R^2 of (N, H, W[, 1]) patches."""
    pred = pred.reshape(pred.shape[0], -1).astype(np.float64)
    truth_flat = truth.reshape(truth.shape[0], -1).astype(np.float64)
    err = pred - truth_flat
    mse = np.mean(err**2, axis=1)
    ranges = np.ptp(truth_flat, axis=1)
    side = truth.shape[1:3]
    return {
        "MSE": float(mse.mean()),
        "MAE": float(np.mean(np.abs(err))),
        "PSNR": float(np.mean(10 * np.log10(ranges**2 / mse))),
        "SSIM": float(np.mean([ssim(p.reshape(side), t.reshape(side), r) for p, t, r in zip(pred, truth_flat, ranges)])),
        "R2": float(1 - np.sum(err**2) / np.sum((truth_flat - truth_flat.mean()) ** 2)),
    }
