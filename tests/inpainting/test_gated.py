"""The gated U-net (cmbnn.inpainting.gated): linear in the data for a given mask, and its
constrained-realisation samples, which are the exact Gaussian posterior when the network is the
conditional-mean operator."""

import numpy as np
import pytest

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, LocalConditionalMean, conditional_mean, conditional_std
from cmbnn.inpainting import gated
from cmbnn.seeding import rng_for


def holes(n, size=16):
    mask = np.zeros((n, size, size), np.uint8)
    mask[:, 5:9, 6:10] = 1
    mask[1:, 12:, :] = 1  # a band on all but the first
    return mask


@pytest.mark.parametrize("diffusion_steps", [0, 6])
def test_the_network_is_linear_in_the_data_for_a_given_mask(diffusion_steps):
    model = gated.build_gated_unet(16, 16, channels=8, levels=2, seed=3, diffusion_steps=diffusion_steps)
    mask = holes(3)[..., None].astype(np.float32)
    rng = rng_for(1, "t")
    x, y = rng.standard_normal((2, 3, 16, 16, 1)).astype(np.float32)
    f = lambda d: model.predict([d, mask], verbose=0)  # noqa: E731
    np.testing.assert_allclose(f(2.0 * x - 0.5 * y), 2.0 * f(x) - 0.5 * f(y), rtol=1e-4, atol=1e-5)
    assert np.abs(f(x)).max() > 0 and np.array_equal(f(0 * x), np.zeros_like(x))  # no bias anywhere
    other = np.zeros_like(mask)
    other[:, :4] = 1
    assert not np.allclose(model.predict([x, other], verbose=0), f(x))  # the weights follow the mask


def test_diffusive_fill_keeps_the_data_and_solves_laplace_in_the_hole():
    layer = gated.diffusive_fill_layer()(400)
    mask = holes(2)[..., None].astype(np.float32)
    rows, cols = np.mgrid[:16, :16]
    ramp = np.broadcast_to((0.3 * rows - 0.7 * cols + 2.0)[None, :, :, None], mask.shape).astype(np.float32)
    out = np.asarray(layer([ramp * (1 - mask), mask]))
    observed = mask == 0
    assert np.array_equal(out[observed], ramp[observed])
    # A linear function is harmonic: interior holes are filled with it (Jacobi converged); the
    # band at the edge reflects (zero normal derivative), so only the interior hole is exact there.
    np.testing.assert_allclose(out[0][mask[0] > 0], ramp[0][mask[0] > 0], atol=1e-3)
    np.testing.assert_allclose(out[1, 5:9, 6:10], ramp[1, 5:9, 6:10], atol=0.05)
    rng = rng_for(2, "t")
    x, y = rng.standard_normal((2, 2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer([3 * x - y, mask])), 3 * np.asarray(layer([x, mask])) - np.asarray(layer([y, mask])), rtol=1e-4, atol=1e-4)
    assert np.asarray(gated.diffusive_fill_layer()(0)([x, mask]))[mask > 0].max() == 0  # 0 steps: the hole stays 0


class ExactOperator:
    """Stands in for the network: the Gaussian conditional mean itself, through ``predict``."""

    def __init__(self, cov):
        self.cov = cov

    def predict(self, inputs, batch_size=None, verbose=0):
        data, mask = inputs
        return conditional_mean(data[..., 0].astype(np.float64), mask[..., 0], self.cov, method="dense")[..., None]


def test_samples_with_the_exact_operator_have_the_gaussian_posterior_std(camb_cls):
    cov = FlatSkyCovariance(camb_cls["TT"], 16, 16, 10.0, beam_fwhm_arcmin=20.0)
    mask = holes(2)
    truth = np.stack([np.zeros((16, 16)), np.ones((16, 16))]) * 0 + rng_for(5, "t").standard_normal((2, 16, 16)) * 50
    mean, std, _ = gated.inpaint(ExactOperator(cov), truth, mask, cov, n_samples=400, seed=2)
    hole = mask.astype(bool)
    np.testing.assert_allclose(mean[..., 0][~hole], truth[~hole], atol=1e-3)  # the composite keeps the data
    assert np.all(std[..., 0][~hole] == 0)
    want = conditional_std(mask, cov, method="dense")
    ratio = std[..., 0][hole] / want[hole]
    assert abs(np.median(ratio) - 1) < 0.05 and np.all(np.abs(ratio - 1) < 0.25)  # 400 samples: ~3.5% per pixel


