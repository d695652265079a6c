"""Hole metrics and uncertainty calibration of inpainted patches (cmbnn.inpainting), on hand-made cases."""

import numpy as np
import pytest

from cmbnn.inpainting.metrics import GAUSSIAN_1SIGMA, GAUSSIAN_2SIGMA, calibration, hole_metrics


def two_patches():
    """Truth patches with known ranges (0..100 uK and -50..50 uK) and a 2-pixel hole in each."""
    truth = np.zeros((2, 4, 4))
    truth[0] = np.linspace(0, 100, 16).reshape(4, 4)
    truth[1] = np.linspace(-50, 50, 16).reshape(4, 4)
    mask = np.zeros((2, 4, 4), np.uint8)
    mask[0, 1, 1:3] = 1
    mask[1, 2, 0] = 1
    mask[1, 3, 3] = 1
    return truth, mask


def test_hole_metrics_in_uk_and_normalised():
    truth, mask = two_patches()
    pred = truth.copy()
    pred[mask == 1] += np.array([2.0, -2.0, 4.0, 0.0])  # errors in the hole; observed pixels exact
    pred[0, 0, 0] += 1000.0  # an error outside the hole does not count (region="hole")
    out = hole_metrics(pred[..., None].astype(np.float32), truth[..., None], mask)
    assert out["n_pixels"] == 4 and out["n_patches"] == 2
    assert out["MSE_uK2"] == pytest.approx((4 + 4 + 16 + 0) / 4)
    assert out["MAE_uK"] == pytest.approx((2 + 2 + 4 + 0) / 4)
    # One data range for the split: max - min of all truth pixels = 100 - (-50).
    assert out["data_range_uK"] == 150.0
    # Per-patch PSNR averaged: patch 0 MSE 4, patch 1 MSE 8.
    assert out["PSNR_dB"] == pytest.approx(np.mean([10 * np.log10(150**2 / 4), 10 * np.log10(150**2 / 8)]))
    # Normalised by each truth patch's own range (100 uK for both): errors / 100.
    assert out["MSE_norm"] == pytest.approx(out["MSE_uK2"] / 100**2)
    assert out["MAE_norm"] == pytest.approx(out["MAE_uK"] / 100)
    assert out["PSNR_norm_dB"] == pytest.approx(np.mean([10 * np.log10(1e4 / 4), 10 * np.log10(1e4 / 8)]))
    # A fixed range (e.g. from the training labels) replaces the split's own.
    assert hole_metrics(pred, truth, mask, data_range=300.0)["PSNR_dB"] == pytest.approx(out["PSNR_dB"] + 20 * np.log10(2))


def test_normalisation_uses_the_truth_patch_range_not_the_prediction():
    truth, mask = two_patches()
    truth[1] *= 3.0  # patch 1 now spans 300 uK
    pred = truth + 6.0 * mask  # 6 uK errors in every hole pixel
    out = hole_metrics(pred, truth, mask)
    assert out["MAE_norm"] == pytest.approx(0.5 * (6 / 100 + 6 / 300))  # 2 hole pixels per patch
    assert out["MSE_norm"] == pytest.approx(0.5 * ((6 / 100) ** 2 + (6 / 300) ** 2))


def test_image_region_dilutes_by_the_hole_fraction_and_shared_masks_work():
    truth, _ = two_patches()
    mask = np.zeros((4, 4), np.uint8)
    mask[0, :] = 1  # shared mask: 4 of 16 pixels
    pred = truth + 4.0 * mask
    hole = hole_metrics(pred, truth, mask)
    image = hole_metrics(pred, truth, mask, region="image")
    assert hole["MAE_uK"] == pytest.approx(4.0) and image["MAE_uK"] == pytest.approx(1.0)
    assert image["n_pixels"] == 32
    assert hole_metrics(truth, truth, mask)["PSNR_dB"] == np.inf


def test_hole_metrics_refuse_bad_input():
    truth, mask = two_patches()
    flat = truth.copy()
    flat[1] = 5.0
    with pytest.raises(ValueError, match="constant"):
        hole_metrics(truth, flat, mask)
    with pytest.raises(ValueError, match="data_range"):
        hole_metrics(truth, np.ones_like(truth), mask)
    with pytest.raises(ValueError, match="no pixel"):
        hole_metrics(truth, truth, np.zeros_like(mask))
    with pytest.raises(ValueError, match="shape"):
        hole_metrics(truth[:1], truth, mask)
    with pytest.raises(ValueError, match="region"):
        hole_metrics(truth, truth, mask, region="edges")


def test_calibration_counts_pixels_within_one_and_two_sigma():
    truth = np.zeros((1, 2, 3))
    mean = np.array([[[0.5, -1.5, 2.5], [0.9, 100.0, 0.0]]])
    std = np.ones((2, 3))
    mask = np.array([[1, 1, 1], [1, 0, 1]], np.uint8)  # the 100 uK error is observed: ignored
    out = calibration(truth, mean, std, mask)
    assert out["n_pixels"] == 5
    assert out["within_1sigma"] == pytest.approx(3 / 5)  # 0.5, 0.9, 0.0
    assert out["within_2sigma"] == pytest.approx(4 / 5)  # + 1.5
    z = -np.array([0.5, -1.5, 2.5, 0.9, 0.0])
    assert out["z_mean"] == pytest.approx(z.mean()) and out["z_var"] == pytest.approx(z.var())
    # Twice the std: errors look half as large.
    assert calibration(truth, mean, 2 * std, mask)["within_1sigma"] == pytest.approx(4 / 5)


def test_calibration_of_gaussian_errors():
    rng = np.random.default_rng(0)
    std = rng.uniform(1, 5, (200, 8, 8))
    truth = rng.normal(0, 100, std.shape)
    mean = truth + std * rng.standard_normal(std.shape)
    mask = np.ones((8, 8), np.uint8)
    out = calibration(truth[..., None], mean[..., None], std[..., None], mask)
    n = out["n_pixels"]
    assert abs(out["within_1sigma"] - GAUSSIAN_1SIGMA) < 4 * np.sqrt(GAUSSIAN_1SIGMA * (1 - GAUSSIAN_1SIGMA) / n)
    assert abs(out["within_2sigma"] - GAUSSIAN_2SIGMA) < 4 * np.sqrt(GAUSSIAN_2SIGMA * (1 - GAUSSIAN_2SIGMA) / n)
    # Overconfident std (half the true one) is caught.
    bad = calibration(truth, mean, std / 2, mask)
    assert bad["within_1sigma"] < 0.45 and bad["z_var"] > 3.5
    with pytest.raises(ValueError, match="positive"):
        calibration(truth, mean, np.zeros_like(std), mask)
