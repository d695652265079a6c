import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from cmbnn.cenn import network as cenn  # noqa: E402
from cmbnn.nn import data as nn_data  # noqa: E402

SMALL = {"filters": [4, 8], "kernels": [3, 3], "leaky_slope": 0.2, "l2": 1e-6, "learning_rate": 0.05, "batch_size": 8, "epochs": 6, "patience": 20}


def toy_data(n=48, side=16, seed=0):
    """Inputs = the label at three 'frequencies' plus channel-dependent contamination."""
    rng = np.random.default_rng(seed)
    label = rng.standard_normal((n, side, side, 1)) * 10 + 3
    contamination = rng.standard_normal((n, side, side, 1)) * 20
    x = np.concatenate([label + s * contamination + rng.standard_normal((n, side, side, 1)) for s in (0.5, -0.2, 1.0)], axis=-1)
    return x.astype(np.float32), label.astype(np.float32)


def test_paper_architecture_shapes():
    core = cenn.build_core(256, 256, 3)
    assert core.output_shape == (None, 256, 256, 1)
    assert [core.get_layer(f"encode_{i}").output.shape[1:] for i in range(4)] == [(128, 128, 8), (64, 64, 16), (32, 32, 64), (16, 16, 128)]
    assert [core.get_layer(f"encode_{i}").kernel_size for i in range(4)] == [(9, 9), (9, 9), (7, 7), (7, 7)]
    with pytest.raises(ValueError, match="divisible by 16"):
        cenn.build_core(40, 40, 3)


def test_exported_model_takes_and_returns_uk(tmp_path):
    x, y = toy_data(8)
    stats = cenn.normalisation_stats(x, y)
    core = cenn.build_core(16, 16, 3, **{k: SMALL[k] for k in ("filters", "kernels")})
    model = cenn.export_model(core, stats)
    xn, _ = cenn.normalise(x, None, stats)
    expected = core.predict(xn, verbose=0) * stats["label_scale"] + stats["label_offset"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_short_fit_lowers_the_loss_and_is_reproducible(tmp_path):
    x, y = toy_data()
    runs = []
    for i in range(2):
        model, history = cenn.train(x[:40], y[:40], x[40:], y[40:], SMALL, seed=3, checkpoint_dir=tmp_path / f"ckpt{i}")
        runs.append(history)
        assert not (tmp_path / f"ckpt{i}").exists()  # removed once training finished
    losses = [h["val_loss"] for h in runs[0]]
    assert min(losses[1:]) < 0.8 * losses[0], losses
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]
    # Predictions in uK: much closer to the label than the raw contaminated input.
    pred = model.predict(x[40:], verbose=0)
    assert np.mean((pred - y[40:]) ** 2) < np.mean((x[40:, ..., :1] - y[40:]) ** 2)


RESUME_SCRIPT = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
sys.path.insert(0, {src!r})
sys.path.insert(0, {tests!r})
sys.path.insert(0, {tests_root!r})
import logging
logging.basicConfig(level=logging.INFO)
import keras
from test_network import SMALL, toy_data
from cmbnn.cenn import network as cenn

