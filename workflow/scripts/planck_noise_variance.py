"""Rule planck_noise_variance: one HFI map's per-pixel noise covariance (II, QQ, UU, QU) at the run's nside."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_noise_variance")

import numpy as np  # noqa: E402

from cmbnn.io import write_maps_fits  # noqa: E402
from cmbnn.planck.maps import COV_COLUMNS, noise_variance  # noqa: E402

variance, bad = noise_variance(smk.input[0], smk.params.nside)
write_maps_fits(
    smk.output[0],
    variance,
    list(COV_COLUMNS),
    units="uK_CMB^2",
    extra_header=[("SOURCE", str(smk.input[0]).split("/")[-1][:68], "HFI map the covariances come from"), ("NBADPIX", int(bad.sum()), "pixels given the median variance")],
)
log.info("noise rms at nside %d: T %.3g, Q %.3g, U %.3g uK (median over pixels)", smk.params.nside, *np.sqrt(np.median(variance[:3], axis=1)))
