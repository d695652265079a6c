# Theory: lensed CMB C_ell table, from CAMB (theory.source: camb) or the Planck PR3 file (planck_pr3).

THEORY_SOURCE = config["theory"].get("source", "camb")
# The rule's params leave out `source` so the default (CAMB) run keeps its params (no rerun).
THEORY_PARAMS = {k: v for k, v in config["theory"].items() if k != "source"}
PR3_THEORY_FILE = "COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt"


rule camb_spectra:
    output:
        cls=SPECTRA_TABLE,
    log:
        log_file("theory/camb_spectra"),
    benchmark:
        benchmark_file("theory/camb_spectra")
    conda:
        "../envs/sky.yaml"
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    params:
        theory=THEORY_PARAMS,
        lmax=LMAX,
    script:
        "../workflow/scripts/camb_spectra.py"


# theory.source: planck_pr3 adds a sibling rule writing the same table, preferred over CAMB.
# (Settings the PR3 file cannot honour stop the run at parse time, before any download:
# cmbnn.config.check_consistency.)
if THEORY_SOURCE == "planck_pr3":

    ruleorder: planck_pr3_spectra > camb_spectra

    rule planck_pr3_spectra:
        input:
            theory=planck_file(PR3_THEORY_FILE),
        output:
            cls=SPECTRA_TABLE,
        log:
            log_file("theory/planck_pr3_spectra"),
        benchmark:
            benchmark_file("theory/planck_pr3_spectra")
        conda:
            "../envs/sky.yaml"
        resources:
            mem_mb=scaled(1000),
            runtime=scaled(10),
        params:
            theory=THEORY_PARAMS,
            lmax=LMAX,
        script:
            "../workflow/scripts/planck_pr3_spectra.py"