kill_after = int(sys.argv[1])
class Killed(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == kill_after:
            os._exit(3)  # like a SIGKILL: no clean-up, no finally blocks

x, y = toy_data()
settings = dict(SMALL, epochs=4)
_, history = cenn.train(x[:40], y[:40], x[40:], y[40:], settings, 5, {ckpt!r}, callbacks=[Killed()])
json.dump(history, open({out!r}, "w"))
"""


def test_killed_training_resumes_from_its_checkpoint(tmp_path):
    ckpt, out = tmp_path / "checkpoint", tmp_path / "history.json"
    script = tmp_path / "train.py"
    here = Path(__file__).resolve().parent
    script.write_text(RESUME_SCRIPT.format(src=str(ROOT / "src"), tests=str(here), tests_root=str(ROOT / "tests"), ckpt=str(ckpt), out=str(out)))
    first = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 3, first.stderr[-3000:]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and (ckpt / state["last_file"]).exists()
    second = subprocess.run([sys.executable, str(script), "-1"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the checkpoint after epoch 2" in second.stderr
    history = json.loads(out.read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[:2] == state["history"]
    assert not ckpt.exists()


# --- architecture: the decoder's filters, kernels and skips -------------------------------


def _inbound(core, name):
    """Names of the layers whose outputs feed layer ``name``."""
    inputs = core.get_layer(name).input
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return [t._keras_history[0].name for t in inputs]


def test_paper_decoder_mirrors_the_encoder_with_skips_at_each_resolution():
    core = cenn.build_core(256, 256, 3)
    decode = [core.get_layer(f"decode_{i}") for i in range(4)]
    assert [layer.filters for layer in decode] == [64, 16, 8, 1]
    assert [layer.kernel_size for layer in decode] == [(7, 7), (7, 7), (9, 9), (9, 9)]
    assert all(layer.strides == (2, 2) for layer in decode)
    assert [layer.output.shape[1:3] for layer in decode] == [(32, 32), (64, 64), (128, 128), (256, 256)]
    # Each upsampled map meets the encoder output of its own resolution.
    for i, encoder in enumerate(["encode_2_act", "encode_1_act", "encode_0_act"]):
        assert _inbound(core, f"skip_{i}") == [f"decode_{i}_act", encoder]
        assert core.get_layer(f"skip_{i}").output.shape[1:] == (
            core.get_layer(encoder).output.shape[1], core.get_layer(encoder).output.shape[2],
            decode[i].filters + core.get_layer(encoder.removesuffix("_act")).filters,
        )
    # The paper's output is the last stride-2 transposed convolution itself: no full-resolution path.
    assert core.layers[-1].name == "decode_3" and core.layers[-1].activation.__name__ == "linear"
    assert "full_res" not in [layer.name for layer in core.layers]


def test_joint_network_has_a_full_resolution_path_and_q_u_outputs():
    core = cenn.build_core(64, 64, 6, [16, 32, 64, 128], [5, 5, 5, 5], outputs=2, full_res_filters=16)
    assert core.input_shape == (None, 64, 64, 6) and core.output_shape == (None, 64, 64, 2)
    decode = [core.get_layer(f"decode_{i}") for i in range(4)]
    assert [layer.filters for layer in decode] == [64, 32, 16, 16]
    assert [layer.kernel_size for layer in decode] == [(5, 5)] * 4
    stem = core.get_layer("full_res")
    assert stem.strides == (1, 1) and stem.kernel_size == (3, 3) and stem.output.shape[1:] == (64, 64, 16)
    for i, encoder in enumerate(["encode_2_act", "encode_1_act", "encode_0_act"]):
        assert _inbound(core, f"skip_{i}") == [f"decode_{i}_act", encoder]
    assert _inbound(core, "skip_full_res") == ["decode_3_act", "full_res_act"]
    assert core.get_layer("skip_full_res").output.shape[1:] == (64, 64, 32)
    out = core.get_layer("output")
    assert core.layers[-1] is out and out.filters == 2 and out.kernel_size == (3, 3) and out.strides == (1, 1)
    assert out.activation.__name__ == "linear"
    assert "linear_path" not in [layer.name for layer in core.layers]
    with pytest.raises(ValueError, match="one kernel per stage"):
        cenn.build_core(64, 64, 6, [16, 32], [5])


def test_linear_path_adds_a_convolution_of_the_inputs_to_the_output():
    core = cenn.build_core(64, 64, 6, [16, 32, 64, 128], [5, 5, 5, 5], outputs=2, full_res_filters=16, linear_kernel=9)
    linear = core.get_layer("linear_path")
    assert linear.kernel_size == (9, 9) and linear.filters == 2 and linear.strides == (1, 1)
    assert linear.activation.__name__ == "linear" and _inbound(core, "linear_path") == ["normalised_maps"]
    assert _inbound(core, "output_sum") == ["output", "linear_path"] and core.layers[-1].name == "output_sum"
    # With the nonlinear path's output layer zeroed the network is exactly that convolution.
    out = core.get_layer("output")
    out.set_weights([np.zeros_like(w) for w in out.get_weights()])
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 6)).astype(np.float32)
    np.testing.assert_allclose(core.predict(x, verbose=0), linear(x), rtol=1e-5, atol=1e-5)


# --- spin-2 augmentation --------------------------------------------------------------------


def _flat_eb_grid(n):
    """Angle of each Fourier mode in the patch frame of projection.py: x east (= -column), y north (= +row)."""
    k = np.fft.fftfreq(n)
    k_row, k_col = np.meshgrid(k, k, indexing="ij")
    return np.hypot(k_col, k_row), np.arctan2(k_row, -k_col)


def qu_to_eb_maps(q, u):
    """Periodic flat-sky E and B maps of (H, W) Q/U in the patch's sign convention."""
    _, phi = _flat_eb_grid(q.shape[0])
    Q, U = np.fft.fft2(q), np.fft.fft2(u)
    c, s = np.cos(2 * phi), np.sin(2 * phi)
    return np.fft.ifft2(Q * c + U * s).real, np.fft.ifft2(-Q * s + U * c).real


def eb_to_qu_maps(e, b):
    _, phi = _flat_eb_grid(e.shape[0])
    E, B = np.fft.fft2(e), np.fft.fft2(b)
    c, s = np.cos(2 * phi), np.sin(2 * phi)
    return np.fft.ifft2(E * c - B * s).real, np.fft.ifft2(E * s + B * c).real


def ring_power(m, n_bins=8):
    ell, _ = _flat_eb_grid(m.shape[0])
    power = np.abs(np.fft.fft2(m)) ** 2
    bins = np.minimum((ell / ell.max() * n_bins).astype(int), n_bins - 1)
    return np.bincount(bins.ravel(), power.ravel()) / np.bincount(bins.ravel())


def test_dihedral_signs_are_those_of_a_spin_2_field():
    from cmbnn.nn.training import dihedral_signs

    assert list(dihedral_signs("QU", 2)) == [-1, -1]  # quarter turn: P -> -P
    assert list(dihedral_signs("QU", 1)) == [1, -1]  # mirror: U -> -U
    assert list(dihedral_signs("QU", 3)) == [-1, 1]  # quarter turn + mirror (a transpose)
    assert list(dihedral_signs("TQ", 2)) == [1, -1]  # temperature is a scalar


def test_augmented_patches_keep_their_e_and_b():
    """Every one of the 8 transforms moves E like a scalar and B like a pseudo-scalar:
    same EE and BB spectra, an E-only sky stays E-only. Wrong signs fail."""
    from cmbnn.nn.training import dihedral, dihedral_signs

    n = 32
    rng = np.random.default_rng(1)
    ell, _ = _flat_eb_grid(n)
    shape = 1 / (1 + (ell * 20) ** 2)  # red spectrum, like the CMB beyond the damping scale
    shape[n // 2, :] = shape[:, n // 2] = 0  # Nyquist modes have no mirror image on an even grid
    shape[0, 0] = 0  # a uniform Q/U has no E/B decomposition
    e = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * shape).real
    b = 0.3 * np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * shape).real
    q, u = eb_to_qu_maps(e, b)
    patch = np.stack([q, u], axis=-1)
    for code in range(8):
        moved = dihedral(patch, code) * dihedral_signs("QU", code)
        e2, b2 = qu_to_eb_maps(moved[..., 0], moved[..., 1])
        parity = -1 if code % 2 else 1
        np.testing.assert_allclose(e2, dihedral(e[..., None], code)[..., 0], atol=1e-10)
        np.testing.assert_allclose(b2, parity * dihedral(b[..., None], code)[..., 0], atol=1e-10)
        np.testing.assert_allclose(ring_power(e2), ring_power(e), rtol=1e-10)
        np.testing.assert_allclose(ring_power(b2), ring_power(b), rtol=1e-10)
    # The same transforms without the spin-2 signs turn E into B (mirror) or negate E (quarter turn).
    q0, u0 = eb_to_qu_maps(e, 0 * e)
    pure_e = np.stack([q0, u0], axis=-1)
    unsigned_mirror = dihedral(pure_e, 1)
    assert np.var(qu_to_eb_maps(*np.moveaxis(unsigned_mirror, -1, 0))[1]) > 0.1 * np.var(e)
    signed_mirror = dihedral(pure_e, 1) * dihedral_signs("QU", 1)
    assert np.var(qu_to_eb_maps(*np.moveaxis(signed_mirror, -1, 0))[1]) < 1e-20 * np.var(e)
    unsigned_turn = qu_to_eb_maps(*np.moveaxis(dihedral(pure_e, 2), -1, 0))[0]
    np.testing.assert_allclose(unsigned_turn, -dihedral(e[..., None], 2)[..., 0], atol=1e-10)


