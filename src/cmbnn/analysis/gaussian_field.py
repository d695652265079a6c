"""Gaussian random fields on flat patches: covariance, conditional mean, constrained realisations.

The exact classical baseline for inpainting: for a Gaussian, statistically
isotropic sky (the CMB temperature) the best estimate of the missing pixels
given the observed ones, in mean squared error, is the conditional mean

    mean_h = C_ho (C_oo + N)^-1 d_o,
    var_h  = diag(C_hh - C_ho (C_oo + N)^-1 C_oh),

(h = hole / missing pixels, o = observed pixels, N = white noise on the
observed pixels), and a draw from the conditional distribution is a
constrained realisation (Hoffman & Ribak 1991). No network can beat the
conditional mean on Gaussian skies in MSE: it is the yardstick.

Units and conventions (see DESIGN.md): maps in uK_CMB, C_ell arrays start at
ell = 0 in uK^2 (C_ell, not D_ell), pixel variances in uK^2, patches
(N, H, W) or (N, H, W, 1) with square pixels of ``reso_arcmin``, masks with
1 = missing pixel; randomness only from a numpy Generator passed in.

Covariance model (:class:`FlatSkyCovariance`)
----------------------------------------------
The angular correlation function of the (beam- and pixel-window-smoothed)
field is the exact spherical sum

    C(theta) = sum_ell (2 ell + 1) / (4 pi) C_ell b_ell^2 w_ell^2 P_ell(cos theta),

evaluated (Clenshaw recurrence, float64) at the FLAT-SKY separation of two
pixels, theta = reso * sqrt(d_row^2 + d_col^2). The flat separation makes the
covariance stationary on the pixel grid (a block-Toeplitz matrix), which is
what allows the exact FFT matrix-vector product (circulant embedding on a
zero-padded 2H x 2W grid) and the conjugate-gradient solver; the dense and
CG solvers then solve the very same linear system. The price is the
gnomonic distortion: the true angle between two gnomonic pixel centres
differs from the flat separation by up to a few rho^2 / 10, rho the distance
from the patch centre: on the default 64 x 64 patch of 6.87 arcmin pixels
(corners 5.2 deg out) 0.27% for pairs through the centre, 0.58% for
neighbouring pixels at a corner and 0.76% for pairs from one corner to the
rest of the patch (measured on the gnomonic pixel centres). The calibration
test draws the sky on the sphere (exact harmonic synthesis at the gnomonic
pixel centres) to check what this costs.

Conditioning and the regulariser
--------------------------------
A beam-smoothed covariance is numerically singular (its eigenvalues follow
b_ell^2 down to ~1e-30 of the largest, and the flat-separation kernel is
positive definite only to rounding, ~1e-14 of the largest eigenvalue).
Every solve therefore adds a white "noise floor" of variance
``jitter * C(0)`` to the observed pixels, on top of any real ``noise_var``
(default :data:`JITTER` = 1e-10: 1e-5 of the pixel rms, ~0.001 uK for the
CMB, below float32 rounding of the maps); if the Cholesky factorisation
still fails, the floor grows 100x at a time up to 1e-6 with a warning.
Where the beam spans a few pixels and the hole is narrow, the noiseless
answer is nearly determined by the band limit and the floor is what limits
it: on 3.4 arcmin pixels with a 10 arcmin beam, floors of 1e-6, 1e-8,
1e-10 C(0) give rms errors of 0.70, 0.18, 0.075 uK on a 104 uK rms field
(conditional std to match). Real data have noise: pass its ``noise_var``
and the floor becomes irrelevant (tested: a 100x smaller floor changes the
mean by < 0.5% of the pixel rms; with noise, by < 1% of the conditional std).

Solvers
-------
``dense``: Cholesky of C_oo + N over the observed pixels (scipy/LAPACK),
factorised once per distinct mask and reused for all patches with that mask.
Cost n_o^3 / 3 flops and n_o^2 doubles of memory.
``cg``: preconditioned conjugate gradient with the FFT matrix-vector product,
all patches (each with its own mask) iterated together; preconditioner: T.
Chan's optimal circulant of the covariance + noise floor (diagonal in
Fourier). Cost per iteration ~ N * 4 FFTs of 2H x 2W, memory ~ 10 N H W.
CG converges only when the data are noisy: the iterations grow roughly as
1 / sqrt(noise). Measured (3 arcmin pixels, 5 arcmin beam, ~20% hole, to
rtol 1e-8): 210-480 iterations for 32^2 to 400^2 with noise of 1e-2 C(0)
(10% of the rms), ~600 at 3e-3, ~1300 at 1e-3, > 2000 at 1e-4, and with
only the floor it does not converge (a circulant preconditioner leaves the
spectrum of a nearly noiseless covariance spread; a non-converged solve warns).
``auto``: CG where it is measured to win (>= :data:`AUTO_CG_MIN_OBSERVED`
observed pixels and noise >= :data:`AUTO_CG_MIN_NOISE` C(0)), redone
densely for patches where it does not converge; dense otherwise while the
factor fits in memory (:data:`DENSE_MAX_OBSERVED` observed pixels, 3.2 GB);
CG beyond. Timings: benchmarks/gaussian_inpainting.py.
"""

