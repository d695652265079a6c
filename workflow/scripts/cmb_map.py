"""Rule cmb_map: one Gaussian CMB realisation (T, E, B alm and T, Q, U map)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "cmb_map")

from cmbnn.io import write_alm_h5, write_maps_fits  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import cmb_realisation, lmax_for  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

nside, seed = smk.params.nside, smk.params.seed
realisation = int(smk.wildcards.realisation)
cls = read_cls(smk.input.cls)
log.info("synthesising CMB realisation %d at nside %d (seed %d)", realisation, nside, seed)
alm, maps = cmb_realisation(RunSettings.from_params(smk.params), cls, realisation)
attrs = {"units": "uK_CMB", "components": "T,E,B", "seed": seed, "realisation": realisation, "nside": nside}
write_alm_h5(smk.output.alm, alm, lmax_for(nside), attrs)
write_maps_fits(smk.output.map, maps, ["T", "Q", "U"])
log.info("wrote %s and %s", smk.output.alm, smk.output.map)
