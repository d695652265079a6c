"""Rule dust_imputation: fill the paper's masks (a disc, two rectangles) in test patches with the
dust VAE's MAP latent (its decoder mean, and the posterior mean of its sampler's p(x | z): the
decoder mean through its transfer plus the kriged decoder error) and with the Gaussian
conditional mean of the training patches' spectrum; coverage of the posterior std."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_imputation")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, conditional_mean, conditional_std  # noqa: E402
from cmbnn.dust import statistics as dust_stats  # noqa: E402
from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.dust.figures import plot_imputation  # noqa: E402
from cmbnn.inpainting.metrics import calibration  # noqa: E402
from cmbnn.io import atomic_output, read_h5, write_h5  # noqa: E402
from cmbnn.nn.training import limit_threads  # noqa: E402

limit_threads(smk.threads)
p = smk.params.imputation
reso = smk.params.reso_arcmin
model = dustvae.load_model(smk.input.model)
sampler = dustvae.load_sampler(smk.input.sampler)
train, _ = read_h5(smk.input.train)
test, _ = read_h5(smk.input.test)
x_train, _ = dustvae.log_standardise(train["intensity"], model.stats)
n = min(p["n_patches"], len(test["intensity"]))
truth, _ = dustvae.log_standardise(test["intensity"][:n], model.stats)
height, width = truth.shape[1:]
# The Gaussian baseline's covariance: the training patches' spectrum of standardised log I, to the
# Nyquist frequency of the patch diagonal.
lmax = int(np.ceil(np.sqrt(2) * 10800.0 / reso))
cov = FlatSkyCovariance(dust_stats.empirical_cl(x_train, reso, lmax), height, width, reso)
# The decoder's error spectrum on the training patches, its means through the sampler's transfer:
# the Gaussian part of the p(x | z) every rule that samples draws from. The transfer keeps the
# decoder's modes that do not follow the data out of the hole, where they would stand as noise.
error_cov = FlatSkyCovariance(dustvae.decoder_error_cl(model, x_train, reso, lmax, sampler=sampler), height, width, reso)


def hole_errors(pred, mask):
    """Per-patch mean squared error in the hole: standardised log I, and the rms relative intensity error."""
    hole = np.broadcast_to(mask, pred.shape)
    d = np.where(hole, pred - truth, 0.0)
    per_patch = (d**2).sum(axis=(1, 2)) / hole.sum(axis=(1, 2))
    rel = np.where(hole, np.expm1(d * model.stats["log_std"]), 0.0)
    return per_patch, np.sqrt((rel**2).sum() / hole.sum())


def coverage(pred, std, mask):
    """Fractions of hole pixels within 1 and 2 posterior std of the truth, and the z-scores' variance
    (CosmoVAE's calibration, under this table's column names)."""
    c = calibration(truth, pred, std, mask)
    return {"within_1std": c["within_1sigma"], "within_2std": c["within_2sigma"], "zscore_var": c["z_var"]}


rows, fills, masks_out = [], {}, {}
for kind, hole in dust_stats.imputation_masks(height, width, p["masks"]).items():
    mask = np.broadcast_to(hole, truth.shape).astype(np.uint8)
    observed = 1 - mask
    started = time.perf_counter()
    vae, decoded, _, before, after = dustvae.impute(model, truth, mask, sigma=p["sigma"], steps=p["steps"], learning_rate=p["learning_rate"])
    t_vae = time.perf_counter() - started
    started = time.perf_counter()
    means = dustvae.sampler_means(sampler, decoded)
    kriged, kriged_std = dustvae.krige_decoder_error(means, truth, hole, error_cov)
    t_kriged = t_vae + time.perf_counter() - started
    # What the decoder adds: the same error model kriged about a zero decoder mean.
    started = time.perf_counter()
    error_only = dustvae.krige_decoder_error(np.zeros_like(means), truth, hole, error_cov)[0]
    t_error_only = time.perf_counter() - started
    # The conditional mean of a zero-mean field, about each patch's observed mean (the prior knows
    # no patch mean: the latitude sets it).
    offset = (truth * observed).sum(axis=(1, 2), keepdims=True) / observed.sum(axis=(1, 2), keepdims=True)
    started = time.perf_counter()
    gauss = conditional_mean(truth - offset, hole, cov) + offset  # one factorisation: the mask is shared
    t_gauss = time.perf_counter() - started
    gauss_std = np.broadcast_to(conditional_std(hole, cov), truth.shape)
    fill_mean = np.where(mask, offset, truth)
    methods = (
        ("dust VAE (MAP)", vae, None, t_vae),
        ("dust VAE (MAP) + kriged decoder error", kriged, kriged_std, t_kriged),
        ("kriged decoder error alone (no decoder mean)", error_only, None, t_error_only),
        ("Gaussian conditional mean", gauss, gauss_std, t_gauss),
        ("observed mean", fill_mean, None, 0.0),
    )
    for method, pred, std, seconds in methods:
        per_patch, rel = hole_errors(pred, hole)
        covered = coverage(pred, std, hole) if std is not None else {"within_1std": np.nan, "within_2std": np.nan, "zscore_var": np.nan}
        rows.append({"mask": kind, "method": method, "hole_fraction": float(hole.mean()), "n_patches": n,
                     "mse": per_patch.mean(), "mse_sem": per_patch.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                     "rms_relative_intensity_error": rel, **covered, "seconds": seconds})
    log.info("%s mask (%.1f%% of the pixels): MAP objective %.4g -> %.4g (mean over patches)", kind, 100 * hole.mean(), before.mean(), after.mean())
    fills[kind] = {"dust VAE": vae, "dust VAE kriged": kriged, "Gaussian": gauss}
    masks_out[kind] = mask
table = pd.DataFrame(rows)
with atomic_output(smk.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
log.info("hole errors (standardised log I):\n%s", table.to_string(index=False))
write_h5(
    smk.output.predictions,
    {"truth": truth, **{f"{kind}/mask": m for kind, m in masks_out.items()},
     **{f"{kind}/{method.replace(' ', '_')}": v.astype(np.float32) for kind, f in fills.items() for method, v in f.items()}},
    {"units": "standardised log I", "log_mean": model.stats["log_mean"], "log_std": model.stats["log_std"], "sigma": p["sigma"]},
)
first = next(iter(fills))
plot_imputation(truth, masks_out[first], fills[first], smk.output.plot)
