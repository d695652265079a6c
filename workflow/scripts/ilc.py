"""Rule ilc: per-patch pixel-space ILC of one field and split (the classical baseline)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "ilc")

from cmbnn.cenn.baselines import ilc  # noqa: E402
from cmbnn.io import read_patches_h5, write_predictions_h5  # noqa: E402

data, attrs = read_patches_h5(smk.input.patches)
maps, weights = ilc(data["M"])
write_predictions_h5(smk.output[0], maps, data, attrs, smk.input.patches, method="ilc", extra={"weights": weights})
log.info("ILC of %d patches; mean weights %s", len(maps), weights.mean(axis=0).round(3).tolist())
