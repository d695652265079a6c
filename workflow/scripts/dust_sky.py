"""Rule dust_sky: the alm of the unit-variance log-intensity field under the simulated dust sky."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_sky")

from cmbnn.dust.sky import sky_alm  # noqa: E402
from cmbnn.io import write_alm_h5  # noqa: E402

sky = smk.params.sky
alm = sky_alm(sky, smk.params.seed, log=log)
field = {"filaments": "unit-variance log-intensity field h (filaments)", "lognormal": "unit-variance Gaussian g of log dust intensity"}[sky["model"]]
write_alm_h5(smk.output[0], alm, sky["lmax"], {"alpha": sky["alpha"], "fwhm_arcmin": sky["fwhm_arcmin"], "model": sky["model"], "field": field})
log.info("dust sky (%s) alm to lmax %d (C_ell ~ ell^%g) -> %s", sky["model"], sky["lmax"], sky["alpha"], smk.output[0])
