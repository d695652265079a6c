# CENN: training (a GPU job when one is there) and predictions for the evaluation splits.
# {model} is QU for the joint polarisation network, or a field for per-field networks.


rule train_cenn:
    input:
        train=lambda wildcards: [patch_file(f, "train") for f in CENN_MODELS[wildcards.model]],
        validation=lambda wildcards: [patch_file(f, "validation") for f in CENN_MODELS[wildcards.model]],
    output:
        model=cenn_model_file(),
        history=cenn_history_file(),
        plot=report(
            cenn_history_figure(),
            caption="../workflow/report/cenn_history.rst",
            category="CENN",
            subcategory="Training",
        ),
        tensorboard=directory(cenn_tensorboard_dir()),
    log:
        log_file("cenn/train_{model}"),
    benchmark:
        benchmark_file("cenn/train_{model}")
    conda:
        "../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=1,
    params:
        settings=CENN_SETTINGS,
        seed=config["seed"],
        fields=lambda wildcards: CENN_MODELS[wildcards.model],
        # Not an output: it must survive a killed job so the rerun resumes from it.
        checkpoint_dir=lambda wildcards: cenn_checkpoint_dir(wildcards.model),
    script:
        "../workflow/scripts/train_cenn.py"


# One job per field and split: a joint network reads the Q and U patches and writes the field asked for.
rule predict_cenn:
    input:
        model=lambda wildcards: model_path(wildcards.field),
        patches=lambda wildcards: [patch_file(f, wildcards.split) for f in CENN_MODELS[model_of(wildcards.field)]],
    output:
        prediction_path("cenn", "{field}", "{split}"),
    log:
        log_file("cenn/predict_{field}_{split}"),
    benchmark:
        benchmark_file("cenn/predict_{field}_{split}")
    conda:
        "../envs/ml.yaml"
    resources:
        mem_mb=predict_mem_mb,
        runtime=scaled(60),
    params:
        fields=lambda wildcards: CENN_MODELS[model_of(wildcards.field)],
        test_time_augmentation=config["cenn"]["test_time_augmentation"],
    script:
        "../workflow/scripts/predict_cenn.py"
