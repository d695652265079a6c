import numpy as np
import pytest

from cmbnn.baselines import ilc, ilc_weights, patch_covariance
from cmbnn.foregrounds import dust_sed, synchrotron_sed

FREQS = np.array([100.0, 143.0, 217.0])


def sky_patches(n=6, side=64, noise=None, seed=0):
    """CMB (SED 1 in uK_CMB) + dust and synchrotron with fixed SEDs, optional white noise."""
    rng = np.random.default_rng(seed)
    cmb = rng.standard_normal((n, side, side)) * 50
    dust = rng.standard_normal((n, side, side)) * 300 + 100
    sync = rng.standard_normal((n, side, side)) * 200
    seds = np.column_stack([dust_sed(FREQS, 1.54, 19.6), synchrotron_sed(FREQS, -3.0)])
    x = cmb[..., None] + dust[..., None] * seds[:, 0] + sync[..., None] * seds[:, 1]
    if noise is not None:
        x = x + rng.standard_normal(x.shape) * noise
    return x, cmb, seds


def test_constrained_ilc_recovers_the_cmb_exactly():
    x, cmb, seds = sky_patches()
    maps, weights = ilc(x, deproject=seds)
    np.testing.assert_allclose(maps[..., 0], cmb, atol=1e-6 * np.abs(x).max())
    np.testing.assert_allclose(weights @ np.ones(3), 1.0, atol=1e-12)
    np.testing.assert_allclose(weights @ seds, 0.0, atol=1e-10)


def test_ilc_comes_close_up_to_its_chance_correlation_bias():
    x, cmb, seds = sky_patches()
    maps, weights = ilc(x)
    residual = maps[..., 0] - cmb
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    # Residual well below the CMB and far below the foregrounds it removed...
    assert np.std(residual) < 0.05 * np.std(cmb)
    # ...and the ILC bias: minimum variance can only remove power, so the output variance per
    # patch never exceeds the CMB's (the exact solution above is one admissible weight vector).
    out_var = maps[..., 0].reshape(len(x), -1).var(axis=1)
    assert np.all(out_var <= cmb.reshape(len(x), -1).var(axis=1) * (1 + 1e-9))


def test_ilc_without_foregrounds_is_inverse_noise_weighting():
    rng = np.random.default_rng(1)
    cmb = rng.standard_normal((1, 256, 256)) * 5
    sigma = np.array([10.0, 20.0, 40.0])
    x = cmb[..., None] + rng.standard_normal((1, 256, 256, 3)) * sigma
    _, weights = ilc(x)
    expected = sigma**-2 / np.sum(sigma**-2)
    np.testing.assert_allclose(weights[0], expected, atol=0.03)


def test_too_many_constraints_are_refused():
    cov = patch_covariance(sky_patches(1)[0])
    with pytest.raises(ValueError, match="cannot null 3 SEDs with 3 channels"):
        ilc_weights(cov, deproject=np.eye(3))
