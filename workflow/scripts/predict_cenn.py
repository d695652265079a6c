"""Rule predict_cenn: CENN predictions for one field and split, in uK_CMB.

A joint Q/U network takes the Q and U patches of the split together and
returns both; this job keeps the field it was asked for. The patches are read
and the predictions written chunk by chunk (cenn.iter_predictions), so memory
does not grow with the number of patches.
"""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cenn")

import contextlib  # noqa: E402

import keras  # noqa: E402

from cmbnn.cenn.network import iter_predictions  # noqa: E402
from cmbnn.io import open_patches, streamed_predictions_h5  # noqa: E402

fields = list(smk.params.fields)
field, split = smk.wildcards.field, smk.wildcards.split
model = keras.models.load_model(smk.input.model)
k = fields.index(field)
with contextlib.ExitStack() as files:
    height, width, channels = model.inputs[0].shape[1:]  # the fields' channels side by side
    shape = (height, width, channels // len(fields))
    patches = [files.enter_context(open_patches(path, shape)) for path in smk.input.patches]
    n = len(patches[k]["M"])
    with streamed_predictions_h5(smk.output[0], patches[k], dict(patches[k].attrs), smk.input.patches[k], method="cenn") as write:
        for start, net in iter_predictions(model, patches, fields, smk.params.test_time_augmentation, split):
            write(start, net[..., k : k + 1])
log.info("predicted %d %s patches of %s with the %s network", n, split, field, "+".join(fields))
