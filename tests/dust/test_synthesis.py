"""The classical dust generators (cmbnn.dust.synthesis): a Gaussian copula that reproduces a
pointwise-transformed Gaussian field's histogram and spectrum, a wavelet bank that tiles the plane,
and scattering synthesis that moves a start field towards its target's statistics."""

import numpy as np
import pytest

pytest.importorskip("pymaster")

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations  # noqa: E402
from cmbnn.dust import statistics as ds  # noqa: E402
from cmbnn.dust import synthesis  # noqa: E402
from cmbnn.dust.structure import structure_features, structure_table  # noqa: E402

SIDE, RESO = 32, 15.0
LMAX = ds.nyquist_lmax(RESO)


@pytest.fixture(scope="module")
def skewed_fields():
    """exp(0.8 g): a pointwise transform of a Gaussian field with C_ell ~ ell^-2.42, log-normal
    pixels (skewness ~2.7 in the field, strongly non-Gaussian), 300 patches."""
    ell = np.arange(LMAX + 1, dtype=np.float64)
    cl = np.where(ell >= 2, np.maximum(ell, 2.0) ** -2.42, 0.0)
    cl /= FlatSkyCovariance(cl, SIDE, SIDE, RESO).variance
    g = gaussian_realisations(FlatSkyCovariance(cl, SIDE, SIDE, RESO), 300, np.random.default_rng(0))
    return np.exp(0.8 * g)


def test_copula_matches_the_histogram_moments_and_spectrum_of_a_transformed_gaussian(skewed_fields):
    train, test = skewed_fields[:200], skewed_fields[200:]
    samples = synthesis.gaussian_copula(train, 100, RESO, np.random.default_rng(1))
    assert samples.shape == (100, SIDE, SIDE) and samples.dtype == np.float32
    assert samples.min() >= train.min() and samples.max() <= train.max()
    np.testing.assert_allclose(np.quantile(samples, [0.1, 0.5, 0.9]), np.quantile(train, [0.1, 0.5, 0.9]), rtol=0.2)  # patch means scatter (red spectrum)
    gaussian = ds.gaussian_like(train, 100, RESO, np.random.default_rng(2))
    sets = {k: structure_features(v, RESO, n_bins=4)[0] for k, v in {"test": test, "copula": samples, "gaussian": gaussian}.items()}
    z = structure_table(sets, "test", np.random.default_rng(3), n_permutations=100).set_index(["set", "statistic"]).z
    # The copula is the right model here: indistinguishable from the test patches on every
    # statistic, where the Gaussian field is far on the one-point shape.
    for stat in ("amplitude", "band powers", "one-point", "V0", "V1", "V2", "peaks"):
        assert z["copula", stat] < 3, (stat, z["copula", stat])
    assert z["gaussian", "one-point"] > 10
    np.testing.assert_array_equal(samples, synthesis.gaussian_copula(train, 100, RESO, np.random.default_rng(1)))


def test_morlet_bank_tiles_the_plane_between_the_largest_scale_and_nyquist():
    bank = synthesis.morlet_bank(64, 64, 5, 4)
    assert bank.shape == (5, 4, 64, 64) and np.all(bank[..., 0, 0] == 0)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij")) * 2 * np.pi
    # Real signals: a mode and its mirror are one; cover the half plane each filter sees.
    cover = (bank**2).sum(axis=(0, 1))
    cover = np.maximum(cover, cover[(-np.arange(64)) % 64][:, (-np.arange(64)) % 64])
    band = (k > 0.75 * np.pi / 2**4) & (k < np.pi)
    assert cover[band].min() > 0.2


def test_scattering_synthesis_moves_towards_the_target_statistics(skewed_fields):
    import tensorflow as tf

    x = np.log(skewed_fields[:20]).astype(np.float32)
    stats = synthesis.ScatteringStatistics(SIDE, SIDE, scales=3, orientations=4)
    rng = np.random.default_rng(3)
    gaussian = ds.gaussian_like(x, 20, RESO, np.random.default_rng(3))
    out = synthesis.scattering_synthesis(x, 20, RESO, rng, scales=3, steps=30, batch=20)
    assert out.shape == (20, SIDE, SIDE) and np.all(np.isfinite(out))
    # The targets are the training patches drawn by the same generator state.
    targets = np.random.default_rng(3).integers(0, len(x), 20)
    goal = stats(tf.constant(x[targets])).numpy()
    before = np.sum((stats(tf.constant(gaussian.astype(np.float32))).numpy() - goal) ** 2)
    after = np.sum((stats(tf.constant(out)).numpy() - goal) ** 2)
    assert after < 0.2 * before, (before, after)
    with pytest.raises(ValueError, match="scales need patches"):
        synthesis.scattering_synthesis(x, 2, RESO, rng, scales=6)
