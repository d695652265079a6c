"""Rule dust_statistics: new patches from every model (prior z, fitted z, its sampler, and its
sampler with the network taken out) and from the classical generators (Gaussian field, Gaussian
copula, the synthesis of rule dust_scattering), their amplitude and structure statistics
(cmbnn.dust.structure) against the test patches, with validation and training patches as the
floors; every set cut to one size. Also the share of each sampler's variance that its network
carries, per scale."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "dust_statistics")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmbnn.dust import statistics as dust_stats  # noqa: E402
from cmbnn.dust import structure, synthesis  # noqa: E402
from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.dust.figures import plot_samples, plot_structure  # noqa: E402
from cmbnn.dust.wph import wph_features  # noqa: E402
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

samples, seconds, fractions = {}, {}, []


def timed(key, generate):
    started = time.perf_counter()
    samples[key] = np.asarray(generate(), dtype=np.float64)
    seconds[key] = (time.perf_counter() - started) / len(samples[key])


for name, model in models.items():
    sampler = dustvae.load_sampler(sampler_files[name])
    rng = rng_for(p.seed, "dust-samples", name)
    condition, train_condition = None, None
    if model.conditional:
        # Conditions come from the training split, never from the patches the samples are compared with.
        _, train_condition = dustvae.model_conditions(model, patches["train"]["latitude"], x["train"])
        condition = rng_for(p.seed, "dust-conditions", name).choice(train_condition[:, 0], n)[:, None]
    # z from the prior, as the paper; decoder means at z from the model's saved latent Gaussian
    # (fitted to the training encodings); the model's sampler: those plus its residual field.
    timed(f"{name}, prior z", lambda: dustvae.sample(model, n, rng, condition=condition))  # noqa: B023 (run at once)
    timed(f"{name}, fitted z", lambda: dustvae.sample(model, n, rng, condition=condition, latent=(sampler["latent_mean"], sampler["latent_chol"])))  # noqa: B023
    started = time.perf_counter()
    network, residual = dustvae.sample_parts(model, n, rng, sampler, condition)
    samples[f"{name}, sampler"] = network + residual
    seconds[f"{name}, sampler"] = (time.perf_counter() - started) / n
    cycles, share = dustvae.network_fraction(network, residual)
    fractions.append(pd.DataFrame({"model": name, "cycles_per_patch": cycles, "network_fraction": share}))
    # The same sampler without the network: training patches low-passed by what the decoder
    # carries (its transfer to the data; fitted here for a sampler that has none).
    transfer = None
    if "transfer" not in sampler:
        mu, _ = dustvae.encode(model, x["train"], train_condition)
        transfer = dustvae.fit_transfer(x["train"], dustvae.decode(model, mu, train_condition)[0])
    timed(f"{name}, no network", lambda: dustvae.sample_without_network(sampler, x["train"], n, rng, transfer))  # noqa: B023
    log.info("%s: network share of the sampler's variance per cycle per patch: %s", name,
             ", ".join(f"{c}: {f:.2f}" for c, f in zip(cycles[1:11], share[1:11])))
timed("gaussian", lambda: dust_stats.gaussian_like(x["train"], n, p.reso_arcmin, rng_for(p.seed, "dust-samples", "gaussian")))
timed("gaussian copula", lambda: synthesis.gaussian_copula(x["train"], n, p.reso_arcmin, rng_for(p.seed, "dust-samples", "copula")))


def read_synthesis(path, label, rule):
    """A classical synthesis' samples into the sets, refused if standardised unlike the models."""
    data, attrs = read_h5(path)
    if not np.isclose(attrs["log_mean"], stats["log_mean"]) or not np.isclose(attrs["log_std"], stats["log_std"]):
        raise ValueError(f"{path} was standardised with other log-intensity statistics than the models (rerun {rule})")
    samples[label] = data["samples"].astype(np.float64)
    seconds[label] = float(attrs["seconds_per_sample"])
    return data, attrs


if smk.input.scattering:
    read_synthesis(smk.input.scattering[0], "scattering synthesis", "dust_scattering")
if smk.input.wph:
    wph, wph_attrs = read_synthesis(smk.input.wph[0], "WPH synthesis", "dust_wph_synthesis")
    log.info("WPH synthesis: %d of %d converged within %d iterations", int(wph["converged"].sum()), len(wph["converged"]), int(wph_attrs["max_iterations"]))
for key, value in seconds.items():
    log.info("%s: %.3g s per sample", key, value)
write_h5(smk.output.samples, {name.replace(", ", "/").replace(" z", "").replace(" ", "_"): v.astype(np.float32) for name, v in samples.items()},
         {"units": "standardised log I", "log_mean": stats["log_mean"], "log_std": stats["log_std"]})

# Every set at one size (the smallest, e.g. the synthesis'): a distance read at another size is
# not comparable. Training patches are the second floor: other patches of the training regions.
sets, n_common = structure.equal_subsets({"test": x["test"], "validation": x["validation"], "train": x["train"], **samples}, rng_for(p.seed, "dust-subsets"))
log.info("every set compared at %d patches", n_common)
thresholds = np.linspace(s["thresholds"]["min"], s["thresholds"]["max"], s["thresholds"]["n"])
wph_stats = (lambda u: wph_features(u)[0]) if s["wph_features"] else None
features, meta = {}, None
for name, maps in sets.items():
    features[name], meta = structure.structure_features(maps, p.reso_arcmin, n_bins=s["n_bins"], thresholds=thresholds, wph=wph_stats)
table = structure.structure_table(features, "test", rng_for(p.seed, "dust-permutations"), n_permutations=s["n_permutations"])
table["seconds_per_sample"] = table.set.map(seconds)
with atomic_output(smk.output.table) as tmp:
    table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
with atomic_output(smk.output.fractions) as tmp:
    pd.concat(fractions, ignore_index=True).to_csv(tmp, sep="\t", index=False, float_format="%.4g")
with pd.option_context("display.width", 250, "display.max_rows", 500):
    log.info("energy-distance z-scores against the test set (validation, train: the real-sky floors):\n%s",
             table.pivot(index="set", columns="statistic", values="z").round(1).to_string())
plot_samples(x["test"], {k: v for k, v in samples.items() if "prior" not in k and "fitted" not in k}, smk.output.samples_plot, stats=stats)
plot_structure(features, meta, smk.output.statistics_plot, reference="test")
