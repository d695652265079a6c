"""The dust VAE, beta-VAE and conditional VAE (cmbnn.dust.vae): ELBO terms against closed forms,
shapes, slerp, the condition's effect, imputation, and a short training run."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cmbnn.dust import vae as dustvae  # noqa: E402

SMALL = {"latent_dim": 8, "encoder_filters": [8, 8], "dense_units": 16, "decoder_filters": [8, 8], "decoder_channels": 4}


def test_gaussian_nll_and_kl_against_closed_forms():
    x = np.array([[[[1.0], [2.0]]]], np.float32)  # (1, 1, 2, 1)
    mean = np.array([[[[0.5], [2.0]]]], np.float32)
    log_scale = np.log(np.array([[[[2.0], [0.5]]]], np.float32))
    nll = keras.ops.convert_to_numpy(dustvae.gaussian_nll(x, mean, log_scale))
    want = sum(0.5 * ((xi - m) / s) ** 2 + np.log(s) + 0.5 * np.log(2 * np.pi) for xi, m, s in ((1.0, 0.5, 2.0), (2.0, 2.0, 0.5)))
    assert nll[0] == pytest.approx(want, rel=1e-6)
    mu = np.array([[0.0, 1.0, -2.0]], np.float32)
    log_var = np.log(np.array([[1.0, 0.25, 4.0]], np.float32))
    kl = keras.ops.convert_to_numpy(dustvae.standard_kl(mu, log_var))
    want = sum(0.5 * (v + m * m - 1 - np.log(v)) for m, v in ((0.0, 1.0), (1.0, 0.25), (-2.0, 4.0)))
    assert kl[0] == pytest.approx(want, rel=1e-6)
    assert keras.ops.convert_to_numpy(dustvae.standard_kl(np.zeros((1, 5)), np.zeros((1, 5))))[0] == 0.0


def test_loss_is_nll_plus_beta_kl():
    model = dustvae.build_dustvae(16, 16, {**SMALL, "beta": 0.1}, seed=1)
    x = np.random.default_rng(0).standard_normal((3, 16, 16, 1)).astype(np.float32)
    mean, log_scale, mu, log_var = model(x)
    loss = keras.ops.convert_to_numpy(model.compute_loss(x=x, y_pred=(mean, log_scale, mu, log_var)))
    nll = keras.ops.convert_to_numpy(dustvae.gaussian_nll(x, mean, log_scale))
    kl = keras.ops.convert_to_numpy(dustvae.standard_kl(mu, log_var))
    assert loss == pytest.approx(np.mean(nll + 0.1 * kl), rel=1e-5)


def test_ring_index_labels_each_fft_mode_with_its_integer_wavenumber():
    rings = dustvae.ring_index(16, 12)
    assert rings.shape == (16, 12) and rings[0, 0] == 0 and np.sum(rings == 0) == 1
    assert rings[0, 1] == rings[1, 0] == rings[-1, 0] == rings[0, -1] == 1
    assert rings.max() == round(np.hypot(8, 6))
    np.testing.assert_array_equal(rings, np.roll(rings[::-1, ::-1], (1, 1), axis=(0, 1)))  # k and -k share a ring


def test_calibrated_and_fourier_likelihoods_against_closed_forms():
    """One ring: the per-pixel Gaussian with its variance at the batch's mean squared error. Each
    ring its own: at the batch's ring powers P_r the batch mean is 0.5 sum_r n_r (1 + log P_r +
    log 2 pi), n_r modes in the ring (unitary FFT, so P is per-pixel variance)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6, 16, 16, 1)) * 3.0).astype(np.float32)
    mean = (rng.standard_normal((6, 16, 16, 1)) * 0.5).astype(np.float32)
    rings = dustvae.ring_index(16, 16)
    one = keras.ops.convert_to_numpy(dustvae.fourier_nll(x, mean, np.zeros_like(rings)))
    mse = float(np.mean((x - mean).astype(np.float64) ** 2))
    pixel = keras.ops.convert_to_numpy(dustvae.gaussian_nll(x, mean, np.full_like(x, 0.5 * np.log(mse))))
    np.testing.assert_allclose(one, pixel, rtol=1e-4)
    each = keras.ops.convert_to_numpy(dustvae.fourier_nll(x, mean, rings))
    power = np.abs(np.fft.fft2((x - mean)[..., 0].astype(np.float64))) ** 2 / 256
    ring_power = np.array([power[:, rings == r].mean() for r in range(rings.max() + 1)])
    counts = np.bincount(rings.ravel())
    assert each.mean() == pytest.approx(0.5 * np.sum(counts * (1 + np.log(ring_power) + np.log(2 * np.pi))), rel=1e-4)
    assert not np.allclose(each, one)  # white noise plus a white mean: close, but the rings' scatter differs


