# CosmoVAE (Yi et al. 2020): inpainting masked CMB temperature patches, against the exact
# Gaussian conditional mean. Masks from the simulated sky (cmbnn.masks), T truth patches from
# the patch stage; all under results/inpainting/, results/models/cosmovae/, results/predictions/
# {cosmovae,gaussian}/T/test.h5 and results/metrics/inpainting/.

from functools import partial

from cmbnn.inpainting.cosmovae import workflow_outputs as cosmovae_workflow_outputs

INPAINTING = config["inpainting"]
COSMOVAE = config["cosmovae"]
# Training settings only: prediction / evaluation keys do not retrain the network.
COSMOVAE_PREDICT_KEYS = ("n_samples", "fullsky")
COSMOVAE_SETTINGS = {k: v for k, v in COSMOVAE.items() if k not in COSMOVAE_PREDICT_KEYS}
INPAINT = "results/inpainting"
# The T truth patches carry the HEALPix pixel window only when cut from maps (patches.method pixel);
# the exact method evaluates the label alm at the patch pixels (beam only).
LABEL_PIXWIN_NSIDE = config["nside"] if (config["patches"]["method"] == "pixel" and config["observation"]["pixel_window"]) else None


# Every final output of the stage, for rule all (none when cosmovae.enabled is false).
cosmovae_outputs = partial(cosmovae_workflow_outputs, config)


if COSMOVAE["enabled"]:
    if "T" not in FIELDS:
        raise ValueError(f"cosmovae inpaints T patches: add T to patches.fields {FIELDS} (or set cosmovae.enabled: false)")
    if "dust" not in COMPONENTS:
        raise ValueError("the inpainting mask thresholds the dust intensity: foregrounds.components needs dust (or set cosmovae.enabled: false)")


rule inpainting_sky_mask:
    input:
        dust=sky_path("foreground_dust.h5"),
        sources=[sky_path(f"foreground_{c}.h5") for c in SOURCE_COMPONENTS],
        patches=[patch_file("T", s) for s in SPLITS],
    output:
        mask=f"{INPAINT}/r{{realisation}}/mask.fits",
        table=report(
            f"{INPAINT}/r{{realisation}}/mask.tsv",
            caption="../workflow/report/cosmovae_mask.rst",
            category="CosmoVAE",
            subcategory="Masks",
        ),
    params:
        inpainting=INPAINTING,
        geometry=PATCH_GEOMETRY,
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        nside=config["nside"],
        source_flux_Jy=config["patches"]["source_mask_flux_Jy"],
        source_radius_arcmin=config["patches"]["source_mask_radius_fwhm"] * LABEL_BEAM_ARCMIN,
    resources:
        mem_mb=patches_mem_mb(SPLITS, 1),
    log:
        "results/logs/inpainting/sky_mask_r{realisation}.log",
    benchmark:
        "results/benchmarks/inpainting/sky_mask_r{realisation}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/inpainting_sky_mask.py"


rule inpainting_patches:
    input:
        patches=patch_file("T", "{split}"),
        masks=[f"{INPAINT}/r{r}/mask.fits" for r in REALISATIONS],
    output:
        f"{INPAINT}/T/{{split}}.h5",
    params:
        inpainting=INPAINTING,
        geometry=PATCH_GEOMETRY,
        # The Gaussian baseline costs seconds per patch (dense solves): the test set is a subset.
        max_patches=lambda wildcards: INPAINTING["test_patches"] if wildcards.split == "test" else None,
    resources:
        mem_mb=patches_mem_mb(one_split, 1),
    log:
        "results/logs/inpainting/patches_{split}.log",
    benchmark:
        "results/benchmarks/inpainting/patches_{split}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/inpainting_patches.py"


rule mask_bank:
    input:
        f"{INPAINT}/T/train.h5",
    output:
        f"{INPAINT}/mask_bank.h5",
    params:
        min_fraction=INPAINTING["bank_min_fraction"],
    resources:
        mem_mb=patches_mem_mb(["train"], 1),
    log:
        "results/logs/inpainting/mask_bank.log",
    benchmark:
        "results/benchmarks/inpainting/mask_bank.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/mask_bank.py"


rule train_cosmovae:
    input:
        train=f"{INPAINT}/T/train.h5",
        validation=f"{INPAINT}/T/validation.h5",
        bank=f"{INPAINT}/mask_bank.h5",
        cls=SPECTRA_TABLE,
    output:
        model="results/models/cosmovae/model.keras",
        history="results/models/cosmovae/history.tsv",
        plot=report(
            "results/figures/cosmovae_history.png",
            caption="../workflow/report/cosmovae_history.rst",
            category="CosmoVAE",
            subcategory="Training",
        ),
        tensorboard=directory("results/models/cosmovae/tensorboard"),
    params:
        settings=COSMOVAE_SETTINGS,
        seed=config["seed"],
        lmax=LMAX,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir="results/models/cosmovae/checkpoint",
    threads: 2
    resources:
        gpu=1,
        mem_mb=patches_mem_mb(["train", "validation"], 1),
    log:
        "results/logs/cosmovae/train.log",
    benchmark:
        "results/benchmarks/cosmovae/train.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/train_cosmovae.py"


