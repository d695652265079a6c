"""Training, statistics, prediction and patch cutting stream from / to the HDF5 patch files:
the same numbers as in memory, and only a batch or a chunk of patches resident at a time."""

import copy
import tracemalloc

import h5py
import numpy as np
import pytest
import yaml

from cmbnn.config import validate_config
from cmbnn.io import chunked_h5, patch_layout, read_patches_h5, streamed_predictions_h5, write_patches_h5, write_predictions_h5
from cmbnn.patches.cutting import ObservedSky, cut_realisation
from cmbnn.patches.sets import split_centers
from cmbnn.settings import RunSettings
from cmbnn.sky import simulate

keras = pytest.importorskip("keras")

from cmbnn.cenn import network as cenn  # noqa: E402
from cmbnn.nn import data as nn_data  # noqa: E402

TINY_NET = {"filters": [4, 8], "kernels": [3, 3], "learning_rate": 0.05, "batch_size": 4, "epochs": 2, "patience": 5}


class Rows:
    """An array-like over a numpy array or an h5py dataset that records how many rows (patches)
    each access reads; reading it whole (np.asarray) counts every row."""

    def __init__(self, a):
        self.a, self.shape, self.dtype = a, a.shape, a.dtype
        self.max_rows, self.reads = 0, 0

    def __len__(self):
        return len(self.a)

    def _count(self, rows):
        self.max_rows, self.reads = max(self.max_rows, rows), self.reads + 1

    def __getitem__(self, key):
        out = np.asarray(self.a[key])
        self._count(out.shape[0] if out.ndim == len(self.shape) else 1)
        return out

    def __array__(self, dtype=None, copy=None):
        self._count(len(self.a))
        return np.asarray(self.a[...], dtype=dtype)


def toy_patches(n, seed, side=16, n_freq=3):
    rng = np.random.default_rng(seed)
    label = (rng.standard_normal((n, side, side, 1)) * 10 + 3).astype(np.float32)
    dirt = rng.standard_normal((n, side, side, 1)) * 20
    x = np.concatenate([label + s * dirt + rng.standard_normal(label.shape) for s in (0.5, -0.2, 1.0)[:n_freq]], axis=-1)
    return x.astype(np.float32), label


def write_field_files(tmp_path, name, n, seed):
    """Q and U patch files of n patches, as cut_patches writes them; returns the in-memory arrays."""
    arrays, centers = {}, np.stack([np.linspace(0, 300, n), np.linspace(30, 60, n)], axis=1)
    for k, f in enumerate("QU"):
        x, y = toy_patches(n, seed + k)
        write_patches_h5(tmp_path / f"{f}_{name}.h5", {"M": x, "M0": y, "centers": centers}, {"frequencies_GHz": [100.0, 143.0, 217.0], "label_frequency_GHz": 143.0})
        arrays[f] = (x, y)
    return arrays


@pytest.fixture
def qu_files(tmp_path):
    train = write_field_files(tmp_path, "train", 40, 0)
    val = write_field_files(tmp_path, "validation", 12, 10)
    return tmp_path, train, val


def open_sets(stack, tmp_path, name, wrap=False):
    files = [stack.enter_context(h5py.File(tmp_path / f"{f}_{name}.h5", "r")) for f in "QU"]
    xs, ys = [f["M"] for f in files], [f["M0"] for f in files]
    if wrap:
        xs, ys = [Rows(a) for a in xs], [Rows(a) for a in ys]
    return xs, ys


