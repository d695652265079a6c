"""Rule spectra_workspace: the NaMaster coupling matrix of one field group's patch mask and binning."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "spectra_workspace")

from cmbnn.analysis.evaluation import group_spectra  # noqa: E402

p = smk.params
spectra = group_spectra(smk.wildcards.group, p.height, p.width, p.reso_arcmin, p.spectra)
spectra.save(smk.output[0])
log.info("coupling matrix for %s patches of %dx%d at %g arcmin, bins at ell %s", smk.wildcards.group, p.height, p.width, p.reso_arcmin, spectra.ell.round(0).tolist())
