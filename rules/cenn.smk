# CENN: training (a GPU job when one is there) and predictions for the evaluation splits.


rule train_cenn:
    input:
        train=patch_file("{field}", "train"),
        validation=patch_file("{field}", "validation"),
    output:
        model=model_path("{field}"),
        history="results/models/cenn/{field}/history.tsv",
        plot=report(
            "results/figures/cenn_history_{field}.png",
            caption="../workflow/report/cenn_history.rst",
            category="CENN",
            subcategory="Training",
        ),
        tensorboard=directory("results/models/cenn/{field}/tensorboard"),
    params:
        settings=CENN_SETTINGS,
        seed=config["seed"],
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir=lambda wildcards: f"results/models/cenn/{wildcards.field}/checkpoint",
    threads: 2
    resources:
        gpu=1,
    log:
        "results/logs/cenn/train_{field}.log",
    benchmark:
        "results/benchmarks/cenn/train_{field}.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/train_cenn.py"


rule predict_cenn:
    input:
        model=model_path("{field}"),
        patches=patch_file("{field}", "{split}"),
    output:
        prediction_path("cenn", "{field}", "{split}"),
    log:
        "results/logs/cenn/predict_{field}_{split}.log",
    benchmark:
        "results/benchmarks/cenn/predict_{field}_{split}.tsv"
    conda:
        "../envs/ml.yaml"
    script:
        "../workflow/scripts/predict_cenn.py"
