"""Hole errors by class and uncertainty calibration of inpainted patches (cmbnn.inpainting.metrics), on hand-made cases."""

import numpy as np
import pandas as pd
import pytest

from cmbnn.inpainting.metrics import (
    GAUSSIAN_1SIGMA,
    GAUSSIAN_2SIGMA,
    calibration,
    class_errors,
    hole_classes,
    hole_power,
    hole_power_ell_edges,
    hole_power_table,
    losses_to,
)


def class_case():
    """Four 20 x 20 patches: two with a 1-pixel source hole, one with a 60-pixel Galactic band,
    and one with no hole; the prediction errs by 1, 3 uK (sources) and 2 uK (band)."""
    truth = np.random.default_rng(0).normal(0, 100, (4, 20, 20))
    mask = np.zeros((4, 20, 20), np.uint8)
    mask[0, 4, 4] = mask[1, 2, 7] = 1
    mask[2, :3, :] = 1
    pred = truth.copy()
    pred[0, 4, 4] += 1.0
    pred[1, 2, 7] -= 3.0
    pred[2, :3, :] += 2.0
    return truth, mask, pred


def test_hole_classes_split_source_discs_from_galactic_holes():
    _, mask, _ = class_case()
    assert hole_classes(mask).tolist() == ["source", "source", "galactic", "none"]


def test_class_errors_pool_each_class_and_pair_the_ratio():
    truth, mask, pred = class_case()
    zeros = np.where(mask == 1, 0.0, truth)
    rows = class_errors({"net": pred, "gaussian": truth + 0.5 * mask, "zeros": zeros}, truth, mask, stds={"net": np.full(truth.shape, 2.0)}, n_boot=500)
    table = {(r["method"], r["hole_class"]): r for r in rows}
    source, galactic, both = table["net", "source"], table["net", "galactic"], table["net", "all"]
    assert source["n_patches"] == 2 and source["n_pixels"] == 2 and galactic["n_pixels"] == 60 and both["n_patches"] == 3
    assert source["MSE_uK2"] == pytest.approx((1 + 9) / 2) and galactic["MSE_uK2"] == pytest.approx(4.0)
    assert both["MSE_uK2"] == pytest.approx((1 + 9 + 60 * 4) / 62) and source["MAE_uK"] == pytest.approx(2.0)
    assert source["ratio"] == pytest.approx(5.0 / 0.25) and galactic["ratio"] == pytest.approx(16.0)
    assert galactic["ratio_lo"] == galactic["ratio_hi"] == pytest.approx(16.0)  # one patch: every resample is it
    assert source["MSE_lo"] <= source["MSE_uK2"] <= source["MSE_hi"] and 1.0 <= source["MSE_lo"] and source["MSE_hi"] <= 9.0
    assert table["gaussian", "all"]["ratio_lo"] == table["gaussian", "all"]["ratio_hi"] == 1.0
    # Calibration with a std of 2 uK: |z| = 0.5 and 1.5 at the sources, 1 in the band.
    assert source["within_1sigma"] == 0.5 and source["within_2sigma"] == 1.0 and galactic["within_1sigma"] == 1.0
    assert "within_1sigma" not in table["zeros", "all"]


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


def test_hole_power_of_white_noise_is_its_variance_times_the_hole_fraction():
    """Parseval: the hole-only map of white noise of variance s^2 has power s^2 Omega_pix f_hole in every bin."""
    sigma, reso = 3.0, 6.87
    x = np.random.default_rng(1).normal(0, sigma, (200, 32, 32))
    edges = hole_power_ell_edges(32, 32, reso)
    omega = np.deg2rad(reso / 60) ** 2
    full = hole_power(x, np.ones((32, 32), np.uint8), reso, edges).mean(axis=0)
    np.testing.assert_allclose(full, sigma**2 * omega, rtol=0.03)
    half = np.zeros((32, 32), np.uint8)
    half[:, :16] = 1
    np.testing.assert_allclose(hole_power(x, half, reso, edges).mean(axis=0), 0.5 * sigma**2 * omega, rtol=0.05)
    assert edges[0] == pytest.approx(2 * np.pi / (32 * np.deg2rad(reso / 60))) and edges[-1] == pytest.approx(np.pi / np.deg2rad(reso / 60))


def test_constrained_realisations_keep_the_hole_power_and_the_conditional_mean_loses_it(camb_cls):
    """Exact posterior draws have the truth's hole power within their interval in every bin; the
    conditional mean is smoother (less power at high ell) - what the table is built to show."""
    from cmbnn.analysis.gaussian_field import FlatSkyCovariance, conditional_mean, constrained_realisation, gaussian_realisations

    cov = FlatSkyCovariance(camb_cls["TT"], 16, 16, 10.0, beam_fwhm_arcmin=15.0)
    rng = np.random.default_rng(4)
    truth = gaussian_realisations(cov, 60, rng)
    mask = np.zeros((60, 16, 16), np.uint8)
    mask[:, 4:12, 3:13] = 1  # 80 of 256 pixels: a "Galactic" hole
    k = 8
    samples = constrained_realisation(np.repeat(truth, k, axis=0), np.repeat(mask, k, axis=0), cov, rng, method="dense").reshape(60, k, 16, 16)
    mean = conditional_mean(truth, mask, cov, method="dense")
    table = pd.DataFrame(hole_power_table({"samples": samples, "mean": mean}, truth, mask, 10.0, rng=np.random.default_rng(0)))
    gal = table[table.hole_class == "galactic"].set_index(["method", "ell_lo"])
    assert set(table.hole_class) == {"all", "galactic"}
    s, m = gal.loc["samples"], gal.loc["mean"]
    assert np.all(np.abs(s.ratio - 1) < 0.15) and np.all((s.ratio_lo < 1.08) & (s.ratio_hi > 0.92))
    assert np.all(m.ratio < s.ratio) and m.ratio.min() < 0.75


def test_losses_to_zero_fill_name_the_method_and_class():
    rows = [
        {"method": m, "hole_class": c, "MSE_uK2": v}
        for m, c, v in [("cosmovae", "all", 9000.0), ("cosmovae", "source", 200.0), ("cosmovae", "galactic", 9500.0),
                        ("cosmovae_network", "source", 12000.0), ("cosmovae_network", "galactic", 9500.0),
                        ("zeros", "all", 11000.0), ("zeros", "source", 11700.0), ("zeros", "galactic", 11765.0)]
    ]
    lost = losses_to(rows, ("cosmovae", "cosmovae_network"))
    assert lost == ["cosmovae_network on source holes: MSE 1.2e+04 uK^2, zeros 1.17e+04 uK^2"]
    assert losses_to(rows, ("cosmovae",)) == []
    rows[2]["MSE_uK2"] = 11765.0  # a tie is not a win
    assert losses_to(rows, ("cosmovae",)) == ["cosmovae on galactic holes: MSE 1.176e+04 uK^2, zeros 1.176e+04 uK^2"]
