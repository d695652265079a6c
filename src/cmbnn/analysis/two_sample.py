"""Two-sample tests between sets of per-patch feature vectors, and ForSE's band overlap.

A generator is judged by whether its patches look like draws of the same law as real patches,
not by whether the set means agree: a set with the right mean and no scatter, or a single patch
repeated, must read far. The energy distance (Székely & Rizzo 2004) between the two sets'
feature vectors sees location, spread and shape at once. Its U-statistic form below is unbiased,
so two sets drawn from one law read 0 on average whatever their sizes, and the permutation null
(the same statistic over random relabellings of the pooled patches) turns it into a z-score and
a p-value that compare across statistics.
"""

from __future__ import annotations

import numpy as np


def feature_scale(reference: np.ndarray) -> np.ndarray:
    """Per-feature scale for the distance: the reference set's std (1 where it has none), so that
    every comparison with that reference uses one metric and no feature dominates by its units."""
    reference = np.asarray(reference, dtype=np.float64)
    scale = reference.std(axis=0)
    # A feature the reference does not vary (to rounding) keeps its own units.
    return np.where(scale > 1e-12 * np.maximum(1.0, np.abs(reference.mean(axis=0))), scale, 1.0)


def _pairwise(x: np.ndarray) -> np.ndarray:
    sq = np.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    return np.sqrt(np.maximum(d2, 0.0))


def _energy_from_matrix(dist: np.ndarray, in_a: np.ndarray) -> float:
    a, b = in_a, ~in_a
    n, m = int(a.sum()), int(b.sum())
    cross = dist[np.ix_(a, b)].sum() / (n * m)
    within_a = dist[np.ix_(a, a)].sum() / (n * (n - 1))  # the diagonal is 0: sums over i != i'
    within_b = dist[np.ix_(b, b)].sum() / (m * (m - 1))
    return float(2.0 * cross - within_a - within_b)


def energy_distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None = None) -> float:
    """Unbiased energy distance between sets a (n, d) and b (m, d) of feature vectors (n, m >= 2),
    after dividing every feature by ``scale`` (default: :func:`feature_scale` of a)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    scale = feature_scale(a) if scale is None else np.asarray(scale, dtype=np.float64)
    pooled = np.concatenate([a, b]) / scale
    in_a = np.arange(len(pooled)) < len(a)
    return _energy_from_matrix(_pairwise(pooled), in_a)


def energy_test(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_permutations: int = 500, scale: np.ndarray | None = None) -> dict:
    """Energy distance of a and b with its permutation null.

    Returns ``distance``, the null's ``null_mean`` and ``null_std`` over ``n_permutations``
    relabellings of the pooled patches (set sizes kept), ``z`` = (distance - null mean) / null std
    and the permutation ``p`` = (1 + #null >= distance) / (1 + n_permutations)."""
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the energy test needs at least 2 patches per set, got {len(a)} and {len(b)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature vectors of different lengths: {a.shape[1]} and {b.shape[1]}")
    scale = feature_scale(a) if scale is None else np.asarray(scale, dtype=np.float64)
    dist = _pairwise(np.concatenate([a, b]) / scale)  # once: every relabelling reads sub-blocks of it
    labels = np.arange(len(dist)) < len(a)
    observed = _energy_from_matrix(dist, labels)
    null = np.array([_energy_from_matrix(dist, rng.permutation(labels)) for _ in range(n_permutations)])
    std = float(null.std())
    return {
        "distance": observed,
        "null_mean": float(null.mean()),
        "null_std": std,
        "z": (observed - float(null.mean())) / std if std > 0 else (0.0 if observed <= null.mean() else float("inf")),
        "p": float((1 + np.sum(null >= observed)) / (1 + n_permutations)),
    }


def band_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """ForSE's overlap of two sets of curves (Krachmalnicoff & Puglisi 2021), a (n, T) and b (m, T),
    e.g. a Minkowski functional at T thresholds: the area where the two +-1 std bands overlap over
    the area of their union, summed over the T points. 1 for identical bands, 0 for disjoint ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    lo_a, hi_a = a.mean(axis=0) - a.std(axis=0), a.mean(axis=0) + a.std(axis=0)
    lo_b, hi_b = b.mean(axis=0) - b.std(axis=0), b.mean(axis=0) + b.std(axis=0)
    overlap = np.maximum(0.0, np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b))
    union = (hi_a - lo_a) + (hi_b - lo_b) - overlap
    return float(overlap.sum() / union.sum()) if union.sum() > 0 else 1.0
