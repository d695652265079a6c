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
    behave as for the real name. A failed write (a full disk, a file size
    limit) leaves ``path`` as it was and raises OSError naming it; the
    temporary of a writer that was killed (its process gone) is removed by the
    next write of the same path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)]
    _remove_orphaned_temporaries(path.parent, stem, suffixes)
    tmp = path.with_name(f".{stem}.tmp{os.getpid()}{suffixes}")
    try:
        try:
            yield tmp
        except (OSError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and "errno" not in str(err):
                raise  # HDF5 reports a failed write as RuntimeError with the errno; other errors pass
            raise OSError(f"{path}: the write failed, so the file was not replaced (a full disk or a file size limit?): {err}") from err
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_orphaned_temporaries(folder: Path, stem: str, suffixes: str) -> None:
    """Delete ``.{stem}.tmp{pid}{suffixes}`` files whose writer process no longer exists here."""
    for orphan in folder.glob(f".{stem}.tmp*{suffixes}"):
        pid = orphan.name[len(stem) + 5 : len(orphan.name) - len(suffixes)]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            orphan.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


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


def read_healpix_map(path, field=0, nside: int | None = None) -> np.ndarray:
    """Columns ``field`` (an index, a tuple of them, or None for all) of a HEALPix FITS map as
    RING float arrays, after checking the header: ORDERING must say RING or NESTED (a NESTED
    map is reordered) and, with ``nside``, NSIDE must be it. ValueError naming the file."""
    import healpy as hp
    from astropy.io import fits

    try:
        header = fits.getheader(str(path), 1)
    except (OSError, IndexError) as err:
        raise ValueError(f"{path}: not a HEALPix FITS map (no binary table in HDU 1): {err}") from err
    ordering = str(header.get("ORDERING", "")).strip().upper()
    if ordering not in ("RING", "NESTED", "NEST"):
        raise ValueError(f"{path}: ORDERING is {ordering or 'missing'!r} in HDU 1; expected RING or NESTED")
    file_nside = header.get("NSIDE")
    if nside is not None and file_nside is not None and int(file_nside) != int(nside):
        raise ValueError(f"{path}: NSIDE {file_nside}, expected {nside} (the run's nside)")
    maps = hp.read_map(str(path), field=field, nest=False)
    if nside is not None and hp.get_nside(maps) != int(nside):
        raise ValueError(f"{path}: {np.shape(maps)[-1]} pixels a column is NSIDE {hp.get_nside(maps)}, expected {nside}")
    return maps


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


class ChunkedH5Writer:
    """Datasets of known final shape written a block of rows at a time (see :func:`chunked_h5`)."""

    def __init__(self, file, layout: dict):
        self.file, self.layout, self.created = file, dict(layout), False
        self.rows = {name: 0 for name, spec in self.layout.items() if isinstance(spec, tuple)}

    def _create(self, rows: dict):
        # Creation order = layout order, each dataset followed by its first write: contiguous
        # storage is allocated at the first write, so the file is laid out as write_h5's.
        for name, spec in self.layout.items():
            if isinstance(spec, tuple):
                shape, dtype = spec
                ds = self.file.create_dataset(name, shape=shape, dtype=dtype, track_times=False)
                if name in rows:
                    self._write(ds, name, 0, rows[name])
            else:
                self.file.create_dataset(name, data=spec, track_times=False)
        self.created = True

    def _write(self, ds, name, start, block):
        block = np.asarray(block)
        ds[start : start + len(block)] = block
        self.rows[name] += len(block)

    def write(self, start: int, **rows) -> None:
        """Rows start:start+len(block) of each named (row-wise) dataset."""
        unknown = [name for name in rows if name not in self.rows]
        if unknown:
            raise KeyError(f"not row-wise datasets of this file: {unknown}")
        if not self.created:
            if start != 0:
                raise ValueError("the first block written must start at row 0")
            self._create(rows)
            return
        for name, block in rows.items():
            self._write(self.file[name], name, start, block)

    def finish(self) -> None:
        if not self.created:
            self._create({})
        short = {name: (n, self.layout[name][0][0]) for name, n in self.rows.items() if n != self.layout[name][0][0]}
        if short:
            raise ValueError(f"rows written != rows declared (written, declared): {short}")


@contextlib.contextmanager
def chunked_h5(path, layout: dict, attrs: dict):
    """An HDF5 file written block by block, so memory does not grow with its size.

    layout: name -> array (written whole) or (shape, dtype) (written by
    ``writer.write(start, name=rows, ...)`` in blocks of rows; every row must
    be written once). Like :func:`write_h5`: atomic (a temporary file renamed
    on success), uncompressed, without timestamps; when the first block gives
    every row-wise dataset, the file is byte-identical to write_h5's of the
    same arrays, layout order and attrs.
    """
    with atomic_output(path) as tmp:
        with _h5_create_without_timestamps(tmp) as f:
            writer = ChunkedH5Writer(f, layout)
            yield writer
            writer.finish()
            for key, value in attrs.items():
                f.attrs[key] = value


def patch_layout(n: int, height: int, width: int, n_freq: int, centers, realisation=None, mask: bool = True) -> dict:
    """Layout for :func:`chunked_h5` of a patch file (see :func:`write_patches_h5`) of n patches:
    M, M0 and mask row-wise, centers (and realisation) whole."""
    layout = {
        "M": ((n, height, width, n_freq), np.float32),
        "M0": ((n, height, width, 1), np.float32),
        "centers": np.asarray(centers, dtype=np.float64),
    }
    if realisation is not None:
        layout["realisation"] = np.asarray(realisation)
    if mask:
        layout["mask"] = ((n, height, width), np.uint8)
    return layout


def open_h5(path):
    """An h5py File opened for reading; a missing, truncated or non-HDF5 file is an OSError
    naming the path (HDF5's own message does not)."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise OSError(f"{path}: cannot be read as HDF5 (missing, truncated by a killed job or a full disk, or not HDF5): {err}") from err


def read_h5(path) -> tuple[dict, dict]:
    """All datasets and attributes of a file written by :func:`write_h5`."""
    with open_h5(path) as f:
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


class PatchFileError(ValueError):
    """A patch file that is not what the patch stage writes (names the file and dataset)."""


def check_patch_file(f, path, shape=None, chunk: int = 256) -> None:
    """Raise :class:`PatchFileError` unless ``f`` (an open patch file or a dict of arrays) holds
    ``M`` (N, H, W, C), ``M0`` (N, H, W, 1) and ``centers`` (N, 2), all finite. ``shape``: the
    (H, W, C) a model expects (None entries are not checked). Read ``chunk`` patches at a time."""
    missing = [name for name in PATCH_DATASETS if name not in f]
    if missing:
        raise PatchFileError(f"{path}: dataset(s) {missing} missing (has {sorted(f)}); the patch stage writes {list(PATCH_DATASETS)}")
    m, m0, centers = f["M"], f["M0"], f["centers"]
    if len(m.shape) != 4:
        raise PatchFileError(f"{path}: dataset M has shape {m.shape}, expected (N, H, W, channels)")
    n, h, w, c = m.shape
    want = {"M0": (n, h, w, 1), "centers": (n, 2)}
    for name, expected in want.items():
        if tuple(f[name].shape) != expected:
            raise PatchFileError(f"{path}: dataset {name} has shape {tuple(f[name].shape)}, expected {expected} beside M {m.shape}")
    if shape is not None and any(e is not None and e != a for e, a in zip(shape, (h, w, c))):
        raise PatchFileError(f"{path}: dataset M holds {h} x {w} patches of {c} channels; this model takes {tuple(shape)} (None: any)")
    for name, data in (("M", m), ("M0", m0), ("centers", centers)):
        for start in range(0, n, chunk):
            block = np.asarray(data[start : start + chunk])
            bad = ~np.isfinite(block)
            if bad.any():
                first = start + int(np.argwhere(bad)[0][0])
                raise PatchFileError(f"{path}: dataset {name} has {int(bad.sum())} NaN/inf values in patches {start}..{start + len(block) - 1} (first in patch {first})")


@contextlib.contextmanager
def open_patches(path, shape=None):
    """A patch file opened for reading (h5py File) after :func:`check_patch_file`."""
    with open_h5(path) as f:
        check_patch_file(f, path, shape)
        yield f


def read_patches_h5(path, shape=None) -> tuple[dict, dict]:
    """All datasets and attributes of a patch file, after :func:`check_patch_file`."""
    with open_patches(path, shape) as f:
        return {name: f[name][...] for name in f}, dict(f.attrs)


read_predictions_h5 = read_h5


def _label_channel(patch_attrs) -> int:
    freqs = list(np.asarray(patch_attrs["frequencies_GHz"], dtype=float))
    return freqs.index(float(patch_attrs["label_frequency_GHz"]))


def write_predictions_h5(path, net, patches: dict, patch_attrs: dict, patches_path, method: str, extra: dict | None = None) -> None:
    """Predictions (layout documented in README.md, rule ``predict_cenn``): ``net`` (output) and ``sim`` (label) in uK_CMB,
    plus the input channel at the label frequency, the centres and a reference to the patch file."""
    channel = _label_channel(patch_attrs)
    datasets = {
        "net": np.asarray(net, dtype=np.float32),
        "sim": patches["M0"],
        "input": patches["M"][..., channel : channel + 1],
        "centers": patches["centers"],
        **(extra or {}),
    }
    write_h5(path, datasets, {**patch_attrs, "method": method, "inputs_file": str(patches_path), "input_channel": channel})


@contextlib.contextmanager
def streamed_predictions_h5(path, patches, patch_attrs: dict, patches_path, method: str, channels: int = 1):
    """:func:`write_predictions_h5` block by block: yields ``write(start, net_rows)``, which writes
    those rows of ``net`` together with the same rows of the label and input channel read from
    ``patches`` (an open patch file: h5py File or dict of arrays). Same file as write_predictions_h5."""
    channel = _label_channel(patch_attrs)
    m, m0 = patches["M"], patches["M0"]
    n, height, width = m.shape[:3]
    layout = {
        "net": ((n, height, width, channels), np.float32),
        "sim": (tuple(m0.shape), m0.dtype),
        "input": ((n, height, width, 1), m.dtype),
        "centers": np.asarray(patches["centers"]),
    }
    attrs = {**patch_attrs, "method": method, "inputs_file": str(patches_path), "input_channel": channel}
    with chunked_h5(path, layout, attrs) as writer:

        def write(start, net):
            stop = start + len(net)
            writer.write(start, net=np.asarray(net, dtype=np.float32), sim=m0[start:stop], input=m[start:stop, ..., channel : channel + 1])

        yield write
