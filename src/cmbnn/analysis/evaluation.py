"""Evaluation shared by every model and baseline: the same spectra and metrics for each.

A prediction file (see :func:`cmbnn.io.write_predictions_h5`) holds ``net``,
``sim`` (label) and ``input`` (the channel at the label frequency); whatever
produced ``net`` (CENN, ILC, ...) is evaluated identically.
"""

from __future__ import annotations

import numpy as np

from cmbnn.analysis.metrics import pixel_metrics
from cmbnn.analysis.powspec import FlatSpectra, linear_bin_edges, residual_bandpowers, summarise
from cmbnn.harmonics import gaussian_beam
from cmbnn.io import read_predictions_h5


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


def group_bandpowers(group: str, files_by_method: dict, spectra: FlatSpectra):
    """Bandpower table of input, label, and per method its output, residual and output x label.

    files_by_method: {method: [prediction file per field of the group]}.
    Returns (table, spectrum names). One mask, binning and workspace serve
    every patch, method and quantity; the quantities are ``input``, ``label``,
    ``{method}``, ``{method}_residual`` (output - label) and ``{method}_x_label``.
    """
    spin = spectra.spin
    predictions = {m: [read_predictions_h5(f)[0] for f in files] for m, files in files_by_method.items()}
    first = next(iter(predictions.values()))
    label = _stack(first, "sim", spin)
    for method, preds in predictions.items():
        # Every method must be judged on the very same patches.
        if not np.array_equal(_stack(preds, "sim", spin), label):
            raise ValueError(f"{method} predictions have other labels than {next(iter(predictions))}'s: not the same patches")
    maps = {"input": _stack(first, "input", spin), "label": label}
    maps.update({method: _stack(preds, "net", spin) for method, preds in predictions.items()})
    # One NaMaster field per map and patch (building it dominates the cost); residuals follow
    # from autos and crosses exactly (residual_bandpowers), without fields of their own.
    bp = {name: [] for name in maps}
    bp.update({f"{m}_x_label": [] for m in predictions})
    for i in range(len(label)):
        fields = {name: spectra.field(m[i]) for name, m in maps.items()}
        for name, f in fields.items():
            bp[name].append(spectra.of_fields(f, f))
        for m in predictions:
            bp[f"{m}_x_label"].append(spectra.of_fields(fields[m], fields["label"]))
    bp = {name: np.asarray(v) for name, v in bp.items()}
    for m in predictions:
        bp[f"{m}_residual"] = residual_bandpowers(bp[m], bp["label"], bp[f"{m}_x_label"], spin)
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
        lensing = spectra.theory(ell, [zero, zero, zero, cls.get("BB_lensing", cls["BB"]) * b2])
        return {"EE": (spectra.ell, binned[0]), "BB": (spectra.ell, binned[3]), "BB_lensing": (spectra.ell, lensing[3])}
    column = {"T": ("TT", 0), "E": ("EE", 1), "B": ("BB", 2)}[group]
    binned = spectra.theory(ell, [cls[column[0]] * beam[:, column[1]] ** 2])
    return {names[0]: (spectra.ell, binned[0])}


def metrics_table(predictions: dict, field: str, split: str, data_range: float):
    """One row per method (and for the raw input at the label frequency) with every pixel metric.

    data_range: the field's fixed PSNR/SSIM range from its training labels
    (:func:`cmbnn.analysis.metrics.label_data_range`), repeated in a column.
    """
    import pandas as pd

    first = next(iter(predictions.values()))
    rows = [{"method": "input (label frequency)", **pixel_metrics(first["input"], first["sim"], data_range)}]
    for method, data in predictions.items():
        if not np.array_equal(data["sim"], first["sim"]):
            raise ValueError(f"{method} predictions have other labels: not the same patches")
        rows.append({"method": method, **pixel_metrics(data["net"], data["sim"], data_range)})
    table = pd.DataFrame(rows)
    table.insert(1, "field", field)
    table.insert(2, "split", split)
    table.insert(3, "n_patches", len(first["sim"]))
    table["data_range_uK"] = data_range
    return table


def spectra_summary(table, theory: dict, methods, ell_range=(100.0, 1000.0)):
    """Per method and spectrum over bins with ell_range[0] < ell < ell_range[1]: mean transfer
    (output x label / label), max residual / lensing BB, and whether residual BB < lensing BB everywhere."""
    import pandas as pd

    rows = []
    lensing_name = "BB_lensing" if "BB_lensing" in theory else None
    for spectrum in sorted(set(table.spectrum) - {"EB"}):
        sub = table[table.spectrum == spectrum]
        label = sub[sub.quantity == "label"].set_index("ell").cl_mean
        sel = (label.index > ell_range[0]) & (label.index < ell_range[1])
        for method in methods:
            cross = sub[sub.quantity == f"{method}_x_label"].set_index("ell").cl_mean
            resid = sub[sub.quantity == f"{method}_residual"].set_index("ell").cl_mean
            resid_err = sub[sub.quantity == f"{method}_residual"].set_index("ell").cl_error_of_mean
            out = sub[sub.quantity == method].set_index("ell").cl_mean
            row = {
                "method": method,
                "spectrum": spectrum,
                "ell_min": ell_range[0],
                "ell_max": ell_range[1],
                "n_bins": int(sel.sum()),
                "transfer_mean": float(np.mean((cross / label)[sel])),
                "output_over_label_mean": float(np.mean((out / label)[sel])),
                "residual_over_label_max": float(np.max((resid / label)[sel])),
            }
            if spectrum == "BB" and lensing_name:
                ell_t, cl_t = theory[lensing_name]
                lens = np.interp(resid.index.to_numpy(), ell_t, cl_t)
                ratio = resid.to_numpy() / lens
                row["residual_over_lensing_BB_max"] = float(np.max(ratio[sel]))
                row["residual_below_lensing_BB"] = bool(np.all(ratio[sel] < 1))
                # How far below (< 0) or above lensing BB the residual is, in errors of the mean.
                z = (resid.to_numpy() - lens) / np.maximum(resid_err.to_numpy(), 1e-300)
                row["residual_minus_lensing_BB_z_max"] = float(np.max(z[sel]))
            rows.append(row)
    return pd.DataFrame(rows)
