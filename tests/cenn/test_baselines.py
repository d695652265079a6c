import numpy as np
import pytest

from cmbnn.cenn.baselines import ilc, ilc_weights, patch_covariance
from cmbnn.sky.foregrounds import dust_sed, synchrotron_sed

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


# ---------------------------------------------------------------------------
# Harmonic ILC
# ---------------------------------------------------------------------------
from cmbnn.analysis.flatsky import eb_to_qu, fourier_grid, gaussian_beam_ell, qu_to_eb  # noqa: E402
from cmbnn.cenn.baselines import ARCMIN, HarmonicILC  # noqa: E402

BEAMS = np.array([9.68, 7.30, 5.02])  # arcmin, the default Planck-like beams; label at 143 GHz
SIDE, RESO = 64, 5.0


def cmb_cl(ell):
    return 2e3 / (ell + 60.0) ** 2


def periodic_fields(n, cl, rng, side=SIDE, reso=RESO):
    """Fourier modes (n, side, side) of periodic Gaussian fields with spectrum cl(ell), C_ell units."""
    ell, _ = fourier_grid(side, side, reso)
    white = np.fft.fft2(rng.standard_normal((n, side, side)), axes=(1, 2))
    return white * np.sqrt(cl(ell) / (reso * ARCMIN) ** 2)


def to_map(modes):
    return np.fft.ifft2(modes, axes=(1, 2)).real


def unequal_beam_sky(n, rng, spin, noise=0.05):
    """Channels = beam_nu * (CMB + SED_nu * foreground) + white noise, on periodic patches.

    Returns ({field: (n, H, W, 3)} inputs, {field: (n, H, W, 1)} labels at the 143 GHz beam).
    """
    ell, phi = fourier_grid(SIDE, SIDE, RESO)
    sed = np.array([0.6, 1.0, 2.5])
    comps = 2 if spin == 2 else 1
    cmb = [periodic_fields(n, cmb_cl, rng) for _ in range(comps)]
    fg = [periodic_fields(n, lambda l: 5e4 / (l + 30.0) ** 2.4, rng) for _ in range(comps)]
    fields = ("Q", "U") if spin == 2 else ("T",)

    def maps(modes_by_comp):
        return dict(zip(fields, map(to_map, eb_to_qu(*modes_by_comp, phi) if spin == 2 else modes_by_comp)))

    channels = []
    for k, fwhm in enumerate(BEAMS):
        b = gaussian_beam_ell(fwhm, ell, spin)
        channels.append(maps([b * (c + sed[k] * f) for c, f in zip(cmb, fg)]))
    inputs = {f: np.stack([ch[f] for ch in channels], axis=-1) + noise * rng.standard_normal((n, SIDE, SIDE, 3)) for f in fields}
    b_label = gaussian_beam_ell(BEAMS[1], ell, spin)
    labels = {f: m[..., None] for f, m in maps([b_label * c for c in cmb]).items()}
    return inputs, labels


def flat_theory(cl, lmax=4000):
    return cl(np.arange(lmax + 1.0))


@pytest.mark.parametrize("group", ["T", "QU"])
def test_harmonic_ilc_with_unequal_beams_recovers_the_cmb_at_the_label_beam(group):
    """Known answer: one foreground with a fixed SED, channels with different beams, little noise.

    Brought to the label beam, the foreground is the same map in every channel up to its SED,
    so the weights of each multipole bin null it and the output is the CMB at the 143 GHz beam.
    The pixel ILC cannot: one weight set for all scales meets three different beams.
    """
    rng = np.random.default_rng(7)
    spin = 2 if group == "QU" else 0
    train_x, train_y = unequal_beam_sky(160, rng, spin)
    test_x, test_y = unequal_beam_sky(10, rng, spin)
    theory = {c: flat_theory(lambda l: cmb_cl(l) * gaussian_beam_ell(BEAMS[1], l, spin) ** 2) for c in ("T", "E", "B")}
    hilc = HarmonicILC(group, BEAMS, BEAMS[1], RESO, SIDE, SIDE, edge="periodic", delta_ell=150).fit(train_x, train_y, theory)
    out = hilc.apply(test_x)
    for field, label in test_y.items():
        # What is left is the finite-sample error of the weights (it shrinks with more training patches).
        rel = np.std(out[field] - label) / np.std(label)
        assert rel < 0.03, (field, rel)
        # Unit response to the CMB in every bin, and the foreground SED nulled where it dominates.
        np.testing.assert_allclose(hilc.weights.sum(axis=-1), 1.0, atol=1e-10)
        pixel, _ = ilc(test_x[field])
        assert np.std(pixel - label) / np.std(label) > 5 * rel
    # Swapping the beam ratio (label/channel -> channel/label) would not recover the label.
    wrong = HarmonicILC(group, BEAMS, BEAMS[1], RESO, SIDE, SIDE, edge="periodic", delta_ell=150)
    wrong.to_label = 1.0 / wrong.to_label
    wrong.fit(train_x, train_y, theory)
    field = next(iter(test_y))
    assert np.std(wrong.apply(test_x)[field] - test_y[field]) / np.std(test_y[field]) > 0.1


