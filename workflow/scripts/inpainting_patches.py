"""Rule inpainting_patches: T truth patches of one split with their real holes (the sky mask's
Galactic part at the patch pixels OR the patch file's source holes), uK_CMB float32. With
inpainting.label_lmax (exactly evaluated patches), the truth gets the multipoles beyond the sky's
band limit (cmbnn.inpainting.truth)."""

from _helpers import configure

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = configure(smk, "inpainting_patches")

import numpy as np  # noqa: E402

import cmbnn  # noqa: E402
from cmbnn.config import digest  # noqa: E402
from cmbnn.inpainting import masks  # noqa: E402
from cmbnn.inpainting.truth import small_scales  # noqa: E402
from cmbnn.io import read_healpix_map, read_patches_h5, write_h5  # noqa: E402
from cmbnn.seeding import rng_for  # noqa: E402
from cmbnn.sky.theory import read_cls  # noqa: E402

p = smk.params
g = p.geometry
data, attrs = read_patches_h5(smk.input.patches)
galactic = np.zeros(data["mask"].shape, dtype=np.uint8)
for r, path in enumerate(smk.input.masks):
    keep = data["realisation"] == r
    if keep.any():
        sky = read_healpix_map(path, field=1, nside=smk.config["nside"]).astype(np.uint8)
        galactic[keep] = masks.sample_at_patches(sky, data["centers"][keep], g["height"], g["width"], g["reso_arcmin"])
holes = masks.patch_holes(galactic, data["mask"])
keep = masks.spread_subset(holes, p.max_patches)
if keep is not None:
    data = {k: v[keep] for k, v in data.items()}
    holes, galactic = holes[keep], galactic[keep]
    log.info("kept %d patches with holes, evenly spread over the split", len(keep))
truth = data["M0"]
if p.label_lmax:
    extra = small_scales(read_cls(smk.input.cls)["TT"], p.lmax_sky, g["height"], g["width"], g["reso_arcmin"], p.beam_fwhm_arcmin, len(truth), rng_for(p.seed, "inpainting-small-scales", smk.wildcards.split))
    truth = (truth[..., 0] + extra).astype(np.float32)[..., None]
    log.info("added multipoles %d < ell <= %d: rms %.2f uK (the band-limited truth %.2f uK)", p.lmax_sky, p.label_lmax, float(np.sqrt(np.mean(extra**2))), float(np.sqrt(np.mean(data["M0"].astype(np.float64) ** 2))))
write_h5(
    smk.output[0],
    {"M0": truth, "mask": holes, "mask_galactic": galactic, "mask_sources": data["mask"], "centers": data["centers"], "realisation": data["realisation"],
     "index": np.arange(len(data["M0"])) if keep is None else keep},
    {
        **{k: v for k, v in attrs.items() if k not in ("mask", "config_digest", "method")},
        "field": "T",
        "units": "uK_CMB",
        "mask": "1 = missing: dust above the realisation's threshold (results/inpainting/r*/mask.fits, nearest pixel) or a bright-source hole",
        "truth": "M0: the CMB at the label beam (no foregrounds, no noise), hole-free" + (f", with the multipoles {p.lmax_sky} < ell <= {p.label_lmax} drawn at the pixels (cmbnn.inpainting.truth)" if p.label_lmax else ""),
        "inputs_file": str(smk.input.patches),
        "inpainting_config_digest": digest(dict(p.inpainting)),
        "config_digest": digest({"inpainting": dict(p.inpainting), "patches": attrs.get("config_digest", "")}),
        "code_version": cmbnn.__version__,
        "subset": "all patches" if keep is None else f"{len(keep)} patches with holes evenly spread over the split (dataset `index` into the patch file)",
    },
)
log.info("%s: %d patches, hole fraction %.4f (galactic %.4f, sources %.4f), %d with holes",
         smk.wildcards.split, len(holes), holes.mean(), galactic.mean(), data["mask"].mean(), int((holes.reshape(len(holes), -1).max(axis=1) > 0).sum()))
