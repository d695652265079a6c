# The real Planck sky (planck.real_sky, the `planck` preset): HFI maps and Planck's CMB products at the
# simulation's resolution, patches outside the common mask, CENN on them, and the comparison with
# Commander and SMICA. Also the per-pixel noise covariances that observation.noise_model: planck draws from.
from cmbnn.planck.maps import CMB_PRODUCTS, HFI_DATA, MASK_FILES, hfi_map_file

REAL_SKY = PLANCK["real_sky"]
REAL_DATA = list(HFI_DATA)  # full, hm1, hm2: the half missions give the noise bias
CMB_PRODUCT_NAMES = list(REAL_SKY["cmb_products"])
REAL_FIELDS = ["Q", "U"]
# The CENN networks that predict Q and U (one joint model, or one per field) and their fields.
# With real_sky enabled, they cover Q and U and the first CMB product is commander
# (cmbnn.config.check_consistency). The stage's paths are in rules/common.smk (rule observe reads
# the noise covariances).
REAL_MODELS = {m: fields for m, fields in CENN_MODELS.items() if set(fields) & set(REAL_FIELDS)}


wildcard_constraints:
    data="|".join(REAL_DATA),
    product="|".join(CMB_PRODUCTS),


rule planck_noise_variance:
    input:
        lambda wildcards: planck_file(hfi_map_file(freq_of(wildcards.freq))),
    output:
        noise_variance_path(),
    log:
        log_file("planck/noise_variance_{freq}"),
    benchmark:
        benchmark_file("planck/noise_variance_{freq}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=planck_map_mem_mb,
    params:
        nside=config["nside"],
    script:
        "../workflow/scripts/planck_noise_variance.py"


rule planck_keep_mask:
    input:
        planck_file(MASK_FILES[REAL_SKY["mask"]]),
    output:
        PLANCK_KEEP_MASK,
    log:
        log_file("planck/keep_mask"),
    benchmark:
        benchmark_file("planck/keep_mask")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=planck_map_mem_mb,
    params:
        nside=config["nside"],
        column=REAL_SKY["mask_column"],
        threshold=REAL_SKY["mask_threshold"],
    script:
        "../workflow/scripts/planck_keep_mask.py"


rule planck_frequency_map:
    input:
        lambda wildcards: planck_file(hfi_map_file(freq_of(wildcards.freq), wildcards.data)),
    output:
        planck_frequency_map_path(),
    log:
        log_file("planck/frequency_map_{data}_{freq}"),
    benchmark:
        benchmark_file("planck/frequency_map_{data}_{freq}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=planck_map_mem_mb,
    params:
        nside=config["nside"],
        fwhm_arcmin=lambda wildcards: config["observation"]["beam_fwhm_arcmin"][FREQ_TAGS.index(wildcards.freq)],
    script:
        "../workflow/scripts/planck_frequency_map.py"


rule planck_cmb_map:
    input:
        lambda wildcards: planck_file(CMB_PRODUCTS[wildcards.product]),
    output:
        planck_cmb_map_path(),
    log:
        log_file("planck/cmb_map_{product}"),
    benchmark:
        benchmark_file("planck/cmb_map_{product}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=planck_map_mem_mb,
    params:
        nside=config["nside"],
        fwhm_in_arcmin=REAL_SKY["cmb_fwhm_arcmin"],
        fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_in=REAL_SKY["cmb_pixel_window"],
    script:
        "../workflow/scripts/planck_cmb_map.py"


# One set of centres for every map: outside the mask, and on pixels valid in every input.
rule planck_centers:
    input:
        mask=PLANCK_KEEP_MASK,
        maps=[planck_frequency_map_path(d, tag) for d in REAL_DATA for tag in FREQ_TAGS],
        cmb=[planck_cmb_map_path(p) for p in CMB_PRODUCT_NAMES],
    output:
        PLANCK_CENTERS,
    log:
        log_file("planck/centers"),
    benchmark:
        benchmark_file("planck/centers")
    conda:
        "../envs/sky.yaml"
    params:
        **PATCH_GEOMETRY,
        n_patches=REAL_SKY["n_patches"],
        lat_cut_deg=REAL_SKY["lat_cut_deg"],
        seed=config["seed"],
    script:
        "../workflow/scripts/planck_centers.py"


rule planck_patches:
    input:
        centers=PLANCK_CENTERS,
        maps=[planck_frequency_map_path("{data}", tag) for tag in FREQ_TAGS],
        cmb=[planck_cmb_map_path(p) for p in CMB_PRODUCT_NAMES],
    output:
        [planck_patch_file(f) for f in REAL_FIELDS],
    log:
        log_file("planck/patches_{data}"),
    benchmark:
        benchmark_file("planck/patches_{data}")
    conda:
        "../envs/sky.yaml"
    params:
        **PATCH_GEOMETRY,
        fields=REAL_FIELDS,
        products=CMB_PRODUCT_NAMES,
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        nside=config["nside"],
        seed=config["seed"],
        interpolation=config["patches"]["interpolation"],
    script:
        "../workflow/scripts/planck_patches.py"


# One job per data split: every CENN model that predicts Q or U, each loaded once.
rule predict_cenn_planck:
    input:
        models=[model_path(CENN_MODELS[m][0]) for m in REAL_MODELS],
        patches=[planck_patch_file(f) for f in REAL_FIELDS],
    output:
        [planck_prediction_path(f) for f in REAL_FIELDS],
    log:
        log_file("planck/predict_cenn_{data}"),
    benchmark:
        benchmark_file("planck/predict_cenn_{data}")
    conda:
        "../envs/ml.yaml"
    params:
        fields=REAL_FIELDS,
        models=REAL_MODELS,
        test_time_augmentation=config["cenn"]["test_time_augmentation"],
    script:
        "../workflow/scripts/predict_cenn_planck.py"


rule planck_comparison:
    input:
        cenn=[planck_prediction_path(f, d) for d in REAL_DATA for f in REAL_FIELDS],
        patches=[planck_patch_file(f, "full") for f in REAL_FIELDS],
        workspace=spectra_workspace("QU"),
        cls=SPECTRA_TABLE,
    output:
        table=report(
            PLANCK_COMPARISON,
            caption="../workflow/report/planck_comparison_table.rst",
            category="Planck sky",
        ),
        plot=report(
            PLANCK_COMPARISON_FIGURE,
            caption="../workflow/report/planck_comparison.rst",
            category="Planck sky",
        ),
    log:
        log_file("planck/comparison"),
    benchmark:
        benchmark_file("planck/comparison")
    conda:
        "../envs/namaster.yaml"
    params:
        **PATCH_GEOMETRY,
        data=REAL_DATA,
        fields=REAL_FIELDS,
        products=CMB_PRODUCT_NAMES,
        spectra=config["spectra"],
        label_beam_arcmin=LABEL_BEAM_ARCMIN,
    script:
        "../workflow/scripts/planck_comparison.py"
