"""Rule predict_cenn_planck: CENN on the real-sky Q/U patches of one data split (full, hm1, hm2),
every field in one job (the network is loaded once per model), in uK_CMB."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cenn_planck")

import keras  # noqa: E402

from cmbnn.cenn.network import predict_patch_sets  # noqa: E402
from cmbnn.io import read_patches_h5, write_predictions_h5  # noqa: E402

data_split = smk.wildcards.data
fields = list(smk.params.fields)
patches = dict(zip(fields, (read_patches_h5(path) for path in smk.input.patches)))
outputs = dict(zip(fields, smk.output))
for (name, model_fields), path in zip(smk.params.models.items(), smk.input.models):
    model = keras.models.load_model(path)
    net = predict_patch_sets(model, [patches[f][0] for f in model_fields], model_fields, smk.params.test_time_augmentation, data_split)
    for k, f in enumerate(model_fields):
        data, attrs = patches[f]
        write_predictions_h5(outputs[f], net[..., k : k + 1], data, attrs, smk.input.patches[fields.index(f)], method="cenn")
    log.info("predicted %d %s patches of %s with the %s network", len(net), data_split, "+".join(model_fields), name)
