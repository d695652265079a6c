"""Rule metrics: pixel metrics of CENN and ILC for one field and split, and example patches."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "metrics")

from cmbnn.evaluation import metrics_table  # noqa: E402
from cmbnn.io import atomic_output, read_predictions_h5  # noqa: E402
from cmbnn.plots import plot_prediction_examples  # noqa: E402

cenn, attrs = read_predictions_h5(smk.input.cenn)
ilc, _ = read_predictions_h5(smk.input.ilc)
table = metrics_table({"cenn": cenn, "ilc": ilc}, smk.wildcards.field, smk.wildcards.split)
with atomic_output(smk.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
log.info("\n%s", table.to_string(index=False))
panels = {
    f"input {attrs['label_frequency_GHz']:g} GHz": cenn["input"],
    "label": cenn["sim"],
    "CENN": cenn["net"],
    "CENN - label": cenn["net"] - cenn["sim"],
    "ILC": ilc["net"],
    "ILC - label": ilc["net"] - ilc["sim"],
}
plot_prediction_examples(panels, smk.output.plot, n=smk.params.n, title=f"{smk.wildcards.field}, {smk.wildcards.split} split [uK_CMB]")
