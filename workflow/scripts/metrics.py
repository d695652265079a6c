"""Rule metrics: pixel metrics of every method for one field and split, and example patches.

PSNR and SSIM use one fixed data range per field: max - min of the training labels."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "metrics")

import h5py  # noqa: E402

from cmbnn.analysis.evaluation import metrics_table  # noqa: E402
from cmbnn.analysis.metrics import SSIM_BORDER, label_data_range  # noqa: E402
from cmbnn.cenn.figures import plot_prediction_examples  # noqa: E402
from cmbnn.io import atomic_output, read_predictions_h5  # noqa: E402
from cmbnn.plotting import method_style  # noqa: E402

field, split = smk.wildcards.field, smk.wildcards.split
methods = list(smk.params.methods)
predictions = {m: read_predictions_h5(smk.input[m])[0] for m in methods}
attrs = read_predictions_h5(smk.input[methods[0]])[1]
with h5py.File(smk.input.train, "r") as f:
    data_range = label_data_range(f["M0"][...])
table = metrics_table(predictions, field, split, data_range)
with atomic_output(smk.output.table) as tmp:
    tmp.write_text(
        f"# Pixel metrics, {field} {split} split, uK_CMB. MSE/MAE/R^2 over all pixels (R^2 pooled); PSNR and SSIM with the fixed\n"
        f"# data range {data_range:.4g} uK = max - min of the {field} training labels; SSIM (Gaussian window, sigma 1.5 px) ignores a\n"
        f"# {SSIM_BORDER}-px border; PSNR and SSIM are means over patches.\n" + table.to_csv(sep="\t", index=False, float_format="%.6g")
    )
log.info("\n%s", table.to_string(index=False))
first = predictions[methods[0]]
panels = {f"input {attrs['label_frequency_GHz']:g} GHz": first["input"], "label": first["sim"]}
for m in methods:
    name = method_style(m)[1]
    panels[name] = predictions[m]["net"]
    panels[f"{name} - label"] = predictions[m]["net"] - predictions[m]["sim"]
plot_prediction_examples(panels, smk.output.plot, n=smk.params.n, title=f"{field}, {split} split [uK_CMB]")
