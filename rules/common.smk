# Config validation, wildcards, the paths of every stage, and input functions shared by the stages.
import sys
from pathlib import Path

# The repository this file belongs to, not the working directory or the main Snakefile's folder:
# used as a Snakemake module, the workflow runs from the user's own directory.
WORKFLOW_ROOT = Path(str(workflow.current_basedir)).parent
sys.path.insert(0, str(WORKFLOW_ROOT / "src"))

from cmbnn.config import validate_config  # noqa: E402
from cmbnn.names import COMPONENTS as ALL_COMPONENTS, DIFFUSE, POINT_SOURCES  # noqa: E402
from cmbnn.names import FIELDS as ALL_FIELDS, GROUP_FIELDS, spectra_groups  # noqa: E402

# Stops the run before any job with every problem named (key, value, what is allowed); the rules
# between keys (cmbnn.config.check_consistency) included.
validate_config(config, WORKFLOW_ROOT / "workflow" / "schemas" / "config.schema.yaml")

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
# Trained networks and the fields each predicts: one joint Q/U network (cenn.fields [Q, U], checked
# by cmbnn.config.check_consistency), or one per field.
CENN_MODELS = {"QU": ["Q", "U"]} if config["cenn"]["mode"] == "joint" else {f: [f] for f in CENN_FIELDS}
SPECTRA_GROUPS = spectra_groups(CENN_FIELDS)
PATCH_GEOMETRY = {k: config["patches"][k] for k in ("height", "width", "reso_arcmin")}
LABEL_BEAM_ARCMIN = config["observation"]["beam_fwhm_arcmin"][FREQS.index(config["label_frequency"])]


wildcard_constraints:
    realisation=r"\d+",
    split="|".join(SPLITS),
    field="|".join(ALL_FIELDS),
    component="|".join(ALL_COMPONENTS),
    freq=r"[0-9.]+GHz",
    group="|".join(GROUP_FIELDS),
    method="|".join(METHODS),
    model="QU|" + "|".join(ALL_FIELDS),


# ----- paths: every file the workflow writes is named once, here, one block per stage (here and
# not in the stage files: Snakemake's linter keeps functions out of files with rules). Rules use the
# names in input/output/log/benchmark and in rule all's targets; scripts get paths only through
# input/output/params/log. A default like "{realisation}" gives the wildcard pattern.

LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"
FIGURES = "results/figures"
METRICS = "results/metrics"
MODELS = "results/models"


def log_file(job):
    """results/logs/<stage>/<job>.log. A job's log and benchmark share the name <stage>/<job>:
    benchmarks/peak_memory.py pairs them by it."""
    return f"{LOGS}/{job}.log"


def benchmark_file(job):
    """results/benchmarks/<stage>/<job>.tsv (Snakemake's benchmark table), beside log_file(job)."""
    return f"{BENCHMARKS}/{job}.tsv"


# theory (rules/theory.smk)
SPECTRA_TABLE = "results/theory/cls.tsv"


# sky (rules/sky.smk)
def sky_path(name, realisation="{realisation}"):
    return f"results/sky/r{realisation}/{name}"


def cmb_alm_path(realisation="{realisation}"):
    return sky_path("cmb_alm.h5", realisation)


def cmb_map_path(realisation="{realisation}"):
    return sky_path("cmb_map.fits", realisation)


def foreground_path(component="{component}", realisation="{realisation}"):
    return sky_path(f"foreground_{component}.h5", realisation)


def foreground_amplitude_path(component="{component}"):
    return sky_path(f"foreground_{component}_amplitude.tsv")


def signal_alm_path(realisation="{realisation}"):
    return sky_path("signal_alm.h5", realisation)


def observed_maps(realisation="{realisation}"):
    return [sky_path(f"observed_{tag}.fits", realisation) for tag in FREQ_TAGS]


# patches (rules/patches.smk)
PATCHES = "results/patches"


def patch_file(field, split):
    return f"{PATCHES}/{field}/{split}.h5"


def source_table(split):
    return f"{PATCHES}/sources_{split}.tsv"


def all_patch_files():
    return [patch_file(f, s) for f in FIELDS for s in SPLITS] + [source_table(s) for s in SPLITS]


# figures of the sky and patches (rules/figures.smk)
CLS_FIGURE = f"{FIGURES}/cls_dl.png"
CMB_MOLLWEIDE = f"{FIGURES}/cmb_mollweide.png"


def observed_mollweides():
    return [f"{FIGURES}/observed_{tag}_mollweide.png" for tag in FREQ_TAGS]


