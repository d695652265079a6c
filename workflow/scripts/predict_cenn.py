"""Rule predict_cenn: CENN predictions for one field and split, in uK_CMB.

A joint Q/U network takes the Q and U patches of the split together and
returns both; this job keeps the field it was asked for.
"""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cenn")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cmbnn.cenn import predict_symmetrised  # noqa: E402
from cmbnn.io import read_patches_h5, write_predictions_h5  # noqa: E402

fields = list(smk.params.fields)
field = smk.wildcards.field
model = keras.models.load_model(smk.input.model)
patches = [read_patches_h5(path) for path in smk.input.patches]
for (data, _), f in zip(patches, fields):
    if not np.array_equal(data["centers"], patches[0][0]["centers"]):
        raise ValueError(f"{f} patches of {smk.wildcards.split} are not at the {fields[0]} centres")
inputs = np.concatenate([data["M"] for data, _ in patches], axis=-1)
if smk.params.test_time_augmentation:
    # Channels of the joint input: Q of every frequency, then U (cenn.joint_inputs).
    channel_fields = [f for f, (data, _) in zip(fields, patches) for _ in range(data["M"].shape[-1])]
    net = predict_symmetrised(model, inputs, channel_fields, fields)
else:
    net = model.predict(inputs, batch_size=64, verbose=0)
k = fields.index(field)
data, attrs = patches[k]
write_predictions_h5(smk.output[0], net[..., k : k + 1], data, attrs, smk.input.patches[k], method="cenn")
log.info("predicted %d %s patches of %s with the %s network", len(net), smk.wildcards.split, field, "+".join(fields))
