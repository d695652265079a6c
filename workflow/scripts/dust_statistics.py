"""Rule dust_statistics: new patches from every model's prior and from the classical generators
(Gaussian field, Gaussian copula, scattering synthesis), their spectra, pixel histograms, one-point
moments and Minkowski functionals against held-out real patches, with validation and training
patches as the floors."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_statistics")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.dust import statistics as dust_stats  # noqa: E402
from cmbnn.dust import synthesis  # noqa: E402
from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.dust.figures import plot_samples, plot_statistics  # noqa: E402
from cmbnn.io import atomic_output, read_h5, write_h5  # noqa: E402
from cmbnn.nn.training import limit_threads  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402

limit_threads(smk.threads)
p = smk.params
s = p.statistics
models = {name: dustvae.load_model(path) for name, path in zip(p.names, smk.input.models)}
sampler_files = dict(zip(p.names, smk.input.samplers))
stats = next(iter(models.values())).stats
if any(m.stats != stats for m in models.values()):
    raise ValueError("the dust models were trained on different log-intensity statistics (retrain them on the same patches)")
patches = {split: read_h5(smk.input[split])[0] for split in ("train", "validation", "test")}
x = {split: dustvae.log_standardise(d["intensity"], stats)[0] for split, d in patches.items()}
n = s["n_samples"]

samples, seconds = {}, {}


def timed(key, generate):
    started = time.perf_counter()
    samples[key] = generate()
    seconds[key] = (time.perf_counter() - started) / len(samples[key])


for name, model in models.items():
    sampler = dustvae.load_sampler(sampler_files[name])
    condition = None
    if model.conditional and model.condition_stats["kind"] == "abs_latitude":
        # Where on the sky is an input: the held-out patches' |b|, so the samples cover the test
        # set's range.
        raw, _ = dustvae.model_conditions(model, patches["test"]["latitude"], x["test"])
        condition = dustvae.standardise_condition(rng_for(p.seed, "dust-conditions", name).choice(raw, n), model.condition_stats)[0]
    elif model.conditional:
        # A patch's own mean log I is part of what is generated: drawn from the training patches'
        # (the sampler keeps them), never from the test patches'.
        condition = rng_for(p.seed, "dust-conditions", name).choice(sampler["conditions"], n)[:, None]
    # z from the prior, as the paper; decoder means at z from the model's saved latent Gaussian
    # (fitted to the training encodings); and the model's sampler: those plus its residual field.
    latents = {"prior z": {}, "fitted z": {"latent": (sampler["latent_mean"], sampler["latent_chol"])}, "sampler": {"sampler": sampler}}
    for source, latent in latents.items():
        key = f"{name}, {source}"
        timed(key, lambda: dustvae.sample(model, n, rng_for(p.seed, "dust-samples", name, source), condition=condition, **latent))  # noqa: B023 (run at once)
        log.info("%s: %d samples, mean %.3f, per-patch std %.3f (test %.3f, %.3f)", key, n, samples[key].mean(), samples[key].std(axis=(1, 2)).mean(),
                 x["test"].mean(), x["test"].std(axis=(1, 2)).mean())
timed("gaussian", lambda: dust_stats.gaussian_like(x["train"], n, p.reso_arcmin, rng_for(p.seed, "dust-samples", "gaussian")))
timed("gaussian copula", lambda: synthesis.gaussian_copula(x["train"], n, p.reso_arcmin, rng_for(p.seed, "dust-samples", "copula")))
if smk.input.scattering:  # rule dust_scattering
    scattering, scattering_attrs = read_h5(smk.input.scattering[0])
    if not np.isclose(scattering_attrs["log_mean"], stats["log_mean"]) or not np.isclose(scattering_attrs["log_std"], stats["log_std"]):
        raise ValueError(f"{smk.input.scattering[0]} was standardised with other log-intensity statistics than the models (rerun dust_scattering)")
    samples["scattering synthesis"] = scattering["samples"].astype(np.float64)
    seconds["scattering synthesis"] = float(scattering_attrs["seconds_per_sample"])
for key, value in seconds.items():
    log.info("%s: %.3g s per sample", key, value)
write_h5(smk.output.samples, {name.replace(", ", "/").replace(" z", "").replace(" ", "_"): v.astype(np.float32) for name, v in samples.items()},
         {"units": "standardised log I", "log_mean": stats["log_mean"], "log_std": stats["log_std"]})

thresholds = np.linspace(s["thresholds"]["min"], s["thresholds"]["max"], s["thresholds"]["n"])
# Training patches (as many as the samples) are the second floor: the test split is brighter than
# the training split, so even real training patches are some way from it.
train_subset = x["train"][rng_for(p.seed, "dust-train-floor").choice(len(x["train"]), min(n, len(x["train"])), replace=False)]
sets = {"test": x["test"], "validation": x["validation"], "train": train_subset, **samples}
per_set, meta = {}, None
for name, maps in sets.items():
    per_set[name], meta = dust_stats.statistics(maps, p.reso_arcmin, thresholds, n_bins=s["n_bins"])
    log.info("statistics of %s (%d patches)", name, len(maps))
table = dust_stats.distance_table(per_set, reference="test", floors=("validation", "train"), rng=rng_for(p.seed, "dust-permutations"))
table["seconds_per_sample"] = table.set.map(seconds)
with atomic_output(smk.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
with pd.option_context("display.width", 200):
    log.info("distances to the test set (validation and train: real patches, the floors):\n%s", table.to_string(index=False))
plot_samples(x["test"], samples, smk.output.samples_plot)
plot_statistics(per_set, meta, smk.output.statistics_plot, reference="test")
