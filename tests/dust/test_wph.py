"""WPH statistics with pywph (cmbnn.dust.wph): features that are deterministic, blind to a periodic
shift, free of the wrap-around seam without periodic boundaries, and apart for two laws; pywph's
non-periodic translations checked against a direct sum; synthesis that converges towards its
target's statistics, reports its losses and repeats for one seed."""

import subprocess
import sys

import numpy as np
import pytest

pywph = pytest.importorskip("pywph")
torch = pytest.importorskip("torch")

from cmbnn.analysis.two_sample import energy_test, feature_scale  # noqa: E402
from cmbnn.dust import wph  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def red_field(rng, side: int, slope: float) -> np.ndarray:
    """A periodic unit-variance Gaussian field with Fourier amplitude |k|^slope (power |k|^(2 slope))."""
    k = np.fft.fftfreq(side)
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    kk[0, 0] = np.inf
    g = np.fft.ifft2(np.fft.fft2(rng.standard_normal((side, side))) * kk**slope).real
    return g / g.std()


def patches(rng, count: int, law: str) -> np.ndarray:
    """32 x 32 patches cut from 64 x 64 periodic fields (so not periodic), each standardised:
    Gaussian, or filaments exp(-(g / 0.3)^2) lighting the zero contours of a Gaussian g."""
    out = []
    for _ in range(count):
        g = red_field(rng, 64, -1.5)[:32, :32]
        x = g if law == "gaussian" else np.exp(-((g / 0.3) ** 2))
        out.append((x - x.mean()) / x.std())
    return np.array(out)


def test_importing_the_module_loads_neither_torch_nor_pywph():
    code = "import sys, cmbnn.dust.wph; print(sorted({'torch', 'pywph', 'scipy'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_features_are_deterministic_finite_and_named():
    maps = patches(np.random.default_rng(0), 3, "filaments")
    features, names = wph.wph_features(maps, J=3)
    again, names_again = wph.wph_features(maps, J=3)
    assert features.dtype == np.float64 and features.shape == (3, len(names)) and np.isfinite(features).all()
    np.testing.assert_array_equal(features, again)
    assert names == names_again and len(set(names)) == len(names)
    # One map at a time gives the same rows: nothing is normalised across the batch.
    np.testing.assert_allclose(wph.wph_features(maps[1], J=3)[0][0], features[1], rtol=1e-6, atol=1e-6)
    # The imaginary parts left out are those that vanish for a real map (to float32 rounding).
    c = wph.wph_coefficients(maps, J=3)
    real = np.array([row[3] for row in wph._layout(32, 32, 3, 4, 0, False)])
    assert np.max(np.abs(c[:, real].imag) / np.abs(c[:, real])) < 1e-3
    assert np.median(np.abs(c[:, ~real].imag) / np.abs(c[:, ~real])) > 0.1
    sizes = wph.wph_features(red_field(np.random.default_rng(1), 64, -1.5), J=5)[0].shape
    assert sizes == (1, 489)  # the count the docstring gives


def test_a_periodic_map_shifted_has_the_same_periodic_features():
    x = red_field(np.random.default_rng(2), 32, -1.5)
    a = wph.wph_features(x, J=3, dn=1, pbc=True)[0]
    b = wph.wph_features(np.roll(x, (5, 11), axis=(0, 1)), J=3, dn=1, pbc=True)[0]
    np.testing.assert_allclose(b, a, atol=2e-4)


