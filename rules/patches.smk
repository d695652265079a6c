# Patches: flat-sky cut-outs per split, one HDF5 file per field.


rule cut_patches:
    input:
        unpack(cut_inputs),
    output:
        patches=[patch_file(field, "{split}") for field in FIELDS],
        sources=source_table("{split}"),
    log:
        log_file("patches/cut_{split}"),
    benchmark:
        benchmark_file("patches/cut_{split}")
    conda:
        "../envs/sky.yaml"
    threads: 2
    resources:
        mem_mb=cut_mem_mb,
        runtime=cut_runtime,
    params:
        patches=config["patches"],
        observation=config["observation"],
        freqs=FREQS,
        label_frequency=config["label_frequency"],
        nside=config["nside"],
        seed=config["seed"],
        realisations=config["realisations"],
    script:
        "../workflow/scripts/cut_patches.py"