def test_flat_eb_helper_follows_the_patch_convention():
    """The E/B used above is NaMaster's on these arrays: an E-only map has no purified BB there."""
    from cmbnn.analysis.powspec import FlatSpectra, linear_bin_edges

    n, reso = 64, 6.87
    rng = np.random.default_rng(4)
    ell, _ = _flat_eb_grid(n)
    e = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) / (1 + (ell * 10) ** 2)).real
    q, u = eb_to_qu_maps(e, 0 * e)
    spectra = FlatSpectra(n, n, reso, linear_bin_edges(n, n, reso, 4), spin=2, aposize_deg=1.0, border_px=2)
    ee, eb, _, bb = spectra(np.stack([q, u]))
    assert np.all(np.abs(bb) < 0.01 * ee), bb / ee
    # With U negated (the other handedness) the same map is no longer E-only.
    _, _, _, bb_flipped = spectra(np.stack([q, -u]))
    assert np.any(np.abs(bb_flipped) > 0.1 * ee)


# --- data feeding: streamed normalisation, per-epoch order and augmentation ---------------


def test_normalisation_streams_in_float32_and_matches_float64():
    import tracemalloc

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((512, 64, 64, 8)) * [1, 2, 3, 4, 5, 6, 7, 8] + 0.5).astype(np.float32)  # 64 MB
    y = rng.standard_normal((512, 64, 64, 1)).astype(np.float32)
    tracemalloc.start()
    stats = cenn.normalisation_stats(x, y)
    digest = nn_data.data_digest(x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes / 2, f"{peak / 1e6:.0f} MB traced for a {x.nbytes / 1e6:.0f} MB array"
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats["input_offset"], x64.mean(axis=(0, 1, 2)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats["input_scale"], x64.std(axis=(0, 1, 2)), rtol=1e-6)
    assert digest == nn_data.data_digest(x, y)
    x[100, 3, 3, 3] += 1
    assert digest != nn_data.data_digest(x, y)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cenn.normalisation_stats(x, y)


def test_joint_normalisation_has_no_offsets_and_one_scale_per_frequency():
    rng = np.random.default_rng(3)
    q = (rng.standard_normal((20, 16, 16, 3)) * [1, 2, 3] + 1).astype(np.float32)
    u = (rng.standard_normal((20, 16, 16, 3)) * [3, 2, 1]).astype(np.float32)
    stats = cenn.normalisation_stats([q, u], [q[..., :1], u[..., :1]], mode="joint")
    assert np.all(stats["input_offset"] == 0) and stats["label_offset"] == 0
    np.testing.assert_allclose(stats["input_scale"][:3], stats["input_scale"][3:])
    ms = (np.mean(q.astype(np.float64) ** 2, axis=(0, 1, 2)) + np.mean(u.astype(np.float64) ** 2, axis=(0, 1, 2))) / 2
    np.testing.assert_allclose(stats["input_scale"][:3], np.sqrt(ms), rtol=1e-6)


def test_batches_depend_only_on_seed_and_epoch_and_augment_inputs_and_labels_alike():
    from cmbnn.nn.training import PatchBatches

    rng = np.random.default_rng(0)
    q, u = (rng.standard_normal((10, 8, 8, 3)).astype(np.float32) for _ in range(2))
    norm = {"input_offset": np.zeros(6), "input_scale": np.ones(6) * 2, "label_offset": 0.0, "label_scale": 2.0}
    # Labels = the first frequency's Q and U: after any transform they must still be exactly that.
    make = lambda: PatchBatches([q, u], [q[..., :1], u[..., :1]], "QU", norm, 4, seed=7, augment=True)  # noqa: E731
    a, b = make(), make()
    assert len(a) == 3
    for epoch in (0, 5):
        for i in range(3):
            xa, ya = a.batch(i, epoch)
            xb, yb = b.batch(i, epoch)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(ya, xa[..., [0, 3]])
    order0, codes0 = a.plan(0)
    order1, codes1 = a.plan(1)
    assert sorted(order0) == list(range(10)) and not np.array_equal(order0, order1)
    assert len(set(codes0)) > 2
    x0, _ = a.batch(0, 0)
    idx = order0[:4]
    for j, k in enumerate(idx):
        if codes0[k] == 0:
            np.testing.assert_allclose(x0[j], np.concatenate([q[k], u[k]], axis=-1) / 2)
    with pytest.raises(ValueError, match="zero normalisation offsets"):
        PatchBatches([q], [q[..., :1]], "Q", dict(norm, input_offset=np.ones(3)), 4, seed=7, augment=True)


# --- training that cannot mislead ------------------------------------------------------------

JOINT_SMALL = dict(
    SMALL, mode="joint", filters=[4, 8], kernels=[3, 3], full_res_filters=4, optimizer="adam",
    learning_rate=0.01, final_learning_rate=1e-4, augment=True, epochs=2, patience=10,
)


def joint_toy(n=24, side=16, seed=0):
    x, y = toy_data(n, side, seed)
    x2, y2 = toy_data(n, side, seed + 1)
    return [x, x2], [y, y2]


def test_resumed_training_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    xs, ys = joint_toy()
    xt, yt = [a[:16] for a in xs], [a[:16] for a in ys]
    xv, yv = [a[16:] for a in xs], [a[16:] for a in ys]
    straight, h_straight = cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "a", fields=["Q", "U"])

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # like a kill after the epoch-0 checkpoint

    with pytest.raises(KeyboardInterrupt):
        cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "b", fields=["Q", "U"], callbacks=[Stop()])
    assert json.loads((tmp_path / "b" / "state.json").read_text())["epoch"] == 1
    resumed, h_resumed = cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "b", fields=["Q", "U"])
    assert [h["loss"] for h in h_resumed] == [h["loss"] for h in h_straight]
    assert [h["val_loss"] for h in h_resumed] == [h["val_loss"] for h in h_straight]
    assert h_straight[1]["val_loss"] < h_straight[0]["val_loss"]  # so the restored best is the last epoch
    for w1, w2 in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_a_kill_between_the_model_and_its_state_resumes_the_same_epoch(tmp_path, monkeypatch):
    """Killed after epoch 1's model is in place but before its state.json: the rerun must not
    pair epoch 1's weights with epoch 0's state (it would train epoch 1 twice)."""
    xs, ys = joint_toy()
    xt, yt = [a[:16] for a in xs], [a[:16] for a in ys]
    xv, yv = [a[16:] for a in xs], [a[16:] for a in ys]
    straight, h_straight = cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "a", fields=["Q", "U"])
    real_replace, states = os.replace, []

    def replace(src, dst):
        if Path(dst).name == "state.json":
            states.append(dst)
            if len(states) == 2:  # epoch 1: best weights and model renamed, state not yet
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "b", fields=["Q", "U"])
    monkeypatch.setattr(os, "replace", real_replace)
    assert {p.name for p in (tmp_path / "b").iterdir() if not p.name.startswith(".")} >= {"state.json", "last.e1.keras", "last.e2.keras"}
    resumed, h_resumed = cenn.train(xt, yt, xv, yv, JOINT_SMALL, seed=11, checkpoint_dir=tmp_path / "b", fields=["Q", "U"])
    assert [h["val_loss"] for h in h_resumed] == [h["val_loss"] for h in h_straight]
    for w1, w2 in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_a_nan_loss_stops_training_with_a_clear_error(tmp_path):
    from cmbnn.nn.training import NonFiniteLoss

    xs, ys = joint_toy()
    # Adam moves every weight by ~lr per step: 1e30 overflows float32 in the first epoch.
    settings = dict(JOINT_SMALL, learning_rate=1e30, final_learning_rate=None)
    with pytest.raises(NonFiniteLoss, match="non-finite .*no model written"):
        cenn.train(xs, ys, xs, ys, settings, seed=1, checkpoint_dir=tmp_path / "c", fields=["Q", "U"])
    assert not (tmp_path / "c" / "state.json").exists()  # nothing to resume from a diverged epoch


