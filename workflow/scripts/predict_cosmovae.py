"""Rule predict_cosmovae: CosmoVAE inpainting of the test patches: the composite's posterior mean
(`net`) and per-pixel std (`std`) over n_samples latent draws, uK_CMB (the gated model's latent:
CMB prior realisations on the patch, hence the theory spectra). The gated model also writes the
network's own fill (`net_network`: every hole from the network, none from the small-hole route)
and the first kept_samples posterior samples (`samples`, N x S x H x W)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "predict_cosmovae")

import numpy as np  # noqa: E402

from cmbnn.analysis.gaussian_field import FlatSkyCovariance  # noqa: E402
from cmbnn.inpainting import gated  # noqa: E402
from cmbnn.inpainting.cosmovae import write_inpainting  # noqa: E402
from cmbnn.io import read_h5  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
g = p.geometry
data, attrs = read_h5(smk.input.patches)
model = gated.load_model(smk.input.model)
cov = FlatSkyCovariance(read_cls(smk.input.cls)["TT"], g["height"], g["width"], g["reso_arcmin"], beam_fwhm_arcmin=p.beam_fwhm_arcmin, pixwin_nside=p.pixwin_nside)
extra = {}
if p.model == "gated":
    mean, std, samples = gated.inpaint(model, data["M0"], data["mask"], cov, p.n_samples, p.seed, small_holes=p.small_holes, keep_samples=p.kept_samples)
    observed, hole = data["M0"][..., 0].astype(np.float64), data["mask"].astype(bool)
    extra = {"net_network": np.where(hole, gated.fill(model, observed, hole), observed)[..., None].astype(np.float32), "samples": samples}
else:
    mean, std = gated.posterior(p.model, model, data["M0"], data["mask"], cov, p.n_samples, p.seed)
write_inpainting(
    smk.output[0], mean, std, data, attrs, smk.input.patches, "cosmovae",
    {"n_samples": int(p.n_samples), "model_file": str(smk.input.model), "model": p.model, "small_holes_max_pixels": int(p.small_holes.get("max_pixels", 0)) if p.model == "gated" else 0},
    extra,
)
log.info("inpainted %d patches with %d latent samples (%s model)", len(mean), p.n_samples, p.model)