# (a) + (b) training ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [TINY_NET, dict(TINY_NET, mode="joint", augment=True, optimizer="adam", full_res_filters=4)], ids=["per_field", "joint"])
def test_training_from_the_patch_files_equals_training_in_memory_and_reads_a_batch_at_a_time(qu_files, settings, monkeypatch):
    import contextlib

    tmp_path, train, val = qu_files
    monkeypatch.setattr(nn_data, "CHUNK", 8)  # statistics and fingerprint read 8 patches at a time
    fields = ["Q", "U"] if settings.get("mode") == "joint" else ["Q"]
    pick = slice(0, len(fields))
    in_memory = cenn.train(
        [train[f][0] for f in fields], [train[f][1] for f in fields], [val[f][0] for f in fields], [val[f][1] for f in fields],
        settings, seed=5, checkpoint_dir=tmp_path / "a", fields=fields,
    )
    with contextlib.ExitStack() as stack:
        xt, yt = open_sets(stack, tmp_path, "train", wrap=True)
        xv, yv = open_sets(stack, tmp_path, "validation", wrap=True)
        streamed = cenn.train(xt[pick], yt[pick], xv[pick], yv[pick], settings, seed=5, checkpoint_dir=tmp_path / "b", fields=fields)
        used = xt[pick] + yt[pick] + xv[pick] + yv[pick]
        assert all(a.reads > 0 for a in used)
        # Never more than a batch (4) or a statistics chunk (8) of the 40 patches in one read.
        assert max(a.max_rows for a in used) <= max(settings["batch_size"], nn_data.CHUNK)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([h[key] for h in streamed[1]], [h[key] for h in in_memory[1]], rtol=1e-6)
    assert [h["loss"] for h in streamed[1]] == [h["loss"] for h in in_memory[1]]  # in fact bit for bit
    for w1, w2 in zip(in_memory[0].get_weights(), streamed[0].get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_batches_read_from_h5py_equal_batches_from_arrays(qu_files):
    import contextlib

    from cmbnn.nn.training import PatchBatches

    tmp_path, train, _ = qu_files
    norm = {"input_offset": np.zeros(6), "input_scale": np.full(6, 3.0), "label_offset": 0.0, "label_scale": 5.0}
    memory = PatchBatches([train[f][0] for f in "QU"], [train[f][1] for f in "QU"], "QU", norm, 6, seed=3, augment=True)
    with contextlib.ExitStack() as stack:
        xs, ys = open_sets(stack, tmp_path, "train", wrap=True)
        streamed = PatchBatches(xs, ys, "QU", norm, 6, seed=3, augment=True)
        for epoch in (0, 1):
            for i in range(len(memory)):
                for a, b in zip(memory.batch(i, epoch), streamed.batch(i, epoch)):
                    np.testing.assert_array_equal(a, b)
        unshuffled = PatchBatches(xs, ys, "QU", norm, 6, seed=3, shuffle=False)
        np.testing.assert_array_equal(unshuffled.batch(1, 0)[0][..., :3], train["Q"][0][6:12] * np.float32(1 / 3))
        assert max(a.max_rows for a in xs + ys) == 6


# (c) statistics and fingerprint ---------------------------------------------------------------


def test_normalisation_stats_and_digest_stream_to_the_in_memory_numbers(qu_files, monkeypatch):
    import contextlib

    tmp_path, train, _ = qu_files
    monkeypatch.setattr(nn_data, "CHUNK", 7)  # 40 patches: five full chunks and a partial one
    with contextlib.ExitStack() as stack:
        xs, ys = open_sets(stack, tmp_path, "train", wrap=True)
        for mode, pick in (("per_field", slice(0, 1)), ("joint", slice(0, 2))):
            memory = cenn.normalisation_stats([train[f][0] for f in "QU"][pick], [train[f][1] for f in "QU"][pick], mode)
            streamed = cenn.normalisation_stats(xs[pick], ys[pick], mode)
            assert memory.keys() == streamed.keys()
            for key in memory:
                np.testing.assert_array_equal(streamed[key], memory[key])
        x64 = train["Q"][0].astype(np.float64)
        stats = cenn.normalisation_stats(xs[0], ys[0])
        np.testing.assert_allclose(stats["input_offset"], x64.mean(axis=(0, 1, 2)), rtol=1e-12)
        np.testing.assert_allclose(stats["input_scale"], x64.std(axis=(0, 1, 2)), rtol=1e-7)  # float32 centring, as in memory
        assert nn_data.data_digest(*xs, *ys) == nn_data.data_digest(*[train[f][0] for f in "QU"], *[train[f][1] for f in "QU"])
        assert max(a.max_rows for a in xs + ys) == 7


# (b) prediction -------------------------------------------------------------------------------


@pytest.mark.parametrize("tta", [False, True], ids=["plain", "test_time_augmentation"])
def test_prediction_streams_chunks_into_the_same_file(qu_files, monkeypatch, tta):
    import contextlib

    tmp_path, train, _ = qu_files
    monkeypatch.setattr(cenn, "PREDICT_CHUNK", 16)  # 40 patches: 16 + 16 + 8
    stats = cenn.normalisation_stats([train["Q"][0], train["U"][0]], [train["Q"][1], train["U"][1]], "joint")
    model = cenn.export_model(cenn.build_core(16, 16, 6, [4, 8], [3, 3], outputs=2), stats)
    in_memory = [read_patches_h5(tmp_path / f"{f}_train.h5") for f in "QU"]
    net = cenn.predict_patch_sets(model, [d for d, _ in in_memory], "QU", tta, "train")
    write_predictions_h5(tmp_path / "memory.h5", net[..., 1:], in_memory[1][0], in_memory[1][1], "U_train.h5", method="cenn")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(h5py.File(tmp_path / f"{f}_train.h5", "r")) for f in "QU"]
        sets = [{"M": Rows(f["M"]), "M0": Rows(f["M0"]), "centers": f["centers"]} for f in files]
        with streamed_predictions_h5(tmp_path / "streamed.h5", sets[1], dict(files[1].attrs), "U_train.h5", method="cenn") as write:
            for start, chunk in cenn.iter_predictions(model, sets, "QU", tta, "train"):
                assert len(chunk) <= 16
                write(start, chunk[..., 1:])
        assert max(d[k].max_rows for d in sets for k in ("M", "M0")) == 16
    assert (tmp_path / "streamed.h5").read_bytes() == (tmp_path / "memory.h5").read_bytes()
    if not tta:  # same batches as one predict over the whole set
        np.testing.assert_array_equal(net, model.predict(np.concatenate([train["Q"][0], train["U"][0]], axis=-1), batch_size=64, verbose=0))


