"""Rule point_sources: the catalogue of one point-source population (rendered later, per beam)."""

import json

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "point_sources")

from cmbnn.io import write_h5  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import source_catalogue  # noqa: E402

name = smk.wildcards.component
realisation = int(smk.wildcards.realisation)
p = smk.params
catalogue = source_catalogue(RunSettings.from_params(p), name, p.settings, realisation)
attrs = {
    "component": name,
    "kind": "point_sources",
    "frequencies_GHz": list(map(float, p.freqs)),
    "settings": json.dumps(p.settings, sort_keys=True),
    "seed": p.seed,
    "realisation": realisation,
    "columns": "lon_deg, lat_deg (Galactic); flux_Jy (n, n_freq); pol_angle_rad (HEALPix convention, local frame); pol_fraction",
}
write_h5(smk.output[0], catalogue, attrs)
n = len(catalogue["lon_deg"])
log.info("%s: %d sources, brightest %.3g Jy at %g GHz", name, n, catalogue["flux_Jy"][:, 0].max() if n else 0.0, p.freqs[0])
