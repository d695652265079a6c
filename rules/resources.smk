# Job resources that follow from the config (memory from nside and patch counts, training time
# from epochs). Every function takes `attempt`, so with `--retries N` (set in the SLURM profiles)
# a job killed for memory or time is resubmitted with proportionally more of both.
# They are estimates: profiles/*/config.yaml can override any of them per rule (set-resources).

from cmbnn.dust.sky import work_nside
from cmbnn.nn.training import IN_MEMORY_MAX_BYTES
from cmbnn.planck.archive import foreground_template_file

# Rough peak factor over the arrays a job holds at once (copies in numpy/healpy/TensorFlow).
_WORKING_COPIES = 3
# Interpreter + numpy/healpy (or TensorFlow) imports.
_BASE_MB = 1000
_TF_BASE_MB = 3000


def _mb(n_bytes):
    return int(n_bytes / 2**20)


def _sky_unit_bytes():
    """One IQU sky at nside: float64 maps and complex128 alm to LMAX (2.1 GB at nside 2048)."""
    npix = 12 * config["nside"] ** 2
    n_alm = (LMAX + 1) * (LMAX + 2) // 2
    return 3 * (npix * 8 + n_alm * 16)


def _patch_bytes(split, n_fields):
    """One split's patches of n_fields: a channel per frequency plus the label, float64."""
    p = config["patches"]
    return p["counts"][split] * n_fields * p["height"] * p["width"] * (len(FREQS) + 1) * 8


# Skies (of _sky_unit_bytes) each full-sky rule holds at its peak. Measured at nside 2048 with three
# frequencies (README, "Memory at paper scale"): cmb_map 1.7, foreground 4.5, observe 8.6, cut_patches
# 3.1; these follow what each script holds (observe: per frequency the signal alm, the maps and a
# working sky; foreground: the reference maps and one alm per frequency), and _SKY_MARGIN covers
# the rest.
_SKY_MARGIN = 1.1


def _foreground_skies(wildcards):
    # A Planck template (GNILC dust, Commander synchrotron) is read beside the modelled field.
    return 1.5 + len(FREQS) + (1.0 if foreground_template_file(config, wildcards.component) else 0.0)


def _observed_skies(wildcards):
    per_freq = 3.0
    if config["observation"]["scalar_eb"]:
        per_freq += 0.5  # E and B maps beside T, Q, U
    if config["observation"]["noise_model"] == "planck":
        per_freq += 1.0  # the (II, QQ, UU, QU) covariance maps
    return per_freq * len(FREQS)


SKIES = {
    "cmb_map": lambda wildcards: 2.0,
    "foreground": _foreground_skies,
    "observe": _observed_skies,
    "cut_patches": lambda wildcards: float(len(FREQS)),  # each frequency's signal alm or observed maps
    "plot_sky": lambda wildcards: 1.0,  # one IQU map at a time
}


def _sky_mb(rule, wildcards):
    return _BASE_MB + _mb(_SKY_MARGIN * SKIES[rule](wildcards) * _sky_unit_bytes())


def sky_mem_mb(rule):
    """Full-sky map/alm rules: memory grows with nside^2 and (but for cmb_map) the number of frequencies."""
    return lambda wildcards, attempt: _sky_mb(rule, wildcards) * attempt


def sky_threads():
    """The spherical-harmonic transforms are OpenMP-parallel (Snakemake sets OMP_NUM_THREADS to a
    job's threads): one thread below nside 1024, where jobs are short and run side by side; then
    a thread per 256 of nside (8 at 2048). A local run caps them at --cores."""
    nside = config["nside"]
    return 1 if nside < 1024 else nside // 256


def _chunk_bytes(n_patches, n_fields):
    """Working set of n_patches being cut: float32 inputs + label per field, and the float64
    pixel geometry (theta, phi, psi) and field values they are evaluated from, in copies."""
    p = config["patches"]
    per_pixel = n_fields * (len(FREQS) + 1) * 4 + (3 + n_fields) * 8
    return _WORKING_COPIES * n_patches * p["height"] * p["width"] * per_pixel


def cut_mem_mb(wildcards, attempt):
    """cut_patches: resident are one realisation's sky (alm or maps) and one chunk of patches of
    every field; each chunk is written to the patch files as it is cut, so nothing grows with
    the number of patches (cmbnn.io.chunked_h5)."""
    chunk = _chunk_bytes(config["patches"]["chunk"], len(FIELDS))
    return (_sky_mb("cut_patches", wildcards) + _mb(chunk)) * attempt


def patches_mem_mb(splits, n_fields=None, base=_BASE_MB):
    """Rules that read whole patch files: memory from the patch counts of `splits`.

    n_fields: a number, or a function of the wildcards (e.g. the fields of one CENN model);
    the default is every cut field.
    """

    def mem_mb(wildcards, attempt):
        n = n_fields(wildcards) if callable(n_fields) else (n_fields or len(FIELDS))
        split_list = splits(wildcards) if callable(splits) else splits
        patches = sum(_patch_bytes(s, n) for s in split_list)
        return (base + _WORKING_COPIES * _mb(patches)) * attempt

    return mem_mb


# Patches per read while normalisation statistics and the data fingerprint stream (cmbnn.cenn.CHUNK),
# per prediction chunk (cmbnn.cenn.PREDICT_CHUNK), and batches held by the input pipeline's prefetch.
_STATS_CHUNK = 64
_PREDICT_CHUNK = 256
_PREFETCH_BATCHES = 10
# Activations and their gradients, float32 values per patch pixel of a batch (paper network: ~30).
_ACTIVATION_FLOATS = 64


