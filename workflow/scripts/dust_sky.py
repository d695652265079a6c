"""Rule dust_sky: the alm of the unit Gaussian field g under the simulated dust intensity."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_sky")

from cmbnn.dust.sky import log_field_alm  # noqa: E402
from cmbnn.io import write_alm_h5  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

sky = smk.params.sky
alm = log_field_alm(sky["lmax"], sky["alpha"], rng_for(smk.params.seed, "dust-sky"), fwhm_arcmin=sky["fwhm_arcmin"])
write_alm_h5(smk.output[0], alm, sky["lmax"], {"alpha": sky["alpha"], "fwhm_arcmin": sky["fwhm_arcmin"], "field": "unit-variance Gaussian g of log dust intensity"})
log.info("dust g alm to lmax %d (C_ell ~ ell^%g) -> %s", sky["lmax"], sky["alpha"], smk.output[0])
