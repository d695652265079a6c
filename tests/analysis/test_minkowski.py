"""Minkowski functionals against their closed forms for Gaussian random fields."""

import numpy as np
import pytest

from cmbnn.analysis.minkowski import gaussian_minkowski, gradient_tau, minkowski_functionals


def gaussian_field(n, smoothing_px, rng, count=4):
    """Periodic Gaussian random fields with a Gaussian power spectrum of width 1/smoothing_px."""
    k = np.fft.fftfreq(n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amplitude = np.exp(-k2 * (2 * np.pi * smoothing_px) ** 2 / 4)
    white = rng.standard_normal((count, n, n))
    field = np.fft.ifft2(np.fft.fft2(white) * amplitude).real
    return (field - field.mean()) / field.std(), amplitude


def test_gaussian_field_matches_the_closed_forms():
    rng = np.random.default_rng(0)
    maps, amplitude = gaussian_field(512, 4.0, rng)
    nu = np.linspace(-3, 3, 25)
    got = minkowski_functionals(maps, nu, bin_width=0.1).mean(axis=0)
    # tau from the spectrum: <|grad u|^2> / (2 <u^2>) = sum k^2 P / (2 sum P) for the true gradient;
    # central differences see sin(k) instead of k (k in radians per pixel), and so does the estimator.
    k = 2 * np.pi * np.fft.fftfreq(512)
    power = amplitude**2
    tau_true = float(((k[:, None] ** 2 + k[None, :] ** 2) * power).sum() / (2 * power.sum()))
    tau = float(((np.sin(k)[:, None] ** 2 + np.sin(k)[None, :] ** 2) * power).sum() / (2 * power.sum()))
    assert gradient_tau(maps) == pytest.approx(tau, rel=0.03)
    assert tau == pytest.approx(tau_true, rel=0.1)
    want = gaussian_minkowski(nu, tau)
    np.testing.assert_allclose(got[0], want[0], atol=0.01)
    np.testing.assert_allclose(got[1], want[1], atol=0.02 * want[1].max())
    np.testing.assert_allclose(got[2], want[2], atol=0.06 * np.abs(want[2]).max())


def test_a_log_normal_field_is_told_apart():
    """exp of a Gaussian field (like dust intensity), standardised: V2 loses its odd symmetry."""
    rng = np.random.default_rng(1)
    maps, _ = gaussian_field(256, 4.0, rng)
    skewed = np.exp(maps)
    skewed = (skewed - skewed.mean()) / skewed.std()
    nu = np.linspace(-2, 2, 9)
    tau = gradient_tau(skewed)
    want = gaussian_minkowski(nu, tau)
    got = minkowski_functionals(skewed, nu, bin_width=0.1).mean(axis=0)
    assert np.max(np.abs(got[2] - want[2])) > 0.3 * np.abs(want[2]).max()
    assert np.max(np.abs(got[0] - want[0])) > 0.05


def test_shapes_and_units():
    maps = np.random.default_rng(2).standard_normal((3, 2, 32, 32))
    out = minkowski_functionals(maps, np.array([-1.0, 0.0, 1.0]))
    assert out.shape == (3, 2, 3, 3)
    # V1 is a length per area: twice the pixel size halves it.
    one = minkowski_functionals(maps[0, 0], np.array([0.0]), bin_width=0.2)
    two = minkowski_functionals(maps[0, 0], np.array([0.0]), bin_width=0.2, pixel_size=2.0)
    assert two[1, 0] == pytest.approx(one[1, 0] / 2) and two[2, 0] == pytest.approx(one[2, 0] / 4)