rule predict_cosmovae:
    input:
        model="results/models/cosmovae/model.keras",
        patches=f"{INPAINT}/T/test.h5",
    output:
        "results/predictions/cosmovae/T/test.h5",
    params:
        n_samples=COSMOVAE["n_samples"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=patches_mem_mb(["test"], 3),
    log:
        "results/logs/cosmovae/predict_test.log",
    benchmark:
        "results/benchmarks/cosmovae/predict_test.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/predict_cosmovae.py"


rule gaussian_inpaint:
    input:
        patches=f"{INPAINT}/T/test.h5",
        cls=SPECTRA_TABLE,
    output:
        "results/predictions/gaussian/T/test.h5",
    params:
        geometry=PATCH_GEOMETRY,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        method_mean=INPAINTING["gaussian_method"],
        method_std=INPAINTING["gaussian_method"],
    threads: 2
    resources:
        mem_mb=scaled(4000),
    log:
        "results/logs/inpainting/gaussian_test.log",
    benchmark:
        "results/benchmarks/inpainting/gaussian_test.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/gaussian_inpaint.py"


rule inpainting_metrics:
    input:
        cosmovae="results/predictions/cosmovae/T/test.h5",
        gaussian="results/predictions/gaussian/T/test.h5",
        workspace="results/spectra/T/workspace.fits",
    output:
        table=report(
            "results/metrics/inpainting/test.tsv",
            caption="../workflow/report/cosmovae_metrics.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        spectra=report(
            "results/metrics/inpainting/test_spectra.tsv",
            caption="../workflow/report/cosmovae_spectra.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        plot=report(
            "results/figures/cosmovae_inpainting_test.png",
            caption="../workflow/report/cosmovae_examples.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        spectra_plot=report(
            "results/figures/cosmovae_spectra_test.png",
            caption="../workflow/report/cosmovae_spectra.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
    params:
        geometry=PATCH_GEOMETRY,
        spectra=config["spectra"],
        n_examples=config["figures"]["n_example_patches"],
        max_spectra_patches=INPAINTING["max_spectra_patches"],
    resources:
        mem_mb=patches_mem_mb(["test"], 4),
    log:
        "results/logs/inpainting/metrics_test.log",
    benchmark:
        "results/benchmarks/inpainting/metrics_test.tsv"
    conda:
        "../envs/namaster.yaml"
    script:
        "../workflow/scripts/inpainting_metrics.py"


rule inpainting_fullsky_patches:
    input:
        cmb=sky_path("cmb_alm.h5", "{realisation}"),
        mask=f"{INPAINT}/r{{realisation}}/mask.fits",
    output:
        maps=f"{INPAINT}/fullsky/r{{realisation}}/region.fits",
        patches=f"{INPAINT}/fullsky/r{{realisation}}/patches.h5",
    params:
        fullsky=COSMOVAE["fullsky"],
        geometry=PATCH_GEOMETRY,
        nside=config["nside"],
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        observation=config["observation"],
        lat_cut_deg=config["patches"]["lat_cut_deg"],
        seed=config["seed"],
    threads: 2
    resources:
        mem_mb=scaled(4000),
    log:
        "results/logs/inpainting/fullsky_patches_r{realisation}.log",
    benchmark:
        "results/benchmarks/inpainting/fullsky_patches_r{realisation}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/inpainting_fullsky_patches.py"


rule cosmovae_fullsky:
    input:
        maps=f"{INPAINT}/fullsky/r{{realisation}}/region.fits",
        patches=f"{INPAINT}/fullsky/r{{realisation}}/patches.h5",
        model="results/models/cosmovae/model.keras",
        cls=SPECTRA_TABLE,
    output:
        maps=f"{INPAINT}/fullsky/r{{realisation}}/inpainted.fits",
        spectra=report(
            f"{INPAINT}/fullsky/r{{realisation}}/spectra.tsv",
            caption="../workflow/report/cosmovae_fullsky.rst",
            category="CosmoVAE",
            subcategory="Full sky",
        ),
        plot=report(
            "results/figures/cosmovae_fullsky_r{realisation}.png",
            caption="../workflow/report/cosmovae_fullsky.rst",
            category="CosmoVAE",
            subcategory="Full sky",
        ),
    params:
        geometry=PATCH_GEOMETRY,
        nside=config["nside"],
        n_samples=COSMOVAE["n_samples"],
        seed=config["seed"],
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        gaussian_method=INPAINTING["gaussian_method"],
    threads: 2
    resources:
        mem_mb=scaled(4000),
    log:
        "results/logs/cosmovae/fullsky_r{realisation}.log",
    benchmark:
        "results/benchmarks/cosmovae/fullsky_r{realisation}.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/cosmovae_fullsky.py"
