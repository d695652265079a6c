"""Rule observe: CMB + foregrounds, beam per frequency, white noise; full-sky maps."""

from _helpers import configure, freq_tag

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "observe")

import numpy as np  # noqa: E402

from cmbnn.io import read_alm_h5, read_h5, write_alm_h5, write_maps_fits  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import lmax_for, observe  # noqa: E402

p = smk.params
realisation = int(smk.wildcards.realisation)
cmb_alm, _ = read_alm_h5(smk.input.cmb)
components, sources = [], []
for path in smk.input.foregrounds:
    datasets, attrs = read_h5(path)
    if attrs["kind"] == "point_sources":
        sources.append(datasets)
        log.info("point sources %s from %s: %d sources", attrs["component"], path, len(datasets["lon_deg"]))
    else:
        components.append((datasets["alm"], np.asarray(attrs["sed"])))
        log.info("foreground %s from %s (%d templates)", attrs["component"], path, len(datasets["alm"]))
noise_variance = None
if smk.input.noise_variance:
    import healpy as hp

    noise_variance = [np.asarray(hp.read_map(path, field=(0, 1, 2, 3))) for path in smk.input.noise_variance]
    log.info("inhomogeneous noise from the per-pixel covariances in %s", list(smk.input.noise_variance))
signal, maps = observe(RunSettings.from_params(p), cmb_alm, components, realisation, sources, noise_variance)
write_alm_h5(
    smk.output.signal,
    signal.astype(np.complex64),
    lmax_for(p.nside),
    {
        "units": "uK_CMB",
        "frequencies_GHz": list(map(float, p.freqs)),
        "content": "beam-smoothed CMB + diffuse foregrounds, no point sources (rendered at the patch pixels), no noise",
    },
)
columns = ["T", "Q", "U", "E", "B"][: maps.shape[1]]
for nu, tqu, path in zip(p.freqs, maps, smk.output.maps):
    assert freq_tag(nu) in path
    write_maps_fits(path, tqu, columns, extra_header=[("FREQ", float(nu), "GHz")])
log.info("wrote %d frequency maps", len(p.freqs))
