"""Rule planck_patches: Q/U patches of the real HFI maps (one data split: full or a half mission) at
the shared centres, cut like the simulations' pixel method (nearest pixel, Q/U rotated to the patch
frame). M = one channel per frequency; M0 = Commander at the label beam (the reference, not a truth);
the other CMB products as extra datasets (e.g. `smica`)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "planck_patches")

import healpy as hp  # noqa: E402
import numpy as np  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.config import digest  # noqa: E402
from cmbnn.io import write_patches_h5  # noqa: E402
from cmbnn.patches.cutting import fields_from_maps  # noqa: E402
from cmbnn.projection import patch_geometry  # noqa: E402

p = smk.params
fields = list(p.fields)
centers = np.loadtxt(smk.input.centers, comments="#", skiprows=2, ndmin=2)
theta, phi, psi = patch_geometry(centers, p.height, p.width, p.reso_arcmin)


def cut(path):
    maps = np.asarray(hp.read_map(path, field=(0, 1, 2)))
    return fields_from_maps(fields, maps, theta, phi, psi, p.interpolation)


per_freq = [cut(path) for path in smk.input.maps]
products = {name: cut(path) for name, path in zip(p.products, smk.input.cmb)}
data = smk.wildcards.data
for f, path in zip(fields, smk.output):
    assert f"/{f}/" in path
    extra = {name: values[f][..., None].astype(np.float32) for name, values in products.items() if name != "commander"}
    write_patches_h5(
        path,
        {
            "M": np.stack([values[f] for values in per_freq], axis=-1).astype(np.float32),
            "M0": products["commander"][f][..., None].astype(np.float32),
            "centers": centers,
            "mask": np.zeros((len(centers), p.height, p.width), np.uint8),
            **extra,
        },
        {
            "nside": p.nside,
            "pixel_size_arcmin": p.reso_arcmin,
            "frequencies_GHz": np.asarray(p.freqs, dtype=np.float64),
            "label_frequency_GHz": float(p.label_frequency),
            "units": "uK_CMB",
            "seed": p.seed,
            "split": f"planck_{data}",
            "method": "pixel",
            "field": f,
            "sky": f"Planck PR3 HFI maps ({data}); M0 = Commander CMB at the label beam, a reference, not a truth",
            "config_digest": digest({k: v for k, v in p.items()}),
            "code_version": cmbnn.__version__,
            "orientation": "row 0 south, columns increase westward (healpy gnomview, flip='astro')",
            "polarisation": "Q/U rotated into the patch frame; flat-sky convention (Q>0 east-west, U>0 north-east) in which flat E/B equal healpy's",
        },
    )
    log.info("wrote %s (%d patches of %s)", path, len(centers), f)
