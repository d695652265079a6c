# CosmoVAE (Yi et al. 2020): inpainting masked CMB temperature patches, against the exact
# Gaussian conditional mean. Masks from the simulated sky (cmbnn.inpainting.masks), T truth patches
# from the patch stage; all under results/inpainting/, results/models/cosmovae/, results/predictions/
# {cosmovae,gaussian}/T/test.h5 and results/metrics/inpainting/. With cosmovae.enabled, patches.fields
# has T and the foregrounds dust (cmbnn.config.check_consistency).

INPAINTING = config["inpainting"]
COSMOVAE = config["cosmovae"]
# Training settings only: prediction / evaluation keys do not retrain the network.
COSMOVAE_PREDICT_KEYS = ("n_samples", "small_holes", "kept_samples", "fullsky")
COSMOVAE_SETTINGS = {k: v for k, v in COSMOVAE.items() if k not in COSMOVAE_PREDICT_KEYS}
# The T truth patches carry the HEALPix pixel window only when cut from maps (patches.method pixel);
# the exact method evaluates the label alm at the patch pixels (beam only).
LABEL_PIXWIN_NSIDE = (
    config["nside"] if (config["patches"]["method"] == "pixel" and config["observation"]["pixel_window"]) else None
)


# Every final output of the stage, for rule all (none when cosmovae.enabled is false); the paths
# are in rules/common.smk. The full-sky realisation is a simulated one (cmbnn.config.check_consistency).
COSMOVAE_FULLSKY_REALISATIONS = [COSMOVAE["fullsky"]["realisation"]] if COSMOVAE["fullsky"]["enabled"] else []
COSMOVAE_OUTPUTS = (
    [
        COSMOVAE_MODEL,
        INPAINTING_METRICS,
        INPAINTING_SPECTRA,
        INPAINTING_FIGURE,
        INPAINTING_SPECTRA_FIGURE,
        INPAINTING_HOLE_POWER,
        INPAINTING_HOLE_POWER_FIGURE,
        *[p for r in COSMOVAE_FULLSKY_REALISATIONS for p in (fullsky_inpainted(r), fullsky_spectra(r), fullsky_figure(r))],
    ]
    if COSMOVAE["enabled"]
    else []
)


