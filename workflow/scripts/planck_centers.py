"""Rule planck_centers: patch centres on the real sky, outside the mask and on pixels valid in every map."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_centers")

import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402

from cmbnn.io import atomic_output  # noqa: E402
from cmbnn.patches.sets import centers_in_mask  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

p = smk.params
keep = hp.read_map(smk.input.mask) > 0.5
for path in [*smk.input.maps, *smk.input.cmb]:
    valid = hp.read_map(path, field=3) > 0.5
    if (keep & ~valid).any():
        log.info("%s: %d kept pixels are invalid there; left out", path, int((keep & ~valid).sum()))
    keep &= valid
centers = centers_in_mask(p.n_patches, keep, p.lat_cut_deg, p.height, p.width, p.reso_arcmin, rng_for(p.seed, "planck_centers"))
with atomic_output(smk.output[0]) as tmp:
    with open(tmp, "w") as f:
        f.write(f"# {len(centers)} patch centres (Galactic lon, lat in deg) whose {p.height}x{p.width} footprint at {p.reso_arcmin}' is on the kept sky\n")
        f.write("lon_deg\tlat_deg\n")
        np.savetxt(f, centers, fmt="%.8f", delimiter="\t")
log.info("%d centres on %.1f%% of the sky", len(centers), 100 * keep.mean())
