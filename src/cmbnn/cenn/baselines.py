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

from cmbnn.analysis.flatsky import EDGE_MODES, eb_to_qu, fourier_grid, gaussian_beam_ell, merge_sparse_bins, pad_patches, qu_to_eb
from cmbnn.names import GROUP_HARMONICS
from cmbnn.units import ARCMIN


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


class HarmonicILC:
    """ILC weights per multipole bin on Fourier modes of flat patches, optionally Wiener filtered.

    Every channel is brought to the label beam (times b_label/b_nu) before the
    channel covariance of each bin is estimated from training patches; Q/U
    patches are analysed as E and B modes with separate weights, T on its own.
    The Wiener filter W = S / (S + N) uses S = C_ell b_label^2 from theory and
    N = the ILC output power per bin on the training split minus S (floored at
    zero), so it needs no labels: the linear minimum-variance estimate of the
    label given the ILC output. The fitted state is a dict of arrays
    (:meth:`state`) that :meth:`from_state` restores.

    Patches are not periodic. ``edge`` says what the FFT sees: the patch itself
    (periodic: a jump at every edge), a mirrored 2H x 2W copy, or the patch in a
    zero-padded 2H x 2W frame (the filter then never wraps around). Zero padding is
    the default: of the three it gave hilc_wiener the best validation R^2, and the bin
    width delta_ell mattered far less.
    """

    # More than 8 parameters: the patches' geometry and beams, then the estimator's options (edge, bin width, modes per bin).
    def __init__(self, group, beams_arcmin, label_beam_arcmin, reso_arcmin, height, width, edge="mirror", delta_ell=50.0, min_modes=30):
        if group not in GROUP_HARMONICS:
            raise ValueError(f"harmonic ILC works on field groups {list(GROUP_HARMONICS)}, not {group!r}")
        if edge not in EDGE_MODES:
            raise ValueError(f"edge must be one of {EDGE_MODES}, not {edge!r}")
        self.group, self.components = group, GROUP_HARMONICS[group]
        self.spin = 2 if group == "QU" else 0
        self.fields = ("Q", "U") if group == "QU" else (group,)
        # E and B (as Q/U or as scalar maps) carry the polarisation beam, T the temperature beam.
        beam_spin = 0 if group == "T" else 2
        self.beams = np.asarray(beams_arcmin, dtype=np.float64)
        self.label_beam = float(label_beam_arcmin)
        self.reso, self.height, self.width = float(reso_arcmin), int(height), int(width)
        self.edge, self.delta_ell, self.min_modes = edge, float(delta_ell), int(min_modes)
        grow = 1 if edge == "periodic" else 2
        self.ell, self.phi = fourier_grid(grow * self.height, grow * self.width, self.reso)
        # Power normalisation: |FFT|^2 * pixel area / (number of sky pixels) estimates C_ell.
        n_sky = (self.height * self.width) if edge == "zero" else self.ell.size
        self.norm = (self.reso * ARCMIN) ** 2 / n_sky
        # Channel -> label beam, per mode; a deconvolution for channels with wider beams.
        self.to_label = gaussian_beam_ell(self.label_beam, self.ell, beam_spin)[..., None] / np.stack(
            [gaussian_beam_ell(b, self.ell, beam_spin) for b in self.beams], axis=-1
        )
        self.edges = None

    # -- Fourier modes -------------------------------------------------------
    def modes(self, maps: dict, channels: bool = True) -> np.ndarray:
        """Fourier modes (n_comp, N, H', W'[, C]) of {field: (N, H, W, C)} patches; channels at the label beam."""
        ft = [np.fft.fft2(pad_patches(np.asarray(maps[f], dtype=np.float64), self.edge, odd=(f == "U")), axes=(1, 2)) for f in self.fields]
        if self.spin == 2:
            phi = self.phi[..., None]
            ft = list(qu_to_eb(ft[0], ft[1], phi))
        out = np.stack(ft)
        return out * self.to_label if channels else out[..., 0]

    def _bin_index(self) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, self.ell, side="right") - 1, 0, len(self.edges) - 2)

    # -- fitting -------------------------------------------------------------
    def fit(self, inputs: dict, labels: dict, signal_cl: dict, chunk: int = 64) -> "HarmonicILC":
        """Covariances and weights from training patches; signal_cl {component: C_ell b_label^2 from ell = 0}."""
        n = len(next(iter(inputs.values())))
        n_chan = len(self.beams)
        edges = np.arange(0.0, self.ell.max() + self.delta_ell, self.delta_ell)
        counts = np.histogram(self.ell, edges)[0] * n
        self.edges = merge_sparse_bins(edges, counts, self.min_modes * n_chan)
        idx = self._bin_index().ravel()
        n_bins = len(self.edges) - 1
        n_comp = len(self.components)
        cov = np.zeros((n_comp, n_bins, n_chan, n_chan))
        cross = np.zeros((n_comp, n_bins, n_chan))  # channel x label, diagnostics only
        label_power = np.zeros((n_comp, n_bins))
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            x = self.modes({f: v[sl] for f, v in inputs.items()})
            s = self.modes({f: v[sl] for f, v in labels.items()}, channels=False)
            x = x.reshape(n_comp, -1, idx.size, n_chan)
            s = s.reshape(n_comp, -1, idx.size)
            for c in range(n_comp):
                for i in range(n_chan):
                    cross[c, :, i] += np.bincount(idx, (x[c, ..., i] * s[c].conj()).real.sum(axis=0), n_bins)
                    for j in range(i, n_chan):
                        cov[c, :, i, j] += np.bincount(idx, (x[c, ..., i] * x[c, ..., j].conj()).real.sum(axis=0), n_bins)
                label_power[c] += np.bincount(idx, (np.abs(s[c]) ** 2).sum(axis=0), n_bins)
        modes = np.bincount(idx, minlength=n_bins) * n
        iu = np.triu_indices(n_chan, 1)
        cov[..., iu[1], iu[0]] = cov[..., iu[0], iu[1]]
        self.cov = cov * self.norm / modes[:, None, None]
        cross = cross * self.norm / modes[:, None]
        self.label_power = label_power * self.norm / modes
        self.weights = ilc_weights(self.cov)
        self.output_power = np.einsum("cbi,cbij,cbj->cb", self.weights, self.cov, self.weights)
        # Mode-averaged theory signal in each bin, exactly over the modes of that bin.
        grid_ell = self.ell.ravel()
        self.signal_cl = np.stack([np.asarray(signal_cl[c], dtype=np.float64) for c in self.components])
        s_modes = np.stack([np.interp(grid_ell, np.arange(cl.size), cl, right=0.0) for cl in self.signal_cl])
        self.signal_power = np.stack([np.bincount(idx, sm, n_bins) for sm in s_modes]) / np.bincount(idx, minlength=n_bins)
        self.noise_power = np.maximum(self.output_power - self.signal_power, 0.0)
        # The filter a label-trained per-bin linear fit would pick (<y s*>/<|y|^2>), for comparison only.
        self.empirical_filter = np.einsum("cbi,cbi->cb", self.weights, cross) / self.output_power
        self.n_modes = modes
        return self

    def wiener(self) -> np.ndarray:
        """Wiener filter (n_comp, H', W') per mode: S(ell) / (S(ell) + N(bin))."""
        s = np.stack([np.interp(self.ell, np.arange(cl.size), cl, right=0.0) for cl in self.signal_cl])
        noise = self.noise_power[:, self._bin_index()]
        total = s + noise
        return np.divide(s, total, out=np.zeros_like(s), where=total > 0)

    # -- applying ------------------------------------------------------------
    def apply(self, inputs: dict, wiener: bool = False, chunk: int = 64) -> dict:
        """{field: (N, H, W, 1)} estimates of the label from {field: (N, H, W, C)} inputs."""
        if self.edges is None:
            raise RuntimeError("fit() or from_state() first")
        n = len(next(iter(inputs.values())))
        w_modes = self.weights[:, self._bin_index()]  # (n_comp, H', W', C)
        filt = self.wiener() if wiener else None
        fields = self.fields
        out = {f: np.empty((n, self.height, self.width, 1), np.float32) for f in fields}
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            x = self.modes({f: v[sl] for f, v in inputs.items()})
            y = np.einsum("cnhwk,chwk->cnhw", x, w_modes)
            if filt is not None:
                y = y * filt[:, None]
            maps = eb_to_qu(y[0], y[1], self.phi) if self.spin == 2 else (y[0],)
            for f, m in zip(fields, maps):
                out[f][sl, ..., 0] = np.fft.ifft2(m, axes=(1, 2)).real[:, : self.height, : self.width]
        return out

    # -- storage -------------------------------------------------------------
    STATE = ("edges", "cov", "weights", "output_power", "signal_power", "noise_power", "label_power", "empirical_filter", "signal_cl", "n_modes")

    def state(self) -> tuple[dict, dict]:
        """(datasets, attributes) that :meth:`from_state` turns back into a fitted HarmonicILC."""
        attrs = {
            "group": self.group,
            "components": ",".join(self.components),
            "beams_arcmin": self.beams,
            "label_beam_arcmin": self.label_beam,
            "reso_arcmin": self.reso,
            "height": self.height,
            "width": self.width,
            "edge": self.edge,
            "delta_ell": self.delta_ell,
            "min_modes": self.min_modes,
            "units": "power per bin in uK_CMB^2 (C_ell normalisation); weights dimensionless",
        }
        return {k: getattr(self, k) for k in self.STATE}, attrs

    @classmethod
    def from_state(cls, datasets: dict, attrs: dict) -> "HarmonicILC":
        self = cls(
            attrs["group"], attrs["beams_arcmin"], attrs["label_beam_arcmin"], attrs["reso_arcmin"], attrs["height"], attrs["width"],
            edge=attrs["edge"], delta_ell=attrs["delta_ell"], min_modes=attrs["min_modes"],
        )
        for k in cls.STATE:
            setattr(self, k, np.asarray(datasets[k]))
        return self
