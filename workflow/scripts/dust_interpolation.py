"""Rule dust_interpolation: spherical interpolation between the encodings of two test patches,
decoded at every step, as an animated GIF and a strip."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_interpolation")

import numpy as np  # noqa: E402

from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.dust.figures import plot_strip, write_gif  # noqa: E402
from cmbnn.io import read_h5  # noqa: E402
from cmbnn.nn.training import limit_threads  # noqa: E402

limit_threads(smk.threads)
p = smk.params.interpolation
model = dustvae.load_model(smk.input.model)
test, _ = read_h5(smk.input.test)
pair = list(p["pair"])
x, _ = dustvae.log_standardise(test["intensity"][pair], model.stats)
mu, _ = dustvae.encode(model, x)
t = np.linspace(0.0, 1.0, p["steps"])
frames, _ = dustvae.decode(model, dustvae.slerp(mu[0], mu[1], t))
log.info("slerp between test patches %s (|z| %.2f, %.2f; angle %.1f deg) in %d steps", pair, *np.linalg.norm(mu, axis=1),
         np.degrees(np.arccos(np.clip(mu[0] @ mu[1] / np.prod(np.linalg.norm(mu, axis=1)), -1, 1))), len(t))
# The real patches at both ends show what the decoded endpoints approximate.
strip = np.concatenate([x[:1], frames, x[1:]])
titles = [f"test {pair[0]}"] + [f"t = {v:.2f}" for v in t] + [f"test {pair[1]}"]
write_gif(frames, smk.output.gif, fps=p["fps"])
plot_strip(strip, smk.output.strip, titles=titles)
