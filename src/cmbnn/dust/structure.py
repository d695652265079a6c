"""Brightness and texture of dust patches, measured apart, and distances between sets of patches.

Most of the variance of standardised log I is between patch means (a patch is brighter or
fainter as a whole), so statistics on shared thresholds mostly measure brightness. Here each
patch is split into its **amplitude**, the mean and std of its pixels, and its **structure**, the
patch standardised by its own mean and std, u = (x - mean) / std, on which every texture
statistic is computed: band powers, the one-point shape (skewness, kurtosis and a histogram in
units of the patch's std), the Minkowski functionals V0-V2 at thresholds in units of the patch's
std, peak counts above several levels, and (where pywph is installed) wavelet phase harmonics.

Sets are compared by the energy distance between their per-patch feature vectors
(:mod:`cmbnn.analysis.two_sample`), read as a z-score against its permutation null; the
Minkowski bands also by ForSE's band overlap.
"""

from __future__ import annotations

import numpy as np

from cmbnn.analysis.gaussian_field import patch_stack
from cmbnn.analysis.minkowski import minkowski_functionals
from cmbnn.analysis.two_sample import band_overlap, energy_test, feature_scale
from cmbnn.dust.statistics import hann_window, patch_moments, pixel_histograms
from cmbnn.units import ARCMIN

# One-point histogram of u in units of the patch's std: fine bins over the range real dust spans.
STD_HIST_EDGES = np.linspace(-3.0, 5.0, 33)
# Minkowski thresholds and peak levels in units of the patch's std.
STD_THRESHOLDS = np.linspace(-2.0, 3.0, 11)
PEAK_LEVELS = (0.0, 1.0, 2.0, 3.0)
STRUCTURE = ("band powers", "one-point", "V0", "V1", "V2", "peaks")
MINKOWSKI = ("V0", "V1", "V2")


def standardise_each(x) -> tuple[np.ndarray, np.ndarray]:
    """Each patch minus its mean, over its std: (u (N, H, W), amplitude (N, 2) = mean, std)."""
    x = patch_stack(x).astype(np.float64)
    mean = x.mean(axis=(1, 2))
    std = x.std(axis=(1, 2))
    if np.any(std <= 0):
        raise ValueError(f"{int(np.sum(std <= 0))} patch(es) are constant: no texture to standardise")
    return (x - mean[:, None, None]) / std[:, None, None], np.stack([mean, std], axis=1)


def peak_counts(u, levels=PEAK_LEVELS) -> np.ndarray:
    """Local maxima (above all 8 neighbours) higher than each level, per patch: (N, n_levels).
    The edge pixels, whose neighbourhoods are cut, are not candidates."""
    u = patch_stack(u)
    h, w = u.shape[1:]
    centre = u[:, 1:-1, 1:-1]
    is_peak = np.ones(centre.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_peak &= centre > u[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    return np.stack([np.sum(is_peak & (centre > level), axis=(1, 2)) for level in levels], axis=1).astype(np.float64)


def band_powers(u, reso_arcmin: float, n_bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """log10 of each patch's power in n_bins rings of |k|, log-spaced from one cycle per patch to
    the Nyquist frequency: (ell at the bins' centres (n_bins,), (N, n_bins)). Through a Hann
    window, so a non-periodic patch's edges leak nothing into the small scales; always positive
    (a decoupled NaMaster bandpower of one small patch can be negative, whose log is undefined)."""
    u = patch_stack(u).astype(np.float64)
    h, w = u.shape[1:]
    window = hann_window(h, w)
    power = np.abs(np.fft.fft2((u - u.mean(axis=(1, 2), keepdims=True)) * window)) ** 2 / np.sum(window**2)
    side = min(h, w)
    cycles = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")) * side  # per patch side
    edges = np.geomspace(1.0, side / 2, n_bins + 1)
    edges[-1] += 1e-9
    index = np.digitize(cycles, edges) - 1  # -1 below one cycle, n_bins beyond Nyquist: left out
    flat, idx = power.reshape(len(u), -1), index.ravel()
    out = np.stack([flat[:, idx == b].mean(axis=1) for b in range(n_bins)], axis=1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    return 2 * np.pi * centres / (side * reso_arcmin * ARCMIN), np.log10(out)


def structure_features(x, reso_arcmin: float, n_bins: int = 8, thresholds=STD_THRESHOLDS, wph=None) -> tuple[dict, dict]:
    """Per-patch features of patches x (standardised log I, (N, H, W)): (features, meta).

    features: "amplitude" (N, 2), each patch's mean and std; and on the per-patch standardised
    maps: "band powers" (N, n_bins) (:func:`band_powers`); "one-point" (N, 2 + 32),
    skewness, excess kurtosis and the histogram in units of the patch's std; "V0", "V1", "V2"
    (N, n_thresholds) at ``thresholds`` in units of the patch's std (default -2..3); "peaks" (N, 4), maxima above 0, 1, 2, 3 std; and "WPH" (N, F) when
    ``wph`` is a callable mapping u to per-patch features (:func:`cmbnn.dust.wph.wph_features`).
    meta: the axes ("ell", "thresholds", "hist_edges", "peak_levels")."""
    u, amplitude = standardise_each(x)
    ell, log_power = band_powers(u, reso_arcmin, n_bins)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    mink = minkowski_functionals(u, thresholds)
    features = {
        "amplitude": amplitude,
        "band powers": log_power,
        "one-point": np.concatenate([patch_moments(u), pixel_histograms(u, STD_HIST_EDGES)], axis=1),
        "V0": mink[:, 0],
        "V1": mink[:, 1],
        "V2": mink[:, 2],
        "peaks": peak_counts(u),
    }
    if wph is not None:
        features["WPH"] = np.asarray(wph(u), dtype=np.float64)
    meta = {"ell": ell, "thresholds": thresholds.copy(), "hist_edges": STD_HIST_EDGES.copy(), "peak_levels": np.asarray(PEAK_LEVELS)}
    return features, meta


def equal_subsets(sets: dict, rng: np.random.Generator) -> tuple[dict, int]:
    """Every set cut to the size of the smallest (a random subset, without replacement), so that
    no row's distance is read at another set size than the others'. Returns (sets, n)."""
    n = min(len(v) for v in sets.values())
    return {name: (v if len(v) == n else v[np.sort(rng.choice(len(v), n, replace=False))]) for name, v in sets.items()}, n


def structure_table(features: dict, reference: str, rng: np.random.Generator, n_permutations: int = 200) -> "pandas.DataFrame":  # noqa: F821
    """Every set against the reference set, statistic by statistic: one row per (set, statistic)
    with the energy distance, its permutation z-score and p-value, and for V0-V2 ForSE's band
    overlap with the reference. ``features``: set name -> :func:`structure_features` output.
    The feature scale of each statistic is the reference set's, the same for every row."""
    import pandas as pd

    ref = features[reference]
    rows = []
    for name, feats in features.items():
        if name == reference:
            continue
        for stat, values in feats.items():
            if stat not in ref:
                continue
            test = energy_test(ref[stat], values, rng, n_permutations, scale=feature_scale(ref[stat]))
            row = {"set": name, "statistic": stat, "n": len(values), "energy": test["distance"], "z": test["z"], "p": test["p"]}
            row["overlap"] = band_overlap(ref[stat], values) if stat in MINKOWSKI else np.nan
            rows.append(row)
    return pd.DataFrame(rows)