def patches_figure(field="{field}"):
    return f"{FIGURES}/patches_{field}.png"


# CENN (rules/cenn.smk): {model} is QU (joint) or a field
def model_dir(model="{model}"):
    return f"{MODELS}/cenn/{model}"


def cenn_model_file(model="{model}"):
    return f"{model_dir(model)}/model.keras"


def cenn_history_file(model="{model}"):
    return f"{model_dir(model)}/history.tsv"


def cenn_tensorboard_dir(model="{model}"):
    return f"{model_dir(model)}/tensorboard"


def cenn_checkpoint_dir(model="{model}"):
    return f"{model_dir(model)}/checkpoint"


def cenn_history_figure(model="{model}"):
    return f"{FIGURES}/cenn_history_{model}.png"


def model_of(field):
    """Name of the network that predicts a field: QU (joint) or the field itself."""
    return next((m for m, fields in CENN_MODELS.items() if field in fields), field)


def model_path(field):
    """The saved network that predicts ``field`` (results/models/cenn/QU/model.keras when joint)."""
    return cenn_model_file(model_of(field))


# predictions of every method (CENN, the baselines, CosmoVAE and the Gaussian inpainting)
def prediction_path(method, field, split):
    return f"results/predictions/{method}/{field}/{split}.h5"


# baselines (rules/baselines.smk); their predictions are prediction_path's
def hilc_weights(group="{group}"):
    return f"results/baselines/hilc/{group}/weights.h5"


# evaluation (rules/evaluation.smk)
SPECTRA = "results/spectra"


def spectra_workspace(group="{group}"):
    return f"{SPECTRA}/{group}/workspace.fits"


def spectra_table(group="{group}", split="{split}"):
    return f"{SPECTRA}/{group}/{split}.tsv"


def spectra_summary(group="{group}", split="{split}"):
    return f"{SPECTRA}/{group}/{split}_summary.tsv"


def spectra_figure(group="{group}", split="{split}"):
    return f"{FIGURES}/spectra_{group}_{split}.png"


def transfer_figure(group="{group}", split="{split}"):
    return f"{FIGURES}/transfer_residuals_{group}_{split}.png"


def metrics_table(field="{field}", split="{split}"):
    return f"{METRICS}/{field}/{split}.tsv"


def predictions_figure(field="{field}", split="{split}"):
    return f"{FIGURES}/predictions_{field}_{split}.png"


# Planck downloads (rules/planck.smk): rules that read a Planck file take it as input from
# PLANCK_DIR, so download_planck makes it.
PLANCK_DIR = str(Path(config["planck"]["resources_dir"]))


def planck_file(name):
    """A downloaded Planck file under planck.resources_dir (rule download_planck makes it)."""
    return f"{PLANCK_DIR}/{name}"


# the real Planck sky (rules/planck_sky.smk); the noise covariances are also read by rule observe
REAL_SKY_RESULTS = "results/planck"
PLANCK_KEEP_MASK = f"{REAL_SKY_RESULTS}/keep_mask.fits"
PLANCK_CENTERS = f"{REAL_SKY_RESULTS}/centers.tsv"
PLANCK_COMPARISON = f"{REAL_SKY_RESULTS}/comparison.tsv"
PLANCK_COMPARISON_FIGURE = f"{FIGURES}/planck_comparison.png"


def noise_variance_path(freq="{freq}"):
    return f"{REAL_SKY_RESULTS}/noise_variance_{freq}.fits"


def planck_frequency_map_path(data="{data}", freq="{freq}"):
    return f"{REAL_SKY_RESULTS}/maps/{data}_{freq}.fits"


def planck_cmb_map_path(product="{product}"):
    return f"{REAL_SKY_RESULTS}/maps/{product}.fits"


def planck_patch_file(field, data="{data}"):
    return f"{REAL_SKY_RESULTS}/patches/{field}/{data}.h5"


def planck_prediction_path(field, data="{data}"):
    return f"{REAL_SKY_RESULTS}/predictions/cenn/{field}/{data}.h5"