# (b) cutting ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sky(root, camb_cls):
    with open(root / "config" / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg.update(nside=32, realisations=1)
    cfg["foregrounds"]["components"] = [c for c in cfg["foregrounds"]["components"] if c in ("dust", "radio_sources")]
    cfg["patches"].update(height=16, width=16, reso_arcmin=50.0, counts={"train": 40, "validation": 2, "test": 2}, region_nside=2, chunk=5)
    cfg = validate_config(cfg, root / "workflow" / "schemas" / "config.schema.yaml")
    run = RunSettings.from_config(cfg)
    cmb_alm, _ = simulate.cmb_realisation(run, camb_cls, 0)
    dust = simulate.foreground_realisation(run, "dust", cfg["foregrounds"]["dust"], 0, cfg["patches"]["lat_cut_deg"])[:2]
    sources = [simulate.source_catalogue(run, "radio_sources", cfg["foregrounds"]["radio_sources"], 0)]
    signal, maps = simulate.observe(run, cmb_alm, [dust], 0, sources)
    return cfg, ObservedSky(signal, simulate.label_alm(run, cmb_alm), maps, tuple(sources))


def cut(sky, centers, method="exact", chunks=False):
    cfg, observed = sky
    run = RunSettings.from_config({**cfg, "patches": dict(cfg["patches"], method=method)})
    return cut_realisation(run, "train", 0, centers, observed, chunks=chunks)


class CountingWriter:
    def __init__(self, writer):
        self.writer, self.max_rows = writer, 0

    def write(self, start, **rows):
        self.max_rows = max([self.max_rows] + [len(v) for v in rows.values()])
        self.writer.write(start, **rows)


def cut_to_file(sky, centers, path, method="exact"):
    """What cut_patches does for one field: every chunk written as it is cut."""
    cfg = sky[0]
    p = cfg["patches"]
    layout = patch_layout(len(centers), p["height"], p["width"], len(cfg["frequencies"]), centers, np.zeros(len(centers), np.int32))
    with chunked_h5(path, layout, {"field": "Q"}) as writer:
        counting = CountingWriter(writer)
        for chunk in cut(sky, centers, method, chunks=True):
            counting.write(chunk.start, M=chunk.inputs["Q"], M0=chunk.labels["Q"], mask=chunk.mask)
    return counting.max_rows


@pytest.mark.parametrize("method", ["exact", "pixel"])
def test_cutting_writes_chunk_by_chunk_the_same_file_as_in_memory(sky, tmp_path, method):
    cfg = sky[0]
    centers = split_centers(RunSettings.from_config(cfg), 0, "train")
    assert len(centers) == 40
    whole = cut(sky, centers, method)
    write_patches_h5(
        tmp_path / "memory.h5",
        {"M": whole.inputs["Q"], "M0": whole.labels["Q"], "centers": centers, "realisation": np.zeros(len(centers), np.int32), "mask": whole.mask},
        {"field": "Q"},
    )
    assert cut_to_file(sky, centers, tmp_path / "streamed.h5", method) == cfg["patches"]["chunk"]
    assert (tmp_path / "streamed.h5").read_bytes() == (tmp_path / "memory.h5").read_bytes()
    chunks = list(cut(sky, centers, method, chunks=True))
    assert [c.start for c in chunks] == list(range(0, 40, 5)) and all(len(c.mask) == 5 for c in chunks)
    assert [r for c in chunks for r in c.sources] == whole.sources
    assert not list((tmp_path).glob(".*tmp*"))  # the temporary files were renamed


def test_cutting_memory_does_not_grow_with_the_number_of_patches(sky, tmp_path):
    cfg = sky[0]
    centers = split_centers(RunSettings.from_config(cfg), 0, "train")
    many = np.concatenate([centers] * 4)  # 160 patches
    patch_bytes = 16 * 16 * (len(cfg["frequencies"]) + 1) * 4 + 16 * 16
    peaks = {}
    for label, c in (("few", centers[:10]), ("many", many)):
        tracemalloc.start()
        cut_to_file(sky, c, tmp_path / f"{label}.h5")
        peaks[label] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 150 more patches would add ~150 patch_bytes to a whole-split array; the streamed cut adds far less.
    tracemalloc.start()
    cut(sky, many)  # the whole split in memory, for contrast: the measure does see the patches
    peaks["whole"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peaks["whole"] - peaks["few"] > 100 * patch_bytes, (peaks, patch_bytes)
    assert peaks["many"] - peaks["few"] < 20 * patch_bytes, (peaks, patch_bytes)
    with h5py.File(tmp_path / "many.h5") as f:
        assert f["M"].shape[0] == 160 and np.all(np.isfinite(f["M"][...]))


def test_chunked_writer_checks_every_row_is_written(tmp_path):
    layout = patch_layout(4, 2, 2, 1, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="rows written"):
        with chunked_h5(tmp_path / "p.h5", layout, {}) as writer:
            writer.write(0, M=np.zeros((2, 2, 2, 1), np.float32), M0=np.zeros((2, 2, 2, 1), np.float32), mask=np.zeros((2, 2, 2), np.uint8))
    assert not list(tmp_path.iterdir())  # nothing left behind, no final file
    with pytest.raises(ValueError, match="row 0"):
        with chunked_h5(tmp_path / "p.h5", copy.deepcopy(layout), {}) as writer:
            writer.write(2, M=np.zeros((2, 2, 2, 1), np.float32))


def test_small_patch_sets_are_read_into_memory_and_large_ones_stay_streamed(tmp_path):
    from cmbnn.nn.training import in_memory_if_small

    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["M"] = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
        f["M0"] = np.ones((2, 4, 4, 1), np.float32)
    with h5py.File(path, "r") as f:
        arrays, loaded = in_memory_if_small([f["M"], f["M0"]], max_bytes=2 * 4 * 4 * 4 * 4)
        assert loaded and all(isinstance(a, np.ndarray) for a in arrays)
        np.testing.assert_array_equal(arrays[0], f["M"][...])
        same, loaded = in_memory_if_small([f["M"], f["M0"]], max_bytes=2 * 4 * 4 * 4 * 4 - 1)
        assert not loaded and all(isinstance(d, h5py.Dataset) for d in same)