def test_joint_model_predicts_q_and_u_in_uk(tmp_path):
    xs, ys = joint_toy()
    model, history = cenn.train(xs, ys, xs, ys, dict(JOINT_SMALL, epochs=1), seed=2, checkpoint_dir=tmp_path / "d", fields=["Q", "U"])
    pred = model.predict(cenn.joint_inputs(*xs), verbose=0)
    assert pred.shape == (24, 16, 16, 2) and np.all(np.isfinite(pred))
    assert 1 < np.std(pred) < 100  # uK, like the labels (std 10), not normalised units


def test_symmetrised_prediction_is_equivariant_under_spin_2_turns_and_mirrors():
    from cmbnn.nn.training import dihedral_signs

    core = cenn.build_core(16, 16, 6, [4, 8], [3, 3], outputs=2, full_res_filters=4, linear_kernel=3)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 16, 16, 6)).astype(np.float32)
    channels = ["Q"] * 3 + ["U"] * 3
    pred = cenn.predict_symmetrised(core, x, channels, ["Q", "U"])
    # An untrained network is far from equivariant; the symmetrised one is exactly so.
    # Code 3: one quarter turn, then a mirror: Q and U both change sign, then U again.
    turned = np.rot90(x, 1, axes=(1, 2))[:, :, ::-1] * dihedral_signs(channels, 3)
    expected = np.rot90(pred, 1, axes=(1, 2))[:, :, ::-1] * dihedral_signs(["Q", "U"], 3)
    np.testing.assert_allclose(cenn.predict_symmetrised(core, turned, channels, ["Q", "U"]), expected, atol=1e-5)
    plain = core.predict(turned, verbose=0)
    assert np.max(np.abs(plain - expected)) > 1e-2
    # The signs matter: averaged as scalars, the turned Q/U sky does not give the turned Q/U output.
    as_scalars = cenn.predict_symmetrised(core, x, ["T"] * 6, ["T", "T"])
    expected_scalar_rule = np.rot90(as_scalars, 1, axes=(1, 2))[:, :, ::-1] * dihedral_signs(["Q", "U"], 3)
    assert np.max(np.abs(cenn.predict_symmetrised(core, turned, ["T"] * 6, ["T", "T"]) - expected_scalar_rule)) > 1e-2
    with pytest.raises(ValueError, match="pseudo-scalar"):
        cenn.predict_symmetrised(core, x, channels, ["Q", "B"])
