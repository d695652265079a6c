# Config validation, wildcards, path builders and input functions shared by every stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cmbnn.config import validate_config  # noqa: E402
from cmbnn.names import COMPONENTS as ALL_COMPONENTS, DIFFUSE, POINT_SOURCES  # noqa: E402
from cmbnn.names import FIELDS as ALL_FIELDS, GROUP_FIELDS, spectra_groups  # noqa: E402

# Stops the run before any job with every problem named (key, value, what is allowed).
validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")

FREQS = config["frequencies"]
FREQ_TAGS = [f"{float(nu):g}GHz" for nu in FREQS]
REALISATIONS = list(range(config["realisations"]))
COMPONENTS = config["foregrounds"]["components"]
SOURCE_COMPONENTS = [c for c in COMPONENTS if c in POINT_SOURCES]
FIELDS = config["patches"]["fields"]
SPLITS = ["train", "validation", "test"]
EVAL_SPLITS = ["validation", "test"]
# Every method writes predictions/{method}/{field}/{split}.h5 and is evaluated identically.
METHODS = ["cenn", "ilc", "hilc", "hilc_wiener"]
LMAX = 3 * config["nside"] - 1
CENN_FIELDS = config["cenn"]["fields"]
# Training settings without the field list (adding a field must not retrain the others)
# and without prediction-only keys (changing them reruns predictions, not training).
CENN_PREDICT_KEYS = ("test_time_augmentation",)
CENN_SETTINGS = {k: v for k, v in config["cenn"].items() if k != "fields" and k not in CENN_PREDICT_KEYS}
# Trained networks and the fields each predicts: one joint Q/U network, or one per field.
if config["cenn"]["mode"] == "joint":
    if sorted(CENN_FIELDS) != ["Q", "U"]:
        raise ValueError(f"cenn.mode 'joint' trains one Q/U network: cenn.fields must be [Q, U], got {CENN_FIELDS}")
    CENN_MODELS = {"QU": ["Q", "U"]}
else:
    CENN_MODELS = {f: [f] for f in CENN_FIELDS}
_uncut = [f for f in CENN_FIELDS if f not in FIELDS]
if _uncut:
    raise ValueError(f"cenn.fields {_uncut} are not cut: add them to patches.fields {FIELDS}")
SPECTRA_GROUPS = spectra_groups(CENN_FIELDS)
PATCH_GEOMETRY = {k: config["patches"][k] for k in ("height", "width", "reso_arcmin")}
LABEL_BEAM_ARCMIN = config["observation"]["beam_fwhm_arcmin"][FREQS.index(config["label_frequency"])]

SPECTRA_TABLE = "results/theory/cls.tsv"
SKY = "results/sky/r{realisation}"


wildcard_constraints:
    realisation=r"\d+",
    split="|".join(SPLITS),
    field="|".join(ALL_FIELDS),
    component="|".join(ALL_COMPONENTS),
    freq=r"[0-9.]+GHz",
    group="|".join(GROUP_FIELDS),
    method="|".join(METHODS),
    model="QU|" + "|".join(ALL_FIELDS),


def sky_path(name, realisation="{realisation}"):
    return f"results/sky/r{realisation}/{name}"


def observed_maps(realisation="{realisation}"):
    return [sky_path(f"observed_{tag}.fits", realisation) for tag in FREQ_TAGS]


def patch_file(field, split):
    return f"results/patches/{field}/{split}.h5"


def source_table(split):
    return f"results/patches/sources_{split}.tsv"


def all_patch_files():
    return [patch_file(f, s) for f in FIELDS for s in SPLITS] + [source_table(s) for s in SPLITS]


def model_of(field):
    """Name of the network that predicts a field: QU (joint) or the field itself."""
    return next((m for m, fields in CENN_MODELS.items() if field in fields), field)


def model_dir(model):
    return f"results/models/cenn/{model}"


def model_path(field):
    """The saved network that predicts ``field`` (results/models/cenn/QU/model.keras when joint)."""
    return f"{model_dir(model_of(field))}/model.keras"


