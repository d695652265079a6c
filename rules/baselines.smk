# Classical baselines, written in the same prediction format as the networks.


rule ilc:
    input:
        patches=patch_file("{field}", "{split}"),
    output:
        prediction_path("ilc", "{field}", "{split}"),
    log:
        "results/logs/baselines/ilc_{field}_{split}.log",
    benchmark:
        "results/benchmarks/baselines/ilc_{field}_{split}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/ilc.py"
