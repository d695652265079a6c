"""Rule label_spectra: the spectra of the inpainting truth patches: the sky's table to its lmax
(3 nside - 1), CAMB (same cosmology) beyond, to inpainting.label_lmax (cmbnn.inpainting.truth)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "label_spectra")

from cmbnn.inpainting.truth import extended_spectra  # noqa: E402
from cmbnn.sky.theory import camb_spectra, read_cls, write_cls  # noqa: E402

p = smk.params
sky = read_cls(smk.input.cls)
cls = extended_spectra(sky, camb_spectra(p.label_lmax, r=p.theory["r"], cosmology=p.theory["cosmology"]), p.lmax_sky)
write_cls(smk.output.cls, cls, p.theory["r"], source=f"the sky's spectra ({smk.input.cls}) to ell {p.lmax_sky}, CAMB lensed Planck 2018 best fit (r = {p.theory['r']:g}) to ell {p.label_lmax}")
log.info("label spectra to ell %d written to %s", p.label_lmax, smk.output.cls)
