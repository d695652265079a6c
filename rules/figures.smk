# Figures of the simulated sky and its patches (collected by `snakemake --report`).


rule plot_spectra:
    input:
        cls=SPECTRA_TABLE,
    output:
        report(
            "results/figures/cls_dl.png",
            caption="../workflow/report/cls_dl.rst",
            category="Theory",
        ),
    params:
        r=config["theory"]["r"],
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    log:
        "results/logs/figures/plot_spectra.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/plot_spectra.py"


rule plot_sky:
    input:
        cmb=sky_path("cmb_map.fits", 0),
        observed=observed_maps(0),
    output:
        cmb=report(
            "results/figures/cmb_mollweide.png",
            caption="../workflow/report/cmb_mollweide.rst",
            category="Sky",
        ),
        observed=report(
            [f"results/figures/observed_{tag}_mollweide.png" for tag in FREQ_TAGS],
            caption="../workflow/report/observed_mollweide.rst",
            category="Sky",
        ),
    params:
        freqs=FREQS,
        nside_out=config["figures"]["mollweide_nside"],
    resources:
        mem_mb=sky_mem_mb("plot_sky"),
        runtime=scaled(30),
    log:
        "results/logs/figures/plot_sky.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/plot_sky.py"


rule plot_patches:
    input:
        patch_file("{field}", "train"),
    output:
        report(
            "results/figures/patches_{field}.png",
            caption="../workflow/report/patches.rst",
            category="Patches",
        ),
    params:
        n=config["figures"]["n_example_patches"],
    resources:
        mem_mb=patches_mem_mb(["train"], 1),
        runtime=scaled(10),
    log:
        "results/logs/figures/plot_patches_{field}.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/plot_patches.py"
