"""Rule fit_hilc: harmonic ILC weights and Wiener filter of one field group from the training patches."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "fit_hilc")

import numpy as np  # noqa: E402

from cmbnn.analysis.flatsky import gaussian_beam_ell  # noqa: E402
from cmbnn.cenn.baselines import HarmonicILC  # noqa: E402
from cmbnn.io import read_patches_h5, write_h5  # noqa: E402
from cmbnn.names import GROUP_HARMONICS  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
group = smk.wildcards.group
data = {}
for path in smk.input.train:
    d, attrs = read_patches_h5(path)
    data[attrs["field"]] = d
fields = list(data)
if len(fields) > 1 and not all(np.array_equal(data[f]["centers"], data[fields[0]]["centers"]) for f in fields):
    raise ValueError(f"patch files {smk.input.train} do not share their centres")
cls = read_cls(smk.input.cls)
lmax = min(p.signal_lmax, len(cls["TT"]) - 1)
ell = np.arange(lmax + 1.0)
spin = 0 if group == "T" else 2  # E and B carry the polarisation beam, as Q/U or as scalar maps
# S = C_ell x label beam^2 (the label is the CMB at that beam, without a pixel window).
b2 = gaussian_beam_ell(p.label_beam_arcmin, ell, spin) ** 2
signal = {c: cls[{"T": "TT", "E": "EE", "B": "BB"}[c]][: lmax + 1] * b2 for c in GROUP_HARMONICS[group]}
s = p.settings
hilc = HarmonicILC(group, p.beams_arcmin, p.label_beam_arcmin, p.reso_arcmin, p.height, p.width, edge=s["edge"], delta_ell=s["delta_ell"], min_modes=s["min_modes"])
hilc.fit({f: d["M"] for f, d in data.items()}, {f: d["M0"] for f, d in data.items()}, signal)
datasets, attrs = hilc.state()
write_h5(smk.output[0], datasets, {**attrs, "n_train_patches": len(data[fields[0]]["M"]), "inputs": [str(x) for x in smk.input.train]})
for c, comp in enumerate(hilc.components):
    w = hilc.signal_power[c] / np.maximum(hilc.signal_power[c] + hilc.noise_power[c], 1e-300)
    log.info(
        "%s: %d bins; ell edges %s\n  weights per bin (channels) %s\n  Wiener S/(S+N) per bin %s\n  label power / theory S %s",
        comp,
        len(hilc.edges) - 1,
        hilc.edges.round(0).tolist(),
        hilc.weights[c].round(3).tolist(),
        w.round(3).tolist(),
        # Above the simulation's band limit S = 0: no ratio.
        np.where(hilc.signal_power[c] > 0, hilc.label_power[c] / np.where(hilc.signal_power[c] > 0, hilc.signal_power[c], 1.0), np.nan).round(2).tolist(),
    )