@pytest.mark.parametrize("likelihood", ["calibrated", "fourier"])
def test_the_model_loss_uses_the_chosen_likelihood(likelihood):
    settings = {**SMALL, "beta": 0.5, "likelihood": likelihood, "normalization": "group"}
    model = dustvae.build_dustvae(16, 16, settings, seed=2)
    x = np.random.default_rng(1).standard_normal((4, 16, 16, 1)).astype(np.float32)
    mean, log_scale, mu, log_var = model(x)
    loss = keras.ops.convert_to_numpy(model.compute_loss(x=x, y_pred=(mean, log_scale, mu, log_var)))
    rings = dustvae.ring_index(16, 16) if likelihood == "fourier" else np.zeros((16, 16), np.int64)
    nll = keras.ops.convert_to_numpy(dustvae.fourier_nll(x, mean, rings))
    kl = keras.ops.convert_to_numpy(dustvae.standard_kl(mu, log_var))
    assert loss == pytest.approx(np.mean(nll + 0.5 * kl), rel=1e-5)
    assert [layer.__class__.__name__ for layer in model.decoder.layers if layer.name.startswith("dec_bn")] == ["GroupNormalization"] * 2
    for key, bad in (("likelihood", "laplace"), ("normalization", "layer")):
        with pytest.raises(ValueError, match=key):
            dustvae.build_dustvae(16, 16, {**SMALL, key: bad})


@pytest.mark.parametrize("size, settings", [(64, {"decoder_filters": [64, 32]}), (256, {})])
def test_shapes_at_the_default_and_paper_sizes(size, settings):
    s = {**dustvae.DEFAULTS, **settings}
    enc = dustvae.build_encoder(size, size, s, conditional=False)
    dec = dustvae.build_decoder(size, size, s, conditional=False)
    assert enc.output_shape == [(None, 256), (None, 256)]
    assert dec.output_shape == (None, size, size, 2)
    with pytest.raises(ValueError, match="divisible"):
        dustvae.build_decoder(62, 62, s, conditional=False)


def test_the_paper_preset_has_the_reference_codes_network():
    """config/dustvae_paper.yaml: DustVAEder's ConvEncoder (convolutions straight to the latent)
    and TransConvDecoder (a linear Dense to 16 x 16 x 32), and beta 8 for its batch-summed KL."""
    import yaml

    from conftest import ROOT

    paper = yaml.safe_load((ROOT / "config" / "dustvae_paper.yaml").read_text())["dustvae"]
    s = {**dustvae.DEFAULTS, **paper["network"]}
    enc = dustvae.build_encoder(256, 256, s, conditional=False)
    dec = dustvae.build_decoder(256, 256, s, conditional=False)
    dense = [layer for layer in enc.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.name for layer in dense] == ["z_mean", "z_log_var"] and dense[0].input.shape[-1] == 32 * 32 * 64
    first = dec.get_layer("dec_dense")
    assert first.units == 16 * 16 * 32 and first.activation is keras.activations.linear
    assert [f for f in s["encoder_filters"]] == [256, 128, 64] and paper["models"]["dustvae"]["beta"] == 8.0
    assert isinstance(dec.get_layer("dec_deconv0"), keras.layers.Conv2DTranspose)  # the reference code's upsampling


def test_windowed_power_has_no_edge_leakage():
    """A steep-spectrum, non-periodic field: the bare FFT's highest modes carry the edges' leakage,
    the Hann-windowed power follows the field's own fall; white noise keeps s^2 H W per mode."""
    rng = np.random.default_rng(5)
    from scipy.ndimage import gaussian_filter

    big = gaussian_filter(rng.standard_normal((40, 128, 128)), sigma=(0, 3, 3))  # smooth: its power falls like exp(-k^2)
    x = big[:, :32, :32] + np.linspace(-1, 1, 32)[None, :, None]  # a corner of it with a gradient: not periodic
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), indexing="ij"))
    bare = np.mean(np.abs(np.fft.fft2(x)) ** 2, axis=0)
    hann = dustvae.windowed_power(x)
    top, low = k > 0.4, (k > 0.05) & (k < 0.1)
    assert hann[top].mean() / hann[low].mean() < 0.1 * bare[top].mean() / bare[low].mean()
    white = rng.standard_normal((400, 32, 32)) * 2.0
    assert dustvae.windowed_power(white).mean() == pytest.approx(4.0 * 32 * 32, rel=0.05)


