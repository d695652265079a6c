# Sky: CMB realisations, foreground components, and the observation (beams + noise) per frequency.
from cmbnn.planck.archive import foreground_rule_settings, foreground_template_file


rule cmb_map:
    input:
        cls=SPECTRA_TABLE,
    output:
        alm=cmb_alm_path(),
        map=cmb_map_path(),
    log:
        log_file("sky/r{realisation}/cmb_map"),
    benchmark:
        benchmark_file("sky/r{realisation}/cmb_map")
    conda:
        "../envs/sky.yaml"
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("cmb_map"),
        runtime=sky_runtime,
    params:
        nside=config["nside"],
        seed=config["seed"],
    script:
        "../workflow/scripts/cmb_map.py"


rule foreground:
    input:
        # resources/planck/<file> of a Planck template (download_planck makes it); none for the Gaussian model.
        template=lambda wildcards: foreground_template_file(config, wildcards.component),
    output:
        alm=foreground_path(),
        amplitude=report(
            foreground_amplitude_path(),
            caption="../workflow/report/foreground_amplitude.rst",
            category="Sky",
            subcategory="Foreground amplitudes",
        ),
    log:
        log_file("sky/r{realisation}/foreground_{component}"),
    benchmark:
        benchmark_file("sky/r{realisation}/foreground_{component}")
    wildcard_constraints:
        component="|".join(DIFFUSE),
    conda:
        "../envs/sky.yaml"
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("foreground"),
        runtime=sky_runtime,
    params:
        settings=lambda wildcards: foreground_rule_settings(config, wildcards.component),
        nside=config["nside"],
        freqs=FREQS,
        seed=config["seed"],
        # Amplitudes are defined (and the modulation normalised) on the patches' sky.
        lat_cut_deg=config["patches"]["lat_cut_deg"],
    script:
        "../workflow/scripts/foreground.py"


rule point_sources:
    output:
        foreground_path(),
    log:
        log_file("sky/r{realisation}/foreground_{component}"),
    benchmark:
        benchmark_file("sky/r{realisation}/foreground_{component}")
    wildcard_constraints:
        component="|".join(POINT_SOURCES),
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    params:
        settings=lambda wildcards: config["foregrounds"][wildcards.component],
        freqs=FREQS,
        seed=config["seed"],
    script:
        "../workflow/scripts/point_sources.py"


rule observe:
    input:
        cmb=cmb_alm_path(),
        foregrounds=[foreground_path(c) for c in COMPONENTS],
        # observation.noise_model planck: the HFI maps' per-pixel covariances (none for white noise).
        noise_variance=noise_variance_files(),
    output:
        signal=signal_alm_path(),
        maps=observed_maps(),
    log:
        log_file("sky/r{realisation}/observe"),
    benchmark:
        benchmark_file("sky/r{realisation}/observe")
    conda:
        "../envs/sky.yaml"
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("observe"),
        runtime=sky_runtime,
    params:
        observation=config["observation"],
        freqs=FREQS,
        nside=config["nside"],
        seed=config["seed"],
    script:
        "../workflow/scripts/observe.py"
