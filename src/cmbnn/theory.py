"""CAMB power spectra: Planck 2018 best-fit LCDM plus a tensor-to-scalar ratio.

Spectra are C_ell (not D_ell) in uK_CMB^2, indexed from ell = 0 so that
``cl[ell]`` is the multipole ell (monopole and dipole are zero). The table
written to disk carries an explicit ``ell`` column, and the reader refuses a
table that does not start at ell = 0 or skips a multipole: the CENN code read
its CSV with the ell = 2 row as header and shifted every spectrum by 3.
"""

from __future__ import annotations

import numpy as np

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


def write_cls(path, cls: dict[str, np.ndarray], r: float) -> None:
    """Write spectra as a tab-separated table with an explicit ell column."""
    from .io import atomic_output

    ell = np.arange(len(cls["TT"]))
    names = [n for n in (*SPECTRA, "BB_lensing", "BB_tensor") if n in cls]
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        f.write("# CAMB lensed CMB power spectra, Planck 2018 best-fit LCDM, r = %g\n" % r)
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
