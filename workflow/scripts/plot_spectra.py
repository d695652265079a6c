"""Rule plot_spectra: D_ell of the CAMB spectra."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "plot_spectra")

from cmbnn.plotting import plot_spectra  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

plot_spectra(read_cls(smk.input.cls), smk.output[0], title=f"CAMB lensed spectra, r = {smk.params.r:g}")
