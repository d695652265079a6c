# Generative models of dust intensity: the dust VAE (Thorne et al. 2021), a beta-VAE and a
# conditional VAE, each against a Gaussian field with the training patches' spectrum (the
# classical generator and, for imputation, the Gaussian conditional mean of
# cmbnn.analysis.gaussian_field). Sky and patches under results/dust/, models under
# results/models/dust/<model>/, tables under results/metrics/dust/ and figures under
# results/figures/dust/. The models named by imputation and interpolation exist and are
# unconditional (cmbnn.config.check_consistency).

DUSTVAE = config["dustvae"]
DUST_MODELS = DUSTVAE["models"]
DUST_PATCHES = DUSTVAE["patches"]
DUST_CONDITIONAL_MODELS = [m for m, settings in DUST_MODELS.items() if settings.get("condition")]

# Every final output of the stage, for rule all (none when dustvae.enabled is false); the paths
# are in rules/common.smk.
DUSTVAE_OUTPUTS = (
    [
        *[dust_model_file(m) for m in DUST_MODELS],
        DUST_STATISTICS_TABLE,
        DUST_SAMPLES_FIGURE,
        DUST_STATISTICS_FIGURE,
        DUST_IMPUTATION_TABLE,
        DUST_IMPUTATION_FIGURE,
        DUST_INTERPOLATION_GIF,
        DUST_INTERPOLATION_STRIP,
        *[
            p
            for m in DUST_CONDITIONAL_MODELS
            for p in (
                dust_conditional_table(m),
                dust_conditional_figure(m),
                dust_latent_figure(m),
                dust_reconstructions_figure(m),
            )
        ],
    ]
    if DUSTVAE["enabled"]
    else []
)


wildcard_constraints:
    dustmodel="|".join(DUST_MODELS),


rule dust_sky:
    output:
        DUST_SKY,
    log:
        log_file("dust/sky"),
    benchmark:
        benchmark_file("dust/sky")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=dust_sky_mem_mb,
    params:
        sky=DUSTVAE["sky"],
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_sky.py"


rule dust_patches:
    input:
        dust_patch_source,
    output:
        dust_patch_file(),
    log:
        log_file("dust/patches_{split}"),
    benchmark:
        benchmark_file("dust/patches_{split}")
    conda:
        "../envs/sky.yaml"
    threads: 1
    resources:
        mem_mb=dust_patches_mem_mb,
    params:
        source=DUSTVAE["source"],
        sky=DUSTVAE["sky"],
        patches=DUST_PATCHES,
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_patches.py"


rule train_dustvae:
    input:
        train=dust_patch_file("train"),
        validation=dust_patch_file("validation"),
    output:
        model=dust_model_file(),
        sampler=dust_sampler_file(),
        history=dust_history_file(),
        plot=report(
            dust_history_figure(),
            caption="../workflow/report/dust_history.rst",
            category="Dust VAE",
            subcategory="Training",
        ),
    log:
        log_file("dust/train_{dustmodel}"),
    benchmark:
        benchmark_file("dust/train_{dustmodel}")
    # One retry resumes from the last checkpoint. The default cvae's validation loss turns
    # NaN at epoch 8 on some CPUs (measured here: the job stops with NonFiniteLoss, no model
    # written); resumed from its checkpoint (8 epochs done) it trains on to a finite end
    # (issue 20 is to make the dust models numerically robust instead).
    retries: 1
    conda:
        "../envs/ml.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=dust_mem_mb(["train", "validation"]),
    params:
        # Only this model's settings: changing another model's beta does not retrain this one.
        settings=lambda wildcards: {**DUSTVAE["network"], **DUSTVAE["training"], **DUST_MODELS[wildcards.dustmodel]},
        seed=config["seed"],
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir=lambda wildcards: dust_checkpoint_dir(wildcards.dustmodel),
    script:
        "../workflow/scripts/train_dustvae.py"


