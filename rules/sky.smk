# Sky: CMB realisations, foreground components, and the observation (beams + noise) per frequency.


rule cmb_map:
    input:
        cls=SPECTRA_TABLE,
    output:
        alm=sky_path("cmb_alm.h5"),
        map=sky_path("cmb_map.fits"),
    params:
        nside=config["nside"],
        seed=config["seed"],
    log:
        "results/logs/sky/r{realisation}/cmb_map.log",
    benchmark:
        "results/benchmarks/sky/r{realisation}/cmb_map.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/cmb_map.py"


TEMPLATE_KEYS = ("template", "template_fwhm_arcmin")


def foreground_template_file(component):
    """resources/planck/<file> of the component's Planck template ([] for the Gaussian model)."""
    from cmbnn.planck import foreground_template_info

    settings = config["foregrounds"][component]
    if settings.get("template", "gaussian") == "gaussian":
        return []
    info = foreground_template_info(component, settings["template"])
    return str(Path(config["planck"]["resources_dir"]) / info["file"])


def foreground_settings(component):
    """The component's settings; the template keys only when a Planck template is used
    (so the Gaussian model's params and output attributes are those of before), with
    template_file added for cmbnn.foregrounds.component_alm."""
    settings = dict(config["foregrounds"][component])
    if settings.get("template", "gaussian") == "gaussian":
        return {k: v for k, v in settings.items() if k not in TEMPLATE_KEYS}
    return {**settings, "template_file": foreground_template_file(component)}


rule foreground:
    input:
        template=lambda wildcards: foreground_template_file(wildcards.component),
    output:
        alm=sky_path("foreground_{component}.h5"),
        amplitude=report(
            sky_path("foreground_{component}_amplitude.tsv"),
            caption="../workflow/report/foreground_amplitude.rst",
            category="Sky",
            subcategory="Foreground amplitudes",
        ),
    wildcard_constraints:
        component="|".join(DIFFUSE),
    params:
        settings=lambda wildcards: foreground_settings(wildcards.component),
        nside=config["nside"],
        freqs=FREQS,
        seed=config["seed"],
        # Amplitudes are defined (and the modulation normalised) on the patches' sky.
        lat_cut_deg=config["patches"]["lat_cut_deg"],
    log:
        "results/logs/sky/r{realisation}/foreground_{component}.log",
    benchmark:
        "results/benchmarks/sky/r{realisation}/foreground_{component}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/foreground.py"


rule point_sources:
    output:
        sky_path("foreground_{component}.h5"),
    wildcard_constraints:
        component="|".join(POINT_SOURCES),
    params:
        settings=lambda wildcards: config["foregrounds"][wildcards.component],
        freqs=FREQS,
        seed=config["seed"],
    log:
        "results/logs/sky/r{realisation}/foreground_{component}.log",
    benchmark:
        "results/benchmarks/sky/r{realisation}/foreground_{component}.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/point_sources.py"


rule observe:
    input:
        cmb=sky_path("cmb_alm.h5"),
        foregrounds=[sky_path(f"foreground_{c}.h5") for c in COMPONENTS],
    output:
        signal=sky_path("signal_alm.h5"),
        maps=observed_maps(),
    params:
        observation=config["observation"],
        freqs=FREQS,
        nside=config["nside"],
        seed=config["seed"],
    log:
        "results/logs/sky/r{realisation}/observe.log",
    benchmark:
        "results/benchmarks/sky/r{realisation}/observe.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/observe.py"
