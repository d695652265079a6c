"""Rule dust_patches: dust intensity patches of one split (MJy/sr), each with its centre and latitude."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_patches")

import numpy as np  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.config import digest  # noqa: E402
from cmbnn.dust import sky as dustsky  # noqa: E402
from cmbnn.io import read_alm_h5, write_h5  # noqa: E402

p = smk.params
split = smk.wildcards.split
settings = {**p.patches, **p.sky}
centers = dustsky.dust_centers(settings, p.seed, split)
log.info("%d %s centres at |b| > %g deg", len(centers), split, settings["lat_cut_deg"])
if p.source == "gnilc545":
    sky_map = dustsky.read_intensity_map(smk.input[0])
    intensity = dustsky.cut_map_patches(sky_map, centers, settings, where=smk.input[0])
else:
    alm, attrs = read_alm_h5(smk.input[0])
    intensity = dustsky.cut_dust_patches(alm, int(attrs["lmax"]), centers, settings, nthreads=smk.threads)
log.info("intensity %.3g .. %.3g MJy/sr, median %.3g", intensity.min(), intensity.max(), np.median(intensity))
write_h5(
    smk.output[0],
    {"intensity": intensity, "centers": centers, "latitude": centers[:, 1]},
    {
        "units": "MJy/sr (545 GHz)", "source": p.source, "split": split, "seed": p.seed, "reso_arcmin": settings["reso_arcmin"],
        "orientation": "row 0 south, columns increase westward (healpy gnomview, flip='astro')",
        "config_digest": digest({k: v for k, v in p.items()}), "code_version": cmbnn.__version__,
    },
)
