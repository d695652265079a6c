"""Rule spectra: NaMaster bandpowers of input, label, outputs and residuals for one field group and split."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "spectra")

import pandas as pd  # noqa: E402

from cmbnn.evaluation import group_bandpowers, group_spectra, theory_bandpowers  # noqa: E402
from cmbnn.io import atomic_output  # noqa: E402
from cmbnn.plots import plot_spectra_comparison  # noqa: E402
from cmbnn.theory import read_cls  # noqa: E402

group = smk.wildcards.group
p = smk.params
spectra = group_spectra(group, p.height, p.width, p.reso_arcmin, p.spectra, workspace_file=smk.input.workspace)
table, names = group_bandpowers(group, list(smk.input.cenn), list(smk.input.ilc), spectra)
theory = theory_bandpowers(spectra, read_cls(smk.input.cls), p.label_beam_arcmin, group, names)
theory_rows = pd.DataFrame(
    [
        {"quantity": "theory", "spectrum": name, "ell": e, "cl_mean": c, "cl_std": 0.0, "cl_error_of_mean": 0.0, "n_patches": 0}
        for name, (ell, cl) in theory.items()
        for e, c in zip(ell, cl)
    ]
)
table = pd.concat([table, theory_rows], ignore_index=True)
with atomic_output(smk.output.table) as tmp:
    tmp.write_text(
        "# Flat-sky NaMaster bandpowers (C_ell, uK_CMB^2) per patch: mean, scatter and error of the mean over patches.\n"
        "# theory = CAMB x label beam^2 through the same mask, coupling and binning.\n"
        + table.to_csv(sep="\t", index=False, float_format="%.6e")
    )
plot_spectra_comparison(table, theory, [n for n in names if n != "EB"], smk.output.plot, title=f"{smk.wildcards.split} split")
log.info("bandpowers of %d patches written to %s", int(table.n_patches.max()), smk.output.table)