def prediction_path(method, field, split):
    return f"results/predictions/{method}/{field}/{split}.h5"


def group_predictions(method, wildcards):
    return [prediction_path(method, f, wildcards.split) for f in GROUP_FIELDS[wildcards.group]]


def field_group(field):
    """The group a field is analysed in (the harmonic ILC needs all its fields): QU or the field itself."""
    return next(g for g, fields in GROUP_FIELDS.items() if field in fields)


def evaluation_outputs():
    return [
        *[model_path(f) for f in CENN_FIELDS],
        *[f"results/metrics/{f}/{s}.tsv" for f in CENN_FIELDS for s in EVAL_SPLITS],
        *[f"results/spectra/{g}/{s}.tsv" for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
        *[f"results/spectra/{g}/{s}_summary.tsv" for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
    ]


def cut_inputs(wildcards):
    """Signal alm and CMB of every realisation; the observed maps only for the pixel method."""
    inputs = {
        "signal": [sky_path("signal_alm.h5", r) for r in REALISATIONS],
        "cmb": [sky_path("cmb_alm.h5", r) for r in REALISATIONS],
        # Point-source catalogues, rendered at the patch pixels and masked (all realisations, in order).
        "sources": [sky_path(f"foreground_{c}.h5", r) for r in REALISATIONS for c in SOURCE_COMPONENTS],
    }
    if config["patches"]["method"] == "pixel":
        inputs["maps"] = [m for r in REALISATIONS for m in observed_maps(r)]
    if config["patches"]["mask"]:
        inputs["mask"] = config["patches"]["mask"]
    return inputs


def noise_variance_files():
    """Per-pixel noise covariances of the HFI maps (observation.noise_model: planck), one per frequency; none for white noise."""
    if config["observation"]["noise_model"] != "planck":
        return []
    return [f"results/planck/noise_variance_{tag}.fits" for tag in FREQ_TAGS]


if config["observation"]["noise_model"] == "planck" and config["patches"]["method"] != "pixel":
    # The exact method draws white noise at the patch pixels; the Planck noise lives in the maps.
    raise ValueError("observation.noise_model 'planck' puts the noise in the full-sky maps: set patches.method to 'pixel'")


def all_figures():
    return [
        "results/figures/cls_dl.png",
        "results/figures/cmb_mollweide.png",
        *[f"results/figures/observed_{tag}_mollweide.png" for tag in FREQ_TAGS],
        *[f"results/figures/patches_{field}.png" for field in FIELDS],
        *[f"results/figures/cenn_history_{m}.png" for m in CENN_MODELS],
        *[f"results/figures/predictions_{f}_{s}.png" for f in CENN_FIELDS for s in EVAL_SPLITS],
        *[f"results/figures/spectra_{g}_{s}.png" for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
        *[f"results/figures/transfer_residuals_{g}_{s}.png" for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
    ]


# ----- the real Planck sky (rules/planck_sky.smk) -----


def freq_of(tag):
    """143GHz -> 143.0"""
    return float(tag.removesuffix("GHz"))


def planck_file(name):
    """A downloaded Planck file under planck.resources_dir (rule download_planck makes it)."""
    return f"{PLANCK_DIR}/{name}"


def real_sky_outputs():
    """Targets of the default run with planck.real_sky.enabled (the comparison table and figure)."""
    if not config["planck"]["real_sky"]["enabled"]:
        return []
    return ["results/planck/comparison.tsv", "results/figures/planck_comparison.png"]


def planck_map_mem_mb(wildcards, attempt):
    """Rules reading one nside 2048 PLA table: four float64 maps of 50M pixels, their alm and
    copies (~6 GB), whatever the run's nside."""
    return (1000 + 3 * 4 * 12 * 2048**2 * 8 // 2**20) * attempt


# ----- the dust-VAE stage (rules/dustvae.smk) -----


def dust_patch_source(wildcards):
    """The simulated sky's alm, or the downloaded GNILC 545 GHz map."""
    if config["dustvae"]["source"] == "gnilc545":
        return planck_file("COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits")
    return "results/dust/sky_alm.h5"