from __future__ import annotations

import warnings

import numpy as np

from cmbnn.analysis.flatsky import gaussian_beam_ell
from cmbnn.units import ARCMIN

# White noise floor added to the observed pixels, relative to the pixel variance C(0).
JITTER = 1e-10
# "auto" uses the dense Cholesky solver up to this many observed pixels (factor of 3.2 GB), CG above.
DENSE_MAX_OBSERVED = 20000
# "auto" tries CG first with at least this many observed pixels and a noise floor of at least
# AUTO_CG_MIN_NOISE C(0) (measured: benchmarks/gaussian_inpainting.py), falling back to dense.
AUTO_CG_MIN_OBSERVED = 2000
AUTO_CG_MIN_NOISE = 3e-3
# Largest number of pixels for which gaussian_realisations uses the dense Cholesky factor.
DENSE_MAX_REALISATION = 4096
CG_RTOL = 1e-8
CG_MAXITER = 2000


def correlation_function(cl: np.ndarray, theta: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
    """C(theta) = sum_ell (2 ell + 1) / (4 pi) C_ell window_ell^2 P_ell(cos theta), uK^2.

    cl: C_ell from ell = 0 in uK^2; window: b_ell (beam x pixel window), same
    length or None; theta: angles in radians (any shape).
    """
    cl = np.asarray(cl, dtype=np.float64)
    ell = np.arange(cl.size)
    coef = (2 * ell + 1) / (4 * np.pi) * cl
    if window is not None:
        coef = coef * np.asarray(window, dtype=np.float64)[: cl.size] ** 2
    return np.polynomial.legendre.legval(np.cos(np.asarray(theta, dtype=np.float64)), coef)


class FlatSkyCovariance:
    """Pixel-pixel covariance (uK^2) of an isotropic Gaussian field on an H x W patch.

    cl: C_ell from ell = 0 (uK^2, not D_ell) of the field on the sky, before
    the beam; beam_fwhm_arcmin: Gaussian beam applied to the field (0: none);
    pixwin_nside: multiply by the HEALPix pixel window of that nside (for
    patches sampled from HEALPix maps; C_ell beyond the window's last
    multipole, 4 nside, are dropped). The covariance of pixels at rows
    (r1, r2) and columns (c1, c2) is C(reso * |(r1 - r2, c1 - c2)|): see the
    module docstring for the choice of the flat separation.

    Attributes: ``kernel`` (H, W), covariance at offset (d_row, d_col) >= 0;
    ``variance`` = C(0), the pixel variance in uK^2; ``shape`` (H, W).
    """

    def __init__(self, cl, height: int, width: int, reso_arcmin: float, beam_fwhm_arcmin: float = 0.0, pixwin_nside: int | None = None):
        cl = np.asarray(cl, dtype=np.float64)
        if cl.ndim != 1 or cl.size < 2:
            raise ValueError(f"cl must be a 1-D C_ell array from ell = 0, got shape {cl.shape}")
        if np.any(cl < 0):
            raise ValueError("cl must be a non-negative auto-spectrum C_ell (uK^2)")
        window = gaussian_beam_ell(beam_fwhm_arcmin, np.arange(cl.size, dtype=np.float64))
        if pixwin_nside is not None:
            import healpy as hp

            pw = hp.pixwin(int(pixwin_nside), lmax=min(cl.size - 1, 4 * int(pixwin_nside)))
            cl, window = cl[: pw.size], window[: pw.size] * pw
        self.cl, self.window = cl, window
        self.shape = (int(height), int(width))
        self.reso_arcmin = float(reso_arcmin)
        self.beam_fwhm_arcmin = float(beam_fwhm_arcmin)
        self.pixwin_nside = pixwin_nside
        self._kernels: dict[int, np.ndarray] = {}
        self.kernel = self._offset_kernel(self.shape[0], self.shape[1])
        self.variance = float(self.kernel[0, 0])
        self._fft: dict[int, np.ndarray] = {}

    @property
    def npix(self) -> int:
        return self.shape[0] * self.shape[1]

    def _offset_kernel(self, n_rows: int, n_cols: int) -> np.ndarray:
        """C at offsets (d_row, d_col) in [0, n_rows) x [0, n_cols), uK^2; distinct separations evaluated once."""
        dr, dc = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
        r2 = dr * dr + dc * dc
        unique, inverse = np.unique(r2, return_inverse=True)
        values = correlation_function(self.cl, np.sqrt(unique) * self.reso_arcmin * ARCMIN, self.window)
        return values[inverse].reshape(r2.shape)

    def dense(self, pixels=None) -> np.ndarray:
        """(n, n) covariance (uK^2) among flattened pixel indices ``pixels`` (row * W + col); all if None."""
        h, w = self.shape
        pixels = np.arange(h * w) if pixels is None else np.asarray(pixels).ravel()
        return self.cross(pixels, pixels)

    def cross(self, pixels_a, pixels_b) -> np.ndarray:
        """(n_a, n_b) covariance (uK^2) between two sets of flattened pixel indices."""
        w = self.shape[1]
        ra, ca = np.divmod(np.asarray(pixels_a).ravel(), w)
        rb, cb = np.divmod(np.asarray(pixels_b).ravel(), w)
        out = np.empty((ra.size, rb.size))
        step = max(1, 2**22 // max(rb.size, 1))  # row blocks: index temporaries stay ~100 MB
        for start in range(0, ra.size, step):
            sl = slice(start, start + step)
            out[sl] = self.kernel[np.abs(ra[sl, None] - rb[None, :]), np.abs(ca[sl, None] - cb[None, :])]
        return out

    def embedding(self, pad: int = 2) -> np.ndarray:
        """Real FFT (rfft2) of the stationary kernel on the periodic (pad H) x (pad W) grid.

        Offsets beyond half the padded grid wrap around (circulant embedding):
        with pad >= 2 and inputs zero outside the patch, the periodic
        convolution equals the patch covariance times the input exactly. Its
        values are the eigenvalues of the circulant matrix (uK^2).
        """
        if pad not in self._fft:
            h, w = self.shape
            ph, pw = pad * h, pad * w
            if pad not in self._kernels:
                self._kernels[pad] = self._offset_kernel(ph // 2 + 1, pw // 2 + 1)
            k = self._kernels[pad]
            i = np.arange(ph)
            j = np.arange(pw)
            full = k[np.minimum(i, ph - i)[:, None], np.minimum(j, pw - j)[None, :]]
            self._fft[pad] = np.fft.rfft2(full).real
        return self._fft[pad]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """C x for maps x (..., H, W) in uK -> (..., H, W) in uK^3 units of C x, via FFT on the 2H x 2W grid."""
        h, w = self.shape
        x = np.asarray(x, dtype=np.float64)
        spec = np.fft.rfft2(x, s=(2 * h, 2 * w)) * self.embedding(2)
        return np.fft.irfft2(spec, s=(2 * h, 2 * w))[..., :h, :w]

    def preconditioner(self, floor: float):
        """Function v (..., H, W) -> (C_chan + floor)^-1 v: T. Chan's optimal circulant on the H x W grid.

        C_chan's kernel at offset (a, b) mixes the Toeplitz entries at a and
        H - a (b and W - b) with weights (H - a) / H (Frobenius-optimal
        circulant approximation of the block-Toeplitz covariance); its
        eigenvalues are clipped at zero; floor in uK^2 (> 0). Used by CG.
        """
        h, w = self.shape
        if "chan" not in self._fft:
            kk = self._offset_kernel(h + 1, w + 1)
            i, j = np.arange(h), np.arange(w)
            wr, wc = ((h - i) / h)[:, None], ((w - j) / w)[None, :]
            ri, cj = (h - i)[:, None], (w - j)[None, :]
            ii, jj = i[:, None], j[None, :]
            c = wr * wc * kk[ii, jj] + (1 - wr) * wc * kk[ri, jj] + wr * (1 - wc) * kk[ii, cj] + (1 - wr) * (1 - wc) * kk[ri, cj]
            self._fft["chan"] = np.fft.rfft2(c).real
        inv = 1.0 / (np.maximum(self._fft["chan"], 0.0) + floor)

        def apply(v):
            return np.fft.irfft2(np.fft.rfft2(v) * inv, s=(h, w))

        return apply


# ---------------------------------------------------------------------------
# Conditional mean and variance
# ---------------------------------------------------------------------------


def patch_stack(x: np.ndarray) -> np.ndarray:
    """One-field patches (N, H, W[, 1]) or one patch (H, W) as float64 (N, H, W)."""
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[-1] != 1:
            raise ValueError(f"patches (N, H, W, C) must have C = 1, got {x.shape}")
        x = x[..., 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"patches must be (N, H, W[, 1]) or (H, W), got {x.shape}")
    return x.astype(np.float64)


def _as_batch(data: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """(N, H, W[, 1]) or (H, W) -> float64 (N, H, W) and the original shape."""
    original = np.shape(data)
    data = patch_stack(data)
    if data.shape[1:] != shape:
        raise ValueError(f"patches {original} do not match the covariance's patch shape {shape}")
    return data, original


def _mask_batch(mask: np.ndarray, n: int, shape: tuple[int, int]) -> np.ndarray:
    """Mask (H, W), (N, H, W) or (N, H, W, 1), 1 = missing -> bool (N, H, W)."""
    mask = np.asarray(mask)
    if mask.ndim == 4:
        mask = mask[..., 0]
    if mask.ndim == 2:
        mask = mask[None]
    if mask.shape[1:] != shape or mask.shape[0] not in (1, n):
        raise ValueError(f"mask {mask.shape} does not match {n} patches of shape {shape}")
    return np.broadcast_to(mask.astype(bool), (n,) + shape)


def _floor(cov: FlatSkyCovariance, noise_var: float, jitter: float) -> float:
    if np.ndim(noise_var) != 0 or noise_var < 0:
        raise ValueError(f"noise_var must be one non-negative number (uK^2), got {noise_var!r}")
    return float(noise_var) + jitter * cov.variance


def _cholesky(matrix: np.ndarray, floor: float, scale: float):
    """Lower Cholesky factor of matrix + floor I (matrix not modified).

    If it fails, the floor grows by ``scale`` x 100 (scale = 1e-10 C(0)
    steps ...) up to 1e-6 C(0) (see the module docstring), with a warning.
    Returns the scipy cho_factor tuple and the floor used (uK^2).
    """
    from scipy.linalg import LinAlgError, cho_factor

    diag = np.diag_indices_from(matrix)
    while True:
        a = matrix.copy()
        a[diag] += floor
        try:
            return cho_factor(a, lower=True, overwrite_a=True, check_finite=False), floor
        except LinAlgError:
            if floor >= 1e-6 * scale:
                raise
            new = max(floor * 100, 1e-10 * scale)
            warnings.warn(f"covariance not positive definite with a floor of {floor / scale:.0e} C(0): retrying with {new / scale:.0e} C(0)", RuntimeWarning, stacklevel=4)
            floor = new


def _mask_groups(mask: np.ndarray):
    """Yield (hole bool (H, W), patch indices) for each distinct mask among (N, H, W)."""
    flat = np.ascontiguousarray(mask.reshape(mask.shape[0], -1))
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    for k, m in enumerate(unique):
        yield m.reshape(mask.shape[1:]), np.flatnonzero(inverse.ravel() == k)


def choose_method(n_observed: int, noise_fraction: float = 0.0) -> str:
    """The solver "auto" tries first for ``n_observed`` observed pixels and a noise floor of ``noise_fraction`` C(0).

    "cg" where it is measured to beat the dense solver (benchmarks/gaussian_inpainting.py):
    at least :data:`AUTO_CG_MIN_OBSERVED` observed pixels and noise of at least
    :data:`AUTO_CG_MIN_NOISE` C(0); and beyond :data:`DENSE_MAX_OBSERVED`,
    where the dense factor no longer fits in memory. "dense" otherwise.
    """
    if n_observed > DENSE_MAX_OBSERVED:
        return "cg"
    if n_observed >= AUTO_CG_MIN_OBSERVED and noise_fraction >= AUTO_CG_MIN_NOISE:
        return "cg"
    return "dense"


def _dense_fill(out: np.ndarray, d: np.ndarray, hole: np.ndarray, cov: FlatSkyCovariance, floor: float) -> None:
    """Write the dense conditional mean into ``out`` (n, H, W) for patches d with masks ``hole``, per distinct mask."""
    for m, idx in _mask_groups(hole):
        if not m.any():
            continue
        if m.all():
            out[idx] = 0.0
            continue
        mean_h, _ = _dense_mean(d[idx], m, cov, floor, want_var=False)
        block = out[idx].reshape(idx.size, -1)
        block[:, m.ravel()] = mean_h
        out[idx] = block.reshape((idx.size,) + cov.shape)


def _dense_mean(d: np.ndarray, hole: np.ndarray, cov: FlatSkyCovariance, floor: float, want_var: bool):
    """Dense Cholesky solve for patches d (n, H, W) sharing ``hole``; hole values (n, n_h) and variance (n_h,)."""
    from scipy.linalg import cho_solve, solve_triangular

    obs_idx = np.flatnonzero(~hole.ravel())
    hole_idx = np.flatnonzero(hole.ravel())
    factor, _ = _cholesky(cov.dense(obs_idx), floor, cov.variance)
    c_oh = cov.cross(obs_idx, hole_idx)
    d_o = d.reshape(d.shape[0], -1)[:, obs_idx]
    alpha = cho_solve(factor, d_o.T, check_finite=False)  # (n_o, n)
    mean_h = (c_oh.T @ alpha).T
    var_h = None
    if want_var:
        half = solve_triangular(factor[0], c_oh, lower=True, check_finite=False)
        var_h = np.maximum(cov.variance - np.einsum("ij,ij->j", half, half), 0.0)
    return mean_h, var_h


def _pcg(apply_a, apply_m, b: np.ndarray, observed: np.ndarray, rtol: float, maxiter: int):
    """Batched preconditioned CG for SPD systems restricted to observed pixels.

    b, observed: (n, H, W); the operator and preconditioner are restricted
    by multiplying with ``observed``. Each system stops at |r| <= rtol |b|.
    Returns x (n, H, W), the iteration count and converged (n,) bool.
    """
    obs = observed.astype(np.float64)
    x = np.zeros_like(b)
    r = b * obs
    z = apply_m(r) * obs
    p = z.copy()
    rz = np.einsum("nij,nij->n", r, z)
    bnorm = np.sqrt(np.einsum("nij,nij->n", r, r))
    bnorm[bnorm == 0] = 1.0
    active = np.ones(b.shape[0], dtype=bool)
    for it in range(1, maxiter + 1):
        ap = apply_a(p) * obs
        pap = np.einsum("nij,nij->n", p, ap)
        step = np.where(active, rz / np.where(pap > 0, pap, 1.0), 0.0)
        x += step[:, None, None] * p
        r -= step[:, None, None] * ap
        res = np.sqrt(np.einsum("nij,nij->n", r, r)) / bnorm
        active &= res > rtol
        if not active.any():
            return x, it, ~active
        z = apply_m(r) * obs
        rz_new = np.einsum("nij,nij->n", r, z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        rz = rz_new
        p = z + beta[:, None, None] * p
    return x, maxiter, ~active


def _cg_solve(cov: FlatSkyCovariance, rhs: np.ndarray, observed: np.ndarray, floor: float, rtol: float, maxiter: int, warn: bool = True):
    """x = (C_oo + floor)^-1 rhs_o on observed pixels (zero in the hole), batched over (n, H, W).

    Returns x, iterations, converged (n,) bool; warns about systems that did not converge unless ``warn`` is False.
    """
    precond = cov.preconditioner(floor)
    x, iters, converged = _pcg(lambda v: cov.matvec(v) + floor * v, precond, rhs, observed, rtol, maxiter)
    if warn and not converged.all():
        warnings.warn(
            f"conjugate gradient: {np.count_nonzero(~converged)} of {converged.size} systems did not reach rtol {rtol} in {maxiter} "
            f"iterations (noise floor {floor / cov.variance:.1e} C(0); CG needs noise, see cmbnn.analysis.gaussian_field)",
            RuntimeWarning,
            stacklevel=3,
        )
    return x, iters, converged


def conditional_mean(data, mask, cov: FlatSkyCovariance, noise_var: float = 0.0, method: str = "auto", jitter: float = JITTER, rtol: float = CG_RTOL, maxiter: int = CG_MAXITER) -> np.ndarray:
    """Gaussian conditional (Wiener) mean of the missing pixels given the observed ones.

    data: patches (N, H, W[, 1]) or (H, W) in uK_CMB (values in the hole are
    ignored); mask: (H, W) shared by all patches or (N, H, W[, 1]), uint8/bool,
    1 = missing; cov: the field's :class:`FlatSkyCovariance`; noise_var:
    white noise variance of the observed pixels in uK^2 (a scalar); jitter:
    extra noise floor in units of C(0) (module docstring). method: "dense"
    (Cholesky, factorised once per distinct mask), "cg" (batched PCG with the
    FFT product, tolerance ``rtol`` on the residual; warns where it does not
    converge) or "auto" (:func:`choose_method` on the number of observed
    pixels and the noise; patches where its CG attempt does not converge
    are redone densely when the factor fits).

    Returns the composite, same shape as ``data``, float64: observed pixels
    unchanged, missing pixels = C_ho (C_oo + N)^-1 d_o.
    """
    d, original = _as_batch(data, cov.shape)
    hole = _mask_batch(mask, d.shape[0], cov.shape)
    floor = _floor(cov, noise_var, jitter)
    out = d.copy()
    requested = method
    method = _resolve(method, hole, floor / cov.variance)
    if method == "dense":
        _dense_fill(out, d, hole, cov, floor)
    else:
        observed = ~hole
        auto = requested == "auto"
        dense_fits = auto and int(observed.reshape(observed.shape[0], -1).sum(axis=1).max()) <= DENSE_MAX_OBSERVED
        alpha, _, converged = _cg_solve(cov, np.where(observed, d, 0.0), observed, floor, rtol, maxiter, warn=not dense_fits)
        out = np.where(hole, cov.matvec(alpha), d)
        if dense_fits and not converged.all():
            # "auto" guessed CG would win; where it did not converge, the dense solve gives the answer.
            redo = np.flatnonzero(~converged)
            sub = d[redo].copy()
            _dense_fill(sub, d[redo], hole[redo], cov, floor)
            out[redo] = sub
    return out.reshape(original)


def _resolve(method: str, hole: np.ndarray, noise_fraction: float) -> str:
    if method not in ("auto", "dense", "cg"):
        raise ValueError(f"method must be 'auto', 'dense' or 'cg', got {method!r}")
    if method == "auto":
        n_obs = int((~hole).reshape(hole.shape[0], -1).sum(axis=1).max())
        return choose_method(n_obs, noise_fraction)
    return method


def conditional_std(mask, cov: FlatSkyCovariance, noise_var: float = 0.0, method: str = "auto", jitter: float = JITTER, rtol: float = CG_RTOL, maxiter: int = CG_MAXITER, chunk: int = 256) -> np.ndarray:
    """Conditional standard deviation (uK) of every pixel given the observed ones, for Gaussian fields.

    mask: (H, W) or (N, H, W[, 1]), 1 = missing. Returns float64 of shape
    (H, W) for a 2-D mask, else (N, H, W): sqrt(diag(C_hh - C_ho (C_oo + N)^-1 C_oh))
    in the hole and 0 on observed pixels (they are given, not estimated).
    Independent of the data. method as in :func:`conditional_mean`, but
    "auto" is dense whenever the factor fits; "cg"
    solves one system per missing pixel (``chunk`` at a time): exact to
    ``rtol`` but slow for big holes, where the dense method or the scatter
    of :func:`constrained_realisation` draws are the practical routes.
    """
    mask_arr = np.asarray(mask)
    two_d = mask_arr.ndim == 2
    n = 1 if two_d else mask_arr.shape[0]
    hole = _mask_batch(mask_arr, n, cov.shape)
    floor = _floor(cov, noise_var, jitter)
    if method == "auto":
        n_obs = int((~hole).reshape(n, -1).sum(axis=1).max())
        method = "dense" if n_obs <= DENSE_MAX_OBSERVED else "cg"  # CG needs one solve per hole pixel
    method = _resolve(method, hole, floor / cov.variance)
    out = np.zeros((n,) + cov.shape)
    h, w = cov.shape
    for m, idx in _mask_groups(hole):
        hole_idx = np.flatnonzero(m.ravel())
        if hole_idx.size == 0:
            continue
        if hole_idx.size == m.size:
            var = np.full(hole_idx.size, cov.variance)
        elif method == "dense":
            _, var = _dense_mean(np.zeros((1,) + cov.shape), m, cov, floor, want_var=True)
        else:
            var = np.empty(hole_idx.size)
            observed = ~m
            for start in range(0, hole_idx.size, chunk):
                cols = hole_idx[start : start + chunk]
                rows, cc = np.divmod(cols, w)
                # Column of C for each hole pixel: C at offsets from that pixel.
                grid_r = np.abs(np.arange(h)[None, :, None] - rows[:, None, None])
                grid_c = np.abs(np.arange(w)[None, None, :] - cc[:, None, None])
                rhs = cov.kernel[grid_r, grid_c]
                sol, _, _ = _cg_solve(cov, rhs, np.broadcast_to(observed, rhs.shape), floor, rtol, maxiter)
                var[start : start + cols.size] = cov.variance - np.einsum("nij,nij->n", rhs * observed, sol)
            var = np.maximum(var, 0.0)
        flat = out[idx].reshape(idx.size, -1)
        flat[:, hole_idx] = np.sqrt(var)
        out[idx] = flat.reshape((idx.size,) + cov.shape)
    return out[0] if two_d else out


# ---------------------------------------------------------------------------
# Realisations
# ---------------------------------------------------------------------------


def _rfft_total(half: np.ndarray, width: int) -> float:
    """Sum over the full 2-D spectrum of a real, symmetric field given its rfft2 half (last axis)."""
    weights = np.full(half.shape[-1], 2.0)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    return float(np.sum(half * weights))


def gaussian_realisations(cov: FlatSkyCovariance, n: int, rng: np.random.Generator, method: str = "auto", jitter: float = JITTER) -> np.ndarray:
    """n unconstrained realisations (n, H, W) float64 in uK with covariance ``cov``.

    method "dense": Cholesky factor of the full (H W)^2 covariance plus the
    jitter floor (exact); "fft": circulant embedding on a padded grid with
    its negative eigenvalues clipped. The CMB correlation function does not
    decay within a patch, so the embedding is never exactly non-negative;
    the clipping adds a positive semi-definite circulant error E whose
    largest entry is its diagonal, sum(-min(lambda, 0)) / n_grid: the
    padding (2x, 3x, 4x) with the smallest one is used, and a warning is
    raised when it exceeds 1e-3 of C(0) (measured for CMB TT with a 5-10
    arcmin beam: ~1e-3 at 16^2, 3e-4 at 64^2, 1e-4 at 128^2). "auto": dense up to
    :data:`DENSE_MAX_REALISATION` pixels, fft above. The jitter floor is
    added as white noise in both cases.
    """
    h, w = cov.shape
    if method == "auto":
        method = "dense" if cov.npix <= DENSE_MAX_REALISATION else "fft"
    if method == "dense":
        (factor, _), _ = _cholesky(cov.dense(), jitter * cov.variance, cov.variance)
        return (rng.standard_normal((n, cov.npix)) @ np.tril(factor).T).reshape(n, h, w)
    if method != "fft":
        raise ValueError(f"method must be 'auto', 'dense' or 'fft', got {method!r}")
    errors = {pad: -np.minimum(cov.embedding(pad), 0.0) for pad in (2, 3, 4)}
    errors = {pad: _rfft_total(err, pad * w) / (pad * pad * h * w) / cov.variance for pad, err in errors.items()}
    pad = min(errors, key=errors.get)
    if errors[pad] > 1e-3:
        warnings.warn(f"circulant embedding: clipped eigenvalues change the covariance by up to {errors[pad]:.1e} of C(0)", RuntimeWarning, stacklevel=2)
    lam = cov.embedding(pad)
    ph, pw = pad * h, pad * w
    # White noise filtered by the real, symmetric kernel with spectrum sqrt(lambda):
    # covariance F^-1 diag(lambda) F, the circulant embedding, whose top-left H x W block is C.
    white = rng.standard_normal((n, ph, pw))
    field = np.fft.irfft2(np.fft.rfft2(white) * np.sqrt(np.maximum(lam, 0.0)), s=(ph, pw))[:, :h, :w]
    field += np.sqrt(jitter * cov.variance) * rng.standard_normal(field.shape)
    return field


# More than 8 parameters: the conditional_mean solver options (method, jitter, rtol, maxiter), passed through by name.
def constrained_realisation(data, mask, cov: FlatSkyCovariance, rng: np.random.Generator, noise_var: float = 0.0, method: str = "auto", jitter: float = JITTER, rtol: float = CG_RTOL, maxiter: int = CG_MAXITER) -> np.ndarray:
    """Draws from the conditional distribution of the missing pixels given the observed ones (uK).

    Hoffman-Ribak: an unconstrained realisation s (plus its own noise n on
    the observed pixels) and result = mean(d) + s - mean(s + n) in the hole,
    with the same (linear) conditional mean operator; observed pixels keep
    the data. s comes from :func:`gaussian_realisations` ("auto"). The
    draws' scatter about the conditional mean is the conditional variance
    (tested). Arguments as :func:`conditional_mean`; returns the shape of
    ``data``, float64.
    """
    d, original = _as_batch(data, cov.shape)
    hole = _mask_batch(mask, d.shape[0], cov.shape)
    _floor(cov, noise_var, jitter)  # refuses a bad noise_var before any work
    # s carries the jitter floor's white noise (variance jitter C(0)) everywhere, so the
    # simulated data s + n has the noise the solver assumes; in the hole it adds 1e-5 of the rms.
    s = gaussian_realisations(cov, d.shape[0], rng, jitter=jitter)
    sim = s + np.sqrt(float(noise_var)) * rng.standard_normal(s.shape)
    both = conditional_mean(np.concatenate([d, sim]), np.concatenate([hole, hole]), cov, noise_var, method, jitter, rtol, maxiter)
    mean_d, mean_s = both[: d.shape[0]], both[d.shape[0] :]
    out = np.where(hole, mean_d + s - mean_s, d)
    return out.reshape(original)


class LocalConditionalMean:
    """The Gaussian conditional mean of small holes from their neighbourhood, as a reusable linear operator.

    For each patch of ``mask`` (N, H, W), 1 = missing, every connected hole component (8-connected)
    of at most ``max_pixels`` pixels is filled from the observed pixels within ``pad`` pixels of its
    bounding box: C_ho (C_oo + floor)^-1 d_o on that window. Kriging screens: the nearest observed
    pixels carry almost all the weight, so for a point-source disc the window's answer matches the
    whole patch's to well inside its conditional variance (tested) at the cost of a few hundred-pixel
    solve instead of a 4,000-pixel one; the weights are computed once per mask and applied to any
    number of fields (posterior samples). ``covered`` (N, H, W) marks the pixels it fills.
    """

    def __init__(self, mask, cov: FlatSkyCovariance, max_pixels: int, pad: int = 8, jitter: float = JITTER):
        from scipy.linalg import cho_solve
        from scipy.ndimage import find_objects, label

        if int(max_pixels) < 1 or int(pad) < 1:
            raise ValueError(f"max_pixels and pad must be positive, got {max_pixels!r} and {pad!r}")
        mask = np.asarray(mask)
        hole = _mask_batch(mask, mask.shape[0] if mask.ndim >= 3 else 1, cov.shape)
        h, w = cov.shape
        floor = _floor(cov, 0.0, jitter)
        self.shape = hole.shape
        self.covered = np.zeros(hole.shape, dtype=bool)
        # Per patch: (hole pixel indices, observed pixel indices, weights (n_hole, n_obs)).
        self.blocks: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(hole.shape[0])]
        for i, m in enumerate(hole):
            labels, _ = label(m, structure=np.ones((3, 3), dtype=int))
            for k, box in enumerate(find_objects(labels), start=1):
                component = labels[box] == k
                if component.sum() > int(max_pixels):
                    continue
                r0, r1 = max(box[0].start - pad, 0), min(box[0].stop + pad, h)
                c0, c1 = max(box[1].start - pad, 0), min(box[1].stop + pad, w)
                rows, cols = np.mgrid[r0:r1, c0:c1]
                in_component = labels[r0:r1, c0:c1] == k
                observed = ~m[r0:r1, c0:c1]
                hole_idx = (rows * w + cols)[in_component]
                obs_idx = (rows * w + cols)[observed]
                if obs_idx.size == 0:
                    continue
                factor, _ = _cholesky(cov.dense(obs_idx), floor, cov.variance)
                weights = cho_solve(factor, cov.cross(obs_idx, hole_idx), check_finite=False).T
                self.blocks[i].append((hole_idx, obs_idx, weights))
                self.covered.reshape(hole.shape[0], -1)[i, hole_idx] = True

    def apply(self, data) -> np.ndarray:
        """Patches (N, H, W) with the covered hole pixels replaced by their local conditional mean
        (every other pixel unchanged), float64."""
        d = np.array(data, dtype=np.float64)
        if d.shape != self.shape:
            raise ValueError(f"data of shape {d.shape} does not match the masks' {self.shape}")
        flat = d.reshape(d.shape[0], -1)
        for i, blocks in enumerate(self.blocks):
            for hole_idx, obs_idx, weights in blocks:
                flat[i, hole_idx] = weights @ flat[i, obs_idx]
        return d
