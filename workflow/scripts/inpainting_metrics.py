"""Rule inpainting_metrics: hole errors by hole class (all, source discs, Galactic) with bootstrap
68% intervals and the ratio to the Gaussian conditional mean, calibration of the std, and
flat-sky NaMaster TT spectra of the inpainted test patches per method (CosmoVAE, Gaussian
conditional mean, and the masked input filled with zeros or with the patch's observed mean as
trivial references; the gated CosmoVAE's network alone beside it where the small-hole route is on);
the hole power per ell of posterior samples and means against the truth's; tables and figures."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "inpainting_metrics")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.analysis.evaluation import group_spectra  # noqa: E402
from cmbnn.analysis.powspec import bandpowers, residual_bandpowers, summarise  # noqa: E402
from cmbnn.inpainting.figures import plot_hole_power, plot_inpainting_examples, plot_inpainting_spectra  # noqa: E402
from cmbnn.inpainting.metrics import SOURCE_HOLE_MAX_FRACTION, class_errors, hole_power_table, losses_to  # noqa: E402
from cmbnn.io import atomic_output, read_h5  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

p = smk.params
vae, vae_attrs = read_h5(smk.input.cosmovae)
gauss, _ = read_h5(smk.input.gaussian)
if not (np.array_equal(vae["sim"], gauss["sim"]) and np.array_equal(vae["mask"], gauss["mask"])):
    raise ValueError("CosmoVAE and Gaussian predictions are not of the same patches and masks")
truth, mask = vae["sim"][..., 0].astype(np.float64), vae["mask"].astype(bool)
observed_mean = np.array([t[~m].mean() if (~m).any() else 0.0 for t, m in zip(truth, mask)])
outputs = {
    "cosmovae": vae["net"][..., 0].astype(np.float64),
    "gaussian": gauss["net"][..., 0].astype(np.float64),
    "zeros": np.where(mask, 0.0, truth),
    "patch_mean": np.where(mask, observed_mean[:, None, None], truth),
}
if "net_network" in vae and int(vae_attrs.get("small_holes_max_pixels", 0)) > 0:  # else it is the cosmovae row
    outputs["cosmovae_network"] = vae["net_network"][..., 0].astype(np.float64)
# A floor of 1e-6 uK keeps a collapsed (zero) sample scatter from stopping the calibration: it then reads ~0.
stds = {m: np.maximum(d["std"][..., 0].astype(np.float64), 1e-6) for m, d in (("cosmovae", vae), ("gaussian", gauss))}
errors = class_errors(outputs, truth, mask, stds, reference="gaussian", rng=rng_for(p.seed, "inpainting-bootstrap"))
table = pd.DataFrame(errors)
# The trained model must beat filling its holes with zeros in every hole class (issue 19): a run
# whose network does not stops here, with the numbers in the log, and writes no tables.
if p.check_against_zero_fill and (lost := losses_to(errors, ("cosmovae", "cosmovae_network"), "zeros")):
    log.info("hole metrics:\n%s", table.to_string(index=False))
    raise ValueError("CosmoVAE does not beat filling the holes with zeros (inpainting.check_against_zero_fill): " + "; ".join(lost))
with atomic_output(smk.output.table) as tmp:
    tmp.write_text(
        "# Inpainting of the test patches, in the holes only (1 = missing pixels of cmbnn.inpainting.masks), uK_CMB, by hole class: "
        f"source = patches missing less than {SOURCE_HOLE_MAX_FRACTION:.0%} of their pixels (point-source discs), galactic = the others, all = both.\n"
        "# cosmovae: posterior mean of the composite over the latent samples (with the small-hole route, its components of <= cosmovae.small_holes.max_pixels px are the local Gaussian conditional mean); "
        "cosmovae_network: the gated network's own fill of every hole; gaussian: the conditional mean (exact for a Gaussian sky); "
        "zeros / patch_mean: holes filled with 0 or with the patch's observed mean.\n"
        "# MSE_uK2: pooled over the class's hole pixels; _lo/_hi: bootstrap 68% interval over patches; ratio: MSE / the gaussian's on the same resampled patches. "
        "Calibration: fraction of hole pixels within 1 and 2 std (68.3% / 95.4% if calibrated), variance of z = (truth - mean) / std (1).\n"
        + table.to_csv(sep="\t", index=False, float_format="%.6g")
    )
log.info("hole metrics:\n%s", table.to_string(index=False))

g = p.geometry
maps = {"cosmovae_samples": vae["samples"], "gaussian_samples": gauss["samples"]} if "samples" in vae and vae["samples"].shape[1] and gauss["samples"].shape[1] else {}
maps.update({m: outputs[m] for m in ("cosmovae", "gaussian")})
power = pd.DataFrame(hole_power_table(maps, truth, mask, g["reso_arcmin"], rng=rng_for(p.seed, "hole-power-bootstrap")))
with atomic_output(smk.output.hole_power) as tmp:
    tmp.write_text(
        "# Power of the hole-only map per ell bin (mean over the 2-D Fourier modes of |FFT(x * hole)|^2 Omega_pix / N_pix, uK^2 sr) by hole class: "
        "the truth's (truth_power) and each method's (power), pooled over the class's patches; ratio = method / truth, _lo/_hi its bootstrap 68% interval over patches.\n"
        "# *_samples: posterior samples (averaged over the kept samples; gaussian_samples are exact constrained realisations, the reference); cosmovae, gaussian: the posterior means (smoother than the sky by construction).\n"
        + power.to_csv(sep="\t", index=False, float_format="%.6g")
    )
plot_hole_power(power, smk.output.hole_power_plot, title="hole power of inpainted test patches / truth's")
log.info("hole power per ell:\n%s", power.to_string(index=False))

# Spectra: the same mask, binning and coupling matrix as the T group of the evaluation stage.
spectra = group_spectra("T", g["height"], g["width"], g["reso_arcmin"], p.spectra, workspace_file=smk.input.workspace)
n = min(len(truth), p.max_spectra_patches)
auto_t = bandpowers(spectra, truth[:n])
parts = []
for method, out in outputs.items():
    auto = bandpowers(spectra, out[:n])
    cross = bandpowers(spectra, out[:n], truth[:n])
    res = residual_bandpowers(auto, auto_t, cross, spin=0)
    s = summarise({"output": auto, "residual": res, "x_truth": cross, "truth": auto_t}, spectra, ["TT"])
    s.insert(0, "method", method)
    parts.append(s)
spec = pd.concat(parts, ignore_index=True)
with atomic_output(smk.output.spectra) as tmp:
    tmp.write_text(
        "# Flat-sky NaMaster TT bandpowers (C_ell, uK_CMB^2) of the inpainted test patches (whole patch, apodised as in results/spectra/T), "
        "their residual (inpainted - truth), cross with the truth, and the truth; mean, scatter, error of the mean over patches.\n"
        + spec.to_csv(sep="\t", index=False, float_format="%.6e")
    )
plot_inpainting_spectra(spec[spec.quantity != "x_truth"], smk.output.spectra_plot, title=f"inpainted test patches ({n})")
plot_inpainting_examples(truth, mask, outputs["cosmovae"], stds["cosmovae"], outputs["gaussian"], smk.output.plot, n=p.n_examples)
log.info("spectra of %d patches written to %s", n, smk.output.spectra)
