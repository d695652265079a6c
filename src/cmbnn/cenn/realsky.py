"""CENN on the real Planck sky compared with Commander and SMICA (rules/planck_sky.smk).

:func:`comparison_bandpowers` and :func:`comparison_table`: NaMaster E/B bandpowers of CENN's
prediction, the half-mission cross spectrum (no noise bias), the noise bias, the difference
map's spectrum and the ratio per bin. The archive maps themselves come from
:mod:`cmbnn.planck.maps`; patch centres clear of a mask from :func:`cmbnn.patches.sets.centers_in_mask`.
"""

from __future__ import annotations

import logging

import numpy as np

from cmbnn.analysis.powspec import residual_bandpowers

log = logging.getLogger(__name__)


# Quantities of the real-sky comparison (per patch, spin-2 bandpowers EE, EB, BE, BB).
COMPARISON_QUANTITIES = {
    "cenn": "CENN on the full-mission maps (auto spectrum: CMB + residual foregrounds + noise)",
    "cenn_hm_cross": "CENN on half mission 1 x CENN on half mission 2 (no noise bias)",
    "noise_bias": "cenn - cenn_hm_cross: the noise power in CENN's full-mission output",
    "commander": "Commander CMB at the label beam (auto spectrum, includes its own noise)",
    "smica": "SMICA CMB at the label beam (auto spectrum, includes its own noise)",
    "cenn_x_commander": "CENN (full) x Commander",
    "cenn_minus_commander": "spectrum of the difference map CENN (full) - Commander",
}


def comparison_bandpowers(spectra, cenn: dict, commander: np.ndarray, smica: np.ndarray | None = None) -> dict:
    """Per-patch bandpowers (N, 4, n_bins) of every :data:`COMPARISON_QUANTITIES` entry.

    ``spectra``: a spin-2 :class:`cmbnn.analysis.powspec.FlatSpectra`; ``cenn``: {'full', 'hm1',
    'hm2': (N, 2, H, W) Q/U patches}; ``commander``/``smica``: (N, 2, H, W) at the same
    centres. Each map's NaMaster field is built once and reused for all its spectra.
    """
    out = {q: [] for q in COMPARISON_QUANTITIES if q != "smica" or smica is not None}
    for i in range(len(commander)):
        f_full, f_1, f_2 = (spectra.field(cenn[k][i]) for k in ("full", "hm1", "hm2"))
        f_com = spectra.field(commander[i])
        out["cenn"].append(spectra.of_fields(f_full, f_full))
        out["cenn_hm_cross"].append(spectra.of_fields(f_1, f_2))
        out["commander"].append(spectra.of_fields(f_com, f_com))
        out["cenn_x_commander"].append(spectra.of_fields(f_full, f_com))
        if smica is not None:
            f_smica = spectra.field(smica[i])
            out["smica"].append(spectra.of_fields(f_smica, f_smica))
    out = {k: np.asarray(v) for k, v in out.items() if v}
    out["noise_bias"] = out["cenn"] - out["cenn_hm_cross"]
    out["cenn_minus_commander"] = residual_bandpowers(out["cenn"], out["commander"], out["cenn_x_commander"], spin=2)
    return out


def ratio_of_means(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mean(a) / mean(b) over patches (axis 0) and its error from the patches' scatter (delta method,
    keeping the a-b covariance: both are measured on the same patches)."""
    n = a.shape[0]
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    r = ma / mb
    if n < 2:
        return r, np.full_like(r, np.nan)
    da, db = a - ma, b - mb
    var = (da**2).sum(0) / (n - 1) / ma**2 + (db**2).sum(0) / (n - 1) / mb**2 - 2 * (da * db).sum(0) / (n - 1) / (ma * mb)
    return r, np.abs(r) * np.sqrt(np.maximum(var, 0.0) / n)


RATIOS = {
    "ratio_cenn_hm_cross_to_commander": ("cenn_hm_cross", "commander"),
    "ratio_cenn_x_commander_to_commander": ("cenn_x_commander", "commander"),
    "ratio_smica_to_commander": ("smica", "commander"),
}


def comparison_table(spectra, bandpowers: dict, theory: np.ndarray | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Long table (quantity, spectrum EE/BB, ell, value, error of the mean, n_patches): bandpower means,
    the ratios of :data:`RATIOS` per bin, and (``theory`` (4, n_bins) coupled like the data) the theory."""
    import pandas as pd

    names = {0: "EE", 3: "BB"}
    rows = []

    def add(quantity, values, errors, n):
        for k, name in names.items():
            for b, ell in enumerate(spectra.ell):
                rows.append({"quantity": quantity, "spectrum": name, "ell": float(ell), "value": float(values[k, b]), "error": float(errors[k, b]), "n_patches": n})

    for quantity, bp in bandpowers.items():
        n = len(bp)
        err = bp.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(bp.shape[1:])
        add(quantity, bp.mean(axis=0), err, n)
    for name, (a, b) in RATIOS.items():
        if a in bandpowers and b in bandpowers:
            r, err = ratio_of_means(bandpowers[a], bandpowers[b])
            add(name, r, err, len(bandpowers[a]))
    if theory is not None:
        add("theory_lcdm", np.asarray(theory), np.zeros_like(theory), 0)
    return pd.DataFrame(rows)
