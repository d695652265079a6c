"""Flat-sky power spectra of patches with NaMaster.

The mode-coupling matrix depends only on the mask and the binning, so one
:class:`FlatSpectra` computes it once and reuses it for every patch of that
shape (the CENN code recomputed it per patch). Q/U patches are spin-2
fields with B-mode purification; scalar T, E or B patches are spin-0.
"""

from __future__ import annotations

import numpy as np

from cmbnn.io import atomic_output
from cmbnn.units import ARCMIN


def apodized_mask(height: int, width: int, reso_arcmin: float, aposize_deg: float, border_px: int = 1, apotype: str = "C1") -> np.ndarray:
    """Patch mask: zero on a border of ``border_px`` pixels, then apodised over aposize_deg."""
    import pymaster as nmt

    if border_px < 1:
        raise ValueError("border_px must be >= 1 (apodisation starts from the masked border)")
    mask = np.zeros((height, width))
    mask[border_px:-border_px, border_px:-border_px] = 1.0
    lx, ly = width * reso_arcmin * ARCMIN, height * reso_arcmin * ARCMIN
    return nmt.mask_apodization_flat(mask, lx, ly, aposize=aposize_deg, apotype=apotype)


class FlatSpectra:
    """Decoupled bandpowers of patches sharing one mask and binning.

    spin 0: maps (H, W) -> array (1, n_bins); spin 2: maps (2, H, W) = (Q, U)
    in the patch frame -> array (4, n_bins) = EE, EB, BE, BB.
    """

    # More than 8 parameters: NaMaster's own options (apodisation, purification, workspace file), named as NaMaster names them.
    def __init__(
        self, height, width, reso_arcmin, bin_edges, spin=2, aposize_deg=1.0, border_px=1, purify_b=True, apotype="C1", workspace_file=None
    ):
        import pymaster as nmt

        self.nmt = nmt
        self.spin = spin
        self.lx, self.ly = width * reso_arcmin * ARCMIN, height * reso_arcmin * ARCMIN
        self.mask = apodized_mask(height, width, reso_arcmin, aposize_deg, border_px, apotype)
        edges = np.asarray(bin_edges, dtype=np.float64)
        self.bins = nmt.NmtBinFlat(edges[:-1], edges[1:])
        self.ell = self.bins.get_effective_ells()
        self.purify_b = purify_b and spin == 2
        self.workspace = nmt.NmtWorkspaceFlat()
        if workspace_file is not None:
            # A coupling matrix computed earlier for the same mask and binning (see save()).
            self.workspace.read_from(str(workspace_file))
        else:
            template = self._field(np.zeros((2 if spin == 2 else 1, height, width)))
            self.workspace.compute_coupling_matrix(template, template, self.bins)

    def save(self, path) -> None:
        """Write the coupling matrix so other jobs with the same mask and binning can reuse it."""
        with atomic_output(path) as tmp:
            self.workspace.write_to(str(tmp))

    def _field(self, maps):
        maps = np.asarray(maps, dtype=np.float64)
        if self.spin == 0:
            maps = maps.reshape((1,) + maps.shape[-2:])
        return self.nmt.NmtFieldFlat(self.lx, self.ly, self.mask, list(maps), purify_b=self.purify_b)

    def __call__(self, maps1, maps2=None) -> np.ndarray:
        f1 = self._field(maps1)
        return self.of_fields(f1, f1 if maps2 is None else self._field(maps2))

    def field(self, maps):
        """The masked (and purified) NaMaster field of one patch. Building it costs ~20x more than
        a spectrum, so callers that need several spectra of one map build it once (:meth:`of_fields`)."""
        return self._field(maps)

    def of_fields(self, f1, f2) -> np.ndarray:
        """Decoupled bandpowers of two fields from :meth:`field`."""
        return self.workspace.decouple_cell(self.nmt.compute_coupled_cell_flat(f1, f2, self.bins))

    def theory(self, ell: np.ndarray, cls: list) -> np.ndarray:
        """Theory spectra through the same mode coupling and binning as the data.

        cls: [TT] for spin 0, [EE, EB, BE, BB] for spin 2, each over ``ell``.
        """
        return self.workspace.decouple_cell(self.workspace.couple_cell(ell, np.asarray(cls, dtype=np.float64)))


def linear_bin_edges(height: int, width: int, reso_arcmin: float, n_bins: int) -> np.ndarray:
    """n_bins equal bins from twice the patch's fundamental mode to 90% of its Nyquist multipole."""
    side = min(height, width) * reso_arcmin * ARCMIN
    ell_min = 2 * 2 * np.pi / side
    ell_max = 0.9 * np.pi / (reso_arcmin * ARCMIN)
    return np.linspace(ell_min, ell_max, n_bins + 1)


def bandpowers(spectra: FlatSpectra, maps_a: np.ndarray, maps_b: np.ndarray | None = None) -> np.ndarray:
    """Bandpowers of every patch: maps (N, [2,] H, W) -> (N, n_spectra, n_bins)."""
    out = []
    for i in range(len(maps_a)):
        out.append(spectra(maps_a[i], None if maps_b is None else maps_b[i]))
    return np.asarray(out)


def residual_bandpowers(auto_a: np.ndarray, auto_b: np.ndarray, cross_ab: np.ndarray, spin: int) -> np.ndarray:
    """Bandpowers of a - b from those of a, b and a x b, without building the field of a - b.

    Pseudo-C_ell (purified or not) are bilinear in the maps and decoupling is linear, so
    C(a-b) = C(a) + C(b) - C(a, b) - C(b, a), and C(b, a) is C(a, b) with EB and BE swapped.
    Arrays (..., 4, n_bins) = EE, EB, BE, BB for spin 2, (..., 1, n_bins) for spin 0.
    """
    cross_ba = cross_ab[..., [0, 2, 1, 3], :] if spin == 2 else cross_ab
    return auto_a + auto_b - cross_ab - cross_ba


def summarise(bandpowers_by_quantity: dict, spectra: FlatSpectra, spectrum_names: list[str]) -> "pandas.DataFrame":  # noqa: F821
    """Long table: quantity, spectrum, ell, mean and scatter over patches, error of the mean, n."""
    import pandas as pd

    rows = []
    for quantity, bp in bandpowers_by_quantity.items():
        for k, name in enumerate(spectrum_names):
            for b, ell in enumerate(spectra.ell):
                values = bp[:, k, b]
                rows.append(
                    {
                        "quantity": quantity,
                        "spectrum": name,
                        "ell": float(ell),
                        "cl_mean": float(values.mean()),
                        "cl_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                        "cl_error_of_mean": float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0,
                        "n_patches": len(values),
                    }
                )
    return pd.DataFrame(rows)
