"""CAMB power spectra: Planck 2018 best-fit LCDM plus a tensor-to-scalar ratio.

Spectra are C_ell (not D_ell) in uK_CMB^2, indexed from ell = 0 so that
``cl[ell]`` is the multipole ell (monopole and dipole are zero). The table
written to disk carries an explicit ``ell`` column, and the reader refuses a
table that does not start at ell = 0 or skips a multipole: the CENN code read
its CSV with the ell = 2 row as header and shifted every spectrum by 3.
"""

from __future__ import annotations

import numpy as np

from cmbnn.io import atomic_output
from cmbnn.planck.archive import read_planck_theory

SPECTRA = ("TT", "EE", "BB", "TE")

# Planck 2018 TT,TE,EE+lowE+lensing best fit (Planck 2018 VI, Table 2).
PLANCK2018 = {
    "H0": 67.36,
    "ombh2": 0.02237,
    "omch2": 0.1200,
    "tau": 0.0544,
    "As": 2.0989e-9,  # ln(10^10 As) = 3.044
    "ns": 0.9649,
    "mnu": 0.06,
}

# CAMB is inaccurate in its last few hundred multipoles: compute beyond what we keep.
LMAX_MARGIN = 300


def camb_spectra(lmax: int, r: float = 0.0, cosmology: dict | None = None) -> dict[str, np.ndarray]:
    """Lensed scalar + tensor C_ell (uK^2, ell = 0..lmax) and the pieces they come from.

    Returns a dict with keys TT, EE, BB, TE (total lensed spectra) and
    ``BB_lensing`` / ``BB_tensor`` for the two contributions to BB.
    """
    import camb

    if r < 0:
        raise ValueError(f"tensor-to-scalar ratio r must be >= 0, got {r}")
    params = dict(PLANCK2018)
    params.update(cosmology or {})
    pars = camb.set_params(
        **params,
        r=r,
        WantTensors=r > 0,
        lmax=lmax + LMAX_MARGIN,
        lens_potential_accuracy=1,
    )
    results = camb.get_results(pars)
    powers = results.get_cmb_power_spectra(pars, CMB_unit="muK", raw_cl=True, lmax=lmax)
    total = powers["total"]
    out = {name: np.ascontiguousarray(total[: lmax + 1, i]) for i, name in enumerate(SPECTRA)}
    out["BB_lensing"] = np.ascontiguousarray(powers["lensed_scalar"][: lmax + 1, 2])
    out["BB_tensor"] = np.ascontiguousarray(powers["tensor"][: lmax + 1, 2])
    for cl in out.values():
        cl[:2] = 0.0
    return out


def planck_pr3_spectra(path, lmax: int, r: float = 0.0) -> dict[str, np.ndarray]:
    """Lensed C_ell (uK^2, ell = 0..lmax) from the Planck PR3 minimum-theory file.

    The file (``COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt``)
    holds D_ell of the Planck 2018 best-fit LCDM, lensed, from ell = 2 (read
    with :func:`cmbnn.planck.archive.read_planck_theory`). Its BB column is lensing
    BB only (no tensors), so ``BB_lensing`` = BB and ``BB_tensor`` = 0, and
    only ``r = 0`` is accepted: the file carries no tensor spectrum to scale.
    A file ending below ``lmax`` is refused (ValueError) rather than padded
    with zeros: a zero tail would silently remove small-scale CMB power from
    the simulations (the PR3 file ends at ell = 2508, enough for nside <= 836;
    use ``theory.source: camb`` above that).
    """
    if r != 0:
        raise ValueError(
            f"theory.source planck_pr3: the PR3 minimum-theory file has no tensor spectrum, so r must be 0 (got r = {r}); "
            "use theory.source: camb for r > 0"
        )
    table = read_planck_theory(path)
    missing = [n for n in SPECTRA if n not in table]
    if missing:
        raise ValueError(f"{path}: no {missing} column(s) (found {sorted(table)})")
    file_lmax = len(table["TT"]) - 1
    if file_lmax < lmax:
        raise ValueError(
            f"{path}: spectra end at ell = {file_lmax}, the simulation needs ell up to {lmax} (3 nside - 1); "
            "refusing to pad with zeros (it would remove small-scale power): lower nside or use theory.source: camb"
        )
    out = {n: np.ascontiguousarray(table[n][: lmax + 1], dtype=np.float64) for n in SPECTRA}
    out["BB_lensing"] = out["BB"].copy()
    out["BB_tensor"] = np.zeros(lmax + 1)
    for cl in out.values():
        cl[:2] = 0.0
    return out


def write_cls(path, cls: dict[str, np.ndarray], r: float, source: str | None = None) -> None:
    """Write spectra as a tab-separated table with an explicit ell column.

    ``source``: the first header line (default: the CAMB Planck 2018 line).
    """
    ell = np.arange(len(cls["TT"]))
    names = [n for n in (*SPECTRA, "BB_lensing", "BB_tensor") if n in cls]
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        if source is None:
            f.write("# CAMB lensed CMB power spectra, Planck 2018 best-fit LCDM, r = %g\n" % r)
        else:
            f.write("# %s\n" % source.replace("\n", " "))
        f.write("# C_ell (not D_ell) in uK_CMB^2; rows start at ell = 0 (monopole and dipole are 0)\n")
        f.write("\t".join(["ell", *names]) + "\n")
        for i in ell:
            f.write("\t".join([str(i), *(f"{cls[n][i]:.10e}" for n in names)]) + "\n")


def read_cls(path) -> dict[str, np.ndarray]:
    """Read a table written by :func:`write_cls`, checking the ell column."""
    import pandas as pd

    table = pd.read_csv(path, sep="\t", comment="#")
    if "ell" not in table.columns:
        raise ValueError(f"{path}: spectra table has no 'ell' column (columns: {list(table.columns)})")
    ell = table["ell"].to_numpy()
    if ell[0] != 0 or np.any(np.diff(ell) != 1):
        raise ValueError(f"{path}: the ell column must run 0, 1, 2, ... without gaps (starts at {ell[0]})")
    return {name: table[name].to_numpy(dtype=np.float64) for name in table.columns if name != "ell"}


def dl_from_cl(cl: np.ndarray) -> np.ndarray:
    """D_ell = ell (ell + 1) C_ell / 2 pi."""
    ell = np.arange(len(cl))
    return ell * (ell + 1) * cl / (2 * np.pi)
