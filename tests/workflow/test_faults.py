"""Faults tried on every stage kind (issue 18; README, "What a fault leaves behind").

Each test works on a copy of one uninterrupted tiny run (the reference) and compares what the
next ``snakemake`` makes with the reference's files, byte for byte:

- a job of each kind SIGKILLed mid-write (tests/fault_injection: just before the rename of its
  last output, or at the rename of a training checkpoint; a download mid-stream);
- bad inputs: a clear error naming the file and the dataset or key, and no downstream output;
- a full disk (RLIMIT_FSIZE: every write past the limit fails): the job fails naming the file,
  leaves no temporary, and the next run writes the reference's bytes.
"""

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import h5py
import healpy as hp
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT

CONFIGS = [ROOT / "config" / "config.yaml", ROOT / "config" / "tiny.yaml"]
FAULTS = ROOT / "tests" / "fault_injection"
# The spectra of the QU test split need every stage before them (sky, patches, CENN, the linear
# baselines); the inpainting patches read a FITS mask written by the workflow.
TARGETS = ["results/spectra/QU/test.tsv", "results/inpainting/T/test.h5"]


def snakemake(work, *args, env=None, configs=(), cores=1):
    full_env = dict(os.environ, PYTHONWARNINGS="ignore", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(cores), *args,
         "--configfile", *map(str, [*CONFIGS, *configs])],
        capture_output=True, text=True, env=full_env, timeout=900,
    )


def output_of(proc):
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("reference")
    proc = snakemake(work, *TARGETS, cores=2)
    assert proc.returncode == 0, output_of(proc)[-5000:]
    return work


