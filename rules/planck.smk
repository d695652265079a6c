# Planck Legacy Archive downloads: one file per job, from the manifest (config planck.manifest).
# Nothing in `rule all` asks for these: a job runs only when a target (a Planck preset's rule,
# or the command line, e.g. `snakemake resources/planck/HFI_SkyMap_143_2048_R3.01_full.fits`)
# needs a file. The script streams to <name>.part and renames only after the size and
# checksum match, so --keep-incomplete is not needed; a rerun resumes the .part (HTTP Range).
# Where the files go: PLANCK_DIR and planck_file in rules/common.smk.
import re

from cmbnn.planck.download import download_params, find_manifest, load_manifest

PLANCK = config["planck"]
PLANCK_MANIFEST = load_manifest(find_manifest(PLANCK["manifest"], WORKFLOW_ROOT))


rule download_planck:
    output:
        planck_file("{filename}"),
    log:
        log_file("planck/download_{filename}"),
    benchmark:
        benchmark_file("planck/download_{filename}")
    wildcard_constraints:
        filename="|".join(re.escape(name) for name in PLANCK_MANIFEST),
    # No whole-job retry (also under a profile's --retries): the script retries timeouts, 5xx
    # and dropped streams itself, resuming the .part file; an unknown host, a refused
    # connection or a 4xx fails at once and would fail the same way again.
    retries: 0
    # Cluster compute nodes often have no internet: download on the submitting host.
    localrule: True
    conda:
        "../envs/download.yaml"
    resources:
        downloads=1,  # `--resources downloads=2` caps parallel downloads
    params:
        download=lambda wildcards: download_params(PLANCK_MANIFEST, PLANCK, wildcards.filename),
    script:
        "../workflow/scripts/download_planck.py"
