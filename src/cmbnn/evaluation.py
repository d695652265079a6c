"""Evaluation shared by every model and baseline: the same spectra and metrics for each.

A prediction file (see :func:`cmbnn.io.write_predictions_h5`) holds ``net``,
``sim`` (label) and ``input`` (the channel at the label frequency); whatever
produced ``net`` (CENN, ILC, ...) is evaluated identically.
"""

from __future__ import annotations

import numpy as np

from .io import read_predictions_h5
from .metrics import pixel_metrics
from .powspec import FlatSpectra, bandpowers, linear_bin_edges, summarise
from .sky import gaussian_beam

def _stack(predictions: list, key: str, spin: int) -> np.ndarray:
    maps = [p[key][..., 0].astype(np.float64) for p in predictions]
    return np.stack(maps, axis=1) if spin == 2 else maps[0]


def group_spectra(group: str, height: int, width: int, reso_arcmin: float, settings: dict, workspace_file=None) -> FlatSpectra:
    """The mask, binning and (computed or read) coupling matrix of one field group's patches."""
    return FlatSpectra(
        height,
        width,
        reso_arcmin,
        linear_bin_edges(height, width, reso_arcmin, settings["n_bins"]),
        spin=2 if group == "QU" else 0,
        aposize_deg=settings["aposize_deg"],
        border_px=settings["border_px"],
        purify_b=settings["purify_b"],
        apotype=settings["apotype"],
        workspace_file=workspace_file,
    )


def group_bandpowers(group: str, cenn_files, ilc_files, spectra: FlatSpectra):
    """Bandpower table of input, label, CENN/ILC outputs, residuals and output x label.

    Returns (table, spectrum names). One mask, binning and workspace serve
    every patch and every quantity.
    """
    spin = spectra.spin
    cenn = [read_predictions_h5(f)[0] for f in cenn_files]
    ilc = [read_predictions_h5(f)[0] for f in ilc_files]
    label = _stack(cenn, "sim", spin)
    maps = {"input": _stack(cenn, "input", spin), "label": label, "cenn": _stack(cenn, "net", spin), "ilc": _stack(ilc, "net", spin)}
    maps["cenn_residual"] = maps["cenn"] - label
    maps["ilc_residual"] = maps["ilc"] - label
    bp = {name: bandpowers(spectra, m) for name, m in maps.items()}
    bp["cenn_x_label"] = bandpowers(spectra, maps["cenn"], label)
    bp["ilc_x_label"] = bandpowers(spectra, maps["ilc"], label)
    names = ["EE", "EB", "BE", "BB"] if spin == 2 else [group * 2]
    table = summarise(bp, spectra, names)
    table = table[table.spectrum != "BE"].reset_index(drop=True)
    return table, [n for n in names if n != "BE"]


def theory_bandpowers(spectra: FlatSpectra, cls: dict, beam_fwhm_arcmin: float, group: str, names) -> dict:
    """CAMB spectra times the label beam^2, coupled and binned like the data: {name: (ell, C_ell)}."""
    lmax = len(cls["TT"]) - 1
    ell = np.arange(lmax + 1, dtype=np.float64)
    beam = gaussian_beam(beam_fwhm_arcmin, lmax)
    if group == "QU":
        b2 = beam[:, 1] ** 2
        zero = np.zeros(lmax + 1)
        binned = spectra.theory(ell, [cls["EE"] * b2, zero, zero, cls["BB"] * b2])
        return {"EE": (spectra.ell, binned[0]), "BB": (spectra.ell, binned[3])}
    column = {"T": ("TT", 0), "E": ("EE", 1), "B": ("BB", 2)}[group]
    binned = spectra.theory(ell, [cls[column[0]] * beam[:, column[1]] ** 2])
    return {names[0]: (spectra.ell, binned[0])}


def metrics_table(predictions: dict, field: str, split: str):
    """One row per method (and for the raw input at the label frequency) with every pixel metric."""
    import pandas as pd

    first = next(iter(predictions.values()))
    rows = [{"method": "input (label frequency)", **pixel_metrics(first["input"], first["sim"])}]
    for method, data in predictions.items():
        rows.append({"method": method, **pixel_metrics(data["net"], data["sim"])})
    table = pd.DataFrame(rows)
    table.insert(1, "field", field)
    table.insert(2, "split", split)
    table.insert(3, "n_patches", len(first["sim"]))
    return table
