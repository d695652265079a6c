"""Rule plot_sky: Mollweide views of the CMB and of the observed sky per frequency."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "plot_sky")

import healpy as hp  # noqa: E402

from cmbnn.plotting import plot_mollweide  # noqa: E402

nside_out = smk.params.nside_out
cmb = hp.read_map(smk.input.cmb, field=None)
plot_mollweide(cmb, ["CMB T", "CMB Q", "CMB U"], smk.output.cmb, nside_out, "CMB realisation 0")
for nu, path_in, path_out in zip(smk.params.freqs, smk.input.observed, smk.output.observed):
    maps = hp.read_map(path_in, field=(0, 1, 2))
    plot_mollweide(maps, [f"{nu:g} GHz {c}" for c in "TQU"], path_out, nside_out, f"CMB + foregrounds + noise at {nu:g} GHz")
    log.info("plotted %s", path_out)
