"""Rule dust_scattering: maximum-entropy syntheses of standardised log-intensity patches under the
training patches' wavelet scattering statistics (the classical generator beside the dust VAEs)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_scattering")

import time  # noqa: E402

import numpy as np  # noqa: E402

from cmbnn.dust import synthesis  # noqa: E402
from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.io import read_h5, write_h5  # noqa: E402
from cmbnn.nn.training import limit_threads  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

limit_threads(smk.threads)
p = smk.params
scat = p.scattering or {}
train, _ = read_h5(smk.input.train)
# The models standardise log I with the training split's mean and std: the same numbers here.
x_train, stats = dustvae.log_standardise(train["intensity"])
knobs = {key: scat[key] for key in ("scales", "orientations", "steps") if key in scat}  # absent: the function's defaults
n = scat.get("n_samples") or p.n_samples
started = time.perf_counter()
samples = synthesis.scattering_synthesis(x_train, n, p.reso_arcmin, rng_for(p.seed, "dust-samples", "scattering"), **knobs, log=log)
seconds = (time.perf_counter() - started) / len(samples)
log.info("scattering synthesis: %.3g s per sample", seconds)
write_h5(smk.output[0], {"samples": samples.astype(np.float32)},
         {"units": "standardised log I", "log_mean": stats["log_mean"], "log_std": stats["log_std"], "seconds_per_sample": seconds})
