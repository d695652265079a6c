# Sky: CMB realisations, foreground components, and the observation (beams + noise) per frequency.
from cmbnn.planck.archive import foreground_rule_settings, foreground_template_file


rule cmb_map:
    input:
        cls=SPECTRA_TABLE,
    output:
        alm=cmb_alm_path(),
        map=cmb_map_path(),
    params:
        nside=config["nside"],
        seed=config["seed"],
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("cmb_map"),
        runtime=sky_runtime,
    log:
        log_file("sky/r{realisation}/cmb_map"),
    benchmark:
        benchmark_file("sky/r{realisation}/cmb_map")
    conda:
        "../envs/sky.yaml"
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
    wildcard_constraints:
        component="|".join(DIFFUSE),
    params:
        settings=lambda wildcards: foreground_rule_settings(config, wildcards.component),
        nside=config["nside"],
        freqs=FREQS,
        seed=config["seed"],
        # Amplitudes are defined (and the modulation normalised) on the patches' sky.
        lat_cut_deg=config["patches"]["lat_cut_deg"],
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("foreground"),
        runtime=sky_runtime,
    log:
        log_file("sky/r{realisation}/foreground_{component}"),
    benchmark:
        benchmark_file("sky/r{realisation}/foreground_{component}")
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/foreground.py"


rule point_sources:
    output:
        foreground_path(),
    wildcard_constraints:
        component="|".join(POINT_SOURCES),
    params:
        settings=lambda wildcards: config["foregrounds"][wildcards.component],
        freqs=FREQS,
        seed=config["seed"],
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    log:
        log_file("sky/r{realisation}/foreground_{component}"),
    benchmark:
        benchmark_file("sky/r{realisation}/foreground_{component}")
    conda:
        "../envs/sky.yaml"
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
    params:
        observation=config["observation"],
        freqs=FREQS,
        nside=config["nside"],
        seed=config["seed"],
    threads: sky_threads()
    resources:
        mem_mb=sky_mem_mb("observe"),
        runtime=sky_runtime,
    log:
        log_file("sky/r{realisation}/observe"),
    benchmark:
        benchmark_file("sky/r{realisation}/observe")
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/observe.py"