def test_resize_decoder_has_no_checkerboard():
    """The default decoder (bilinear x2 + 3x3 convolution) puts far less of its output's power at
    the grid's highest frequencies than 4x4 stride-2 transposed convolutions, even untrained."""
    z = np.random.default_rng(3).standard_normal((64, SMALL["latent_dim"])).astype(np.float32)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(16), np.fft.fftfreq(16), indexing="ij"))

    def corner_fraction(upsampling):
        dec = dustvae.build_decoder(16, 16, {**dustvae.DEFAULTS, **SMALL, "decoder_upsampling": upsampling}, conditional=False)
        out = np.asarray(dec([z]))[..., 0]
        power = np.mean(np.abs(np.fft.fft2(out - out.mean(axis=(1, 2), keepdims=True))) ** 2, axis=0)
        return power[k > 0.35].sum() / power.sum()

    assert corner_fraction("resize") < 0.3 * corner_fraction("transposed")
    with pytest.raises(ValueError, match="decoder_upsampling"):
        dustvae.build_decoder(16, 16, {**dustvae.DEFAULTS, **SMALL, "decoder_upsampling": "pixelshuffle"}, conditional=False)


def test_the_condition_offset_is_added_per_sample_whatever_the_batch_size():
    """Each decoded patch depends on its own (z, c) only, also in predict batches as large as the
    patch is high: Keras' TensorFlow add took the per-sample offset (B, 1, 1, 1) for a channel
    bias when B equalled the height, adding sample i's offset to row i of every patch (stripes:
    the conditional VAE's samples read 88x the floor on spectrum)."""
    model = dustvae.build_dustvae(16, 16, {**SMALL, "conditional": True, "condition_offset": True}, seed=4)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((40, SMALL["latent_dim"])).astype(np.float32)
    c = rng.uniform(-2, 2, (40, 1)).astype(np.float32)
    together = model.decoder.predict([z, c], batch_size=16, verbose=0)[..., 0]
    alone = np.stack([model.decoder.predict([z[i : i + 1], c[i : i + 1]], verbose=0)[0, ..., 0] for i in range(0, 40, 7)])
    np.testing.assert_allclose(together[::7], alone, atol=1e-4)


