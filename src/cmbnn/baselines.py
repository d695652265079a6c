"""Classical baselines the networks are compared with.

Internal linear combination (ILC) per patch in pixel space: with channel
maps x_i = a_i s + f_i + n_i (a = 1 for the CMB in uK_CMB), the weights
w = C^-1 a / (a^T C^-1 a) minimise the variance of sum_i w_i x_i while
keeping the CMB with unit response. The constrained ILC also nulls given
foreground SEDs: w^T A = e_1 with A = [a, F], w = e_1^T (A^T C^-1 A)^-1 A^T C^-1.
Empirical covariances from one patch make the ILC remove a little CMB through
chance CMB-foreground correlations (the ILC bias); it is kept, not hidden.
"""

from __future__ import annotations

import numpy as np


def ilc_weights(cov: np.ndarray, cmb_sed: np.ndarray | None = None, deproject: np.ndarray | None = None) -> np.ndarray:
    """Weights (..., n_channels) for covariances (..., n_channels, n_channels).

    deproject: (n_channels, n_components) SEDs to null (constrained ILC).
    """
    n = cov.shape[-1]
    a = np.ones(n) if cmb_sed is None else np.asarray(cmb_sed, dtype=np.float64)
    mixing = a[:, None] if deproject is None else np.column_stack([a, np.asarray(deproject, dtype=np.float64)])
    if mixing.shape[1] > n:
        raise ValueError(f"cannot null {mixing.shape[1] - 1} SEDs with {n} channels")
    cinv_a = np.linalg.solve(cov, np.broadcast_to(mixing, cov.shape[:-2] + mixing.shape))
    gram = np.einsum("ik,...ij->...kj", mixing, cinv_a)
    e1 = np.zeros(mixing.shape[1])
    e1[0] = 1.0
    coeff = np.linalg.solve(gram, np.broadcast_to(e1[:, None], gram.shape[:-1] + (1,)))[..., 0]
    return np.einsum("...ij,...j->...i", cinv_a, coeff)


def patch_covariance(patches: np.ndarray) -> np.ndarray:
    """Channel covariance (N, C, C) of patches (N, H, W, C), means removed per patch."""
    x = patches.reshape(patches.shape[0], -1, patches.shape[-1]).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return np.einsum("npi,npj->nij", x, x) / x.shape[1]


def ilc(patches: np.ndarray, cmb_sed=None, deproject=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch ILC of (N, H, W, C) patches -> (maps (N, H, W, 1), weights (N, C))."""
    weights = ilc_weights(patch_covariance(patches), cmb_sed, deproject)
    maps = np.einsum("nhwc,nc->nhw", patches.astype(np.float64), weights)
    return maps[..., None].astype(np.float32), weights
