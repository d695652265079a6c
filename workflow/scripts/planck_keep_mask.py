"""Rule planck_keep_mask: the Planck mask chosen by planck.real_sky.mask at the run's nside, 1 = usable."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_keep_mask")

from cmbnn.io import write_maps_fits  # noqa: E402
from cmbnn.planck.maps import keep_mask  # noqa: E402

p = smk.params
keep = keep_mask(smk.input[0], p.nside, column=p.column, threshold=p.threshold)
write_maps_fits(smk.output[0], keep.astype("float32")[None], ["KEEP"], units="")
log.info("%s at nside %d: %.1f%% of the sky kept (pixels >= %g kept)", smk.input[0], p.nside, 100 * keep.mean(), p.threshold)
