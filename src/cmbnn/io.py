"""File helpers: atomic outputs, HEALPix alm/map files, HDF5 patch sets.

Every writer goes through :func:`atomic_output`, so a killed job leaves a
temporary file that Snakemake does not recognise, never a truncated output
with the final name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

PATCH_DATASETS = ("M", "M0", "centers")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary name keeps the suffixes so that libraries choosing a format
    from the extension (healpy, h5py, matplotlib, Keras' ``.weights.h5``)
    behave as for the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: len(path.name) - len("".join(path.suffixes))]
    tmp = path.with_name(f".{stem}.tmp{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_alm_h5(path, alm: np.ndarray, lmax: int, attrs: dict) -> None:
    """Write harmonic coefficients (..., nalm) in healpy ordering with metadata."""
    write_h5(path, {"alm": alm}, {"lmax": int(lmax), "ordering": "healpy (m-major), ell from 0", **attrs})


def read_alm_h5(path) -> tuple[np.ndarray, dict]:
    datasets, attrs = read_h5(path)
    return datasets["alm"], attrs


def write_maps_fits(path, maps, column_names, units="uK_CMB", extra_header=()) -> None:
    """Write HEALPix maps (RING, Galactic) atomically."""
    import healpy as hp

    with atomic_output(path) as tmp:
        hp.write_map(
            str(tmp),
            maps,
            column_names=list(column_names),
            column_units=units,
            coord="G",
            dtype=np.float32,
            extra_header=list(extra_header),
            overwrite=True,
        )


def _h5_create_without_timestamps(path):
    """An h5py File whose root group carries no creation/modification times."""
    import h5py

    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    return h5py.File(fid)


def write_h5(path, datasets: dict, attrs: dict) -> None:
    """Write datasets and attributes atomically, uncompressed and without
    timestamps, so the same inputs give byte-identical files."""
    with atomic_output(path) as tmp, _h5_create_without_timestamps(tmp) as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data, track_times=False)
        for key, value in attrs.items():
            f.attrs[key] = value


def read_h5(path) -> tuple[dict, dict]:
    """All datasets and attributes of a file written by :func:`write_h5`."""
    import h5py

    with h5py.File(path, "r") as f:
        return {name: f[name][...] for name in f}, dict(f.attrs)


def write_patches_h5(path, datasets: dict, attrs: dict) -> None:
    """Write a patch set (layout documented in README.md, table of rules, ``cut_patches``):
    ``M`` (N, H, W, n_freq) float32 inputs, ``M0`` (N, H, W, 1) label, ``centers`` (N, 2)
    lon/lat in degrees, and optionally ``mask`` (N, H, W) uint8 with 1 = masked pixel
    (e.g. around bright point sources)."""
    missing = [name for name in PATCH_DATASETS if name not in datasets]
    if missing:
        raise ValueError(f"patch file {path} needs datasets {missing}")
    write_h5(path, datasets, attrs)


read_patches_h5 = read_h5
read_predictions_h5 = read_h5


def write_predictions_h5(path, net, patches: dict, patch_attrs: dict, patches_path, method: str, extra: dict | None = None) -> None:
    """Predictions (layout documented in README.md, rule ``predict_cenn``): ``net`` (output) and ``sim`` (label) in uK_CMB,
    plus the input channel at the label frequency, the centres and a reference to the patch file."""
    freqs = list(np.asarray(patch_attrs["frequencies_GHz"], dtype=float))
    channel = freqs.index(float(patch_attrs["label_frequency_GHz"]))
    datasets = {
        "net": np.asarray(net, dtype=np.float32),
        "sim": patches["M0"],
        "input": patches["M"][..., channel : channel + 1],
        "centers": patches["centers"],
        **(extra or {}),
    }
    write_h5(path, datasets, {**patch_attrs, "method": method, "inputs_file": str(patches_path), "input_channel": channel})