rule inpainting_sky_mask:
    input:
        dust=foreground_path("dust"),
        sources=[foreground_path(c) for c in SOURCE_COMPONENTS],
        patches=[patch_file("T", s) for s in SPLITS],
    output:
        mask=inpainting_mask(),
        table=report(
            inpainting_mask_table(),
            caption="../workflow/report/cosmovae_mask.rst",
            category="CosmoVAE",
            subcategory="Masks",
        ),
    log:
        log_file("inpainting/sky_mask_r{realisation}"),
    benchmark:
        benchmark_file("inpainting/sky_mask_r{realisation}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(SPLITS, 1),
    params:
        inpainting=INPAINTING,
        geometry=PATCH_GEOMETRY,
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        nside=config["nside"],
        source_flux_Jy=config["patches"]["source_mask_flux_Jy"],
        source_radius_arcmin=config["patches"]["source_mask_radius_fwhm"] * LABEL_BEAM_ARCMIN,
    script:
        "../workflow/scripts/inpainting_sky_mask.py"


if LABEL_LMAX:

    rule label_spectra:
        input:
            cls=SPECTRA_TABLE,
        output:
            cls=INPAINTING_CLS,
        log:
            log_file("inpainting/label_spectra"),
        benchmark:
            benchmark_file("inpainting/label_spectra")
        conda:
            "../envs/sky.yaml"
        resources:
            mem_mb=scaled(2000),
        params:
            theory=THEORY_PARAMS,
            lmax_sky=LMAX,
            label_lmax=LABEL_LMAX,
        script:
            "../workflow/scripts/label_spectra.py"


rule inpainting_patches:
    input:
        patches=patch_file("T", "{split}"),
        masks=[inpainting_mask(r) for r in REALISATIONS],
        cls=INPAINTING_CLS,
    output:
        inpainting_patch_file(),
    log:
        log_file("inpainting/patches_{split}"),
    benchmark:
        benchmark_file("inpainting/patches_{split}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(one_split, 1),
    params:
        inpainting=INPAINTING,
        geometry=PATCH_GEOMETRY,
        lmax_sky=LMAX,
        label_lmax=LABEL_LMAX,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        seed=config["seed"],
        # The Gaussian baseline costs seconds per patch (dense solves): the test set is a subset.
        max_patches=lambda wildcards: INPAINTING["test_patches"] if wildcards.split == "test" else None,
    script:
        "../workflow/scripts/inpainting_patches.py"


rule mask_bank:
    input:
        inpainting_patch_file("train"),
    output:
        MASK_BANK,
    log:
        log_file("inpainting/mask_bank"),
    benchmark:
        benchmark_file("inpainting/mask_bank")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(["train"], 1),
    params:
        min_fraction=INPAINTING["bank_min_fraction"],
    script:
        "../workflow/scripts/mask_bank.py"


rule train_cosmovae:
    input:
        train=inpainting_patch_file("train"),
        validation=inpainting_patch_file("validation"),
        bank=MASK_BANK,
        cls=INPAINTING_CLS,
    output:
        model=COSMOVAE_MODEL,
        history=COSMOVAE_HISTORY,
        plot=report(
            COSMOVAE_HISTORY_FIGURE,
            caption="../workflow/report/cosmovae_history.rst",
            category="CosmoVAE",
            subcategory="Training",
        ),
        tensorboard=directory(COSMOVAE_TENSORBOARD),
    log:
        log_file("cosmovae/train"),
    benchmark:
        benchmark_file("cosmovae/train")
    conda:
        "../envs/ml.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=patches_mem_mb(["train", "validation"], 1),
    params:
        settings=COSMOVAE_SETTINGS,
        seed=config["seed"],
        lmax=LMAX,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir=COSMOVAE_CHECKPOINT,
    script:
        "../workflow/scripts/train_cosmovae.py"


rule predict_cosmovae:
    input:
        model=COSMOVAE_MODEL,
        patches=inpainting_patch_file("test"),
        cls=INPAINTING_CLS,
    output:
        COSMOVAE_PREDICTION,
    log:
        log_file("cosmovae/predict_test"),
    benchmark:
        benchmark_file("cosmovae/predict_test")
    conda:
        "../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=patches_mem_mb(["test"], 3),
    params:
        model=COSMOVAE["model"],
        n_samples=COSMOVAE["n_samples"],
        small_holes=COSMOVAE["small_holes"],
        kept_samples=COSMOVAE["kept_samples"],
        seed=config["seed"],
        geometry=PATCH_GEOMETRY,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
    script:
        "../workflow/scripts/predict_cosmovae.py"


rule gaussian_inpaint:
    input:
        patches=inpainting_patch_file("test"),
        cls=INPAINTING_CLS,
    output:
        GAUSSIAN_PREDICTION,
    log:
        log_file("inpainting/gaussian_test"),
    benchmark:
        benchmark_file("inpainting/gaussian_test")
    conda:
        "../envs/sky.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
    params:
        geometry=PATCH_GEOMETRY,
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        method_mean=INPAINTING["gaussian_method"],
        method_std=INPAINTING["gaussian_method"],
        kept_samples=COSMOVAE["kept_samples"],
        seed=config["seed"],
    script:
        "../workflow/scripts/gaussian_inpaint.py"


rule inpainting_metrics:
    input:
        cosmovae=COSMOVAE_PREDICTION,
        gaussian=GAUSSIAN_PREDICTION,
        workspace=spectra_workspace("T"),
    output:
        table=report(
            INPAINTING_METRICS,
            caption="../workflow/report/cosmovae_metrics.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        spectra=report(
            INPAINTING_SPECTRA,
            caption="../workflow/report/cosmovae_spectra.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        plot=report(
            INPAINTING_FIGURE,
            caption="../workflow/report/cosmovae_examples.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        spectra_plot=report(
            INPAINTING_SPECTRA_FIGURE,
            caption="../workflow/report/cosmovae_spectra.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        hole_power=report(
            INPAINTING_HOLE_POWER,
            caption="../workflow/report/cosmovae_hole_power.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
        hole_power_plot=report(
            INPAINTING_HOLE_POWER_FIGURE,
            caption="../workflow/report/cosmovae_hole_power.rst",
            category="CosmoVAE",
            subcategory="Metrics",
        ),
    log:
        log_file("inpainting/metrics_test"),
    benchmark:
        benchmark_file("inpainting/metrics_test")
    conda:
        "../envs/namaster.yaml"
    resources:
        mem_mb=patches_mem_mb(["test"], 4),
    params:
        geometry=PATCH_GEOMETRY,
        spectra=config["spectra"],
        n_examples=config["figures"]["n_example_patches"],
        max_spectra_patches=INPAINTING["max_spectra_patches"],
        check_against_zero_fill=INPAINTING["check_against_zero_fill"],
        seed=config["seed"],
    script:
        "../workflow/scripts/inpainting_metrics.py"


rule inpainting_fullsky_patches:
    input:
        cmb=cmb_alm_path(),
        mask=inpainting_mask(),
    output:
        maps=fullsky_region(),
        patches=fullsky_patches(),
    log:
        log_file("inpainting/fullsky_patches_r{realisation}"),
    benchmark:
        benchmark_file("inpainting/fullsky_patches_r{realisation}")
    conda:
        "../envs/sky.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
    params:
        fullsky=COSMOVAE["fullsky"],
        geometry=PATCH_GEOMETRY,
        nside=config["nside"],
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        observation=config["observation"],
        lat_cut_deg=config["patches"]["lat_cut_deg"],
        seed=config["seed"],
    script:
        "../workflow/scripts/inpainting_fullsky_patches.py"


rule cosmovae_fullsky:
    input:
        maps=fullsky_region(),
        patches=fullsky_patches(),
        model=COSMOVAE_MODEL,
        cls=SPECTRA_TABLE,
    output:
        maps=fullsky_inpainted(),
        spectra=report(
            fullsky_spectra(),
            caption="../workflow/report/cosmovae_fullsky.rst",
            category="CosmoVAE",
            subcategory="Full sky",
        ),
        errors=report(
            fullsky_errors(),
            caption="../workflow/report/cosmovae_fullsky.rst",
            category="CosmoVAE",
            subcategory="Full sky",
        ),
        plot=report(
            fullsky_figure(),
            caption="../workflow/report/cosmovae_fullsky.rst",
            category="CosmoVAE",
            subcategory="Full sky",
        ),
    log:
        log_file("cosmovae/fullsky_r{realisation}"),
    benchmark:
        benchmark_file("cosmovae/fullsky_r{realisation}")
    conda:
        "../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=scaled(4000),
    params:
        geometry=PATCH_GEOMETRY,
        nside=config["nside"],
        model=COSMOVAE["model"],
        n_samples=COSMOVAE["n_samples"],
        small_holes=COSMOVAE["small_holes"],
        seed=config["seed"],
        beam_fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_nside=LABEL_PIXWIN_NSIDE,
        gaussian_method=INPAINTING["gaussian_method"],
    script:
        "../workflow/scripts/cosmovae_fullsky.py"
