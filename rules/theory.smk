# Theory: lensed CMB C_ell table, from CAMB (theory.source: camb) or the Planck PR3 file (planck_pr3).

THEORY_SOURCE = config["theory"].get("source", "camb")
# The rule's params leave out `source` so the default (CAMB) run keeps its params (no rerun).
THEORY_PARAMS = {k: v for k, v in config["theory"].items() if k != "source"}
PR3_THEORY_FILE = "COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt"

rule camb_spectra:
    output:
        cls=SPECTRA_TABLE,
    params:
        theory=THEORY_PARAMS,
        lmax=LMAX,
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    log:
        "results/logs/theory/camb_spectra.log",
    benchmark:
        "results/benchmarks/theory/camb_spectra.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/camb_spectra.py"


# theory.source: planck_pr3 adds a sibling rule writing the same table, preferred over CAMB.
if THEORY_SOURCE == "planck_pr3":
    # Stop at parse time (before any download) on settings the PR3 file cannot honour.
    if config["theory"]["r"] != 0:
        raise ValueError(f"theory.source planck_pr3 has no tensor spectrum: theory.r must be 0, got {config['theory']['r']}")
    if config["theory"]["cosmology"]:
        raise ValueError(f"theory.source planck_pr3 is the fixed Planck 2018 best fit: theory.cosmology must be empty, got {config['theory']['cosmology']}")

    ruleorder: planck_pr3_spectra > camb_spectra

    rule planck_pr3_spectra:
        input:
            theory=str(Path(config["planck"]["resources_dir"]) / PR3_THEORY_FILE),
        output:
            cls=SPECTRA_TABLE,
        params:
            theory=THEORY_PARAMS,
            lmax=LMAX,
        resources:
            mem_mb=scaled(1000),
            runtime=scaled(10),
        log:
            "results/logs/theory/planck_pr3_spectra.log",
        benchmark:
            "results/benchmarks/theory/planck_pr3_spectra.tsv"
        conda:
            "../envs/sky.yaml"
        script:
            "../workflow/scripts/planck_pr3_spectra.py"
