"""Rule inpainting_fullsky_patches: the full-sky check's inputs: the CMB at the label beam on the
sphere, the region to inpaint (the sky mask inside a disc) and overlapping patches tiling it
(truth evaluated exactly from the alm at the patch pixels, holes of the whole sky mask)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "inpainting_fullsky_patches")

import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.inpainting import masks  # noqa: E402
from cmbnn.io import read_alm_h5, write_h5, write_maps_fits  # noqa: E402
from cmbnn.patches import reassembly  # noqa: E402
from cmbnn.patches.cutting import fields_from_alm  # noqa: E402
from cmbnn.projection import patch_geometry  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import label_alm, lmax_for  # noqa: E402

p = smk.params
g, fs = p.geometry, p.fullsky
nside, lmax = p.nside, lmax_for(p.nside)
cmb, _ = read_alm_h5(smk.input.cmb)
label = label_alm(RunSettings.from_params(p), cmb)
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
# Truth patches evaluated exactly from the alm at the patch pixels (as the patch stage cuts them: nearest-pixel
# samples of the map would be piecewise constant, a field the Gaussian covariance does not describe); the
# patches see every hole of the sky mask (nearest pixel); only the region's holes are put back on the sphere.
_, patch_masks = reassembly.cut_patches(truth, sky_mask, centers, g["height"], g["width"], g["reso_arcmin"])
theta, phi, psi = patch_geometry(centers, g["height"], g["width"], g["reso_arcmin"])
patches = fields_from_alm(["T"], label, lmax, theta, phi, psi, smk.threads)["T"].astype(np.float32)
log.info("%d patches, hole fraction %.3f", len(centers), patch_masks.mean())
header = [("LONC", float(center[0]), "region centre lon deg"), ("LATC", float(center[1]), "region centre lat deg"), ("RADIUS", float(fs["radius_deg"]), "deg")]
write_maps_fits(smk.output.maps, [truth, region.astype(np.float32), sky_mask.astype(np.float32)], ["TRUTH", "REGION", "SKYMASK"],
                units=["uK_CMB", "1 = inpainted", "1 = missing"], extra_header=header)
write_h5(
    smk.output.patches,
    {"M0": patches[..., None], "mask": patch_masks, "centers": centers.astype(np.float64), "realisation": np.full(len(centers), int(smk.wildcards.realisation), dtype=np.int32)},
    {
        "nside": nside, "pixel_size_arcmin": g["reso_arcmin"], "units": "uK_CMB", "field": "T", "seed": p.seed,
        "code_version": cmbnn.__version__, "center_deg": np.asarray(center, dtype=np.float64), "radius_deg": float(fs["radius_deg"]),
        "mask": "1 = missing (the sky mask at the patch pixels, nearest pixel)", "truth": "CMB at the label beam, exact at the patch pixels",
    },
)