def test_a_demeaned_encoder_cannot_see_the_patch_brightness():
    x = np.random.default_rng(2).standard_normal((3, 16, 16, 1)).astype(np.float32)
    c = np.zeros((3, 1), np.float32)
    plain = dustvae.build_dustvae(16, 16, {**SMALL, "conditional": True}, seed=1)
    blind = dustvae.build_dustvae(16, 16, {**SMALL, "conditional": True, "encoder_input": "demeaned"}, seed=1)
    for a, b in zip(dustvae.encode(blind, x, c), dustvae.encode(blind, x + 2.5, c)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert not np.allclose(dustvae.encode(plain, x, c)[0], dustvae.encode(plain, x + 2.5, c)[0], atol=1e-3)
    with pytest.raises(ValueError, match="encoder_input"):
        dustvae.build_dustvae(16, 16, {**SMALL, "encoder_input": "whitened"})


def test_generation_and_encoding_shapes_and_determinism():
    model = dustvae.build_dustvae(16, 16, SMALL, seed=2)
    a = dustvae.sample(model, 5, np.random.default_rng(3))
    b = dustvae.sample(model, 5, np.random.default_rng(3))
    assert a.shape == (5, 16, 16) and np.array_equal(a, b)
    mu, log_var = dustvae.encode(model, np.zeros((4, 16, 16), np.float32))
    assert mu.shape == log_var.shape == (4, 8)


def test_slerp_endpoints_are_the_encodings_and_the_path_is_on_the_arc():
    rng = np.random.default_rng(4)
    z1, z2 = rng.standard_normal(16), rng.standard_normal(16)
    path = dustvae.slerp(z1, z2, np.linspace(0, 1, 7))
    np.testing.assert_array_equal(path[0], z1)
    np.testing.assert_array_equal(path[-1], z2)
    # Equal angular steps between consecutive unit vectors.
    u = path / np.linalg.norm(path, axis=1, keepdims=True)
    steps = np.arccos(np.clip(np.sum(u[1:] * u[:-1], axis=1), -1, 1))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    np.testing.assert_allclose(dustvae.slerp(z1, 2 * z1, [0.5])[0], 1.5 * z1)


def test_the_conditional_model_output_changes_with_the_condition():
    model = dustvae.build_dustvae(16, 16, {**SMALL, "conditional": True}, seed=5)
    z = np.random.default_rng(6).standard_normal((2, 8)).astype(np.float32)
    low = dustvae.decode(model, z, condition=[0.0, 0.0])[0]
    high = dustvae.decode(model, z, condition=[1.0, 1.0])[0]
    assert np.abs(low - high).max() > 1e-4
    with pytest.raises(ValueError, match="condition"):
        dustvae.decode(model, z)


def test_imputation_keeps_observed_pixels_and_lowers_the_objective():
    model = dustvae.build_dustvae(16, 16, SMALL, seed=7)
    rng = np.random.default_rng(8)
    data = rng.standard_normal((2, 16, 16)).astype(np.float32)
    mask = np.zeros((2, 16, 16), np.uint8)
    mask[:, 4:10, 4:10] = 1
    composite, means, z, before, after = dustvae.impute(model, data, mask, sigma=0.5, steps=30, learning_rate=0.05)
    assert composite.shape == means.shape == (2, 16, 16) and z.shape == (2, 8)
    np.testing.assert_array_equal(composite[mask == 0], data[mask == 0])
    np.testing.assert_array_equal(composite[mask == 1], means[mask == 1])
    np.testing.assert_allclose(means, dustvae.decode(model, z)[0], atol=1e-5)
    assert np.all(after < before)


def _red_gaussian_patches(seed: int):
    """A red isotropic covariance on 16 x 16 patches and three draws of it: (cov, data)."""
    from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations

    ell = np.arange(600)
    cov = FlatSkyCovariance(np.where(ell >= 2, (ell + 1.0) ** -2.5, 0.0), 16, 16, 20.0)
    return cov, gaussian_realisations(cov, 3, np.random.default_rng(seed))


def test_kriging_the_decoder_error_is_the_gaussian_fill_of_what_the_decoder_misses():
    from cmbnn.analysis.gaussian_field import conditional_mean, conditional_std

    cov, data = _red_gaussian_patches(3)
    hole = np.zeros((16, 16), bool)
    hole[5:11, 6:12] = True
    # A decoder that knows nothing (zero means): the Gaussian conditional mean about the observed mean.
    fill, std = dustvae.krige_decoder_error(np.zeros_like(data), data, hole, cov)
    offset = data[:, ~hole].mean(axis=1)[:, None, None]
    np.testing.assert_allclose(fill, conditional_mean(data - offset, hole, cov) + offset, atol=1e-10)
    np.testing.assert_array_equal(fill[:, ~hole], data[:, ~hole])
    np.testing.assert_allclose(std[0], conditional_std(hole, cov))
    assert np.all(std[:, ~hole] == 0) and np.all(std[:, hole] > 0)
    # A decoder that is right: nothing is left to krige.
    np.testing.assert_allclose(dustvae.krige_decoder_error(data, data, hole, cov)[0], data, atol=1e-12)
    # A decoder off by a smooth field in the hole only: the observed error is zero, so its fill stands.
    bias = np.where(hole, 0.3, 0.0)
    np.testing.assert_allclose(dustvae.krige_decoder_error(data + bias, data, hole, cov)[0], data + bias, atol=1e-10)


def test_a_decoder_whose_transfer_is_zero_leaves_the_gaussian_fill():
    from cmbnn.analysis.gaussian_field import conditional_mean

    cov, data = _red_gaussian_patches(5)
    hole = np.zeros((16, 16), bool)
    hole[3:9, 8:14] = True
    # Decoder means that are pure noise, and a sampler whose transfer says so: only their patch
    # means pass, so the posterior mean of p(x | z) is the Gaussian conditional mean of the data.
    noise = np.random.default_rng(6).standard_normal(data.shape) + 0.4
    # (T falls to 0 right above k = 0: the mirrored grid's half-integer modes interpolate T.)
    sampler = {"transfer_k": np.r_[0.0, 1e-3, np.arange(1, 12) / 16], "transfer": np.r_[1.0, np.zeros(12)]}
    means = dustvae.sampler_means(sampler, noise)
    np.testing.assert_allclose(means, np.broadcast_to(noise.mean(axis=(1, 2), keepdims=True), noise.shape), atol=1e-12)
    fill = dustvae.krige_decoder_error(means, data, hole, cov)[0]
    offset = data[:, ~hole].mean(axis=1)[:, None, None]
    np.testing.assert_allclose(fill, conditional_mean(data - offset, hole, cov) + offset, atol=1e-10)
    # Without a transfer (samplers fitted with sampler_residual: stationary) the means stand as decoded.
    np.testing.assert_array_equal(dustvae.sampler_means({}, noise), noise)
    np.testing.assert_array_equal(dustvae.sampler_means(None, noise), noise)


def test_log_standardise_round_trip_and_bad_input():
    intensity = np.exp(np.random.default_rng(9).normal(1.0, 0.5, (4, 8, 8)))
    x, stats = dustvae.log_standardise(intensity)
    assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(dustvae.intensity_from_standardised(x, stats), intensity, rtol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        dustvae.log_standardise(np.zeros((2, 2)))


@pytest.mark.parametrize("variant", [{}, {"normalization": "group", "likelihood": "calibrated"}])
def test_a_short_training_run_through_the_shared_resumable_loop(tmp_path, variant):
    from cmbnn.nn.training import PatchBatches, fit_resumable, set_seeds

    set_seeds(0)
    x = np.random.default_rng(10).standard_normal((24, 16, 16, 1)).astype(np.float32)
    norm = {"input_offset": [0.0], "input_scale": [1.0], "label_offset": 0.0, "label_scale": 1.0}
    train = PatchBatches([x[:16]], [x[:16]], ["I"], norm, 8, 0, shuffle=True, augment=True, stage="dustvae-epoch")
    val = PatchBatches([x[16:]], [x[16:]], ["I"], norm, 8, 0, shuffle=False, stage="dustvae-epoch")

    def build():
        model = dustvae.build_dustvae(16, 16, {**SMALL, **variant}, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        return model

    model, history = fit_resumable(build, train, val, epochs=2, patience=5, checkpoint_dir=tmp_path / "ckpt")
    assert len(history) == 2 and all(np.isfinite(h["loss"]) and np.isfinite(h["val_loss"]) for h in history)
    path = tmp_path / "model.keras"
    model.save(path)
    again = dustvae.load_model(path)
    z = np.zeros((1, 8), np.float32)
    np.testing.assert_allclose(dustvae.decode(again, z)[0], dustvae.decode(model, z)[0], atol=1e-6)


def test_killed_training_resumes_bit_for_bit(tmp_path):
    """A dust VAE run killed after its first epoch resumes from its checkpoint (model, optimiser,
    the reparametrisation's seed state) and ends where an uninterrupted run does."""
    x = np.random.default_rng(12).standard_normal((24, 16, 16)).astype(np.float32)
    settings = {**SMALL, "epochs": 2, "batch_size": 8, "learning_rate": 1e-3}
    stats = {"log_mean": 0.0, "log_std": 1.0}
    straight, h_straight = dustvae.train(x[:16], x[16:], settings, 3, tmp_path / "a", stats)

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # like a kill after the epoch-0 checkpoint

    with pytest.raises(KeyboardInterrupt):
        dustvae.train(x[:16], x[16:], settings, 3, tmp_path / "b", stats, callbacks=[Stop()])
    resumed, h_resumed = dustvae.train(x[:16], x[16:], settings, 3, tmp_path / "b", stats)
    assert [h["loss"] for h in h_resumed] == [h["loss"] for h in h_straight]
    for w1, w2 in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_conditional_training_feeds_the_condition_and_is_deterministic(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((24, 16, 16)).astype(np.float32)
    lat = rng.uniform(30, 80, 24)
    cond, cstats = dustvae.standardise_condition(lat[:16])
    cond_val, _ = dustvae.standardise_condition(lat[16:], cstats)
    assert cond.shape == (16, 1) and abs(float(cond.mean())) < 1e-6
    cstats["kind"] = "abs_latitude"  # as train_dustvae stores it
    settings = {**SMALL, "conditional": True, "beta": 0.1, "epochs": 2, "batch_size": 8, "learning_rate": 1e-3}
    runs = []
    for name in ("a", "b"):
        model, history = dustvae.train(x[:16], x[16:], settings, 3, tmp_path / name, {"log_mean": 0.0, "log_std": 1.0},
                                       condition_train=cond, condition_val=cond_val, condition_stats=cstats)
        runs.append([h["loss"] for h in history])
    assert len(runs[0]) == 2 and runs[0] == runs[1]
    assert model.condition_stats == cstats
    raw, std = dustvae.model_conditions(model, lat[16:], x[16:])
    np.testing.assert_array_equal(raw, lat[16:])
    np.testing.assert_array_equal(std, cond_val)
    z = np.zeros((2, 8), np.float32)
    assert np.abs(dustvae.decode(model, z, condition=[-1.0, -1.0])[0] - dustvae.decode(model, z, condition=[1.0, 1.0])[0]).max() > 1e-5
    with pytest.raises(ValueError, match="condition"):
        dustvae.train(x[:16], x[16:], settings, 3, tmp_path / "c", {})


def test_latent_gaussian_fit_recovers_the_encodings_distribution():
    model = dustvae.build_dustvae(16, 16, SMALL, seed=12)
    x = np.random.default_rng(13).standard_normal((300, 16, 16)).astype(np.float32)
    mean, chol = dustvae.fit_latent_gaussian(model, x)
    mu, log_var = dustvae.encode(model, x)
    np.testing.assert_allclose(mean, mu.mean(axis=0), rtol=1e-5, atol=1e-6)
    want = np.cov(mu.T.astype(np.float64)) + np.diag(np.exp(log_var.astype(np.float64)).mean(axis=0))
    np.testing.assert_allclose(chol @ chol.T, want, rtol=1e-3, atol=1e-6 * np.trace(want))
    # Draws from the fit: same shapes as prior draws, deterministic by seed, and not the prior's.
    a = dustvae.sample(model, 4, np.random.default_rng(14), latent=(mean, chol))
    b = dustvae.sample(model, 4, np.random.default_rng(14), latent=(mean, chol))
    prior = dustvae.sample(model, 4, np.random.default_rng(14))
    assert a.shape == prior.shape == (4, 16, 16) and np.array_equal(a, b) and not np.allclose(a, prior)


def test_the_sampler_puts_back_the_residual_the_decoder_mean_leaves_out(tmp_path):
    """fit_sampler: the residual field has the power the reconstructions lack against x, without
    the patch means, which the sampler draws as a constant with the scatter the reconstructions
    miss; so the draws carry the residual's variance on top of the decoder means, and a patch
    mean does not leak into the lowest modes; saved and loaded whole; deterministic by seed."""
    model = dustvae.build_dustvae(16, 16, SMALL, seed=15)
    rng = np.random.default_rng(16)
    # White noise on patch means of scatter 2: an untrained decoder reconstructs neither, so the
    # residual is most of x.
    x = rng.standard_normal((200, 16, 16)) + 2.0 * rng.standard_normal((200, 1, 1))
    sampler = dustvae.fit_sampler(model, x)
    mu, _ = dustvae.encode(model, x)
    recon = dustvae.apply_transfer(dustvae.decode(model, mu)[0], sampler["transfer_k"], sampler["transfer"])

    def demeaned(a):
        return a - a.mean(axis=(1, 2), keepdims=True)

    lacking = np.maximum(dustvae.windowed_power(demeaned(x)) - dustvae.windowed_power(demeaned(recon)), 0)
    lacking[0, 0] = 0.0
    np.testing.assert_allclose(sampler["residual_power"], lacking, rtol=1e-9)
    assert sampler["residual_power"][0, 1] < 3.0 * 256  # white, variance 1: 256 per mode; the means' 4 x 256 x 256 leaked in unless removed
    assert float(sampler["residual_mean_std"]) == pytest.approx(2.0, rel=0.15)
    residual = x - recon  # white x, a near-constant untrained decoder: the lacking power is about the residual's
    assert float(sampler["residual_variance"]) == pytest.approx(residual.var(), rel=0.1)
    field = dustvae.residual_field(sampler, 400, (16, 16), np.random.default_rng(17))
    assert field.var() == pytest.approx(residual.var(), rel=0.15)
    assert demeaned(field).var() == pytest.approx(demeaned(residual).var(), rel=0.05)
    np.testing.assert_allclose(np.mean(np.abs(np.fft.fft2(demeaned(field))) ** 2, axis=0).mean(), sampler["residual_power"].mean(), rtol=0.05)
    path = tmp_path / "sampler.npz"
    dustvae.save_sampler(path, sampler)
    loaded = dustvae.load_sampler(path)
    assert set(loaded) == set(sampler) and all(np.array_equal(loaded[k], sampler[k]) for k in sampler)
    a = dustvae.sample(model, 50, np.random.default_rng(18), sampler=loaded)
    b = dustvae.sample(model, 50, np.random.default_rng(18), sampler=loaded)
    means = dustvae.sample(model, 50, np.random.default_rng(18), latent=(loaded["latent_mean"], loaded["latent_chol"]))
    assert np.array_equal(a, b) and a.shape == (50, 16, 16)
    assert (a - means).var() == pytest.approx(residual.var(), rel=0.25)  # the draws carry the residual


def test_the_transfer_shrinks_the_decoder_modes_that_do_not_follow_the_data():
    """fit_transfer: reconstructions = the patches' large scales plus loud noise of their own at
    every scale: T ~ 1 where the shared field dominates, ~ 0 where the noise does (the least-squares
    shrinkage P_shared / (P_shared + P_noise)); apply_transfer with T = 1 is the identity, with T = 0
    it leaves the patch means; a low-pass does not wrap one edge onto the other."""
    from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations

    rng = np.random.default_rng(41)
    ell = np.arange(2000)
    large = gaussian_realisations(FlatSkyCovariance(np.where(ell >= 2, 1e-2 * (ell + 1.0) ** -3.0, 0.0), 32, 32, 10.0), 300, rng)
    large /= large.std()
    x = large + 0.05 * rng.standard_normal(large.shape)
    recon = large + 0.3 * rng.standard_normal(large.shape)
    k, t = dustvae.fit_transfer(x, recon)
    assert k[0] == 0 and t[0] == 1 and np.all((t >= 0) & (t <= 1))
    assert t[1] > 0.95 and t[-6:].max() < 0.05, t
    np.testing.assert_allclose(dustvae.apply_transfer(x[:5], k, np.ones_like(t)), x[:5], atol=1e-12)
    flat = dustvae.apply_transfer(x[:5], k, np.zeros_like(t))
    np.testing.assert_allclose(flat, np.broadcast_to(x[:5].mean(axis=(1, 2), keepdims=True), flat.shape), atol=1e-12)
    ramp = np.broadcast_to(np.linspace(-1, 1, 32)[None, :, None], (1, 32, 32))
    smooth = dustvae.apply_transfer(ramp, k, np.exp(-((k / 0.1) ** 2)))
    assert np.all(np.diff(smooth[0, :, 0]) > 0)  # periodic filtering would pull the ends towards each other


def test_the_residual_amplitude_follows_the_decoder_mean():
    """level_scales recovers a residual whose rms grows with the decoder mean (exp(0.4 m), as the
    filament sky's grew 4x from valleys to ridges), normalised to a pixel rms of 1; residual_field
    draws with that amplitude at new means, and without the fit (old samplers) stays stationary."""
    rng = np.random.default_rng(31)
    means = np.linspace(-2, 2, 16)[None, :, None] + 0.5 * rng.standard_normal((300, 1, 1)) + np.zeros((1, 1, 16))
    amplitude = np.exp(0.4 * means)
    levels, scales = dustvae.level_scales(means, amplitude * rng.standard_normal(means.shape))
    assert np.all(np.diff(levels) > 0) and np.sqrt(np.mean(scales**2)) == pytest.approx(1.0)
    np.testing.assert_allclose(scales * np.sqrt(np.mean(amplitude**2)), np.exp(0.4 * levels), rtol=0.12)
    sampler = {"residual_power": np.full((16, 16), 256.0), "residual_levels": levels, "residual_scales": scales}
    new = means[:100]
    field = dustvae.residual_field(sampler, 100, (16, 16), np.random.default_rng(32), new)
    bright, faint = new > 1.2, new < -1.2
    ratio = field[bright].std() / field[faint].std()
    expected = np.sqrt(np.mean(amplitude[:100][bright] ** 2) / np.mean(amplitude[:100][faint] ** 2))
    assert ratio == pytest.approx(expected, rel=0.1) and expected > 2.5
    stationary = dustvae.residual_field({"residual_power": sampler["residual_power"]}, 100, (16, 16), np.random.default_rng(32), new)
    assert stationary[bright].std() / stationary[faint].std() == pytest.approx(1.0, abs=0.1)
    np.testing.assert_array_equal(dustvae.residual_scale({}, new), np.ones_like(new))


def test_a_conditional_sampler_draws_its_conditions_from_the_training_patches(tmp_path):
    """A conditional model's sampler keeps its training conditions; sampled without a condition,
    the model draws them (its own p(c): a patch's mean log I is generated, not taken from the
    patches it is compared with); saved and loaded with the rest; no sampler, no condition: an error."""
    model = dustvae.build_dustvae(16, 16, {**SMALL, "conditional": True, "condition_offset": True}, seed=21)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((40, 16, 16))
    c = rng.uniform(-1, 1, (40, 1))
    dustvae.save_sampler(tmp_path / "s.npz", dustvae.fit_sampler(model, x, c))
    sampler = dustvae.load_sampler(tmp_path / "s.npz")
    np.testing.assert_array_equal(sampler["conditions"], c[:, 0].astype(np.float32))
    drawn = dustvae.sample(model, 30, np.random.default_rng(23), sampler=sampler)
    rng = np.random.default_rng(23)
    picked = rng.choice(sampler["conditions"], 30)[:, None]
    z = sampler["latent_mean"] + rng.standard_normal((30, SMALL["latent_dim"])) @ sampler["latent_chol"].T
    means = dustvae.apply_transfer(dustvae.decode(model, z.astype(np.float32), picked)[0], sampler["transfer_k"], sampler["transfer"])
    np.testing.assert_allclose(drawn, means + dustvae.residual_field(sampler, 30, (16, 16), rng, means), atol=1e-5)
    assert np.isin(picked, c.astype(np.float32)).all() and len(np.unique(picked)) > 10
    with pytest.raises(ValueError, match="conditional model"):
        dustvae.sample(model, 4, np.random.default_rng(0))
    plain = dustvae.fit_sampler(dustvae.build_dustvae(16, 16, SMALL, seed=21), x)
    assert "conditions" not in plain and {"residual_levels", "residual_scales", "transfer"} <= set(plain)
    stationary = dustvae.fit_sampler(dustvae.build_dustvae(16, 16, {**SMALL, "sampler_residual": "stationary"}, seed=21), x)
    assert not {"residual_scales", "transfer"} & set(stationary)
    with pytest.raises(ValueError, match="sampler_residual"):
        dustvae.build_dustvae(16, 16, {**SMALL, "sampler_residual": "local"})


@pytest.mark.parametrize("offset, variant", [(False, {}), (True, {}), (True, {"normalization": "group", "likelihood": "calibrated"})],
                         ids=["no-offset", "offset", "offset-groupnorm-calibrated"])
def test_a_trained_conditional_vae_follows_its_condition(tmp_path, offset, variant):
    """Patches whose mean is set by the condition (a unit Gaussian field plus 1.5 c): after a short
    training (20 epochs of 768 patches, its encoder seeing each patch without its mean), the
    sampler's draws at c = -1, 0, +1 have means in that order and apart by more than 1.2 without
    the condition's offset path (the truth: 3; measured 1.75) and within 0.3 of 3 with it
    (measured 2.92; 2.92 also with GroupNorm and the calibrated decoder, the default cvae's). A model that
    ignores its condition, or an encoder that smuggles the mean past
    it, generates the same brightness at every c."""
    from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations

    rng = np.random.default_rng(11)
    ell = np.arange(300)
    cov = FlatSkyCovariance(np.where(ell >= 2, (ell + 1.0) ** -2.0, 0.0), 16, 16, 30.0)
    n_train, n_val = 768, 32
    condition = rng.uniform(-1, 1, n_train + n_val)
    field = gaussian_realisations(cov, n_train + n_val, rng)
    x = (field / field.std() + 1.5 * condition[:, None, None]).astype(np.float32)
    c = condition[:, None]
    settings = {**SMALL, "beta": 0.1, "conditional": True, "encoder_input": "demeaned", "condition_offset": offset, **variant, "epochs": 20, "batch_size": 16,
                "learning_rate": 3e-3, "patience": 20, "augment": False}
    model, _ = dustvae.train(x[:n_train], x[n_train:], settings, 0, tmp_path / "ckpt", {"log_mean": 0.0, "log_std": 1.0},
                             condition_train=c[:n_train], condition_val=c[n_train:], condition_stats={"mean": 0.0, "std": 1.0})
    sampler = dustvae.fit_sampler(model, x[:n_train], c[:n_train])
    means = [dustvae.sample(model, 64, np.random.default_rng(1), condition=np.full((64, 1), v), sampler=sampler).mean() for v in (-1.0, 0.0, 1.0)]
    assert means[0] < means[1] < means[2] and means[2] - means[0] > 1.2, means
    if offset:
        assert means[2] - means[0] == pytest.approx(3.0, abs=0.3), means


def test_the_sampler_splits_into_its_network_and_residual_parts_and_runs_without_the_network():
    """sample_parts sums to sample's draws; sample_without_network puts (low-passed) training
    patches where the decoder means were, with the same residual; network_fraction reads, per
    |k| ring, the share of the variance each part carries."""
    model = dustvae.build_dustvae(16, 16, SMALL, seed=51)
    rng = np.random.default_rng(52)
    x = rng.standard_normal((60, 16, 16))
    sampler = dustvae.fit_sampler(model, x)
    network, residual = dustvae.sample_parts(model, 20, np.random.default_rng(53), sampler)
    np.testing.assert_allclose(network + residual, dustvae.sample(model, 20, np.random.default_rng(53), sampler=sampler), atol=1e-6)
    # Without the network: a transfer of 1 and no residual give the drawn training patches back.
    quiet = {**sampler, "residual_power": np.zeros((16, 16)), "residual_mean": 0.0, "residual_mean_std": 0.0}
    quiet.pop("residual_scales")
    k = np.arange(12) / 16
    del quiet["transfer"], quiet["transfer_k"]
    copies = dustvae.sample_without_network(quiet, x, 5, np.random.default_rng(54), transfer=(k, np.ones_like(k)))
    picks = np.random.default_rng(54).choice(len(x), 5)
    np.testing.assert_allclose(copies, x[picks], atol=1e-9)
    # A smooth network part and a white residual: the network carries the large scales only.
    smooth = dustvae.apply_transfer(rng.standard_normal((200, 16, 16)), k, np.exp(-((k / 0.1) ** 2)))
    cycles, fraction = dustvae.network_fraction(10 * smooth, rng.standard_normal((200, 16, 16)))
    assert cycles[1] == 1 and fraction[1] > 0.9 and np.nanmax(fraction[6:]) < 0.1
