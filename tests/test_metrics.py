import numpy as np
import pytest

from cmbnn.metrics import pixel_metrics, ssim


def test_metrics_of_a_constant_offset():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((4, 32, 32, 1)) * 3
    m = pixel_metrics(truth + 2.0, truth)
    assert m["MSE"] == pytest.approx(4.0)
    assert m["MAE"] == pytest.approx(2.0)
    assert m["R2"] == pytest.approx(1 - 4.0 / truth.var(), rel=1e-9)
    ranges = np.ptp(truth.reshape(4, -1), axis=1)
    assert m["PSNR"] == pytest.approx(np.mean(10 * np.log10(ranges**2 / 4.0)))


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((48, 48))
    assert ssim(img, img, np.ptp(img)) == pytest.approx(1.0)
    assert ssim(img + rng.standard_normal((48, 48)), img, np.ptp(img)) < 0.8
    # Better predictions score better on every metric.
    truth = rng.standard_normal((3, 48, 48, 1))
    good = pixel_metrics(truth + 0.1 * rng.standard_normal(truth.shape), truth)
    bad = pixel_metrics(truth + 1.0 * rng.standard_normal(truth.shape), truth)
    assert good["MSE"] < bad["MSE"] and good["PSNR"] > bad["PSNR"] and good["SSIM"] > bad["SSIM"] and good["R2"] > bad["R2"]
