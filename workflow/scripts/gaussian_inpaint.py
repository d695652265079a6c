"""Rule gaussian_inpaint: the exact Gaussian baseline: conditional mean (`net`) and std (`std`) of
the holes given the observed pixels, from CAMB TT x label beam^2, uK_CMB, and kept_samples
constrained realisations per patch (`samples`, N x S x H x W: exact posterior draws, the
reference for CosmoVAE's samples). The HEALPix pixel window
enters only for patches cut from pixelised maps (patches.method pixel): exactly evaluated patches
(the default) have none."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "gaussian_inpaint")

import numpy as np  # noqa: E402

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, conditional_mean, conditional_std, constrained_realisation  # noqa: E402
from cmbnn.inpainting.cosmovae import write_inpainting  # noqa: E402
from cmbnn.io import read_h5  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
data, attrs = read_h5(smk.input.patches)
g = p.geometry
cov = FlatSkyCovariance(read_cls(smk.input.cls)["TT"], g["height"], g["width"], g["reso_arcmin"], beam_fwhm_arcmin=p.beam_fwhm_arcmin, pixwin_nside=p.pixwin_nside)
truth = data["M0"][..., 0].astype(np.float64)
mean = conditional_mean(truth, data["mask"], cov, method=p.method_mean)
std = conditional_std(data["mask"], cov, method=p.method_std)
k = int(p.kept_samples)
# One call for all draws: patches sharing a mask share one factorisation.
samples = np.zeros((len(truth), k) + truth.shape[1:], dtype=np.float32)
if k:
    draws = constrained_realisation(np.repeat(truth, k, axis=0), np.repeat(data["mask"], k, axis=0), cov, rng_for(p.seed, "gaussian-samples"), method=p.method_mean)
    samples[:] = draws.reshape(samples.shape)
write_inpainting(
    smk.output[0], mean[..., None], std[..., None], data, attrs, smk.input.patches, "gaussian",
    {"n_kept_samples": k, "covariance": f"CAMB TT x beam {p.beam_fwhm_arcmin} arcmin" + (f" x pixel window nside {p.pixwin_nside}" if p.pixwin_nside else " (no pixel window: exactly evaluated patches)") + ", flat-sky separations", "pixel_variance_uK2": cov.variance},
    {"samples": samples},
)
log.info("conditional mean and std of %d patches (pixel rms of the model %.2f uK)", len(mean), np.sqrt(cov.variance))
