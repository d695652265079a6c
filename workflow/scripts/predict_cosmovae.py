"""Rule predict_cosmovae: CosmoVAE inpainting of the test patches: the composite's posterior mean
(`net`) and per-pixel std (`std`) over n_samples latent draws, uK_CMB."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cosmovae")


from cmbnn.inpainting import cosmovae  # noqa: E402
from cmbnn.inpainting.cosmovae import write_inpainting  # noqa: E402
from cmbnn.io import read_h5  # noqa: E402

p = smk.params
data, attrs = read_h5(smk.input.patches)
model = cosmovae.load_model(smk.input.model)
mean, std = cosmovae.inpaint(model, data["M0"], data["mask"], p.n_samples, p.seed)
write_inpainting(smk.output[0], mean, std, data, attrs, smk.input.patches, "cosmovae", {"n_samples": int(p.n_samples), "model_file": str(smk.input.model)})
log.info("inpainted %d patches with %d latent samples", len(mean), p.n_samples)
