"""Evaluation of inpainted patches: errors in the hole by hole class and calibration of
predicted uncertainties.

Patches (N, H, W) or (N, H, W, 1) in uK_CMB; masks (H, W) shared or
(N, H, W[, 1]), uint8 with 1 = missing (the hole to be inpainted).

:func:`class_errors`: pooled hole MSE and MAE of every method for all patches with holes and
separately for point-source holes and Galactic holes, with bootstrap intervals over patches and
the ratio to a reference method (the Gaussian conditional mean). The min-max "paper units" of
Yi et al. (2020) are not computed: the paper took them on colour PNG renderings of training
images over the whole image, which no comparison here reproduces.

:func:`calibration`: fraction of hole pixels whose truth lies within 1 and 2
predicted standard deviations of the predicted mean (0.683 and 0.954 for
calibrated Gaussian errors), and the mean and variance of
z = (truth - mean) / std.
"""

from __future__ import annotations

import numpy as np

from cmbnn.analysis.gaussian_field import patch_stack
from cmbnn.inpainting.masks import SOURCE_HOLE_MAX_FRACTION

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


HOLE_CLASSES = ("all", "source", "galactic")


def hole_classes(mask) -> np.ndarray:
    """Per patch: 'source' (0 < missing fraction < SOURCE_HOLE_MAX_FRACTION), 'galactic'
    (at least that) or 'none' (no missing pixel); mask (N, H, W[, 1]), 1 = missing."""
    fraction = _flat(np.asarray(mask, dtype=np.float64)).mean(axis=1)
    return _classes_of(fraction)


def _classes_of(fraction: np.ndarray) -> np.ndarray:
    return np.where(fraction == 0, "none", np.where(fraction < SOURCE_HOLE_MAX_FRACTION, "source", "galactic"))


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.15865, 0.84135])  # the central 68.27%
    return float(lo), float(hi)


# More than 8 parameters: not here; the methods come as one dict.
def class_errors(outputs: dict, truth, mask, stds: dict | None = None, reference: str = "gaussian", n_boot: int = 2000, rng=None) -> list[dict]:
    """Hole errors of every method by hole class (:data:`HOLE_CLASSES`), with bootstrap intervals.

    outputs: method -> (N, H, W[, 1]) inpainted patches (uK_CMB); truth likewise; mask 1 = missing;
    stds: method -> predicted std (calibration columns for those methods); reference: the method
    the ratio column divides by. The pooled hole MSE of a class is sum of squared errors over
    its patches' hole pixels / their number; its 68% interval and that of the ratio to
    ``reference`` come from resampling the class's patches with replacement (``n_boot`` times,
    the same resamples for every method, so the ratio's interval is paired).
    Returns one dict a (method, class): method, hole_class, n_patches, n_pixels, MSE_uK2,
    MSE_lo, MSE_hi, MAE_uK, ratio, ratio_lo, ratio_hi and, with a std, within_1sigma,
    within_2sigma, z_var.
    """
    t = _flat(truth)
    holes = _region(mask, t.shape, "hole")
    classes = _classes_of(holes.mean(axis=1))
    rng = np.random.default_rng(0) if rng is None else rng
    counts = holes.sum(axis=1)
    squared = {m: np.sum(np.where(holes, _flat(out) - t, 0.0) ** 2, axis=1) for m, out in outputs.items()}
    absolute = {m: np.sum(np.abs(np.where(holes, _flat(out) - t, 0.0)), axis=1) for m, out in outputs.items()}
    rows = []
    for cls in HOLE_CLASSES:
        ids = np.flatnonzero(classes != "none") if cls == "all" else np.flatnonzero(classes == cls)
        if ids.size == 0:
            continue
        draws = rng.choice(ids, size=(n_boot, ids.size))
        n_draw = counts[draws].sum(axis=1)
        ref = squared.get(reference)
        for method in outputs:
            se = squared[method]
            row = {
                "method": method, "hole_class": cls, "n_patches": int(ids.size), "n_pixels": int(counts[ids].sum()),
                "MSE_uK2": float(se[ids].sum() / counts[ids].sum()), "MAE_uK": float(absolute[method][ids].sum() / counts[ids].sum()),
            }
            row["MSE_lo"], row["MSE_hi"] = _interval(se[draws].sum(axis=1) / n_draw)
            if ref is not None:
                row["ratio"] = float(se[ids].sum() / ref[ids].sum())
                row["ratio_lo"], row["ratio_hi"] = _interval(se[draws].sum(axis=1) / ref[draws].sum(axis=1))
            if stds and method in stds:
                sel = np.zeros(len(t), dtype=bool)
                sel[ids] = True
                picked = np.where(sel[:, None], holes, False)
                cal = calibration(t, _flat(outputs[method]), np.broadcast_to(_flat(stds[method]), t.shape), picked)
                row.update(within_1sigma=cal["within_1sigma"], within_2sigma=cal["within_2sigma"], z_var=cal["z_var"])
            rows.append(row)
    return rows
