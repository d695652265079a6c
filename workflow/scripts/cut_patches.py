"""Rule cut_patches: flat-sky patches of one split, every field, all realisations."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "cut_patches")

import contextlib  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.config import digest  # noqa: E402
from cmbnn.io import atomic_output, chunked_h5, patch_layout, read_alm_h5, read_h5, read_healpix_map  # noqa: E402
from cmbnn.patches.cutting import ObservedSky, cut_realisation  # noqa: E402
from cmbnn.patches.sets import split_centers  # noqa: E402
from cmbnn.settings import RunSettings  # noqa: E402
from cmbnn.sky.simulate import label_alm  # noqa: E402

p = smk.params
split = smk.wildcards.split
patches = p.patches
fields = patches["fields"]
mask = read_healpix_map(smk.input.mask, nside=p.nside) if patches["mask"] else None
n_source_files = len(smk.input.sources) // p.realisations
# Centres first (cheap, from the seed): the files are created with their final shape and every
# chunk of patches is written as it is cut, so memory does not grow with the number of patches.
run = RunSettings.from_params(p)
centers = [split_centers(run, r, split, mask) for r in range(p.realisations)]
n = sum(len(c) for c in centers)

provenance = {
    "nside": p.nside,
    "pixel_size_arcmin": patches["reso_arcmin"],
    "frequencies_GHz": np.asarray(p.freqs, dtype=np.float64),
    "label_frequency_GHz": float(p.label_frequency),
    "units": "uK_CMB",
    "seed": p.seed,
    "split": split,
    "method": patches["method"],
    "config_digest": digest({k: v for k, v in p.items()}),
    "code_version": cmbnn.__version__,
    "orientation": "row 0 south, columns increase westward (healpy gnomview, flip='astro')",
    "polarisation": "Q/U rotated into the patch frame; flat-sky convention (Q>0 east-west, U>0 north-east) in which flat E/B equal healpy's",
    "mask": (
        f"1 = within {patches['source_mask_radius_fwhm']} label-beam FWHM of a point source brighter than "
        f"{patches['source_mask_flux_Jy']} Jy at {float(p.label_frequency):g} GHz (listed in sources_{split}.tsv)"
    ),
    "point_sources": "rendered in M with each frequency's beam profile (not band-limited); M0 is CMB only",
}
layout = patch_layout(
    n,
    patches["height"],
    patches["width"],
    len(p.freqs),
    centers=np.concatenate(centers).astype(np.float64),
    realisation=np.concatenate([np.full(len(c), r, dtype=np.int32) for r, c in enumerate(centers)]),
)
source_rows = []
with contextlib.ExitStack() as files:
    writers = {}
    for f, path in zip(fields, smk.output.patches):
        assert f"/{f}/" in path
        # Atomic: each file is renamed into place only when every patch is written.
        writers[f] = files.enter_context(chunked_h5(path, layout, {**provenance, "field": f}))
    offset = 0
    for r in range(p.realisations):
        signal, _ = read_alm_h5(smk.input.signal[r])
        cmb, _ = read_alm_h5(smk.input.cmb[r])
        maps = None
        if patches["method"] == "pixel":
            paths = smk.input.maps[r * len(p.freqs) : (r + 1) * len(p.freqs)]
            maps = np.stack([np.atleast_2d(read_healpix_map(path, field=None, nside=p.nside)) for path in paths])
        catalogues = [read_h5(path)[0] for path in smk.input.sources[r * n_source_files : (r + 1) * n_source_files]]
        c = centers[r]
        sky = ObservedSky(signal, label_alm(run, cmb), maps, tuple(catalogues))
        chunks = cut_realisation(run, split, r, c, sky, smk.threads, chunks=True)
        n_sources, masked = 0, 0
        for chunk in chunks:
            for f in fields:
                writers[f].write(offset + chunk.start, M=chunk.inputs[f], M0=chunk.labels[f], mask=chunk.mask)
            for row in chunk.sources:
                flux = row.pop("flux_Jy")
                row.update({"patch": row["patch"] + offset, "realisation": r})
                row.update({f"flux_{nu:g}GHz_Jy": value for nu, value in zip(p.freqs, flux)})
                source_rows.append(row)
            n_sources += len(chunk.sources)
            masked += int(chunk.mask.sum(dtype=np.int64))
        log.info("realisation %d: %d bright sources, %.2f%% of pixels masked", r, n_sources, 100 * masked / max(1, len(c) * patches["height"] * patches["width"]))
        offset += len(c)
for path in smk.output.patches:
    log.info("wrote %s (%d patches)", path, n)
columns = ["patch", "realisation", "source", "lon_deg", "lat_deg"] + [f"flux_{nu:g}GHz_Jy" for nu in p.freqs] + ["x", "y"]
with atomic_output(smk.output.sources) as tmp:
    with open(tmp, "w") as f:
        f.write(
            f"# point sources brighter than {patches['source_mask_flux_Jy']} Jy at {p.label_frequency:g} GHz near each patch of the {split} split "
            f"(masked within {patches['source_mask_radius_fwhm']} label-beam FWHM); patch = index in the patch files; "
            "x = column, y = row (fractional pixels, pixel centres at integers, row 0 south)\n"
        )
        pd.DataFrame(source_rows, columns=columns).to_csv(f, sep="\t", index=False, float_format="%.6g")
log.info("wrote %s (%d rows)", smk.output.sources, len(source_rows))
