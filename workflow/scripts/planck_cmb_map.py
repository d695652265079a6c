"""Rule planck_cmb_map: a Planck CMB product (Commander, SMICA) at the run's nside and pixel window,
smoothed from its own beam to the label beam. Written as T, Q, U (uK_CMB) plus VALID (0 where an
input pixel was unusable).
"""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, smk.rule)

from cmbnn.planck.maps import prepare_cmb_map, write_prepared_map  # noqa: E402

p = smk.params
maps, valid = prepare_cmb_map(smk.input[0], p.nside, p.fwhm_in_arcmin, p.fwhm_arcmin, pixwin_in=p.pixwin_in)
write_prepared_map(smk.output[0], maps, valid, smk.input[0])
log.info(
    "%s -> nside %d (smoothed from %s' to the label beam %s', pixel window of nside %d); %d invalid pixels",
    smk.input[0], p.nside, p.fwhm_in_arcmin, p.fwhm_arcmin, p.nside, int((~valid).sum()),
)
