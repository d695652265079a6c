"""Rule camb_spectra: lensed CMB C_ell from CAMB (Planck 2018 best fit + r)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "camb_spectra")

from cmbnn.sky.theory import camb_spectra, write_cls  # noqa: E402

theory = smk.params.theory
log.info("CAMB: lmax=%d r=%g cosmology overrides=%s", smk.params.lmax, theory["r"], theory["cosmology"])
cls = camb_spectra(smk.params.lmax, r=theory["r"], cosmology=theory["cosmology"])
write_cls(smk.output.cls, cls, theory["r"])
log.info("wrote %s", smk.output.cls)
