"""Training sets streamed a chunk of rows at a time: per-channel moments (for normalisation) and
the data fingerprint that a resumed training checks its checkpoint against. Arrays or h5py
datasets alike; no float64 copy of a whole set exists."""

from __future__ import annotations

import hashlib

import numpy as np

CHUNK = 64  # patches per streamed chunk for statistics and hashing



def row_chunks(a, chunk=None):
    """Consecutive blocks of at most ``chunk`` (default :data:`CHUNK`) rows of an array or h5py dataset."""
    chunk = chunk or CHUNK
    for start in range(0, len(a), chunk):
        yield a[start : start + chunk]



def channel_moments(a) -> dict:
    """Per-channel mean, variance and mean square of (N, H, W, c), two passes over chunks.

    Each chunk is summed with a float64 accumulator; no float64 copy of the array exists.
    """
    n = 0
    total = np.zeros(a.shape[-1])
    for c in row_chunks(a):
        total += c.sum(axis=(0, 1, 2), dtype=np.float64)
        n += c[..., 0].size
    mean = total / n
    sq = np.zeros(a.shape[-1])
    centred = np.zeros(a.shape[-1])
    for c in row_chunks(a):
        d = c - mean.astype(np.float32)
        centred += np.square(d, out=d).sum(axis=(0, 1, 2), dtype=np.float64)
        d = np.square(c, out=d)
        sq += d.sum(axis=(0, 1, 2), dtype=np.float64)
    var, ms = centred / n, sq / n
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        raise ValueError("training patches contain NaN or inf")
    if np.any(var == 0):
        raise ValueError("a training channel is constant; it cannot be normalised")
    return {"mean": mean, "var": var, "mean_square": ms}



def data_digest(*arrays) -> str:
    """sha256 over the arrays' bytes, chunk by chunk (no copy of a whole array)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.shape, a.dtype.str)).encode())
        for c in row_chunks(a):
            h.update(memoryview(np.ascontiguousarray(c)).cast("B"))
    return h.hexdigest()