# CosmoVAE inpainting (rules/cosmovae.smk)
INPAINT = "results/inpainting"
# Exactly evaluated truth patches get the multipoles beyond the sky's lmax (cmbnn.inpainting.truth);
# the inpainting stage's Gaussian baseline and prior then use the extended table.
LABEL_LMAX = config["inpainting"]["label_lmax"] if config["patches"]["method"] == "exact" else None
INPAINTING_CLS = f"{INPAINT}/label_cls.tsv" if LABEL_LMAX else SPECTRA_TABLE
MASK_BANK = f"{INPAINT}/mask_bank.h5"
COSMOVAE_DIR = f"{MODELS}/cosmovae"
COSMOVAE_MODEL = f"{COSMOVAE_DIR}/model.keras"
COSMOVAE_HISTORY = f"{COSMOVAE_DIR}/history.tsv"
COSMOVAE_TENSORBOARD = f"{COSMOVAE_DIR}/tensorboard"
COSMOVAE_CHECKPOINT = f"{COSMOVAE_DIR}/checkpoint"
COSMOVAE_HISTORY_FIGURE = f"{FIGURES}/cosmovae_history.png"
COSMOVAE_PREDICTION = prediction_path("cosmovae", "T", "test")
GAUSSIAN_PREDICTION = prediction_path("gaussian", "T", "test")
INPAINTING_METRICS = f"{METRICS}/inpainting/test.tsv"
INPAINTING_SPECTRA = f"{METRICS}/inpainting/test_spectra.tsv"
INPAINTING_FIGURE = f"{FIGURES}/cosmovae_inpainting_test.png"
INPAINTING_SPECTRA_FIGURE = f"{FIGURES}/cosmovae_spectra_test.png"
INPAINTING_HOLE_POWER = f"{METRICS}/inpainting/test_hole_power.tsv"
INPAINTING_HOLE_POWER_FIGURE = f"{FIGURES}/cosmovae_hole_power_test.png"


def inpainting_mask(realisation="{realisation}"):
    return f"{INPAINT}/r{realisation}/mask.fits"


def inpainting_mask_table(realisation="{realisation}"):
    return f"{INPAINT}/r{realisation}/mask.tsv"


def inpainting_patch_file(split="{split}"):
    return f"{INPAINT}/T/{split}.h5"


def fullsky_path(name, realisation="{realisation}"):
    return f"{INPAINT}/fullsky/r{realisation}/{name}"


def fullsky_region(realisation="{realisation}"):
    return fullsky_path("region.fits", realisation)


def fullsky_patches(realisation="{realisation}"):
    return fullsky_path("patches.h5", realisation)


def fullsky_inpainted(realisation="{realisation}"):
    return fullsky_path("inpainted.fits", realisation)


def fullsky_spectra(realisation="{realisation}"):
    return fullsky_path("spectra.tsv", realisation)


def fullsky_errors(realisation="{realisation}"):
    return fullsky_path("errors.tsv", realisation)


def fullsky_figure(realisation="{realisation}"):
    return f"{FIGURES}/cosmovae_fullsky_r{realisation}.png"


# the dust VAEs (rules/dustvae.smk): {dustmodel} is a name of dustvae.models
DUST = "results/dust"
DUST_SKY = f"{DUST}/sky_alm.h5"
DUST_SAMPLES = f"{DUST}/samples.h5"
DUST_SCATTERING_SAMPLES = f"{DUST}/scattering_samples.h5"
DUST_WPH_SAMPLES = f"{DUST}/wph_samples.h5"
DUST_IMPUTATION = f"{DUST}/imputation.h5"
DUST_METRICS = f"{METRICS}/dust"
DUST_FIGURES = f"{FIGURES}/dust"
DUST_STATISTICS_TABLE = f"{DUST_METRICS}/statistics.tsv"
DUST_NETWORK_FRACTION_TABLE = f"{DUST_METRICS}/network_fraction.tsv"
DUST_SAMPLES_FIGURE = f"{DUST_FIGURES}/samples.png"
DUST_STATISTICS_FIGURE = f"{DUST_FIGURES}/statistics.png"
DUST_IMPUTATION_TABLE = f"{DUST_METRICS}/imputation.tsv"
DUST_IMPUTATION_FIGURE = f"{DUST_FIGURES}/imputation.png"
DUST_INTERPOLATION_GIF = f"{DUST_FIGURES}/interpolation.gif"
DUST_INTERPOLATION_STRIP = f"{DUST_FIGURES}/interpolation_strip.png"


def dust_patch_file(split="{split}"):
    return f"{DUST}/patches/{split}.h5"


def dust_model_dir(dustmodel="{dustmodel}"):
    return f"{MODELS}/dust/{dustmodel}"


def dust_model_file(dustmodel="{dustmodel}"):
    return f"{dust_model_dir(dustmodel)}/model.keras"


def dust_sampler_file(dustmodel="{dustmodel}"):
    return f"{dust_model_dir(dustmodel)}/sampler.npz"


