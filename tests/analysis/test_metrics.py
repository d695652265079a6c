import numpy as np
import pytest

from cmbnn.analysis.metrics import SSIM_BORDER, label_data_range, pixel_metrics, ssim


def test_metrics_of_a_constant_offset():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((4, 32, 32, 1)) * 3
    m = pixel_metrics(truth + 2.0, truth, data_range=20.0)
    assert m["MSE"] == pytest.approx(4.0)
    assert m["MAE"] == pytest.approx(2.0)
    assert m["R2"] == pytest.approx(1 - 4.0 / truth.var(), rel=1e-9)
    # PSNR from the one fixed range: 10 log10(20^2 / 4) = 20 dB for every patch.
    assert m["PSNR"] == pytest.approx(20.0)


def test_fixed_range_makes_psnr_and_ssim_independent_of_the_patch():
    """The same error on a flat and on a busy patch scores the same PSNR with a fixed range
    (a per-patch range would call the flat one worse)."""
    rng = np.random.default_rng(2)
    busy = rng.standard_normal((1, 32, 32, 1)) * 10
    flat = busy * 0.1
    err = rng.standard_normal(busy.shape)
    a = pixel_metrics(busy + err, busy, data_range=60.0)
    b = pixel_metrics(flat + err, flat, data_range=60.0)
    assert a["PSNR"] == pytest.approx(b["PSNR"])
    with pytest.raises(ValueError, match="data_range"):
        pixel_metrics(busy, busy, data_range=0.0)


def test_data_range_is_the_training_labels_peak_to_peak():
    labels = np.array([[-3.0, 1.0], [2.0, 7.5]])[None, ..., None]
    assert label_data_range(labels) == 10.5


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((48, 48))
    assert ssim(img, img, np.ptp(img)) == pytest.approx(1.0)
    assert ssim(img + rng.standard_normal((48, 48)), img, np.ptp(img)) < 0.8
    # Better predictions score better on every metric.
    truth = rng.standard_normal((3, 48, 48, 1))
    good = pixel_metrics(truth + 0.1 * rng.standard_normal(truth.shape), truth, 8.0)
    bad = pixel_metrics(truth + 1.0 * rng.standard_normal(truth.shape), truth, 8.0)
    assert good["MSE"] < bad["MSE"] and good["PSNR"] > bad["PSNR"] and good["SSIM"] > bad["SSIM"] and good["R2"] > bad["R2"]


def test_ssim_ignores_a_border_of_the_window_radius():
    rng = np.random.default_rng(3)
    img = rng.standard_normal((32, 32))
    spoiled = img.copy()
    spoiled[:SSIM_BORDER] += 5 * rng.standard_normal((SSIM_BORDER, 32))  # errors only in the ignored rows...
    spoiled_in = img.copy()
    spoiled_in[SSIM_BORDER + 3] += 5.0  # ...or one row inside
    r = np.ptp(img)
    # Errors in the border reach inside only through the window's tail, one radius deep at most.
    assert ssim(spoiled, img, r) > ssim(spoiled_in, img, r)
    assert ssim(spoiled, img, r, border=0) < ssim(spoiled, img, r) - 0.05
    with pytest.raises(ValueError, match="border"):
        ssim(img[:10, :10], img[:10, :10], r)