def test_harmonic_ilc_wiener_filter_measures_the_noise_and_beats_the_ilc():
    """Two channels, equal beams, white noise: the ILC output noise is the inverse-variance
    combination, the fitted N per bin recovers it, and S/(S+N) gives the Wiener error."""
    rng = np.random.default_rng(3)
    sigma = np.array([8.0, 12.0])  # uK per pixel
    beams = np.array([7.3, 7.3])

    def sky(n):
        ell, _ = fourier_grid(SIDE, SIDE, RESO)
        label = to_map(gaussian_beam_ell(7.3, ell) * periodic_fields(n, cmb_cl, rng))
        x = label[..., None] + rng.standard_normal((n, SIDE, SIDE, 2)) * sigma
        return {"T": x}, {"T": label[..., None]}

    train_x, train_y = sky(60)
    test_x, test_y = sky(30)
    s_cl = flat_theory(lambda l: cmb_cl(l) * gaussian_beam_ell(7.3, l) ** 2)
    hilc = HarmonicILC("T", beams, 7.3, RESO, SIDE, SIDE, edge="periodic", delta_ell=100).fit(train_x, train_y, {"T": s_cl})
    n_white = (RESO * ARCMIN) ** 2 / np.sum(sigma**-2.0)  # C_ell of the inverse-variance combined noise
    high = hilc.signal_power[0] < 0.1 * n_white  # noise-dominated bins measure N cleanly
    # There the weights are inverse-noise weights (where the CMB dominates, its chance
    # correlation with the noise decides them, harmlessly: any unit-response weights keep the CMB).
    np.testing.assert_allclose(hilc.weights[0][high], np.broadcast_to(sigma**-2 / np.sum(sigma**-2), hilc.weights[0][high].shape), atol=0.03)
    # Within the sampling error of each bin (a real map has half as many independent modes).
    z = (hilc.noise_power[0][high] / n_white - 1) / np.sqrt(4.0 / hilc.n_modes[high])
    assert np.all(np.abs(z) < 4), z
    assert np.average(hilc.noise_power[0][high], weights=hilc.n_modes[high]) == pytest.approx(n_white, rel=0.02)
    plain = hilc.apply(test_x)["T"]
    wiener = hilc.apply(test_x, wiener=True)["T"]
    mse_plain = np.mean((plain - test_y["T"]) ** 2)
    mse_wiener = np.mean((wiener - test_y["T"]) ** 2)
    # Theoretical Wiener error: sum over modes of S N / (S + N), as a pixel variance.
    ell, _ = fourier_grid(SIDE, SIDE, RESO)
    s = np.interp(ell, np.arange(s_cl.size), s_cl)
    expected = np.sum(s * n_white / (s + n_white)) / (SIDE * SIDE * (RESO * ARCMIN) ** 2)
    assert mse_wiener < 0.5 * mse_plain
    assert mse_wiener == pytest.approx(expected, rel=0.08)


