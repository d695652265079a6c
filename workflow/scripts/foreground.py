"""Rule foreground: one diffuse component at every frequency, and its realised amplitude."""

import json

import numpy as np

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "foreground")

import pandas as pd  # noqa: E402

from cmbnn.io import atomic_output, write_h5  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import foreground_realisation, lmax_for  # noqa: E402

name = smk.wildcards.component
realisation = int(smk.wildcards.realisation)
p = smk.params
log.info("%s, realisation %d, nside %d, frequencies %s GHz", name, realisation, p.nside, p.freqs)
templates, sed, extra, amplitudes = foreground_realisation(RunSettings.from_params(p), name, p.settings, realisation, p.lat_cut_deg)
attrs = {
    "units": "uK_CMB",
    "component": name,
    "kind": "diffuse",
    "sed": sed,
    "frequencies_GHz": list(map(float, p.freqs)),
    "settings": json.dumps(p.settings, sort_keys=True),
    "seed": p.seed,
    "realisation": realisation,
    "lmax": lmax_for(p.nside),
    "ordering": "healpy (m-major), ell from 0",
    "mixing": "alm at frequency i = sum_k sed[i, k] * alm[k]",
    "sed_fields": "beta_alm / temperature_alm: SED parameter maps (alm up to sed_lmax; synthesise at nside), when their scatter > 0",
}
# Single precision halves the disk use; it is far below the noise of any map.
write_h5(smk.output.alm, {"alm": templates.astype(np.complex64), **extra}, attrs)
log.info("SED (uK_CMB relative to the templates): %s", np.round(sed, 6).tolist())
table = pd.DataFrame(amplitudes)
table.insert(0, "component", name)
table.insert(1, "realisation", realisation)
table["ratio"] = table.realised_d80 / table.configured_d80
table["reference_GHz"] = p.settings["reference_GHz"]
table["lat_cut_deg"] = p.lat_cut_deg
for row in table.itertuples():
    log.info(
        "%s D_80^%s at %g GHz over |b| > %g deg: realised %.4g uK^2, configured %.4g uK^2 (ratio %.3f)",
        name, row.spectrum, row.reference_GHz, row.lat_cut_deg, row.realised_d80, row.configured_d80, row.ratio,
    )
with atomic_output(smk.output.amplitude) as tmp:
    with open(tmp, "w") as f:
        f.write("# D_ell at ell = 80 (uK_CMB^2) at the reference frequency: realised (anafast over |b| > lat_cut_deg with a 10 deg taper, "
                "fitted over 40 <= ell <= 150 with the configured slope) vs configured\n")
        table.to_csv(f, sep="\t", index=False, float_format="%.6g")
