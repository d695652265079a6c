# Theory: CAMB power spectra.


rule camb_spectra:
    output:
        cls=SPECTRA_TABLE,
    params:
        theory=config["theory"],
        lmax=LMAX,
    log:
        "results/logs/theory/camb_spectra.log",
    benchmark:
        "results/benchmarks/theory/camb_spectra.tsv"
    conda:
        "../envs/sky.yaml"
    script:
        "../workflow/scripts/camb_spectra.py"
