"""Rule planck_frequency_map: a Planck HFI frequency map at the run's nside and pixel window, its
beam (the simulated channel's) kept. Written as T, Q, U (uK_CMB) plus VALID (0 where an input
pixel was unusable).
"""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, smk.rule)

from cmbnn.planck.maps import prepare_frequency_map, write_prepared_map  # noqa: E402

p = smk.params
maps, valid = prepare_frequency_map(smk.input[0], p.nside, p.fwhm_arcmin)
write_prepared_map(smk.output[0], maps, valid, smk.input[0])
log.info("%s -> nside %d (beam %s' kept, pixel window of nside %d); %d invalid pixels", smk.input[0], p.nside, p.fwhm_arcmin, p.nside, int((~valid).sum()))
