"""Rule plot_patches: a grid of example patches (every frequency) with their CMB labels."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "plot_patches")

from cmbnn.io import read_patches_h5  # noqa: E402
from cmbnn.plotting import plot_patch_examples  # noqa: E402

data, attrs = read_patches_h5(smk.input[0])
plot_patch_examples(
    data["M"], data["M0"], attrs["frequencies_GHz"], smk.wildcards.field, smk.output[0], smk.params.n, data["centers"]
)
