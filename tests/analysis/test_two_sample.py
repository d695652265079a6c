"""Energy-distance two-sample test and ForSE's band overlap: null when the law is the same, far
when the spread or the variety is wrong, whatever the set sizes."""

import numpy as np
import pytest

from cmbnn.analysis.two_sample import band_overlap, energy_distance, energy_test


def draws(rng, n, d=6, spread=1.0, shift=0.0):
    # A correlated law, so the test is not helped by independent features.
    mix = np.linalg.cholesky(0.5 * np.eye(d) + 0.5)
    return shift + spread * rng.standard_normal((n, d)) @ mix.T


def test_two_draws_of_one_law_read_null_at_any_set_sizes():
    rng = np.random.default_rng(0)
    zs, distances = [], []
    for n_b in (200, 50, 16):
        for _ in range(8):
            a, b = draws(rng, 200), draws(rng, n_b)
            result = energy_test(a, b, rng, n_permutations=200)
            zs.append(result["z"])
            distances.append(result["distance"])
    # Unbiased: the mean distance sits at 0 (the old mean-difference distance read 1/n_a + 1/n_b).
    assert abs(np.mean(distances)) < 3 * np.std(distances) / np.sqrt(len(distances))
    assert abs(np.mean(zs)) < 0.6 and np.max(np.abs(zs)) < 4


def test_half_the_spread_reads_far():
    rng = np.random.default_rng(1)
    result = energy_test(draws(rng, 200), draws(rng, 200, spread=0.5), rng, n_permutations=200)
    assert result["z"] > 10 and result["p"] < 0.01


def test_one_repeated_patch_reads_far_even_at_the_right_mean():
    rng = np.random.default_rng(2)
    real = draws(rng, 200)
    collapsed = np.repeat(real.mean(axis=0, keepdims=True), 200, axis=0)
    assert energy_test(real, collapsed, rng, n_permutations=200)["z"] > 10
    copies = np.repeat(draws(rng, 1), 200, axis=0)  # a single real-looking patch, repeated
    assert energy_test(real, copies, rng, n_permutations=200)["z"] > 10


def test_a_mean_shift_reads_far_and_over_dispersion_does_not_hide_it():
    rng = np.random.default_rng(3)
    real = draws(rng, 200)
    shifted = energy_test(real, draws(rng, 200, shift=0.3), rng, n_permutations=200)["z"]
    wide_and_shifted = energy_test(real, draws(rng, 200, spread=3.0, shift=0.3), rng, n_permutations=200)["z"]
    assert shifted > 3 and wide_and_shifted > shifted


def test_energy_distance_matches_its_definition():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((5, 2)), rng.standard_normal((4, 2)) + 1
    scale = np.ones(2)
    d = lambda x, y: np.linalg.norm(x - y)  # noqa: E731
    cross = np.mean([d(x, y) for x in a for y in b])
    within_a = np.mean([d(a[i], a[j]) for i in range(5) for j in range(5) if i != j])
    within_b = np.mean([d(b[i], b[j]) for i in range(4) for j in range(4) if i != j])
    assert energy_distance(a, b, scale) == pytest.approx(2 * cross - within_a - within_b)
    assert energy_test(a, b, rng, n_permutations=10, scale=scale)["distance"] == pytest.approx(energy_distance(a, b, scale))


def test_energy_test_refuses_sets_it_cannot_compare():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="at least 2"):
        energy_test(rng.standard_normal((1, 3)), rng.standard_normal((5, 3)), rng)
    with pytest.raises(ValueError, match="different lengths"):
        energy_test(rng.standard_normal((5, 3)), rng.standard_normal((5, 4)), rng)


def test_band_overlap_is_one_for_one_law_and_small_for_disjoint_bands():
    rng = np.random.default_rng(6)
    curves = lambda n, shift=0.0: np.sin(np.linspace(0, 3, 12)) + shift + 0.1 * rng.standard_normal((n, 12))  # noqa: E731
    same = band_overlap(curves(2000), curves(2000))
    assert same > 0.95
    assert band_overlap(curves(200), curves(200, shift=1.0)) == 0.0
    half = band_overlap(curves(2000), curves(2000, shift=0.1))  # bands of half-width 0.1, offset by 0.1
    assert half == pytest.approx(1 / 3, abs=0.05)