def test_sampling_changes_the_hole_only_and_follows_the_seed():
    model = gated.build_gated_unet(16, 16, channels=4, levels=2, seed=0)
    cov = FlatSkyCovariance(np.r_[0.0, 0.0, 1e3 / np.arange(2, 200) ** 2], 16, 16, 10.0, beam_fwhm_arcmin=20.0)
    truth = rng_for(7, "t").standard_normal((3, 16, 16))
    mask = holes(3)
    a = gated.inpaint(model, truth, mask, cov, n_samples=4, seed=1)
    b = gated.inpaint(model, truth, mask, cov, n_samples=4, seed=1)
    c = gated.inpaint(model, truth, mask, cov, n_samples=4, seed=2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    hole = mask.astype(bool)[..., None]
    assert np.array_equal(a[0], c[0]) and not np.array_equal(a[1][hole], c[1][hole])  # the mean is the fill; the spread is the samples'
    assert np.all(a[1][~hole] == 0) and np.all(a[1][hole] > 0)


def test_log_hole_mse_weighs_patches_equally_and_skips_hole_free_ones():
    truth = np.zeros((3, 4, 4, 1), np.float32)
    mask = np.zeros((3, 4, 4, 1), np.float32)
    mask[0, 0, 0] = 1
    mask[1, :2] = 1
    pred = truth + np.array([1e-2, 1.0, 5.0], np.float32)[:, None, None, None]
    got = float(gated.log_hole_mse(np.concatenate([truth, mask], -1), pred))
    assert got == pytest.approx(np.mean([np.log(1e-4 + 1e-6), np.log(1.0 + 1e-6)]), rel=1e-5)


def test_small_holes_take_the_local_conditional_mean_and_its_posterior(camb_cls):
    """With the small-hole route, components up to max_pixels are the local Gaussian conditional
    mean (and their samples exact constrained realisations, so the std is the Gaussian's); larger
    ones stay the network's."""
    cov = FlatSkyCovariance(camb_cls["TT"], 16, 16, 10.0, beam_fwhm_arcmin=20.0)
    model = gated.build_gated_unet(16, 16, channels=4, levels=2, seed=0)
    mask = holes(3)  # a 16-pixel block on every patch, a 64-pixel band on two
    truth = rng_for(9, "t").standard_normal((3, 16, 16)) * 50
    route = {"max_pixels": 20, "pad": 12}
    mean, std, kept = gated.inpaint(model, truth, mask, cov, n_samples=300, seed=1, small_holes=route, keep_samples=5)
    local = LocalConditionalMean(mask, cov, 20, 12)
    small, hole = local.covered, mask.astype(bool)
    band = hole & ~small
    assert small.sum() == 3 * 16 and band.sum() == 2 * 64
    np.testing.assert_allclose(mean[..., 0][small], local.apply(np.where(hole, 0.0, truth))[small], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(mean[..., 0][band], gated.fill(model, truth, hole)[band], rtol=1e-5, atol=1e-3)
    ratio = std[..., 0][small] / conditional_std(mask, cov, method="dense")[small]
    assert abs(np.median(ratio) - 1) < 0.06 and np.all(np.abs(ratio - 1) < 0.3)  # 300 samples: ~4% per pixel
    assert kept.shape == (3, 5, 16, 16)
    np.testing.assert_allclose(kept[:, :, ~hole[0]][0], np.broadcast_to(truth[0][~hole[0]], (5, (~hole[0]).sum())), atol=1e-3)
    assert np.all(kept.std(axis=1)[hole] > 0)
    unrouted = gated.inpaint(model, truth, mask, cov, n_samples=2, seed=1)[0]
    assert not np.allclose(unrouted[..., 0][small], mean[..., 0][small])  # the network's own fill differs
