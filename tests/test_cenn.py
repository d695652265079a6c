import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from cmbnn import cenn  # noqa: E402

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
    expected = core.predict(xn, verbose=0) * stats["label_std"] + stats["label_mean"]
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
import logging
logging.basicConfig(level=logging.INFO)
import keras
from test_cenn import SMALL, toy_data
from cmbnn import cenn

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
    script.write_text(RESUME_SCRIPT.format(src=str(here.parent / "src"), tests=str(here), ckpt=str(ckpt), out=str(out)))
    first = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 3, first.stderr[-3000:]
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 2 and (ckpt / "last.keras").exists()
    second = subprocess.run([sys.executable, str(script), "-1"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the checkpoint after epoch 2" in second.stderr
    history = json.loads(out.read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[:2] == state["history"]
    assert not ckpt.exists()
