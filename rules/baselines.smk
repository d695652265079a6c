# Classical baselines, written in the same prediction format as the networks.


rule ilc:
    input:
        patches=patch_file("{field}", "{split}"),
    output:
        prediction_path("ilc", "{field}", "{split}"),
    resources:
        mem_mb=patches_mem_mb(one_split, 1),
        runtime=scaled(30),
    log:
        "results/logs/baselines/ilc_{field}_{split}.log",
    benchmark:
        "results/benchmarks/baselines/ilc_{field}_{split}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/ilc.py"


HILC_PARAMS = dict(
    settings=config["baselines"]["hilc"],
    beams_arcmin=config["observation"]["beam_fwhm_arcmin"],
    label_beam_arcmin=LABEL_BEAM_ARCMIN,
    # The simulated sky is band-limited here: no CMB signal above it.
    signal_lmax=LMAX,
    **PATCH_GEOMETRY,
)


rule fit_hilc:
    input:
        train=lambda wildcards: [patch_file(f, "train") for f in GROUP_FIELDS[wildcards.group]],
        cls=SPECTRA_TABLE,
    output:
        "results/baselines/hilc/{group}/weights.h5",
    params:
        **HILC_PARAMS,
    resources:
        mem_mb=patches_mem_mb(["train"], group_fields),
        runtime=scaled(60),
    log:
        "results/logs/baselines/fit_hilc_{group}.log",
    benchmark:
        "results/benchmarks/baselines/fit_hilc_{group}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/fit_hilc.py"


rule hilc:
    input:
        weights=lambda wildcards: f"results/baselines/hilc/{field_group(wildcards.field)}/weights.h5",
        # Q needs U (and U needs Q): the E/B modes mix both.
        patches=lambda wildcards: [patch_file(f, wildcards.split) for f in GROUP_FIELDS[field_group(wildcards.field)]],
    output:
        prediction_path("{method}", "{field}", "{split}"),
    wildcard_constraints:
        method="hilc|hilc_wiener",
    resources:
        mem_mb=patches_mem_mb(one_split, field_group_fields),
        runtime=scaled(30),
    log:
        "results/logs/baselines/{method}_{field}_{split}.log",
    benchmark:
        "results/benchmarks/baselines/{method}_{field}_{split}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/hilc.py"