# The scattering synthesis needs only the training patches: its own job, so its minutes run
# beside the models' training instead of holding one core while the other idles.
rule dust_scattering:
    input:
        train=dust_patch_file("train"),
    output:
        DUST_SCATTERING_SAMPLES,
    log:
        log_file("dust/scattering"),
    benchmark:
        benchmark_file("dust/scattering")
    conda:
        "../envs/dustvae.yaml"
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train"]),
    params:
        scattering=DUSTVAE["statistics"]["scattering"],
        n_samples=DUSTVAE["statistics"]["n_samples"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_scattering.py"


# Maximum-entropy synthesis under wavelet phase harmonics (pywph), the field's classical
# generator: its own job for the same reason.
rule dust_wph_synthesis:
    input:
        train=dust_patch_file("train"),
    output:
        DUST_WPH_SAMPLES,
    log:
        log_file("dust/wph_synthesis"),
    benchmark:
        benchmark_file("dust/wph_synthesis")
    conda:
        "../envs/dustvae.yaml"
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train"]),
    params:
        wph=DUSTVAE["statistics"]["wph_synthesis"],
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_wph_synthesis.py"


rule dust_statistics:
    input:
        models=[dust_model_file(m) for m in DUST_MODELS],
        samplers=[dust_sampler_file(m) for m in DUST_MODELS],
        scattering=dust_scattering_input,
        wph=dust_wph_input,
        train=dust_patch_file("train"),
        validation=dust_patch_file("validation"),
        test=dust_patch_file("test"),
    output:
        samples=DUST_SAMPLES,
        table=report(
            DUST_STATISTICS_TABLE,
            caption="../workflow/report/dust_statistics.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
        fractions=DUST_NETWORK_FRACTION_TABLE,
        samples_plot=report(
            DUST_SAMPLES_FIGURE,
            caption="../workflow/report/dust_samples.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
        statistics_plot=report(
            DUST_STATISTICS_FIGURE,
            caption="../workflow/report/dust_statistics.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
    log:
        log_file("dust/statistics"),
    benchmark:
        benchmark_file("dust/statistics")
    conda:
        "../envs/dustvae.yaml"
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "validation", "test"]),
    params:
        names=list(DUST_MODELS),
        # Not the syntheses' knobs: those rerun dust_scattering and dust_wph_synthesis instead.
        statistics={k: v for k, v in DUSTVAE["statistics"].items() if k not in ("scattering", "wph_synthesis")},
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_statistics.py"


rule dust_imputation:
    input:
        model=dust_model_file(DUSTVAE["imputation"]["model"]),
        sampler=dust_sampler_file(DUSTVAE["imputation"]["model"]),
        train=dust_patch_file("train"),
        test=dust_patch_file("test"),
    output:
        predictions=DUST_IMPUTATION,
        table=report(
            DUST_IMPUTATION_TABLE,
            caption="../workflow/report/dust_imputation.rst",
            category="Dust VAE",
            subcategory="Imputation",
        ),
        plot=report(
            DUST_IMPUTATION_FIGURE,
            caption="../workflow/report/dust_imputation.rst",
            category="Dust VAE",
            subcategory="Imputation",
        ),
    log:
        log_file("dust/imputation"),
    benchmark:
        benchmark_file("dust/imputation")
    conda:
        "../envs/dustvae.yaml"
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "test"]),
    params:
        imputation=DUSTVAE["imputation"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
    script:
        "../workflow/scripts/dust_imputation.py"


rule dust_interpolation:
    input:
        model=dust_model_file(DUSTVAE["interpolation"]["model"]),
        test=dust_patch_file("test"),
    output:
        gif=report(
            DUST_INTERPOLATION_GIF,
            caption="../workflow/report/dust_interpolation.rst",
            category="Dust VAE",
            subcategory="Interpolation",
        ),
        strip=report(
            DUST_INTERPOLATION_STRIP,
            caption="../workflow/report/dust_interpolation.rst",
            category="Dust VAE",
            subcategory="Interpolation",
        ),
    log:
        log_file("dust/interpolation"),
    benchmark:
        benchmark_file("dust/interpolation")
    conda:
        "../envs/dustvae.yaml"
    resources:
        mem_mb=dust_mem_mb(["test"]),
    params:
        interpolation=DUSTVAE["interpolation"],
    script:
        "../workflow/scripts/dust_interpolation.py"


rule dust_conditional:
    input:
        model=dust_model_file(),
        sampler=dust_sampler_file(),
        test=dust_patch_file("test"),
    output:
        table=report(
            dust_conditional_table(),
            caption="../workflow/report/dust_conditional.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        structure=dust_conditional_structure_table(),
        plot=report(
            dust_conditional_figure(),
            caption="../workflow/report/dust_conditional.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        latent=report(
            dust_latent_figure(),
            caption="../workflow/report/dust_latent.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        reconstructions=report(
            dust_reconstructions_figure(),
            caption="../workflow/report/dust_reconstructions.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
    log:
        log_file("dust/conditional_{dustmodel}"),
    benchmark:
        benchmark_file("dust/conditional_{dustmodel}")
    conda:
        "../envs/dustvae.yaml"
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "test"]),
    params:
        conditional=DUSTVAE["conditional"],
        condition=lambda wildcards: DUST_MODELS[wildcards.dustmodel]["condition"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
        n_bins=DUSTVAE["statistics"]["n_bins"],
        seed=config["seed"],
    script:
        "../workflow/scripts/dust_conditional.py"
