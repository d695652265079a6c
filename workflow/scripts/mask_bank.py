"""Rule mask_bank: the training masks (the real holes at the training positions with at least
bank_min_fraction missing), from which CosmoVAE draws a mask for every patch and epoch."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "mask_bank")

import numpy as np  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.inpainting import masks  # noqa: E402
from cmbnn.io import read_h5, write_h5  # noqa: E402

data, attrs = read_h5(smk.input[0])
keep = masks.bank_indices(data["mask"], smk.params.min_fraction)
fraction = data["mask"][keep].mean(axis=(1, 2)) if keep.size else np.zeros(0)
write_h5(
    smk.output[0],
    {"mask": data["mask"][keep], "centers": data["centers"][keep], "realisation": data["realisation"][keep], "fraction": fraction, "index": keep},
    {
        "nside": attrs["nside"], "pixel_size_arcmin": attrs["pixel_size_arcmin"], "seed": attrs["seed"], "code_version": cmbnn.__version__,
        "mask": "1 = missing; the real holes of training positions (index into the training file) with fraction >= min_fraction",
        "min_fraction": float(smk.params.min_fraction), "source_file": str(smk.input[0]),
    },
)
if keep.size == 0:
    raise ValueError(f"no training mask has >= {smk.params.min_fraction} missing: lower inpainting.bank_min_fraction or raise hole_fraction")
log.info("mask bank: %d of %d training masks, mean hole fraction %.3f", keep.size, len(data["mask"]), fraction.mean())
