"""Wavelet phase harmonic (WPH) statistics of dust patches with the field's implementation, pywph
(Régaldo-Saint Blancard et al. 2021; PyTorch, CPU is enough), and maximum-entropy synthesis under them.

* :func:`wph_features`: per-patch WPH coefficients as real features for two-sample tests.
* :func:`wph_synthesis`: microcanonical synthesis (Régaldo-Saint Blancard et al. 2021, 2023; pywph's
  ``examples/synthesis.py``): white noise moved by L-BFGS until its WPH coefficients equal those
  of a training patch.

Patches are not periodic, so the coefficients are taken with pywph's ``pbc=False``: the wavelet
transforms (circular convolutions) lose a border of 2^(J-1) pixels on each side, where the
wrap-around seam would add small-scale power, and the statistics are those of the central
(H - 2^J) x (W - 2^J) pixels. Two things follow.

* pywph 1.1.3 places translations wrongly when ``pbc=False``: a translation tau is stored as
  tau mod (M, N), the position on the full grid, but with ``pbc=False`` the covariance is read
  on the cut maps zero-padded by the largest stored position, where a negative component of tau
  reads an empty overlap; those coefficients came out ~1e-11 instead of the covariance (checked
  against a direct sum), and the padding by ~M made an evaluation 12 times slower (96 x 96, J = 5,
  dn = 2). :func:`_place_translations` puts each tau at its place on the padded grid, pads by
  max |tau| and weights by the true overlap.
* A synthesis on the patch's own grid with ``pbc=False`` leaves its border unconstrained at small
  scales (white noise in 3/4 of a 64 x 64 map at J = 5). The synthesis therefore runs on a canvas
  2^(J-1) pixels larger on each side and returns its centre, exactly the pixels the statistics see.

torch and pywph are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import time
import warnings
from functools import lru_cache

import numpy as np


def default_j(height: int, width: int) -> int:
    """J = log2(min side) - 2 (4 for 64 x 64): the cut border of 2^(J-1) leaves the central half of
    each side. J may go one higher (pywph needs 2^J < the side), but then the statistics see only
    the central quarter of the patch."""
    return int(np.log2(min(height, width))) - 2


def _maps(maps) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    maps = maps[None] if maps.ndim == 2 else maps
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or (H, W), got {maps.shape}")
    return maps


def _cut(J: int) -> int:
    return 2 ** (J - 1)  # pywph's border with its default cut_x_param = cut_y_param = 1/2


@lru_cache(maxsize=8)
def _operator(height: int, width: int, J: int, L: int, dn: int, pbc: bool):
    """A pywph WPHOp (default model: S11, S00, S01, C01, Cphase and the scaling moments L) for real
    maps, single precision on the CPU; for ``pbc=False`` with its translations re-placed."""
    import pywph

    if 2 * _cut(J) >= min(height, width):
        raise ValueError(f"J = {J} cuts 2 x {_cut(J)} pixels from a {height} x {width} map: nothing left")
    op = pywph.WPHOp(height, width, J, L=L, dn=dn, device="cpu")
    return op if pbc else _place_translations(op)


def _place_translations(op):
    """Fix pywph 1.1.3's translations for pbc=False (module docstring): the signed shift tau, its
    position on the cut grid zero-padded by max |tau|, and the weight M N / overlap that turns
    pywph's sum / (M N) into the mean over the pixel pairs that exist."""
    import torch

    h, w = op.M - 2 * int(op.cut_y_param * 2**op.J), op.N - 2 * int(op.cut_x_param * 2**op.J)
    pos = op._translation_pos.cpu().numpy()
    tx = (pos[:, 0] + op.N // 2) % op.N - op.N // 2
    ty = (pos[:, 1] + op.M // 2) % op.M - op.M // 2
    op.max_tx, op.max_ty = int(np.abs(tx).max()), int(np.abs(ty).max())
    placed = np.stack([tx % (w + op.max_tx), ty % (h + op.max_ty)], axis=1)
    op._translation_pos = torch.from_numpy(placed).to(op.device, torch.long)
    weight = op.M * op.N / ((w - np.abs(tx)) * (h - np.abs(ty)))
    op._translation_weight = torch.from_numpy(weight).to(op.device, torch.float)
    return op


def _class(j1, p1, j2, p2) -> str:
    if p1 == p2:
        return "S11" if p1 == 1 else "S00"
    if p1 == 0 and p2 == 1:
        return "S01" if j1 == j2 else "C01"
    return "Cphase"


@lru_cache(maxsize=8)
def _layout(height: int, width: int, J: int, L: int, dn: int, pbc: bool) -> tuple:
    """For each pywph coefficient k: (k, d1, d2, real, name), d1 and d2 the coefficients holding the
    two variances that normalise it (d1 = d2 = k for a variance), real when its imaginary part is 0
    for a real map (moduli only, a variance, the real low-passed map of L)."""
    op = _operator(height, width, J, L, dn, pbc)
    wph = op.wph_moments_indices.cpu().numpy()  # [j1, t1, p1, j2, t2, p2, n, a, pseudo]
    sm = op.scaling_moments_indices.cpu().numpy()  # [j, p1, p2, pseudo]; after the WPH moments
    var = {}
    for k, (j1, t1, p1, j2, t2, p2, n, _, _) in enumerate(wph):
        if n == 0 and (j1, t1, p1) == (j2, t2, p2):
            var["psi", j1, t1, p1] = k  # S11: variance of x * psi; S00: of |x * psi|
    for k, (j, p1, p2, _) in enumerate(sm):
        if p1 == p2:
            var["phi", j, p1] = len(wph) + k
    rows = []
    for k, (j1, t1, p1, j2, t2, p2, n, a, _) in enumerate(wph):
        # A phase harmonic [x * psi]^p keeps the modulus of x * psi: normalised by S11 as p = 1.
        d1, d2 = var["psi", j1, t1, min(p1, 1)], var["psi", j2, t2, min(p2, 1)]
        real = p1 == p2 == 0 or d1 == d2 == k
        rows.append((k, d1, d2, real, f"{_class(j1, p1, j2, p2)} j1={j1} t1={t1} p1={p1} j2={j2} t2={t2} p2={p2} n={n} a={a}"))
    for k, (j, p1, p2, _) in enumerate(sm):
        rows.append((len(wph) + k, var["phi", j, p1], var["phi", j, p2], True, f"L j={j} p1={p1} p2={p2}"))
    return tuple(rows)


def wph_coefficients(maps, J: int | None = None, L: int = 4, dn: int = 0, pbc: bool = False, batch: int = 64) -> np.ndarray:
    """pywph's WPH coefficients (N, K) complex128 of maps (N, H, W), unnormalised (``norm=None``:
    covariances of the mean-subtracted wavelet transforms and phase harmonics), in the order of
    the operator's ``wph_moments_indices`` then ``scaling_moments_indices``."""
    import torch

    maps = _maps(maps)
    _, h, w = maps.shape
    op = _operator(h, w, default_j(h, w) if J is None else J, L, dn, pbc)
    with torch.no_grad():
        parts = [op.apply(maps[i : i + batch], norm=None, pbc=pbc).cpu().numpy() for i in range(0, len(maps), batch)]
    return np.concatenate(parts).astype(np.complex128)


def wph_features(maps, J: int | None = None, L: int = 4, dn: int = 0, pbc: bool = False) -> tuple[np.ndarray, list[str]]:
    """Per-patch WPH features of maps (N, H, W), each used as given: (features (N, F) float64, names).

    From pywph's default model (:func:`wph_coefficients`; J defaults to :func:`default_j`,
    ``pbc=False`` takes no periodic seam): the variances (S11 and S00 at no translation: of the
    wavelet transforms x * psi and of their moduli; the scaling moments L with p1 = p2) as their
    natural log ("log ..."), and every other coefficient divided by the square root of its two
    variances, a correlation coefficient, as its real part ("re ...") and, where it can be
    non-zero for a real map, its imaginary part ("im ..."). 489 features for J = 5, L = 4, dn = 0."""
    maps = _maps(maps)
    _, h, w = maps.shape
    J = default_j(h, w) if J is None else J
    c = wph_coefficients(maps, J, L, dn, pbc)
    columns, names = [], []
    for k, d1, d2, real, name in _layout(h, w, J, L, dn, pbc):
        if d1 == d2 == k:
            columns.append(np.log(c[:, k].real))
            names.append(f"log {name}")
            continue
        z = c[:, k] / np.sqrt(c[:, d1].real * c[:, d2].real)
        columns.append(z.real)
        names.append(f"re {name}")
        if not real:
            columns.append(z.imag)
            names.append(f"im {name}")
    return np.stack(columns, axis=1), names


def _match(target_op, canvas_op, target: np.ndarray, start: np.ndarray, steps: int, tol: float):
    """One synthesis (:func:`wph_synthesis`) of a standardised target from a start canvas:
    (the scipy result, the loss history)."""
    import torch
    from scipy.optimize import minimize

    target_op.clear_normalization()  # "auto" keeps the first map's normalisation: this target's
    with torch.no_grad():
        goal = target_op.apply(target, norm="auto", pbc=False)
    canvas_op.set_normalization(*target_op.get_normalization())
    evaluations, history = [], []

    def loss_and_grad(flat):
        x = torch.tensor(flat.reshape(start.shape), dtype=torch.float32, requires_grad=True)
        loss = torch.sum(torch.abs(canvas_op.apply(x, norm="auto", pbc=False) - goal) ** 2)
        loss.backward()
        evaluations.append(loss.item())
        return evaluations[-1], x.grad.numpy().astype(np.float64).ravel()

    with warnings.catch_warnings():
        # pywph keeps the means of moduli in complex tensors and casts them back: the imaginary parts dropped are 0.
        warnings.filterwarnings("ignore", message="Casting complex values to real", category=UserWarning)
        result = minimize(loss_and_grad, start.ravel(), jac=True, method="L-BFGS-B", tol=tol, options={"maxiter": steps, "maxcor": 20},
                          callback=lambda intermediate_result: history.append(float(intermediate_result.fun)))
    return result, evaluations[:1] + history


# More than 8 parameters: the training patches, count and generator, the WPH model (J, L, dn), the optimiser's two limits and a logger.
def wph_synthesis(targets, n: int, rng: np.random.Generator, J: int | None = None, L: int = 4, dn: int = 2, steps: int = 300, tol: float = 1e-7, log=None) -> tuple[np.ndarray, dict]:
    """n maps (n, H, W) float32 by maximum-entropy synthesis under WPH statistics, and an info dict.

    Sample i matches training patch ``targets[i % len(targets)]``, standardised by its mean and
    std as in pywph's example (the sample is mapped back with them): its coefficients with
    ``pbc=False`` (no seam) and ``norm="auto"`` (each covariance's two factors centred and divided
    by the target's own std of them, so every coefficient is O(1)) are the goal. The canvas,
    2^(J-1) pixels wider on each side than the patch (module docstring), starts as white noise
    drawn from ``rng`` and L-BFGS-B (scipy; loss and gradient from torch autograd; maxcor 20 as in
    pywph's example) minimises the squared modulus of the difference of its coefficients, with the
    target's normalisation, from the goal, for at most ``steps`` iterations or until scipy's
    ``tol`` (ftol and gtol) is met. The returned sample is the canvas's centre: it has the
    statistics of the target's central pixels (their std, say, not the whole patch's). The mean
    is not a WPH statistic: the canvas keeps its start's, the target's, and the sample's scatters
    about it. Deterministic for a given ``rng`` state (torch draws nothing).

    info: per-sample lists "target" (index), "iterations", "evaluations", "loss" (final),
    "history" (the loss at the start and after each iteration), "converged" (scipy's success),
    "message", "seconds"; and "J", "L", "dn", "canvas" (its shape)."""
    targets = _maps(targets)
    _, h, w = targets.shape
    J = default_j(h, w) if J is None else J
    cut = _cut(J)
    canvas = (h + 2 * cut, w + 2 * cut)
    target_op, canvas_op = _operator(h, w, J, L, dn, False), _operator(*canvas, J, L, dn, False)
    info = {key: [] for key in ("target", "iterations", "evaluations", "loss", "history", "converged", "message", "seconds")}
    out = np.empty((n, h, w), np.float32)
    for i in range(n):
        started = time.perf_counter()
        target = targets[i % len(targets)]
        mean, std = target.mean(), target.std()
        result, history = _match(target_op, canvas_op, (target - mean) / std, rng.standard_normal(canvas), steps, tol)
        out[i] = mean + std * result.x.reshape(canvas)[cut:-cut, cut:-cut]
        values = (i % len(targets), int(result.nit), int(result.nfev), float(result.fun), history, bool(result.success), str(result.message), time.perf_counter() - started)
        for key, value in zip(info, values):
            info[key].append(value)
        if log is not None:
            log.info("WPH synthesis %d / %d: loss %.3g -> %.3g in %d iterations (%s), %.1f s", i + 1, n, history[0], result.fun, result.nit, result.message, values[-1])
    info.update(J=J, L=L, dn=dn, canvas=canvas)
    return out, info
