"""Rule spectra: NaMaster bandpowers of input, label and every method's output, residual and
output x label for one field group and split; the spectra figure, the transfer/residual figure
with every method, and a summary of the residual-BB aim."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "spectra")

import pandas as pd  # noqa: E402

from cmbnn.analysis.evaluation import group_bandpowers, group_spectra, spectra_summary, theory_bandpowers  # noqa: E402
from cmbnn.cenn.figures import plot_spectra_comparison, plot_transfer_residuals  # noqa: E402
from cmbnn.io import atomic_output  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

group, split = smk.wildcards.group, smk.wildcards.split
p = smk.params
methods = list(p.methods)
spectra = group_spectra(group, p.height, p.width, p.reso_arcmin, p.spectra, workspace_file=smk.input.workspace)
table, names = group_bandpowers(group, {m: list(smk.input[m]) for m in methods}, spectra)
theory = theory_bandpowers(spectra, read_cls(smk.input.cls), p.label_beam_arcmin, group, names)
theory_rows = pd.DataFrame(
    [
        {
            # Lensing BB (r = 0 makes it the whole BB) is its own quantity for the residual aim.
            "quantity": "theory_lensing" if name == "BB_lensing" else "theory",
            "spectrum": "BB" if name == "BB_lensing" else name,
            "ell": e,
            "cl_mean": c,
            "cl_std": 0.0,
            "cl_error_of_mean": 0.0,
            "n_patches": 0,
        }
        for name, (ell, cl) in theory.items()
        for e, c in zip(ell, cl)
    ]
)
table = pd.concat([table, theory_rows], ignore_index=True)
with atomic_output(smk.output.table) as tmp:
    tmp.write_text(
        "# Flat-sky NaMaster bandpowers (C_ell, uK_CMB^2) per patch: mean, scatter and error of the mean over patches.\n"
        f"# methods: {', '.join(methods)}; per method: output, {{method}}_residual (output - label), {{method}}_x_label (cross with the label).\n"
        "# theory = CAMB x label beam^2 through the same mask, coupling and binning; theory_lensing = its lensing BB.\n"
        + table.to_csv(sep="\t", index=False, float_format="%.6e")
    )
plot_spectra_comparison(table, theory, [n for n in names if n != "EB"], smk.output.plot, title=f"{split} split", methods=methods)
ell_range = tuple(p.aim_ell_range)
plot_transfer_residuals(table, theory, methods, smk.output.transfer_plot, title=f"{group}, {split} split", ell_range=ell_range)
summary = spectra_summary(table, theory, methods, ell_range)
with atomic_output(smk.output.summary) as tmp:
    tmp.write_text(
        f"# Per method, over the bins with {ell_range[0]:g} < ell < {ell_range[1]:g}: mean transfer (output x label / label),\n"
        "# mean output / label power, max residual / label power, and for BB the max residual / lensing BB x beam^2\n"
        "# (the aim: residual BB below lensing BB in every bin).\n" + summary.to_csv(sep="\t", index=False, float_format="%.4g")
    )
log.info("bandpowers of %d patches written to %s\n%s", int(table.n_patches.max()), smk.output.table, summary.to_string(index=False))
