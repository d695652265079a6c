"""Rule predict_cenn: CENN predictions for one field and split, in uK_CMB."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cenn")

import keras  # noqa: E402

from cmbnn.io import read_patches_h5, write_predictions_h5  # noqa: E402

model = keras.models.load_model(smk.input.model)
data, attrs = read_patches_h5(smk.input.patches)
net = model.predict(data["M"], batch_size=64, verbose=0)
write_predictions_h5(smk.output[0], net, data, attrs, smk.input.patches, method="cenn")
log.info("predicted %d %s patches of %s", len(net), smk.wildcards.split, smk.wildcards.field)
