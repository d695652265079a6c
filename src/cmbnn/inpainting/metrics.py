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


def losses_to(rows: list[dict], methods, reference: str = "zeros") -> list[str]:
    """The (method, hole class) pairs of :func:`class_errors` rows where a method's hole MSE is not
    below ``reference``'s, as readable lines (empty when every method wins in every class)."""
    mse = {(r["method"], r["hole_class"]): r["MSE_uK2"] for r in rows}
    return [
        f"{m} on {cls} holes: MSE {mse[m, cls]:.4g} uK^2, {reference} {mse[reference, cls]:.4g} uK^2"
        for (m, cls) in mse
        if m in methods and cls != "all" and (reference, cls) in mse and not mse[m, cls] < mse[reference, cls]
    ]


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.15865, 0.84135])  # the central 68.27%
    return float(lo), float(hi)


def _class_resamples(classes: np.ndarray, rng, n_boot: int):
    """Yield (hole class, its patch indices, (n_boot, n) bootstrap resamples of them) for each class
    of :data:`HOLE_CLASSES` that has patches; 'all' is every patch with a hole."""
    for cls in HOLE_CLASSES:
        ids = np.flatnonzero(classes != "none") if cls == "all" else np.flatnonzero(classes == cls)
        if ids.size:
            yield cls, ids, rng.choice(ids, size=(n_boot, ids.size))


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
    for cls, ids, draws in _class_resamples(classes, rng, n_boot):
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


def hole_power_ell_edges(height: int, width: int, reso_arcmin: float, n_bins: int = 7) -> np.ndarray:
    """``n_bins`` equal multipole bins from the patch's fundamental mode (2 pi / its longer side) to
    its Nyquist multipole (pi / pixel): 49 to 1,572 for the default 64 x 6.87' patch."""
    reso = np.deg2rad(reso_arcmin / 60.0)
    return np.linspace(2 * np.pi / (max(height, width) * reso), np.pi / reso, n_bins + 1)


def hole_power(x, mask, reso_arcmin: float, ell_edges) -> np.ndarray:
    """Power of the hole-only map per ell bin: (N, n_bins) = mean over the 2-D Fourier modes in each
    bin of |FFT(x * hole)|^2 Omega_pix / N_pix (uK^2 sr), x (N, H, W[, 1]) uK_CMB, mask 1 = missing.
    The hole's window couples the multipoles alike for every map, so ratios between maps on the same
    masks compare their power in the hole scale by scale; its sharp edge leaks power to high ell,
    which narrows the gap between a smooth map and the truth there."""
    x = patch_stack(np.asarray(x, dtype=np.float64))
    hole = _region(mask, (x.shape[0], x.shape[1] * x.shape[2]), "hole").reshape(x.shape)
    h, w = x.shape[1:]
    reso = np.deg2rad(reso_arcmin / 60.0)
    ky = np.fft.fftfreq(h, d=reso) * 2 * np.pi
    kx = np.fft.fftfreq(w, d=reso) * 2 * np.pi
    ell = np.hypot(ky[:, None], kx[None, :]).ravel()
    which = np.digitize(ell, ell_edges) - 1
    power = np.abs(np.fft.fft2(np.where(hole, x, 0.0))).reshape(x.shape[0], -1) ** 2 * reso**2 / (h * w)
    n_bins = len(ell_edges) - 1
    out = np.empty((x.shape[0], n_bins))
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            raise ValueError(f"no Fourier mode of a {h} x {w} patch of {reso_arcmin}' pixels in ell bin {ell_edges[b]}-{ell_edges[b + 1]}")
        out[:, b] = power[:, sel].mean(axis=1)
    return out


# More than 8 parameters: not here; the methods come as one dict.
def hole_power_table(maps: dict, truth, mask, reso_arcmin: float, ell_edges=None, n_boot: int = 2000, rng=None) -> list[dict]:
    """Hole power per ell bin of every method's maps against the truth's, by hole class.

    maps: method -> (N, H, W) one map per patch (a posterior mean) or (N, S, H, W) S posterior
    samples per patch (no channel axis) (their power is averaged over the samples). Per (method, class, bin): the
    truth's hole power pooled over the class's patches, the method's, their ratio and its bootstrap
    68% interval over patches (paired: the same resampled patches for both). A sampler that draws
    from the posterior has ratio 1 in every bin within that interval; a conditional mean is below
    1 at high ell (it is smoother than the sky). ell_edges: None - :func:`hole_power_ell_edges`."""
    truth = patch_stack(np.asarray(truth, dtype=np.float64))
    ell_edges = hole_power_ell_edges(truth.shape[1], truth.shape[2], reso_arcmin) if ell_edges is None else np.asarray(ell_edges, dtype=np.float64)
    classes = hole_classes(mask)
    rng = np.random.default_rng(0) if rng is None else rng
    p_truth = hole_power(truth, mask, reso_arcmin, ell_edges)
    powers = {}
    for method, m in maps.items():
        m = np.asarray(m, dtype=np.float64)
        if m.ndim not in (3, 4) or m.shape[0] != truth.shape[0] or m.shape[-2:] != truth.shape[1:]:
            raise ValueError(f"maps of {method!r} must be (N, H, W) or (N, S, H, W) for {truth.shape} truth patches, got {m.shape}")
        samples = m[:, None] if m.ndim == 3 else m
        powers[method] = np.mean([hole_power(samples[:, s], mask, reso_arcmin, ell_edges) for s in range(samples.shape[1])], axis=0)
    rows = []
    for cls, ids, draws in _class_resamples(classes, rng, n_boot):
        for method, p in powers.items():
            for b in range(len(ell_edges) - 1):
                lo, hi = _interval(p[draws, b].sum(axis=1) / p_truth[draws, b].sum(axis=1))
                rows.append({
                    "method": method, "hole_class": cls, "n_patches": int(ids.size), "ell_lo": ell_edges[b], "ell_hi": ell_edges[b + 1],
                    "truth_power": float(p_truth[ids, b].mean()), "power": float(p[ids, b].mean()),
                    "ratio": float(p[ids, b].sum() / p_truth[ids, b].sum()), "ratio_lo": lo, "ratio_hi": hi,
                })
    return rows
