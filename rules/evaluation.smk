# Evaluation: the same NaMaster spectra and pixel metrics for the network and the baseline.


rule spectra_workspace:
    output:
        "results/spectra/{group}/workspace.fits",
    params:
        spectra=config["spectra"],
        **PATCH_GEOMETRY,
    log:
        "results/logs/evaluation/spectra_workspace_{group}.log",
    benchmark:
        "results/benchmarks/evaluation/spectra_workspace_{group}.tsv"
    conda:
        "../envs/namaster.yaml"
    script:
        "../workflow/scripts/spectra_workspace.py"


rule spectra:
    input:
        cenn=lambda wildcards: group_predictions("cenn", wildcards),
        ilc=lambda wildcards: group_predictions("ilc", wildcards),
        cls=SPECTRA_TABLE,
        workspace="results/spectra/{group}/workspace.fits",
    output:
        table=report(
            "results/spectra/{group}/{split}.tsv",
            caption="../workflow/report/spectra_table.rst",
            category="Spectra",
            subcategory="{group}",
        ),
        plot=report(
            "results/figures/spectra_{group}_{split}.png",
            caption="../workflow/report/spectra_plot.rst",
            category="Spectra",
            subcategory="{group}",
        ),
    params:
        spectra=config["spectra"],
        label_beam_arcmin=LABEL_BEAM_ARCMIN,
        **PATCH_GEOMETRY,
    log:
        "results/logs/evaluation/spectra_{group}_{split}.log",
    benchmark:
        "results/benchmarks/evaluation/spectra_{group}_{split}.tsv"
    conda:
        "../envs/namaster.yaml"
    script:
        "../workflow/scripts/spectra.py"


rule metrics:
    input:
        cenn=prediction_path("cenn", "{field}", "{split}"),
        ilc=prediction_path("ilc", "{field}", "{split}"),
    output:
        table=report(
            "results/metrics/{field}/{split}.tsv",
            caption="../workflow/report/metrics_table.rst",
            category="Metrics",
            subcategory="{field}",
        ),
        plot=report(
            "results/figures/predictions_{field}_{split}.png",
            caption="../workflow/report/predictions.rst",
            category="Metrics",
            subcategory="{field}",
        ),
    params:
        n=config["figures"]["n_example_patches"],
    log:
        "results/logs/evaluation/metrics_{field}_{split}.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/metrics.py"
