"""Rule cosmovae_fullsky: inpaint the full-sky check's patches with CosmoVAE and with the Gaussian
conditional mean, reassemble both to HEALPix (cmbnn.patches.reassembly) and compare their anafast spectra
with the truth."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "cosmovae_fullsky")

import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, conditional_mean  # noqa: E402
from cmbnn.inpainting import gated  # noqa: E402
from cmbnn.inpainting.figures import plot_fullsky_inpainting  # noqa: E402
from cmbnn.io import atomic_output, read_h5, write_maps_fits  # noqa: E402
from cmbnn.patches import reassembly  # noqa: E402
from cmbnn.sky.simulate import lmax_for  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
g = p.geometry
nside, lmax = p.nside, lmax_for(p.nside)
truth, region, sky_mask = hp.read_map(smk.input.maps, field=None)
region = region.astype(np.uint8)
data, attrs = read_h5(smk.input.patches)
center, centers = attrs["center_deg"], data["centers"]
model = gated.load_model(smk.input.model)
cov = FlatSkyCovariance(read_cls(smk.input.cls)["TT"], g["height"], g["width"], g["reso_arcmin"], beam_fwhm_arcmin=p.beam_fwhm_arcmin, pixwin_nside=p.pixwin_nside)
vae_mean, _ = gated.posterior(p.model, model, data["M0"], data["mask"], cov, p.n_samples, p.seed, small_holes=p.small_holes)
gauss_mean = conditional_mean(data["M0"], data["mask"], cov, method=p.gaussian_method)
maps = {"truth": truth}
uncovered = {}
for name, inpainted in (("cosmovae", vae_mean), ("gaussian", gauss_mean)):
    result = reassembly.reassemble(nside, centers, inpainted, g["height"], g["width"], g["reso_arcmin"], base_map=truth, mask=region)
    maps[name] = result.map
    uncovered[name] = int(result.uncovered.size)
header = [("LONC", float(center[0]), "region centre lon deg"), ("LATC", float(center[1]), "region centre lat deg"), ("RADIUS", float(attrs["radius_deg"]), "deg")]
write_maps_fits(
    smk.output.maps,
    [maps["truth"], region.astype(np.float32), maps["cosmovae"], maps["gaussian"]],
    ["TRUTH", "MASK", "COSMOVAE", "GAUSSIAN"],
    units=["uK_CMB", "1 = inpainted", "uK_CMB", "uK_CMB"],
    extra_header=header,
)
spectra = {"truth": hp.anafast(truth, lmax=lmax)}
for name in ("cosmovae", "gaussian"):
    spectra[name] = hp.anafast(maps[name], lmax=lmax)
for name in ("cosmovae", "gaussian"):
    spectra[f"{name}_residual"] = hp.anafast(maps[name] - truth, lmax=lmax)
table = pd.DataFrame({"ell": np.arange(lmax + 1), **{f"cl_{k}": v for k, v in spectra.items()}})
with atomic_output(smk.output.spectra) as tmp:
    with open(tmp, "w") as f:
        f.write(
            f"# anafast C_ell (uK_CMB^2, from ell = 0) of the full-sky truth (CMB at the label beam, realisation {smk.wildcards.realisation}), of the maps with the "
            f"{int(region.sum())} masked pixels of a {attrs['radius_deg']} deg disc about ({center[0]:.2f}, {center[1]:.2f}) inpainted by each method from "
            f"{len(centers)} reassembled patches, and of (inpainted - truth). Uncovered masked pixels: {uncovered}.\n"
        )
        table.to_csv(f, sep="\t", index=False, float_format="%.6e")
hole = region > 0
fills = {"cosmovae": maps["cosmovae"][hole], "gaussian": maps["gaussian"][hole], "zeros": np.zeros(int(hole.sum()))}
errors = pd.DataFrame(
    [{"method": name, "rms_error_uK": float(np.sqrt(np.mean((fill - truth[hole]) ** 2))), "n_pixels": int(hole.sum())} for name, fill in fills.items()]
)
with atomic_output(smk.output.errors) as tmp:
    tmp.write_text(
        f"# rms error (uK_CMB) over the {int(hole.sum())} masked pixels of the reassembled disc (realisation {smk.wildcards.realisation}): "
        "each method's map against the truth; zeros = the holes left at 0 (its error is the truth's rms there).\n"
        + errors.to_csv(sep="\t", index=False, float_format="%.4f")
    )
log.info("rms errors in the region's holes:\n%s", errors.to_string(index=False))
side_deg = 2.6 * float(attrs["radius_deg"])
plot_fullsky_inpainting(maps, region, spectra, smk.output.plot, rot=(float(center[0]), float(center[1])), xsize=400, reso_arcmin=side_deg * 60 / 400)
