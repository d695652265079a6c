"""Rule planck_pr3_spectra: lensed CMB C_ell from the Planck PR3 minimum-theory file (D_ell -> C_ell)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_pr3_spectra")

from cmbnn.sky.theory import planck_pr3_spectra, write_cls  # noqa: E402

theory = smk.params.theory
log.info("Planck PR3 theory: %s, lmax=%d", smk.input.theory, smk.params.lmax)
cls = planck_pr3_spectra(smk.input.theory, smk.params.lmax, r=theory["r"])
write_cls(
    smk.output.cls,
    cls,
    theory["r"],
    source=f"Planck PR3 minimum-theory lensed CMB spectra (Planck 2018 best-fit LCDM, r = 0) from {smk.input.theory}",
)
log.info("wrote %s", smk.output.cls)
