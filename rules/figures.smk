# Figures of the simulated sky and its patches (collected by `snakemake --report`).


rule plot_spectra:
    input:
        cls=SPECTRA_TABLE,
    output:
        report(
            CLS_FIGURE,
            caption="../workflow/report/cls_dl.rst",
            category="Theory",
        ),
    log:
        log_file("figures/plot_spectra"),
    benchmark:
        benchmark_file("figures/plot_spectra")
    conda:
        "../envs/plot.yaml"
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        r=config["theory"]["r"],
    script:
        "../workflow/scripts/plot_spectra.py"


rule plot_sky:
    input:
        cmb=cmb_map_path(0),
        observed=observed_maps(0),
    output:
        cmb=report(
            CMB_MOLLWEIDE,
            caption="../workflow/report/cmb_mollweide.rst",
            category="Sky",
        ),
        observed=report(
            observed_mollweides(),
            caption="../workflow/report/observed_mollweide.rst",
            category="Sky",
        ),
    log:
        log_file("figures/plot_sky"),
    benchmark:
        benchmark_file("figures/plot_sky")
    conda:
        "../envs/plot.yaml"
    resources:
        mem_mb=sky_mem_mb("plot_sky"),
        runtime=scaled(30),
    params:
        freqs=FREQS,
        nside_out=config["figures"]["mollweide_nside"],
    script:
        "../workflow/scripts/plot_sky.py"


rule plot_patches:
    input:
        patch_file("{field}", "train"),
    output:
        report(
            patches_figure(),
            caption="../workflow/report/patches.rst",
            category="Patches",
        ),
    log:
        log_file("figures/plot_patches_{field}"),
    benchmark:
        benchmark_file("figures/plot_patches_{field}")
    conda:
        "../envs/plot.yaml"
    resources:
        mem_mb=patches_mem_mb(["train"], 1),
        runtime=scaled(10),
    params:
        n=config["figures"]["n_example_patches"],
    script:
        "../workflow/scripts/plot_patches.py"
