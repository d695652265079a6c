# Generative models of dust intensity: the dust VAE (Thorne et al. 2021), a beta-VAE and a
# conditional VAE, each against a Gaussian field with the training patches' spectrum (the
# classical generator and, for imputation, the Gaussian conditional mean of cmbnn.gaussian_field).
# Sky and patches under results/dust/, models under results/models/dust/<model>/, tables under
# results/metrics/dust/ and figures under results/figures/dust/.

from functools import partial

from cmbnn.dust.vae import workflow_outputs as dustvae_workflow_outputs

DUSTVAE = config["dustvae"]
DUST = "results/dust"
DUST_MODELS = DUSTVAE["models"]
DUST_PATCHES = DUSTVAE["patches"]

# Every final output of the stage, for rule all (none when dustvae.enabled is false).
dustvae_outputs = partial(dustvae_workflow_outputs, config)


wildcard_constraints:
    dustmodel="|".join(DUST_MODELS),


rule dust_sky:
    output:
        f"{DUST}/sky_alm.h5",
    params:
        sky=DUSTVAE["sky"],
        seed=config["seed"],
    resources:
        mem_mb=scaled(2000),
    log:
        "results/logs/dust/sky.log",
    benchmark:
        "results/benchmarks/dust/sky.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/dust_sky.py"


rule dust_patches:
    input:
        dust_patch_source,
    output:
        f"{DUST}/patches/{{split}}.h5",
    params:
        source=DUSTVAE["source"],
        sky=DUSTVAE["sky"],
        patches=DUST_PATCHES,
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: (4000 + (2000 if DUSTVAE["source"] == "gnilc545" else 0)) * attempt,
    log:
        "results/logs/dust/patches_{split}.log",
    benchmark:
        "results/benchmarks/dust/patches_{split}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/dust_patches.py"


rule train_dustvae:
    input:
        train=f"{DUST}/patches/train.h5",
        validation=f"{DUST}/patches/validation.h5",
    output:
        model="results/models/dust/{dustmodel}/model.keras",
        history="results/models/dust/{dustmodel}/history.tsv",
        plot=report(
            "results/figures/dust/history_{dustmodel}.png",
            caption="../workflow/report/dust_history.rst",
            category="Dust VAE",
            subcategory="Training",
        ),
    params:
        # Only this model's settings: changing another model's beta does not retrain this one.
        settings=lambda wildcards: {**DUSTVAE["network"], **DUSTVAE["training"], **DUST_MODELS[wildcards.dustmodel]},
        seed=config["seed"],
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir=lambda wildcards: f"results/models/dust/{wildcards.dustmodel}/checkpoint",
    threads: 1
    resources:
        gpu=1,
        mem_mb=dust_mem_mb(["train", "validation"]),
    log:
        "results/logs/dust/train_{dustmodel}.log",
    benchmark:
        "results/benchmarks/dust/train_{dustmodel}.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/train_dustvae.py"


rule dust_statistics:
    input:
        models=expand("results/models/dust/{dustmodel}/model.keras", dustmodel=DUST_MODELS),
        train=f"{DUST}/patches/train.h5",
        validation=f"{DUST}/patches/validation.h5",
        test=f"{DUST}/patches/test.h5",
    output:
        samples=f"{DUST}/samples.h5",
        table=report(
            "results/metrics/dust/statistics.tsv",
            caption="../workflow/report/dust_statistics.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
        samples_plot=report(
            "results/figures/dust/samples.png",
            caption="../workflow/report/dust_samples.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
        statistics_plot=report(
            "results/figures/dust/statistics.png",
            caption="../workflow/report/dust_statistics.rst",
            category="Dust VAE",
            subcategory="Statistics",
        ),
    params:
        names=list(DUST_MODELS),
        statistics=DUSTVAE["statistics"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "validation", "test"]),
    log:
        "results/logs/dust/statistics.log",
    benchmark:
        "results/benchmarks/dust/statistics.tsv"
    conda:
        "../envs/dustvae.yaml"
    script:
        "../workflow/scripts/dust_statistics.py"


rule dust_imputation:
    input:
        model=f"results/models/dust/{DUSTVAE['imputation']['model']}/model.keras",
        train=f"{DUST}/patches/train.h5",
        test=f"{DUST}/patches/test.h5",
    output:
        predictions=f"{DUST}/imputation.h5",
        table=report(
            "results/metrics/dust/imputation.tsv",
            caption="../workflow/report/dust_imputation.rst",
            category="Dust VAE",
            subcategory="Imputation",
        ),
        plot=report(
            "results/figures/dust/imputation.png",
            caption="../workflow/report/dust_imputation.rst",
            category="Dust VAE",
            subcategory="Imputation",
        ),
    params:
        imputation=DUSTVAE["imputation"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "test"]),
    log:
        "results/logs/dust/imputation.log",
    benchmark:
        "results/benchmarks/dust/imputation.tsv"
    conda:
        "../envs/dustvae.yaml"
    script:
        "../workflow/scripts/dust_imputation.py"


rule dust_interpolation:
    input:
        model=f"results/models/dust/{DUSTVAE['interpolation']['model']}/model.keras",
        test=f"{DUST}/patches/test.h5",
    output:
        gif=report(
            "results/figures/dust/interpolation.gif",
            caption="../workflow/report/dust_interpolation.rst",
            category="Dust VAE",
            subcategory="Interpolation",
        ),
        strip=report(
            "results/figures/dust/interpolation_strip.png",
            caption="../workflow/report/dust_interpolation.rst",
            category="Dust VAE",
            subcategory="Interpolation",
        ),
    params:
        interpolation=DUSTVAE["interpolation"],
    resources:
        mem_mb=dust_mem_mb(["test"]),
    log:
        "results/logs/dust/interpolation.log",
    benchmark:
        "results/benchmarks/dust/interpolation.tsv"
    conda:
        "../envs/dustvae.yaml"
    script:
        "../workflow/scripts/dust_interpolation.py"


rule dust_conditional:
    input:
        model="results/models/dust/{dustmodel}/model.keras",
        train=f"{DUST}/patches/train.h5",
        test=f"{DUST}/patches/test.h5",
    output:
        table=report(
            "results/metrics/dust/conditional_{dustmodel}.tsv",
            caption="../workflow/report/dust_conditional.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        plot=report(
            "results/figures/dust/conditional_{dustmodel}.png",
            caption="../workflow/report/dust_conditional.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        latent=report(
            "results/figures/dust/latent_{dustmodel}.png",
            caption="../workflow/report/dust_latent.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
        reconstructions=report(
            "results/figures/dust/reconstructions_{dustmodel}.png",
            caption="../workflow/report/dust_reconstructions.rst",
            category="Dust VAE",
            subcategory="Conditional generation",
        ),
    params:
        conditional=DUSTVAE["conditional"],
        condition=lambda wildcards: DUST_MODELS[wildcards.dustmodel]["condition"],
        reso_arcmin=DUST_PATCHES["reso_arcmin"],
        n_bins=DUSTVAE["statistics"]["n_bins"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=dust_mem_mb(["train", "test"]),
    log:
        "results/logs/dust/conditional_{dustmodel}.log",
    benchmark:
        "results/benchmarks/dust/conditional_{dustmodel}.tsv"
    conda:
        "../envs/dustvae.yaml"
    script:
        "../workflow/scripts/dust_conditional.py"
