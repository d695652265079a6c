# Evaluation: the same NaMaster spectra and pixel metrics for the network and every baseline (METHODS).


rule spectra_workspace:
    output:
        spectra_workspace(),
    log:
        log_file("evaluation/spectra_workspace_{group}"),
    benchmark:
        benchmark_file("evaluation/spectra_workspace_{group}")
    conda:
        "../envs/namaster.yaml"
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
    params:
        **PATCH_GEOMETRY,
        spectra=config["spectra"],
    script:
        "../workflow/scripts/spectra_workspace.py"


rule spectra:
    input:
        **{m: (lambda wildcards, m=m: group_predictions(m, wildcards)) for m in METHODS},
        cls=SPECTRA_TABLE,
        workspace=spectra_workspace(),
    output:
        table=report(
            spectra_table(),
            caption="../workflow/report/spectra_table.rst",
            category="Spectra",
            subcategory="{group}",
        ),
        plot=report(
            spectra_figure(),
            caption="../workflow/report/spectra_plot.rst",
            category="Spectra",
            subcategory="{group}",
        ),
        transfer_plot=report(
            transfer_figure(),
            caption="../workflow/report/transfer_residuals.rst",
            category="Spectra",
            subcategory="{group}",
        ),
        summary=report(
            spectra_summary(),
            caption="../workflow/report/spectra_summary.rst",
            category="Spectra",
            subcategory="{group}",
        ),
    log:
        log_file("evaluation/spectra_{group}_{split}"),
    benchmark:
        benchmark_file("evaluation/spectra_{group}_{split}")
    conda:
        "../envs/namaster.yaml"
    resources:
        # every method's one-channel predictions weigh about one patch file per field
        mem_mb=patches_mem_mb(one_split, group_fields),
        runtime=scaled(60),
    params:
        **PATCH_GEOMETRY,
        methods=METHODS,
        # The aim of issue 6: residual BB below lensing BB in this multipole range.
        aim_ell_range=[100.0, 1000.0],
        spectra=config["spectra"],
        label_beam_arcmin=LABEL_BEAM_ARCMIN,
    script:
        "../workflow/scripts/spectra.py"


rule metrics:
    input:
        **{m: prediction_path(m, "{field}", "{split}") for m in METHODS},
        # PSNR/SSIM data range: max - min of this field's training labels.
        train=patch_file("{field}", "train"),
    output:
        table=report(
            metrics_table(),
            caption="../workflow/report/metrics_table.rst",
            category="Metrics",
            subcategory="{field}",
        ),
        plot=report(
            predictions_figure(),
            caption="../workflow/report/predictions.rst",
            category="Metrics",
            subcategory="{field}",
        ),
    log:
        log_file("evaluation/metrics_{field}_{split}"),
    benchmark:
        benchmark_file("evaluation/metrics_{field}_{split}")
    conda:
        "../envs/plot.yaml"
    resources:
        mem_mb=patches_mem_mb(split_and_train, 1),
        runtime=scaled(30),
    params:
        methods=METHODS,
        n=config["figures"]["n_example_patches"],
    script:
        "../workflow/scripts/metrics.py"
