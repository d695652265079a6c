# The real Planck sky (planck.real_sky, the `planck` preset): HFI maps and Planck's CMB products at the
# simulation's resolution, patches outside the common mask, CENN on them, and the comparison with
# Commander and SMICA. Also the per-pixel noise covariances that observation.noise_model: planck draws from.
from cmbnn.planck.maps import CMB_PRODUCTS, HFI_DATA, MASK_FILES, hfi_map_file

REAL_SKY = PLANCK["real_sky"]
REAL_DATA = list(HFI_DATA)  # full, hm1, hm2: the half missions give the noise bias
CMB_PRODUCT_NAMES = list(REAL_SKY["cmb_products"])
REAL_FIELDS = ["Q", "U"]
# The CENN networks that predict Q and U (one joint model, or one per field) and their fields.
REAL_MODELS = {m: fields for m, fields in CENN_MODELS.items() if set(fields) & set(REAL_FIELDS)}
if REAL_SKY["enabled"] and sorted(f for fs in REAL_MODELS.values() for f in fs) != REAL_FIELDS:
    raise ValueError(f"planck.real_sky compares Q and U: cenn.fields must include both, got {CENN_FIELDS}")
if REAL_SKY["enabled"] and CMB_PRODUCT_NAMES[0] != "commander":
    raise ValueError(f"planck.real_sky.cmb_products must start with commander (the reference), got {CMB_PRODUCT_NAMES}")


wildcard_constraints:
    data="|".join(REAL_DATA),
    product="|".join(CMB_PRODUCTS),


rule planck_noise_variance:
    input:
        lambda wildcards: planck_file(hfi_map_file(freq_of(wildcards.freq))),
    output:
        "results/planck/noise_variance_{freq}.fits",
    params:
        nside=config["nside"],
    resources:
        mem_mb=planck_map_mem_mb,
    log:
        "results/logs/planck/noise_variance_{freq}.log",
    benchmark:
        "results/benchmarks/planck/noise_variance_{freq}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_noise_variance.py"


rule planck_keep_mask:
    input:
        planck_file(MASK_FILES[REAL_SKY["mask"]]),
    output:
        "results/planck/keep_mask.fits",
    params:
        nside=config["nside"],
        column=REAL_SKY["mask_column"],
        threshold=REAL_SKY["mask_threshold"],
    resources:
        mem_mb=planck_map_mem_mb,
    log:
        "results/logs/planck/keep_mask.log",
    benchmark:
        "results/benchmarks/planck/keep_mask.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_keep_mask.py"


rule planck_frequency_map:
    input:
        lambda wildcards: planck_file(hfi_map_file(freq_of(wildcards.freq), wildcards.data)),
    output:
        "results/planck/maps/{data}_{freq}.fits",
    params:
        nside=config["nside"],
        fwhm_arcmin=lambda wildcards: config["observation"]["beam_fwhm_arcmin"][FREQ_TAGS.index(wildcards.freq)],
    resources:
        mem_mb=planck_map_mem_mb,
    log:
        "results/logs/planck/frequency_map_{data}_{freq}.log",
    benchmark:
        "results/benchmarks/planck/frequency_map_{data}_{freq}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_prepare_map.py"


rule planck_cmb_map:
    input:
        lambda wildcards: planck_file(CMB_PRODUCTS[wildcards.product]),
    output:
        "results/planck/maps/{product}.fits",
    params:
        nside=config["nside"],
        fwhm_in_arcmin=REAL_SKY["cmb_fwhm_arcmin"],
        fwhm_arcmin=LABEL_BEAM_ARCMIN,
        pixwin_in=REAL_SKY["cmb_pixel_window"],
    resources:
        mem_mb=planck_map_mem_mb,
    log:
        "results/logs/planck/cmb_map_{product}.log",
    benchmark:
        "results/benchmarks/planck/cmb_map_{product}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_prepare_map.py"


# One set of centres for every map: outside the mask, and on pixels valid in every input.
rule planck_centers:
    input:
        mask="results/planck/keep_mask.fits",
        maps=[f"results/planck/maps/{d}_{tag}.fits" for d in REAL_DATA for tag in FREQ_TAGS],
        cmb=[f"results/planck/maps/{p}.fits" for p in CMB_PRODUCT_NAMES],
    output:
        "results/planck/centers.tsv",
    params:
        n_patches=REAL_SKY["n_patches"],
        lat_cut_deg=REAL_SKY["lat_cut_deg"],
        seed=config["seed"],
        **PATCH_GEOMETRY,
    log:
        "results/logs/planck/centers.log",
    benchmark:
        "results/benchmarks/planck/centers.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_centers.py"


rule planck_patches:
    input:
        centers="results/planck/centers.tsv",
        maps=[f"results/planck/maps/{{data}}_{tag}.fits" for tag in FREQ_TAGS],
        cmb=[f"results/planck/maps/{p}.fits" for p in CMB_PRODUCT_NAMES],
    output:
        [f"results/planck/patches/{f}/{{data}}.h5" for f in REAL_FIELDS],
    params:
        fields=REAL_FIELDS,
        products=CMB_PRODUCT_NAMES,
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        nside=config["nside"],
        seed=config["seed"],
        interpolation=config["patches"]["interpolation"],
        **PATCH_GEOMETRY,
    log:
        "results/logs/planck/patches_{data}.log",
    benchmark:
        "results/benchmarks/planck/patches_{data}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/planck_patches.py"


# One job per data split: every CENN model that predicts Q or U, each loaded once.
rule predict_cenn_planck:
    input:
        models=[model_path(CENN_MODELS[m][0]) for m in REAL_MODELS],
        patches=[f"results/planck/patches/{f}/{{data}}.h5" for f in REAL_FIELDS],
    output:
        [f"results/planck/predictions/cenn/{f}/{{data}}.h5" for f in REAL_FIELDS],
    params:
        fields=REAL_FIELDS,
        models=REAL_MODELS,
        test_time_augmentation=config["cenn"]["test_time_augmentation"],
    log:
        "results/logs/planck/predict_cenn_{data}.log",
    benchmark:
        "results/benchmarks/planck/predict_cenn_{data}.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/predict_cenn_planck.py"


rule planck_comparison:
    input:
        cenn=[f"results/planck/predictions/cenn/{f}/{d}.h5" for d in REAL_DATA for f in REAL_FIELDS],
        patches=[f"results/planck/patches/{f}/full.h5" for f in REAL_FIELDS],
        workspace="results/spectra/QU/workspace.fits",
        cls=SPECTRA_TABLE,
    output:
        table=report(
            "results/planck/comparison.tsv",
            caption="../workflow/report/planck_comparison_table.rst",
            category="Planck sky",
        ),
        plot=report(
            "results/figures/planck_comparison.png",
            caption="../workflow/report/planck_comparison.rst",
            category="Planck sky",
        ),
    params:
        data=REAL_DATA,
        fields=REAL_FIELDS,
        products=CMB_PRODUCT_NAMES,
        spectra=config["spectra"],
        label_beam_arcmin=LABEL_BEAM_ARCMIN,
        **PATCH_GEOMETRY,
    log:
        "results/logs/planck/comparison.log",
    benchmark:
        "results/benchmarks/planck/comparison.tsv"
    conda:
        "../envs/namaster.yaml"
    script:
        "../workflow/scripts/planck_comparison.py"
