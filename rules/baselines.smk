# Classical baselines, written in the same prediction format as the networks.


rule ilc:
    input:
        patches=patch_file("{field}", "{split}"),
    output:
        prediction_path("ilc", "{field}", "{split}"),
    log:
        log_file("baselines/ilc_{field}_{split}"),
    benchmark:
        benchmark_file("baselines/ilc_{field}_{split}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(one_split, 1),
        runtime=scaled(30),
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
        hilc_weights(),
    log:
        log_file("baselines/fit_hilc_{group}"),
    benchmark:
        benchmark_file("baselines/fit_hilc_{group}")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(["train"], group_fields),
        runtime=scaled(60),
    params:
        **HILC_PARAMS,
    script:
        "../workflow/scripts/fit_hilc.py"


rule hilc:
    input:
        weights=lambda wildcards: hilc_weights(field_group(wildcards.field)),
        # Q needs U (and U needs Q): the E/B modes mix both.
        patches=lambda wildcards: [patch_file(f, wildcards.split) for f in GROUP_FIELDS[field_group(wildcards.field)]],
    output:
        prediction_path("{method}", "{field}", "{split}"),
    log:
        log_file("baselines/{method}_{field}_{split}"),
    benchmark:
        benchmark_file("baselines/{method}_{field}_{split}")
    wildcard_constraints:
        method="hilc|hilc_wiener",
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=patches_mem_mb(one_split, field_group_fields),
        runtime=scaled(30),
    script:
        "../workflow/scripts/hilc.py"
