"""Rule hilc: harmonic ILC (method hilc) or harmonic ILC + Wiener filter (hilc_wiener) of one field and split."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "hilc")

import numpy as np  # noqa: E402

from cmbnn.cenn.baselines import HarmonicILC  # noqa: E402
from cmbnn.io import read_h5, read_patches_h5, write_predictions_h5  # noqa: E402

field, method = smk.wildcards.field, smk.wildcards.method
hilc = HarmonicILC.from_state(*read_h5(smk.input.weights))
inputs, centers, own = {}, [], None
for path in smk.input.patches:
    data, attrs = read_patches_h5(path)
    inputs[attrs["field"]] = data["M"]
    centers.append(data["centers"])
    if attrs["field"] == field:
        own, own_attrs, own_path = data, attrs, path
if not all(np.array_equal(c, centers[0]) for c in centers):
    raise ValueError(f"patch files {smk.input.patches} do not share their centres")
maps = hilc.apply(inputs, wiener=(method == "hilc_wiener"))
write_predictions_h5(smk.output[0], maps[field], own, own_attrs, own_path, method=method)
log.info("%s of %d %s patches (%s, edge %s)", method, len(maps[field]), field, smk.input.weights, hilc.edge)