def test_fourier_e_b_follow_the_patch_convention(camb_cls):
    """E and B from patch Q/U Fourier modes equal the Fourier modes of the scalar E and B patches
    of the same sky (which fixes sign and axes), and an E-only sky gives ~no B."""
    from cmbnn import projection as proj
    from cmbnn.harmonics import gaussian_beam, synalm_teb
    from cmbnn.patches.cutting import fields_from_alm
    from cmbnn.seeding import rng_for

    lmax, side, reso = 1500, 64, 5.0
    b2 = gaussian_beam(10.0, lmax)[:, 1] ** 2
    ee = camb_cls["EE"][: lmax + 1] * b2
    alm = synalm_teb({"EE": ee, "BB": 0.5 * ee}, lmax, rng_for(3, "eb-convention"))
    e_only = alm.copy()
    e_only[2] = 0
    centers = np.array([[30.0, 50.0], [200.0, -70.0], [100.0, 10.0], [300.0, 80.0]])
    theta, phi, psi = proj.patch_geometry(centers, side, side, reso)
    v = fields_from_alm(["Q", "U", "E", "B"], alm, lmax, theta, phi, psi)
    v0 = fields_from_alm(["Q", "U"], e_only, lmax, theta, phi, psi)
    window = np.outer(np.hanning(side), np.hanning(side))  # the test isolates the convention from edge effects
    ft = {k: np.fft.fft2(m * window, axes=(1, 2)) for k, m in v.items()}
    ell, phi_k = fourier_grid(side, side, reso)
    sel = (ell > 200) & (ell < 1200)

    def corr(a, b):
        a, b = a[:, sel], b[:, sel]
        return np.real(np.vdot(a, b)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real)

    e, b = qu_to_eb(ft["Q"], ft["U"], phi_k)
    assert corr(e, ft["E"]) > 0.97 and corr(b, ft["B"]) > 0.9
    # Columns run westward: taking them as +x mixes E and B.
    wrong_phi = np.pi - phi_k  # atan2(k_north, k_column) instead of atan2(k_north, k_east)
    e_wrong, _ = qu_to_eb(ft["Q"], ft["U"], wrong_phi)
    assert corr(e_wrong, ft["E"]) < 0.5
    e0, b0 = qu_to_eb(*(np.fft.fft2(v0[k] * window, axes=(1, 2)) for k in "QU"), phi_k)
    # The window's own E-to-B leakage falls as 1 / (ell x window width)^2: look above ell = 500.
    high = (ell > 500) & (ell < 1200)
    leak = np.sum(np.abs(b0[:, high]) ** 2) / np.sum(np.abs(e0[:, high]) ** 2)
    _, b_wrong = qu_to_eb(*(np.fft.fft2(v0[k] * window, axes=(1, 2)) for k in "QU"), wrong_phi)
    leak_wrong = np.sum(np.abs(b_wrong[:, high]) ** 2) / np.sum(np.abs(e0[:, high]) ** 2)
    assert leak < 0.02 and leak_wrong > 0.3, (leak, leak_wrong)
    # Round trip Q/U -> E/B -> Q/U is exact.
    q, u = eb_to_qu(e, b, phi_k)
    np.testing.assert_allclose(q, ft["Q"], atol=1e-9 * np.abs(ft["Q"]).max())
    np.testing.assert_allclose(u, ft["U"], atol=1e-9 * np.abs(ft["U"]).max())


def test_harmonic_ilc_of_scalar_b_patches_uses_the_polarisation_beam():
    """Scalar E or B patches are spin-0 maps smoothed by the polarisation beam (healpy's spin-2
    factor); the group B fits and applies like T, with its own component name."""
    rng = np.random.default_rng(9)
    train_x, train_y = unequal_beam_sky(160, rng, 0)
    test_x, test_y = unequal_beam_sky(5, rng, 0)
    rename = lambda d: {"B": d["T"]}  # noqa: E731
    s_cl = flat_theory(lambda l: cmb_cl(l) * gaussian_beam_ell(BEAMS[1], l, 2) ** 2)
    hilc = HarmonicILC("B", BEAMS, BEAMS[1], RESO, SIDE, SIDE, edge="periodic", delta_ell=150).fit(rename(train_x), rename(train_y), {"B": s_cl})
    assert hilc.components == ("B",)
    ell, _ = fourier_grid(SIDE, SIDE, RESO)
    np.testing.assert_allclose(hilc.to_label[..., 0], gaussian_beam_ell(BEAMS[1], ell, 2) / gaussian_beam_ell(BEAMS[0], ell, 2))
    out = hilc.apply(rename(test_x))["B"]
    assert np.std(out - test_y["T"]) / np.std(test_y["T"]) < 0.03


@pytest.mark.parametrize("edge", ["periodic", "mirror", "zero"])
def test_harmonic_ilc_state_round_trip_and_edges(edge):
    rng = np.random.default_rng(5)
    x, y = unequal_beam_sky(8, rng, 2)
    theory = {c: flat_theory(lambda l: cmb_cl(l) * gaussian_beam_ell(BEAMS[1], l, 2) ** 2) for c in ("E", "B")}
    hilc = HarmonicILC("QU", BEAMS, BEAMS[1], RESO, SIDE, SIDE, edge=edge, delta_ell=80).fit(x, y, theory)
    again = HarmonicILC.from_state(*hilc.state())
    for wiener in (False, True):
        a, b = hilc.apply(x, wiener=wiener), again.apply(x, wiener=wiener)
        assert a["Q"].shape == (8, SIDE, SIDE, 1)
        np.testing.assert_array_equal(a["Q"], b["Q"])
        np.testing.assert_array_equal(a["U"], b["U"])