def dust_history_file(dustmodel="{dustmodel}"):
    return f"{dust_model_dir(dustmodel)}/history.tsv"


def dust_checkpoint_dir(dustmodel="{dustmodel}"):
    return f"{dust_model_dir(dustmodel)}/checkpoint"


def dust_history_figure(dustmodel="{dustmodel}"):
    return f"{DUST_FIGURES}/history_{dustmodel}.png"


def dust_conditional_table(dustmodel="{dustmodel}"):
    return f"{DUST_METRICS}/conditional_{dustmodel}.tsv"


def dust_conditional_structure_table(dustmodel="{dustmodel}"):
    return f"{DUST_METRICS}/conditional_{dustmodel}_structure.tsv"


def dust_conditional_figure(dustmodel="{dustmodel}"):
    return f"{DUST_FIGURES}/conditional_{dustmodel}.png"


def dust_latent_figure(dustmodel="{dustmodel}"):
    return f"{DUST_FIGURES}/latent_{dustmodel}.png"


def dust_reconstructions_figure(dustmodel="{dustmodel}"):
    return f"{DUST_FIGURES}/reconstructions_{dustmodel}.png"


# ----- targets of rule all and input functions


def group_predictions(method, wildcards):
    return [prediction_path(method, f, wildcards.split) for f in GROUP_FIELDS[wildcards.group]]


def field_group(field):
    """The group a field is analysed in (the harmonic ILC needs all its fields): QU or the field itself."""
    return next(g for g, fields in GROUP_FIELDS.items() if field in fields)


def evaluation_outputs():
    return [
        *[model_path(f) for f in CENN_FIELDS],
        *[metrics_table(f, s) for f in CENN_FIELDS for s in EVAL_SPLITS],
        *[spectra_table(g, s) for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
        *[spectra_summary(g, s) for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
    ]


def all_figures():
    return [
        CLS_FIGURE,
        CMB_MOLLWEIDE,
        *observed_mollweides(),
        *[patches_figure(field) for field in FIELDS],
        *[cenn_history_figure(m) for m in CENN_MODELS],
        *[predictions_figure(f, s) for f in CENN_FIELDS for s in EVAL_SPLITS],
        *[spectra_figure(g, s) for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
        *[transfer_figure(g, s) for g in SPECTRA_GROUPS for s in EVAL_SPLITS],
    ]


def real_sky_outputs():
    """Targets of the default run with planck.real_sky.enabled (the comparison table and figure)."""
    if not config["planck"]["real_sky"]["enabled"]:
        return []
    return [PLANCK_COMPARISON, PLANCK_COMPARISON_FIGURE]


def cut_inputs(wildcards):
    """Signal alm and CMB of every realisation; the observed maps only for the pixel method."""
    inputs = {
        "signal": [signal_alm_path(r) for r in REALISATIONS],
        "cmb": [cmb_alm_path(r) for r in REALISATIONS],
        # Point-source catalogues, rendered at the patch pixels and masked (all realisations, in order).
        "sources": [foreground_path(c, r) for r in REALISATIONS for c in SOURCE_COMPONENTS],
    }
    if config["patches"]["method"] == "pixel":
        inputs["maps"] = [m for r in REALISATIONS for m in observed_maps(r)]
    if config["patches"]["mask"]:
        inputs["mask"] = config["patches"]["mask"]
    return inputs


def noise_variance_files():
    """Per-pixel noise covariances of the HFI maps (observation.noise_model: planck), one per frequency;
    none for white noise. (The Planck noise lives in the maps: patches.method must be pixel.)"""
    if config["observation"]["noise_model"] != "planck":
        return []
    return [noise_variance_path(tag) for tag in FREQ_TAGS]


def freq_of(tag):
    """143GHz -> 143.0"""
    return float(tag.removesuffix("GHz"))


def dust_scattering_input(wildcards):
    """dust_statistics reads the scattering syntheses only when they are on."""
    return [DUST_SCATTERING_SAMPLES] if (config["dustvae"]["statistics"]["scattering"] or {}).get("enabled", True) else []


def dust_wph_input(wildcards):
    """dust_statistics reads the WPH syntheses only when they are on."""
    return [DUST_WPH_SAMPLES] if config["dustvae"]["statistics"]["wph_synthesis"]["enabled"] else []


def dust_patch_source(wildcards):
    """The simulated sky's alm, or the downloaded GNILC 545 GHz map."""
    if config["dustvae"]["source"] == "gnilc545":
        return planck_file("COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits")
    return DUST_SKY
