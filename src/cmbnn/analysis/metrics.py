"""Pixel metrics of predicted patches against their labels.

MSE (uK^2), MAE (uK) and R^2 are in uK_CMB and need no choices: MSE and MAE
average over every pixel of every patch, R^2 pools all pixels (1 - sum of
squared errors / total sum of squares about the mean label).

PSNR and SSIM depend on a data range. Each uses ONE fixed range per field,
defined from the TRAINING labels (:func:`label_data_range`: max - min of
every training label pixel), passed in and stated with the table, so that
numbers compare across methods, splits and runs on the same training set
(a per-patch range would reward patches that happen to be flat).
PSNR = 10 log10(range^2 / MSE_patch), averaged over patches. SSIM is the
Gaussian-window form of Wang et al. (2004) (sigma 1.5 px, K1 0.01, K2 0.03),
averaged over the pixels at least one window radius (:data:`SSIM_BORDER`
= 5 px) from the patch edge, where the window lies inside the patch,
then over patches.
"""

from __future__ import annotations

import numpy as np

METRICS = ("MSE", "MAE", "PSNR", "SSIM", "R2")
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius = int(truncate * sigma + 0.5) = 5 px
SSIM_BORDER = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)


def label_data_range(labels: np.ndarray) -> float:
    """The fixed PSNR/SSIM data range of a field: max - min of all training label pixels (uK_CMB)."""
    labels = np.asarray(labels)
    return float(np.max(labels) - np.min(labels))


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float, sigma: float = SSIM_SIGMA, border: int = SSIM_BORDER) -> float:
    """Mean structural similarity of two 2-D images, ignoring ``border`` pixels at each edge."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = pred.astype(np.float64), truth.astype(np.float64)

    def blur(a):
        return gaussian_filter(a, sigma, truncate=SSIM_TRUNCATE)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    if border:
        if min(s.shape) <= 2 * border:
            raise ValueError(f"SSIM border {border} px leaves nothing of a {s.shape} image")
        s = s[border:-border, border:-border]
    return float(s.mean())


def pixel_metrics(pred: np.ndarray, truth: np.ndarray, data_range: float) -> dict:
    """MSE, MAE (uK^2, uK), PSNR (dB), SSIM and R^2 of (N, H, W[, 1]) patches.

    data_range: the field's fixed range from the training labels (:func:`label_data_range`).
    """
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range}")
    pred = pred.reshape(pred.shape[0], -1).astype(np.float64)
    truth_flat = truth.reshape(truth.shape[0], -1).astype(np.float64)
    err = pred - truth_flat
    mse = np.mean(err**2, axis=1)
    side = truth.shape[1:3]
    return {
        "MSE": float(mse.mean()),
        "MAE": float(np.mean(np.abs(err))),
        "PSNR": float(np.mean(10 * np.log10(data_range**2 / mse))),
        "SSIM": float(np.mean([ssim(p.reshape(side), t.reshape(side), data_range) for p, t in zip(pred, truth_flat)])),
        "R2": float(1 - np.sum(err**2) / np.sum((truth_flat - truth_flat.mean()) ** 2)),
    }
