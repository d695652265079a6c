"""Evaluation of inpainted patches: errors in the hole and calibration of predicted uncertainties.

Patches (N, H, W) or (N, H, W, 1) in uK_CMB; masks (H, W) shared or
(N, H, W[, 1]), uint8 with 1 = missing (the hole to be inpainted).

:func:`hole_metrics` gives two sets of numbers:

- physical (keys ``MSE_uK2``, ``MAE_uK``, ``PSNR_dB``): errors in uK over
  the hole pixels of all patches pooled; PSNR per patch,
  10 log10(range^2 / MSE_patch), averaged over patches (as
  cmbnn.analysis.metrics.pixel_metrics), with ONE data range for the split: by
  default max - min of all truth pixels passed in (every pixel of every
  patch, not just the hole), or the ``data_range`` given (e.g. the
  training labels' range from cmbnn.analysis.metrics.label_data_range, to compare
  splits on one scale). The range used is returned.
- normalised like Yi et al. 2020 (CosmoVAE, Table 1: MSE 0.0055, MAE 0.0134,
  PSNR 23.99 dB) (keys ``MSE_norm``, ``MAE_norm``, ``PSNR_norm_dB``): each
  patch, prediction and truth alike, is min-max scaled to [0, 1] with the
  TRUTH patch's own min and max (over the whole patch), then the same
  errors are taken and PSNR uses a data range of 1. Yi et al. do not say
  whether their numbers cover the hole or the whole image; ``region``
  picks "hole" (default: only the pixels the model had to invent) or
  "image" (every pixel, the composite with observed pixels usually
  copied, which dilutes the errors by the hole fraction).

:func:`calibration`: fraction of hole pixels whose truth lies within 1 and 2
predicted standard deviations of the predicted mean (0.683 and 0.954 for
calibrated Gaussian errors), and the mean and variance of
z = (truth - mean) / std.
"""

from __future__ import annotations

import numpy as np

from cmbnn.analysis.gaussian_field import patch_stack

GAUSSIAN_1SIGMA = 0.6826894921370859  # erf(1 / sqrt(2))
GAUSSIAN_2SIGMA = 0.9544997361036416  # erf(2 / sqrt(2))


def _flat(x: np.ndarray) -> np.ndarray:
    x = patch_stack(x)
    return x.reshape(x.shape[0], -1)


def _region(mask, shape: tuple[int, int], region: str) -> np.ndarray:
    """Bool (N, H*W): the pixels evaluated."""
    if region == "image":
        return np.ones(shape, dtype=bool)
    if region != "hole":
        raise ValueError(f"region must be 'hole' or 'image', got {region!r}")
    m = np.asarray(mask)
    if m.ndim == 4:
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    m = m.reshape(m.shape[0], -1).astype(bool)
    if m.shape[1] != shape[1] or m.shape[0] not in (1, shape[0]):
        raise ValueError(f"mask does not match {shape[0]} patches of {shape[1]} pixels")
    return np.broadcast_to(m, shape)


def _errors(pred: np.ndarray, truth: np.ndarray, sel: np.ndarray, data_range) -> tuple[float, float, float]:
    """Pooled MSE, pooled MAE and per-patch-averaged PSNR over selected pixels; data_range scalar or (N,)."""
    err = np.where(sel, pred - truth, 0.0)
    counts = sel.sum(axis=1)
    used = counts > 0
    if not used.any():
        raise ValueError("no pixel to evaluate: the mask has no missing pixel")
    mse_patch = np.sum(err**2, axis=1)[used] / counts[used]
    rng = np.broadcast_to(np.asarray(data_range, dtype=np.float64), counts.shape)[used]
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(rng**2 / mse_patch)
    n = counts.sum()
    return float(np.sum(err**2) / n), float(np.sum(np.abs(err)) / n), float(np.mean(psnr))


def hole_metrics(pred, truth, mask, data_range: float | None = None, region: str = "hole") -> dict:
    """MSE, MAE and PSNR of inpainted patches, in uK and in Yi et al. (2020)'s normalisation.

    pred, truth: (N, H, W[, 1]) uK_CMB; mask: (H, W) or (N, H, W[, 1]),
    1 = missing; data_range: the physical PSNR range in uK (default: max -
    min of ``truth``); region: "hole" or "image" (module docstring).
    Patches without missing pixels are left out of the "hole" averages.
    Returns a dict: MSE_uK2, MAE_uK, PSNR_dB, data_range_uK, MSE_norm,
    MAE_norm, PSNR_norm_dB, n_pixels, n_patches (patches that counted).
    A perfect prediction gives PSNR = inf.
    """
    p, t = _flat(pred), _flat(truth)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    sel = _region(mask, t.shape, region)
    if data_range is None:
        data_range = float(t.max() - t.min())
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range}")
    lo, hi = t.min(axis=1, keepdims=True), t.max(axis=1, keepdims=True)
    if np.any(hi == lo):
        raise ValueError("a truth patch is constant: its min-max normalisation is undefined")
    mse, mae, psnr = _errors(p, t, sel, data_range)
    mse_n, mae_n, psnr_n = _errors((p - lo) / (hi - lo), (t - lo) / (hi - lo), sel, 1.0)
    return {
        "MSE_uK2": mse,
        "MAE_uK": mae,
        "PSNR_dB": psnr,
        "data_range_uK": float(data_range),
        "MSE_norm": mse_n,
        "MAE_norm": mae_n,
        "PSNR_norm_dB": psnr_n,
        "n_pixels": int(sel.sum()),
        "n_patches": int(np.count_nonzero(sel.any(axis=1))),
    }


def calibration(truth, mean, std, mask) -> dict:
    """How well predicted standard deviations describe the errors in the hole.

    truth, mean: (N, H, W[, 1]) uK_CMB; std: predicted standard deviation in
    uK, same shape or (H, W) shared (e.g. cmbnn.analysis.gaussian_field.conditional_std),
    positive in the hole; mask: (H, W) or (N, H, W[, 1]), 1 = missing.
    Returns a dict: within_1sigma, within_2sigma (fractions of hole pixels
    with |z| <= 1, 2; expected 0.683, 0.954), z_mean, z_var (expected 0, 1),
    n_pixels, and the Gaussian expectations expected_1sigma, expected_2sigma.
    Pixels of one patch are correlated: the scatter of these fractions is
    larger than binomial.
    """
    t, m = _flat(truth), _flat(mean)
    s = _flat(std)
    if t.shape != m.shape:
        raise ValueError(f"truth {t.shape} and mean {m.shape} differ in shape")
    s = np.broadcast_to(s, t.shape)
    sel = _region(mask, t.shape, "hole")
    if not sel.any():
        raise ValueError("no pixel to evaluate: the mask has no missing pixel")
    sigma = s[sel]
    if np.any(~(sigma > 0)):
        raise ValueError("std must be positive at every missing pixel")
    z = (t[sel] - m[sel]) / sigma
    return {
        "within_1sigma": float(np.mean(np.abs(z) <= 1)),
        "within_2sigma": float(np.mean(np.abs(z) <= 2)),
        "expected_1sigma": GAUSSIAN_1SIGMA,
        "expected_2sigma": GAUSSIAN_2SIGMA,
        "z_mean": float(z.mean()),
        "z_var": float(z.var()),
        "n_pixels": int(z.size),
    }
