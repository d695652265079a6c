"""Rule planck_comparison: CENN on the real Planck sky against Commander (and SMICA) at the same
centres: NaMaster E/B bandpowers, the half-mission cross spectrum, the noise bias, the difference
map's spectrum and the ratios per bin; a table and a figure."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_comparison")

import numpy as np  # noqa: E402

from cmbnn.analysis.evaluation import group_spectra, theory_bandpowers  # noqa: E402
from cmbnn.cenn.figures import plot_planck_comparison  # noqa: E402
from cmbnn.cenn.realsky import COMPARISON_QUANTITIES, RATIOS, comparison_bandpowers, comparison_table  # noqa: E402
from cmbnn.io import atomic_output, read_h5  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
fields = list(p.fields)
spectra = group_spectra("QU", p.height, p.width, p.reso_arcmin, p.spectra, workspace_file=smk.input.workspace)


def qu(arrays):
    """(N, 2, H, W) Q/U patches from one (N, H, W, 1) array per field."""
    return np.stack([a[..., 0] for a in arrays], axis=1).astype(np.float64)


files = iter(smk.input.cenn)
cenn = {d: qu([read_h5(next(files))[0]["net"] for _ in fields]) for d in p.data}
patches = [read_h5(path)[0] for path in smk.input.patches]
centers = [pt["centers"] for pt in patches]
if not all(np.array_equal(c, centers[0]) for c in centers):
    raise ValueError("the Q and U real-sky patches are not at the same centres")
commander = qu([pt["M0"] for pt in patches])
smica = qu([pt["smica"] for pt in patches]) if "smica" in p.products else None
bandpowers = comparison_bandpowers(spectra, cenn, commander, smica)
theory = theory_bandpowers(spectra, read_cls(smk.input.cls), p.label_beam_arcmin, "QU", ["EE", "EB", "BB"])
theory_4 = np.zeros((4, len(spectra.ell)))
theory_4[0], theory_4[3] = theory["EE"][1], theory["BB"][1]
table = comparison_table(spectra, bandpowers, theory_4)
with atomic_output(smk.output.table) as tmp:
    tmp.write_text(
        f"# CENN on the real Planck sky ({len(commander)} patches outside the mask) against Planck's CMB products at the label beam.\n"
        "# value: mean over patches of the flat-sky NaMaster bandpower (C_ell, uK_CMB^2) or of the ratio; error: error of the mean.\n"
        + "".join(f"# {q}: {text}\n" for q, text in COMPARISON_QUANTITIES.items())
        + "".join(f"# {name}: mean({a}) / mean({b}) per bin\n" for name, (a, b) in RATIOS.items())
        + "# theory_lcdm: the run's C_ell x label beam^2 through the same coupling and binning.\n"
        + table.to_csv(sep="\t", index=False, float_format="%.6e")
    )
plot_planck_comparison(table, smk.output.plot, title=f"CENN on Planck vs Commander ({len(commander)} patches)")
ratio = table[(table.quantity == "ratio_cenn_hm_cross_to_commander")]
log.info("CENN half-mission cross / Commander per bin:\n%s", ratio[["spectrum", "ell", "value", "error"]].to_string(index=False))
