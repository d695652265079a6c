"""Rule train_dustvae: fit one dust VAE (plain, beta or conditional) on standardised log-intensity
patches (resumes from its checkpoint if killed), then its sampler (the latent Gaussian and the
residual field every rule that samples uses: cmbnn.dust.vae.fit_sampler)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "train_dustvae")

import pandas as pd  # noqa: E402

from cmbnn.dust import vae as dustvae  # noqa: E402
from cmbnn.io import atomic_output, read_h5  # noqa: E402
from cmbnn.nn.training import env_summary, limit_threads, write_history  # noqa: E402
from cmbnn.plotting import plot_history  # noqa: E402

limit_threads(smk.threads)

p = smk.params
name = smk.wildcards.dustmodel
settings = dict(p.settings)
condition = settings.pop("condition", None)
settings["conditional"] = bool(condition)
train, _ = read_h5(smk.input.train)
val, _ = read_h5(smk.input.validation)
# One mean and std of log I over the training split (not per image, as the paper did): the
# amplitude is what the conditional model must follow.
x_train, stats = dustvae.log_standardise(train["intensity"])
x_val, _ = dustvae.log_standardise(val["intensity"], stats)
cond_train = cond_val = cond_stats = None
if condition:
    cond_train, cond_stats = dustvae.standardise_condition(dustvae.patch_conditions(condition, train["latitude"], x_train))
    cond_val, _ = dustvae.standardise_condition(dustvae.patch_conditions(condition, val["latitude"], x_val), cond_stats)
    cond_stats["kind"] = condition
log.info("%s; %s (beta %g, condition %s) on %d training and %d validation patches of %s; log I mean %.3f std %.3f",
         env_summary(), name, settings.get("beta", 1.0), condition, len(x_train), len(x_val), x_train.shape[1:], stats["log_mean"], stats["log_std"])
model, history = dustvae.train(x_train, x_val, settings, p.seed, p.checkpoint_dir, stats, condition_train=cond_train, condition_val=cond_val,
                               condition_stats=cond_stats)
with atomic_output(smk.output.model) as tmp:
    model.save(tmp)
sampler = dustvae.fit_sampler(model, x_train, cond_train)
dustvae.save_sampler(smk.output.sampler, sampler)
log.info("sampler: residual variance %.4f of the standardised log I (1 over the training split)", float(sampler["residual_variance"]))
if "transfer" in sampler:
    # How much of each scale of the decoder means follows the data (0: none, the residual field's).
    cycles = sampler["transfer_k"] * max(x_train.shape[1:3])
    log.info("sampler: decoder transfer %s", ", ".join(f"{t:.2f} at {c:.0f}" for c, t in zip(cycles[1:11], sampler["transfer"][1:11])) + " cycles per patch")
write_history(history, smk.output.history)
plot_history(pd.DataFrame(history), smk.output.plot, title=f"dust model {name}", ylabel="negative ELBO per patch (nats)")
log.info("saved %s after %d epochs", smk.output.model, len(history))
