"""Rule predict_cenn: CENN predictions for one field and split, in uK_CMB.

A joint Q/U network takes the Q and U patches of the split together and
returns both; this job keeps the field it was asked for.
"""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cenn")

import keras  # noqa: E402

from cmbnn.cenn import predict_patch_sets  # noqa: E402
from cmbnn.io import read_patches_h5, write_predictions_h5  # noqa: E402

fields = list(smk.params.fields)
field, split = smk.wildcards.field, smk.wildcards.split
model = keras.models.load_model(smk.input.model)
patches = [read_patches_h5(path) for path in smk.input.patches]
net = predict_patch_sets(model, [data for data, _ in patches], fields, smk.params.test_time_augmentation, split)
k = fields.index(field)
data, attrs = patches[k]
write_predictions_h5(smk.output[0], net[..., k : k + 1], data, attrs, smk.input.patches[k], method="cenn")
log.info("predicted %d %s patches of %s with the %s network", len(net), split, field, "+".join(fields))
