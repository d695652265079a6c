"""cmbnn: the science library behind the cmbnn Snakemake workflow.

Submodules are imported on demand so that light users (the Snakefile's
config validation) do not pay for healpy, CAMB or Keras.
"""

__version__ = "0.1.0"