def test_nonperiodic_translations_equal_a_direct_sum():
    # pywph 1.1.3 alone reads ~0 for every translation with a negative component (cmbnn.dust.wph).
    h, w, J = 32, 40, 3
    x = red_field(np.random.default_rng(3), 64, -1.5)[:h, :w]
    c = wph.wph_coefficients(x, J=J, dn=2)[0]
    op = wph._operator(h, w, J, 4, 2, False)
    cut = wph._cut(J)
    z = torch.fft.ifft2(torch.fft.fft2(torch.from_numpy(x.astype(np.float32))) * op.psi_f).numpy()[:, cut:-cut, cut:-cut]
    z = z - z.mean(axis=(1, 2), keepdims=True)
    hh, ww = z.shape[1:]
    periodic_tau = wph._operator(h, w, J, 4, 2, True)._translation_pos.numpy()  # tau mod (M, N), as pywph stores it
    checked = 0
    for k, (j1, t1, p1, j2, t2, p2, n, _, _) in enumerate(op.wph_moments_indices.numpy()):
        if not (p1 == p2 == 1 and j1 == j2 and n > 0):
            continue
        tx, ty = (periodic_tau[k] + [w // 2, h // 2]) % [w, h] - [w // 2, h // 2]
        za = z[j1 * 4 + t1][max(ty, 0) : hh + min(ty, 0), max(tx, 0) : ww + min(tx, 0)]
        zb = z[j2 * 4 + t2][max(-ty, 0) : hh + min(-ty, 0), max(-tx, 0) : ww + min(-tx, 0)]
        direct = np.mean(za * np.conj(zb))  # the mean over pixel pairs of z(y + tau) conj z(y)
        scale = np.sqrt(np.mean(np.abs(z[j1 * 4 + t1]) ** 2) * np.mean(np.abs(z[j2 * 4 + t2]) ** 2))
        np.testing.assert_allclose(c[k], direct, rtol=1e-3, atol=1e-4 * scale, err_msg=f"tau = ({tx}, {ty})")
        checked += tx < 0 or ty < 0
    assert checked > 20


def test_without_periodic_boundaries_there_is_no_seam():
    # A smooth field (power ~ k^-4): wrapping a cut patch around makes a step at its edges whose
    # small-scale power dwarfs the field's. Reference: the statistics of the same 64 x 64 pixels
    # with their surroundings (an 80 x 80 cut, whose 8-pixel border pbc=False drops).
    big = red_field(np.random.default_rng(0), 256, -2.0)
    patch, around = big[100:164, 100:164], big[92:172, 92:172]
    reference, names = wph.wph_features(around, J=4)
    cut = wph.wph_features(patch, J=4)[0][0]
    periodic = wph.wph_features(patch, J=4, pbc=True)[0][0]
    small = np.array([name.startswith("log S11") and "j1=0 " in name for name in names])
    assert np.abs(cut - reference[0])[small].max() < 0.25  # the central 48 x 48 pixels: the same small-scale power
    assert np.abs(periodic - reference[0])[small].min() > 1.0  # the seam: e-folds more, in every orientation
    assert np.linalg.norm(cut - reference[0]) < 0.25 * np.linalg.norm(periodic - reference[0])


def test_features_tell_two_laws_apart_and_not_two_draws_of_one():
    rng = np.random.default_rng(4)
    gaussian, again, filaments = (wph.wph_features(patches(rng, 24, law), J=3)[0] for law in ("gaussian", "gaussian", "filaments"))
    scale = feature_scale(gaussian)
    same = energy_test(gaussian, again, np.random.default_rng(5), 200, scale=scale)
    apart = energy_test(gaussian, filaments, np.random.default_rng(5), 200, scale=scale)
    assert abs(same["z"]) < 3 and apart["z"] > 10
    assert apart["distance"] > 20 * abs(same["distance"])


def test_synthesis_converges_towards_its_targets_statistics_and_repeats_for_one_seed():
    rng = np.random.default_rng(6)
    g = red_field(rng, 64, -1.5)
    targets = np.stack([np.exp(-((g[:32, :32] / 0.3) ** 2)), np.exp(g[32:, 32:])])
    samples, info = wph.wph_synthesis(targets, 2, np.random.default_rng(7), J=3, steps=60)
    assert samples.shape == (2, 32, 32) and samples.dtype == np.float32 and np.isfinite(samples).all()
    assert info["target"] == [0, 1] and info["canvas"] == (40, 40)
    for i in range(2):
        history = info["history"][i]
        assert len(history) == info["iterations"][i] + 1 == 61 and history[-1] == pytest.approx(info["loss"][i])
        assert history[0] > 100 * history[-1]  # from white noise to the target's statistics
        assert not info["converged"][i] and "ITERATIONS" in info["message"][i]
        assert info["seconds"][i] > 0 and info["evaluations"][i] >= info["iterations"][i]
    # Closer to its target than white noise of the target's mean and std, by far, on the WPH features.
    noise = np.random.default_rng(8).standard_normal(targets.shape) * targets.std(axis=(1, 2), keepdims=True) + targets.mean(axis=(1, 2), keepdims=True)
    target_f, sample_f, noise_f = (wph.wph_features(x, J=3)[0] for x in (targets, samples, noise))
    assert np.all(np.linalg.norm(sample_f - target_f, axis=1) < 0.35 * np.linalg.norm(noise_f - target_f, axis=1))
    # The statistics are those of the targets' central 24 x 24 pixels (pbc=False cuts 4): so is the spread.
    np.testing.assert_allclose(samples.std(axis=(1, 2)), targets[:, 4:-4, 4:-4].std(axis=(1, 2)), rtol=0.15)
    again, info_again = wph.wph_synthesis(targets, 2, np.random.default_rng(7), J=3, steps=60)
    np.testing.assert_array_equal(again, samples)
    assert info_again["history"] == info["history"]
    other = wph.wph_synthesis(targets[:1], 1, np.random.default_rng(9), J=3, steps=5)[0]
    assert not np.allclose(other[0], samples[0])


def test_synthesis_stops_when_the_loss_stops_falling():
    target = patches(np.random.default_rng(10), 1, "filaments")
    samples, info = wph.wph_synthesis(target, 1, np.random.default_rng(11), J=3, steps=500, tol=1e-3)
    assert info["converged"] == [True] and info["iterations"][0] < 500
    assert len(info["history"][0]) == info["iterations"][0] + 1