def _patch_float32_bytes(n_fields):
    """One patch of n_fields in float32: a channel per frequency plus the label."""
    p = config["patches"]
    return n_fields * p["height"] * p["width"] * (len(FREQS) + 1) * 4


def train_mem_mb(wildcards, attempt):
    """train_cenn reads its batches from the patch files (cmbnn.training.PatchBatches over h5py
    datasets) when they hold more than IN_MEMORY_MAX_BYTES. Resident: TensorFlow and the model, one batch's activations and gradients, the
    prefetched batches, and a chunk of patches while the statistics and fingerprint stream;
    nothing grows with the number of patches."""
    p, batch_size = config["patches"], config["cenn"]["batch_size"]
    patch = _patch_float32_bytes(cenn_model_fields(wildcards))
    activations = batch_size * p["height"] * p["width"] * _ACTIVATION_FLOATS * 4
    data = _PREFETCH_BATCHES * batch_size * patch + _WORKING_COPIES * _STATS_CHUNK * patch
    # Sets up to IN_MEMORY_MAX_BYTES are read whole instead (faster than random reads from HDF5).
    whole = (p["counts"]["train"] + p["counts"]["validation"]) * config["realisations"] * patch
    data += whole if whole <= IN_MEMORY_MAX_BYTES else 0
    return (_TF_BASE_MB + _mb(activations + data)) * attempt


def predict_mem_mb(wildcards, attempt):
    """predict_cenn reads and writes a chunk of patches at a time (cmbnn.cenn.iter_predictions):
    TensorFlow and the model, the chunk's inputs, outputs and (test-time augmentation) float64 sums."""
    p = config["patches"]
    patch = _patch_float32_bytes(cenn_field_model_fields(wildcards))
    activations = 64 * p["height"] * p["width"] * _ACTIVATION_FLOATS * 4
    return (_TF_BASE_MB + _mb(activations + _WORKING_COPIES * _PREDICT_CHUNK * patch * 2)) * attempt


def cenn_model_fields(wildcards):
    return len(CENN_MODELS[wildcards.model])


def cenn_field_model_fields(wildcards):
    return len(CENN_MODELS[model_of(wildcards.field)])


def one_split(wildcards):
    return [wildcards.split]


def split_and_train(wildcards):
    """metrics: the evaluated split and the training labels (the PSNR/SSIM data range)."""
    return [wildcards.split, "train"]


# Throughput assumed for the runtime estimate of training: patch pixels through the network
# per minute on one GPU (a CPU is ~20x slower: raise runtime in the profile for CPU training).
_TRAIN_PIXELS_PER_MIN = 2e9


def train_runtime(wildcards, attempt):
    """Minutes for train_cenn: every epoch passes over the training and validation patches."""
    p = config["patches"]
    pixels = (p["counts"]["train"] + p["counts"]["validation"]) * p["height"] * p["width"]
    pixels *= cenn_model_fields(wildcards)
    return int(30 + config["cenn"]["epochs"] * pixels / _TRAIN_PIXELS_PER_MIN) * attempt


def sky_runtime(wildcards, attempt):
    """Minutes for the spherical-harmonic rules: ~lmax^3 work, about 10 min per frequency at nside 2048."""
    return int(10 + 10 * len(FREQS) * (config["nside"] / 2048) ** 3) * attempt


def cut_runtime(wildcards, attempt):
    """Minutes for cut_patches: exact alm evaluation at every patch pixel, all realisations."""
    p = config["patches"]
    pixels = p["counts"][wildcards.split] * p["height"] * p["width"] * config["realisations"]
    # ~1e5 alm evaluations per second per lmax-thousand; a generous bound.
    return int(10 + pixels * (LMAX / 1000) / 1e5 / 60) * attempt


def scaled(value):
    """A fixed amount (MB or minutes) that grows with the attempt."""
    return lambda wildcards, attempt: value * attempt


def group_fields(wildcards):
    return len(GROUP_FIELDS[wildcards.group])


def field_group_fields(wildcards):
    return len(GROUP_FIELDS[field_group(wildcards.field)])


def dust_mem_mb(splits, copies=4):
    """Rules holding whole dust patch splits (float32 intensities, their float64 logs, statistics)."""
    p = config["dustvae"]["patches"]
    n_pix = sum(p["counts"][s] for s in splits) * p["height"] * p["width"]
    return lambda wildcards, attempt: (_TF_BASE_MB + copies * 8 * n_pix // 2**20) * attempt


def dust_sky_mem_mb(wildcards, attempt):
    """dust_sky: the filament sky holds about six float64 HEALPix maps at its working nside (the
    field, a ridge driver, the one-point law, the sort order, healpy's copies)."""
    sky = config["dustvae"]["sky"]
    if sky["model"] != "filaments":
        return 2000 * attempt
    return (1000 + 6 * 12 * work_nside(sky["lmax"]) ** 2 * 8 // 2**20) * attempt


def dust_patches_mem_mb(wildcards, attempt):
    """dust_patches: the simulated dust sky, or (dustvae.source: gnilc545) the nside 2048 GNILC map."""
    return (4000 + (2000 if config["dustvae"]["source"] == "gnilc545" else 0)) * attempt


def planck_map_mem_mb(wildcards, attempt):
    """Rules reading one nside 2048 PLA table: four float64 maps of 50M pixels, their alm and
    copies (~6 GB), whatever the run's nside."""
    return (1000 + 3 * 4 * 12 * 2048**2 * 8 // 2**20) * attempt
