# cmbnn: CMB skies -> flat patches -> neural networks -> power spectra.
# Run:  snakemake --cores all                  (default config: synthetic sky, laptop CPU)
#       snakemake --cores all --configfile config/tiny.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/theory.smk"
include: "rules/sky.smk"
include: "rules/patches.smk"
include: "rules/figures.smk"
include: "rules/cenn.smk"
include: "rules/baselines.smk"
include: "rules/evaluation.smk"
include: "rules/planck.smk"
include: "rules/cosmovae.smk"
include: "rules/planck_sky.smk"
include: "rules/dustvae.smk"


rule all:
    default_target: True
    input:
        SPECTRA_TABLE,
        all_patch_files(),
        evaluation_outputs(),
        all_figures(),
        COSMOVAE_OUTPUTS,
        real_sky_outputs(),
        DUSTVAE_OUTPUTS,