@pytest.fixture()
def work(reference, tmp_path):
    """A copy of the reference run (files, times and Snakemake's records)."""
    return Path(shutil.copytree(reference, tmp_path / "work", symlinks=True))


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def keras_weights(path):
    """{dataset path: array} of the weights inside a .keras archive (its config and metadata carry
    the save date and object ids; the weights are what training made)."""
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        weights = {}
        f.visititems(lambda name, obj: weights.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
        return weights


def assert_same_outputs(work, reference, outputs):
    for name in outputs:
        got, want = work / name, reference / name
        assert got.exists(), f"{name} was not rewritten"
        if name.endswith(".keras"):
            a, b = keras_weights(got), keras_weights(want)
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
        elif name.endswith("history.tsv"):  # wall-clock columns aside
            a, b = (pd.read_csv(p, sep="\t", comment="#").drop(columns=["seconds", "patches_per_second"]) for p in (got, want))
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        else:
            assert digest(got) == digest(want), f"{name} differs from the uninterrupted run"


def no_temporaries(work):
    return [str(p.relative_to(work)) for p in (work / "results").rglob(".*.tmp*")]


OBSERVE = ["results/sky/r0/signal_alm.h5"] + [f"results/sky/r0/observed_{nu}GHz.fits" for nu in (100, 143, 217)]
CUT_TEST = [f"results/patches/{f}/test.h5" for f in "TQU"] + ["results/patches/sources_test.tsv"]
TRAIN = ["results/models/cenn/QU/model.keras", "results/models/cenn/QU/history.tsv"]
# kind: (rule, target, kill before the Nth rename onto a path matching this glob, N, outputs compared)
KILLS = {
    "sky": ("observe", OBSERVE[-1], "*/observed_217GHz.fits", 1, OBSERVE),
    "cut_patches": ("cut_patches", CUT_TEST[-1], "*/patches/U/test.h5", 1, CUT_TEST),
    "train": ("train_cenn", TRAIN[0], "*/checkpoint/state.json", 2, TRAIN),
    "predict": ("predict_cenn", "results/predictions/cenn/Q/test.h5", "*/predictions/cenn/Q/test.h5", 1, ["results/predictions/cenn/Q/test.h5"]),
    "spectra": ("spectra", "results/spectra/QU/test.tsv", "*/spectra/QU/test_summary.tsv", 1, ["results/spectra/QU/test.tsv", "results/spectra/QU/test_summary.tsv"]),
}


@pytest.mark.parametrize("kind", sorted(KILLS))
def test_a_job_killed_mid_write_is_rerun_to_the_same_bytes(reference, work, kind):
    rule, target, pattern, nth, outputs = KILLS[kind]
    faults = {"PYTHONPATH": str(FAULTS), "CMBNN_FAULT_RULE": rule, "CMBNN_KILL_AT_RENAME": pattern, "CMBNN_KILL_AT_COUNT": str(nth)}
    killed = snakemake(work, target, "--forcerun", rule, env=faults)
    assert killed.returncode != 0 and "SIGKILL" in output_of(killed), output_of(killed)[-3000:]
    assert not [name for name in outputs if (work / name).exists()], "a killed job left an output under its final name"
    if kind == "train":
        assert (work / "results/models/cenn/QU/checkpoint/state.json").exists()  # what is kept: epoch 1
    else:
        assert no_temporaries(work)  # the killed writer's temporary, until the next write
    rerun = snakemake(work, target)
    assert rerun.returncode == 0, output_of(rerun)[-3000:]
    assert_same_outputs(work, reference, outputs)
    assert not no_temporaries(work)
    if kind == "train":
        log = (work / "results/logs/cenn/train_QU.log").read_text()
        assert "resuming from the checkpoint after epoch 1" in log
        assert not (work / "results/models/cenn/QU/checkpoint").exists()
        downstream = snakemake(work, "results/predictions/cenn/Q/test.h5")  # predictions from the resumed model
        assert downstream.returncode == 0, output_of(downstream)[-3000:]
        assert_same_outputs(work, reference, ["results/predictions/cenn/Q/test.h5"])


def _job_pids(script):
    """Processes running Snakemake's copy of ``script`` (…/tmpXXXX.<script>.py)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and any(arg.endswith(f".{script}.py".encode()) for arg in argv):
            pids.append(int(entry.name))
    return pids


def test_a_download_killed_mid_stream_resumes_to_the_same_bytes(tmp_path):
    """SIGKILL of download_planck with half the file on disk: the next run asks for the rest
    (Range from the .part's length) and the file equals the archive's, checksum verified."""
    from astropy.io import fits

    from archive_server import Archive
    from cmbnn.planck.download import load_manifest

    name = "HFI_SkyMap_143_2048_R3.01_full.fits"
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=c, format="E", array=np.random.default_rng(3).standard_normal(60_000).astype(np.float32)) for c in ("I_STOKES", "Q_STOKES", "U_STOKES")]
    )
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": 2048})
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buf)
    data = buf.getvalue()
    entry = load_manifest(ROOT / "workflow" / "planck_manifest.yaml")[name]
    url_path = "/" + entry["paths"]["irsa"]
    archive = Archive()
    threading.Thread(target=archive.serve_forever, daemon=True).start()
    release = threading.Event()
    archive.files[url_path], archive.stall[url_path] = data, release
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"files": {name: {**entry, "size": len(data), "md5": hashlib.md5(data).hexdigest(), "content": {"hdu": 1, "nside": 2048}}}}))
    config = tmp_path / "planck.yaml"
    config.write_text(yaml.safe_dump({"planck": {"manifest": str(manifest), "mirror": "irsa", "base_urls": {"irsa": archive.url}}}))
    work = tmp_path / "work"
    target = f"resources/planck/{name}"
    part = work / "resources" / "planck" / f"{name}.part"
    args = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1", target, "--configfile", *map(str, [*CONFIGS, config])]
    env = dict(os.environ, PYTHONWARNINGS="ignore", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    try:
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
            deadline = time.monotonic() + 120
            while not (part.exists() and part.stat().st_size >= len(data) // 4):
                assert time.monotonic() < deadline and proc.poll() is None, "the download never reached the stall"
                time.sleep(0.05)
            (pid,) = _job_pids("download_planck")
            os.kill(pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "SIGKILL" in out, out[-3000:]
        kept = part.stat().st_size
        assert 0 < kept < len(data) and not (work / target).exists()  # what is kept: the .part
        release.set()
        rerun = snakemake(work, target, configs=[config])
        assert rerun.returncode == 0, output_of(rerun)[-3000:]
    finally:
        release.set()
        archive.shutdown()
        archive.server_close()
    assert (work / target).read_bytes() == data and not part.exists()
    assert archive.requests[-1] == (url_path, f"bytes={kept}-")
    assert f"resuming at byte {kept}" in (work / "results" / "logs" / "planck" / f"download_{name}.log").read_text()


# Bad inputs: (what is wrong, target, how the copy is damaged, the error it must give)
def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_dataset(path, name="M0"):
    with h5py.File(path, "r+") as f:
        del f[name]


def _shrink_patches(path):
    with h5py.File(path, "r+") as f:
        m, m0 = f["M"][:, :8, :8], f["M0"][:, :8, :8]
        del f["M"], f["M0"]
        f["M"], f["M0"] = m, m0


def _nan_pixel(path):
    with h5py.File(path, "r+") as f:
        f["M"][1, 3, 4, 0] = np.nan


def _mask_at_nside_32(path):
    maps = hp.read_map(path, field=None)
    hp.write_map(path, [hp.ud_grade(m, 32) for m in maps], overwrite=True, column_names=["MASK", "GALACTIC", "DUST_T"])


def _mask_without_ordering(path):
    from astropy.io import fits

    with fits.open(path, mode="update") as hdul:
        del hdul[1].header["ORDERING"]


PATCHES_Q = "results/patches/Q/test.h5"
PREDICTION_Q = "results/predictions/cenn/Q/test.h5"
MASK = "results/inpainting/r0/mask.fits"
INPAINT_TEST = "results/inpainting/T/test.h5"
BAD_INPUTS = {
    "truncated HDF5 patch file": (PREDICTION_Q, PATCHES_Q, _truncate, r"results/patches/Q/test\.h5: cannot be read as HDF5 \(missing, truncated"),
    "missing dataset": (PREDICTION_Q, PATCHES_Q, _drop_dataset, r"results/patches/Q/test\.h5: dataset\(s\) \['M0'\] missing"),
    "wrong shape": (PREDICTION_Q, PATCHES_Q, _shrink_patches, r"results/patches/Q/test\.h5: dataset M holds 8 x 8 patches of 3 channels; this model takes \(16, 16, 3\)"),
    "NaN in inputs": (PREDICTION_Q, PATCHES_Q, _nan_pixel, r"results/patches/Q/test\.h5: dataset M has 1 NaN/inf values in patches 0\.\.2 \(first in patch 1\)"),
    "FITS map of the wrong NSIDE": (INPAINT_TEST, MASK, _mask_at_nside_32, r"results/inpainting/r0/mask\.fits: NSIDE 32, expected 64"),
    "FITS map without ORDERING": (INPAINT_TEST, MASK, _mask_without_ordering, r"results/inpainting/r0/mask\.fits: ORDERING is 'missing'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_a_bad_input_is_named_and_nothing_downstream_is_written(work, case):
    import re

    target, damaged, damage, message = BAD_INPUTS[case]
    damage(work / damaged)
    proc = snakemake(work, target)
    assert proc.returncode != 0
    assert re.search(message, output_of(proc)), output_of(proc)[-4000:]
    assert not (work / target).exists() and not no_temporaries(work)


def test_a_nested_fits_map_is_read_as_the_ring_one(reference, work):
    """Not a bad input: a NESTED copy of a map (ORDERING says so) gives the same bytes downstream."""
    maps = hp.read_map(work / MASK, field=None)
    hp.write_map(work / MASK, [hp.reorder(m, r2n=True) for m in maps], nest=True, overwrite=True, column_names=["MASK", "GALACTIC", "DUST_T"])
    proc = snakemake(work, INPAINT_TEST)
    assert proc.returncode == 0, output_of(proc)[-3000:]
    assert_same_outputs(work, reference, [INPAINT_TEST])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cosmovae.perceptual_weights_file", "weights/vgg16_notop.h5", r"config key 'cosmovae\.perceptual_weights_file': weights/vgg16_notop\.h5 does not exist"),
        ("planck.manifest", "no_such_manifest.yaml", r"config key 'planck\.manifest': no_such_manifest\.yaml not found"),
    ],
)
def test_a_config_that_points_at_a_missing_file_stops_before_any_job(tmp_path, key, value, message):
    import re

    section, name = key.split(".")
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({section: {name: value}}))
    proc = snakemake(tmp_path / "work", "-n", configs=[config])
    assert proc.returncode != 0 and re.search(message, output_of(proc)), output_of(proc)[-3000:]
    assert not (tmp_path / "work" / "results").exists()


def test_a_full_disk_fails_the_job_naming_the_file_and_the_rerun_writes_the_same_bytes(reference, work):
    """Every file the observe job writes is over 100 kB: with that limit its first write fails."""
    faults = {"PYTHONPATH": str(FAULTS), "CMBNN_FAULT_RULE": "observe", "CMBNN_FILE_SIZE_LIMIT": str(100_000)}
    full = snakemake(work, OBSERVE[-1], "--forcerun", "observe", env=faults)
    text = output_of(full) + (work / "results/logs/sky/r0/observe.log").read_text()
    assert full.returncode != 0
    assert "results/sky/r0/signal_alm.h5: the write failed, so the file was not replaced" in text, text[-3000:]
    assert not [name for name in OBSERVE if (work / name).exists()] and not no_temporaries(work)
    rerun = snakemake(work, OBSERVE[-1])
    assert rerun.returncode == 0, output_of(rerun)[-3000:]
    assert_same_outputs(work, reference, OBSERVE)
