"""Rule cosmovae_fullsky: tile the masked part of a disc of one realisation's CMB sky (label
beam) with overlapping patches, inpaint them with CosmoVAE and with the Gaussian conditional
mean, reassemble both to HEALPix (cmbnn.reassembly) and compare their anafast spectra with the truth."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "cosmovae_fullsky")

import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn import cosmovae, masks, reassembly  # noqa: E402
from cmbnn.gaussian_field import FlatSkyCovariance, conditional_mean  # noqa: E402
from cmbnn.io import atomic_output, read_alm_h5, write_maps_fits  # noqa: E402
from cmbnn.patches import fields_from_alm  # noqa: E402
from cmbnn.plots_inpainting import plot_fullsky_inpainting  # noqa: E402
from cmbnn.projection import patch_geometry  # noqa: E402
from cmbnn.simulate import label_alm, lmax_for  # noqa: E402
from cmbnn.theory import read_cls  # noqa: E402

p = smk.params
g, fs = p.geometry, p.fullsky
nside, lmax = p.nside, lmax_for(p.nside)
cmb, _ = read_alm_h5(smk.input.cmb)
label = label_alm(cmb, p.freqs, p.label_frequency, p.observation, nside)
truth = hp.alm2map(np.ascontiguousarray(label[0]), nside, lmax=lmax)
sky_mask = hp.read_map(smk.input.mask, field=0).astype(np.uint8)
center = fs["center_deg"]
if center is None:
    center = masks.busiest_disc(sky_mask, fs["radius_deg"], p.lat_cut_deg, target_fraction=fs["target_fraction"])
disc = np.zeros_like(sky_mask)
disc[hp.query_disc(nside, hp.ang2vec(center[0], center[1], lonlat=True), np.radians(fs["radius_deg"]))] = 1
region = sky_mask * disc
log.info("region: disc of %.1f deg about (%.2f, %.2f), %d masked pixels (%.1f%% of the disc)", fs["radius_deg"], *center, region.sum(), 100 * region.sum() / disc.sum())
centers = reassembly.tile_centers(region, g["height"], g["width"], g["reso_arcmin"], overlap=fs["overlap"], max_patches=fs["max_patches"])
# The patches see every hole of the sky mask; only the region's holes are put back on the sphere.
# Truth patches evaluated exactly from the alm at the patch pixels (as the patch stage cuts them: nearest-pixel
# samples of the map would be piecewise constant, a field the Gaussian covariance does not describe); masks by nearest pixel.
_, patch_masks = reassembly.cut_patches(truth, sky_mask, centers, g["height"], g["width"], g["reso_arcmin"])
theta, phi, psi = patch_geometry(centers, g["height"], g["width"], g["reso_arcmin"])
patches = fields_from_alm(["T"], label, lmax, theta, phi, psi, smk.threads)["T"].astype(np.float32)
log.info("%d patches, hole fraction %.3f", len(centers), patch_masks.mean())
model = cosmovae.load_model(smk.input.model)
vae_mean, _ = cosmovae.inpaint(model, patches, patch_masks, p.n_samples, p.seed)
cov = FlatSkyCovariance(read_cls(smk.input.cls)["TT"], g["height"], g["width"], g["reso_arcmin"], beam_fwhm_arcmin=p.beam_fwhm_arcmin, pixwin_nside=p.pixwin_nside)
gauss_mean = conditional_mean(patches, patch_masks, cov, method=p.gaussian_method)
maps = {"truth": truth}
uncovered = {}
for name, inpainted in (("cosmovae", vae_mean), ("gaussian", gauss_mean)):
    result = reassembly.reassemble(nside, centers, inpainted, g["height"], g["width"], g["reso_arcmin"], base_map=truth, mask=region)
    maps[name] = result.map
    uncovered[name] = int(result.uncovered.size)
write_maps_fits(
    smk.output.maps,
    [maps["truth"], region.astype(np.float32), maps["cosmovae"], maps["gaussian"]],
    ["TRUTH", "MASK", "COSMOVAE", "GAUSSIAN"],
    units=["uK_CMB", "1 = inpainted", "uK_CMB", "uK_CMB"],
    extra_header=[("LONC", float(center[0]), "region centre lon deg"), ("LATC", float(center[1]), "region centre lat deg"), ("RADIUS", float(fs["radius_deg"]), "deg")],
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
            f"# anafast C_ell (uK_CMB^2, from ell = 0) of the full-sky truth (CMB at the label beam, realisation {fs['realisation']}), of the maps with the "
            f"{int(region.sum())} masked pixels of a {fs['radius_deg']} deg disc about ({center[0]:.2f}, {center[1]:.2f}) inpainted by each method from "
            f"{len(centers)} reassembled patches, and of (inpainted - truth). Uncovered masked pixels: {uncovered}.\n"
        )
        table.to_csv(f, sep="\t", index=False, float_format="%.6e")
hole = region > 0
for name in ("cosmovae", "gaussian"):
    log.info("%s: rms error in the region's holes %.3f uK (truth rms there %.3f uK)", name, np.sqrt(np.mean((maps[name][hole] - truth[hole]) ** 2)), truth[hole].std())
side_deg = 2.6 * fs["radius_deg"]
plot_fullsky_inpainting(maps, region, spectra, smk.output.plot, rot=(center[0], center[1]), xsize=400, reso_arcmin=side_deg * 60 / 400)
