"""Rule inpainting_sky_mask: the inpainting mask of one realisation on the sphere (1 = missing):
dust above a threshold (chosen on the patches for the configured hole fraction) plus discs around
the bright point sources. See cmbnn.inpainting.masks for the recipe."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "inpainting_sky_mask")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.inpainting import masks  # noqa: E402
from cmbnn.io import atomic_output, read_h5, write_maps_fits  # noqa: E402

p = smk.params
r = int(smk.wildcards.realisation)
cfg = p.inpainting
geometry = p.geometry
freqs = [float(f) for f in p.freqs]
if float(cfg["dust_frequency"]) not in freqs:
    raise ValueError(f"inpainting.dust_frequency {cfg['dust_frequency']} is not one of the frequencies {freqs}")
dust, attrs = read_h5(smk.input.dust)
dust_map = masks.dust_temperature_map(dust["alm"], np.atleast_2d(attrs["sed"]), freqs.index(float(cfg["dust_frequency"])), p.nside, cfg["dust_smoothing_fwhm_arcmin"])
# Pixels of every patch of this realisation, all splits: the threshold is a quantile over them.
values, source_holes = [], []
for path in smk.input.patches:
    with h5py.File(path, "r") as f:
        keep = f["realisation"][...] == r
        centers = f["centers"][...][keep]
        source_holes.append(f["mask"][...][keep])
    values.append(masks.sample_at_patches(dust_map, centers, geometry["height"], geometry["width"], geometry["reso_arcmin"]))
values, source_holes = np.concatenate(values), np.concatenate(source_holes)
source_fraction = masks.hole_fraction(source_holes)
galactic_fraction = max(float(cfg["hole_fraction"]) - source_fraction, 0.0)
threshold = masks.galactic_threshold(values, galactic_fraction)
catalogues = [read_h5(path)[0] for path in smk.input.sources]
lon, lat = masks.bright_sources(catalogues, freqs.index(float(p.label_frequency)), p.source_flux_Jy)
source_map = masks.source_disc_mask(p.nside, lon, lat, p.source_radius_arcmin)
total, galactic = masks.sky_mask(dust_map, threshold, source_map)
patch_galactic = values > threshold
realised = masks.hole_fraction(np.maximum(patch_galactic, source_holes))
write_maps_fits(
    smk.output.mask,
    [total.astype(np.float32), galactic.astype(np.float32), dust_map.astype(np.float32)],
    ["MASK", "GALACTIC", "DUST_T"],
    units=["1 = missing", "1 = missing", "uK_CMB"],
    extra_header=[("THRESH", float(threshold), "dust T threshold uK_CMB"), ("DUSTFREQ", float(cfg["dust_frequency"]), "GHz")],
)
row = {
    "realisation": r,
    "dust_frequency_GHz": float(cfg["dust_frequency"]),
    "dust_smoothing_fwhm_arcmin": cfg["dust_smoothing_fwhm_arcmin"],
    "threshold_uK_CMB": threshold,
    "target_hole_fraction": cfg["hole_fraction"],
    "source_fraction_patches": source_fraction,
    "galactic_fraction_patches": float(patch_galactic.mean()),
    "hole_fraction_patches": realised,
    "patches_with_holes": float((np.maximum(patch_galactic, source_holes).mean(axis=(1, 2)) > 0).mean()),
    "galactic_fraction_sky": float(galactic.mean()),
    "hole_fraction_sky": float(total.mean()),
    "bright_sources": int(lon.size),
}
with atomic_output(smk.output.table) as tmp:
    with open(tmp, "w") as f:
        f.write("# Inpainting mask: dust T (smoothed) > threshold, the threshold a quantile over the pixels of every patch of this realisation "
                "(hole_fraction minus the source-hole fraction), plus discs around the bright sources; fractions on the patches and on the sphere\n")
        pd.DataFrame([row]).to_csv(f, sep="\t", index=False, float_format="%.6g")
log.info("realisation %d: %s", r, row)
