"""Rule foreground: one foreground component at every frequency (templates + SED mixing)."""

import json

import numpy as np

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "foreground")

from cmbnn.io import write_alm_h5  # noqa: E402
from cmbnn.simulate import foreground_realisation, lmax_for  # noqa: E402

name = smk.wildcards.component
realisation = int(smk.wildcards.realisation)
p = smk.params
log.info("%s, realisation %d, nside %d, frequencies %s GHz", name, realisation, p.nside, p.freqs)
templates, sed = foreground_realisation(name, p.settings, p.nside, p.freqs, p.seed, realisation)
attrs = {
    "units": "uK_CMB",
    "component": name,
    "sed": sed,
    "frequencies_GHz": list(map(float, p.freqs)),
    "settings": json.dumps(p.settings, sort_keys=True),
    "seed": p.seed,
    "realisation": realisation,
    "mixing": "alm at frequency i = sum_k sed[i, k] * alm[k]",
}
# Single precision halves the disk use; it is far below the noise of any map.
write_alm_h5(smk.output[0], templates.astype(np.complex64), lmax_for(p.nside), attrs)
log.info("SED (uK_CMB relative to the templates): %s", sed.tolist())
