"""Amplitude and structure of dust patches apart: texture statistics blind to each patch's
brightness, distances that see the texture."""

import numpy as np
import pytest

from cmbnn.dust.structure import equal_subsets, peak_counts, standardise_each, structure_features, structure_table

RESO = 30.0  # arcmin: 32 px patches of 16 deg, room for the 1 deg apodisation


def red_fields(rng, n, size=32, slope=3.0):
    """Gaussian fields with power ~ k^-slope (periodic, unit variance)."""
    ky, kx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    k = np.hypot(kx, ky)
    amp = np.where(k > 0, np.maximum(k, 1.0 / size) ** (-slope / 2), 0.0)
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, size, size))) * amp).real
    return f / f.std(axis=(1, 2), keepdims=True)


def test_standardise_each_splits_brightness_from_texture():
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * red_fields(rng, 5)
    u, amplitude = standardise_each(x)
    assert np.allclose(u.mean(axis=(1, 2)), 0) and np.allclose(u.std(axis=(1, 2)), 1)
    assert np.allclose(amplitude, [[3.0, 2.0]] * 5, atol=1e-12)
    with pytest.raises(ValueError, match="constant"):
        standardise_each(np.ones((2, 8, 8)))


def test_peak_counts_match_a_direct_count():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((3, 12, 12))
    counts = peak_counts(u, levels=(-10.0, 1.0))
    for i, m in enumerate(u):
        peaks = [m[y, x] for y in range(1, 11) for x in range(1, 11) if all(m[y, x] > m[y + dy, x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)]
        assert counts[i, 0] == len(peaks) and counts[i, 1] == sum(p > 1.0 for p in peaks)


def test_structure_features_do_not_see_a_patch_brightness_change():
    rng = np.random.default_rng(2)
    x = red_fields(rng, 6)
    brighter = 1.7 * x + rng.normal(0, 2, size=(6, 1, 1))  # each patch rescaled and offset
    f, _ = structure_features(x, RESO)
    g, _ = structure_features(brighter, RESO)
    for name in f:
        if name == "amplitude":
            assert not np.allclose(f[name], g[name])
        else:
            assert np.allclose(f[name], g[name], atol=1e-9), name


def test_structure_table_sees_texture_and_brightness_apart():
    rng = np.random.default_rng(3)
    n = 60
    real = red_fields(rng, n)
    same_law = red_fields(rng, n)
    ridges = np.exp(-2.0 * red_fields(rng, n, slope=2.5) ** 2)  # thin bright lines on the zeros of a field
    brighter = red_fields(rng, n) + rng.normal(1.0, 0.5, size=(n, 1, 1))
    feats = {name: structure_features(v, RESO)[0] for name, v in (("test", real), ("same law", same_law), ("ridges", ridges), ("brighter", brighter))}
    table = structure_table(feats, "test", rng, n_permutations=100).set_index(["set", "statistic"])
    structure = ["band powers", "one-point", "V0", "V1", "V2", "peaks"]
    assert (table.loc["same law"].loc[structure, "z"].abs() < 4).all()
    assert (table.loc["ridges"].loc[["one-point", "V0", "V1", "V2"], "z"] > 5).all()
    assert table.loc[("brighter", "amplitude"), "z"] > 5
    assert (table.loc["brighter"].loc[structure, "z"].abs() < 4).all()
    # ForSE's band overlap: high for one law, low for the ridges.
    assert table.loc[("same law", "V1"), "overlap"] > 0.7 > table.loc[("ridges", "V1"), "overlap"]


def test_equal_subsets_cut_every_set_to_the_smallest():
    rng = np.random.default_rng(4)
    sets, n = equal_subsets({"a": np.arange(10), "b": np.arange(4), "c": np.arange(7)}, rng)
    assert n == 4 and all(len(v) == 4 for v in sets.values())
    assert np.array_equal(sets["b"], np.arange(4)) and len(set(sets["a"])) == 4


def test_band_powers_follow_the_spectrum_and_see_no_edge_seam():
    from cmbnn.dust.structure import band_powers

    rng = np.random.default_rng(5)
    periodic = red_fields(rng, 40, size=64, slope=3.0)
    ell, log_p = band_powers(periodic, RESO, n_bins=6)
    assert np.all(np.diff(ell) > 0) and np.all(np.isfinite(log_p))
    assert np.polyfit(np.log10(ell), log_p.mean(axis=0), 1)[0] == pytest.approx(-3.0, abs=0.4)
    # A patch cut from a larger field is not periodic: a bare FFT puts its edge jump into the
    # small scales (here the top bins' power rises by a decade against the periodic field's);
    # through the window the cut patches' spectrum has the periodic one's shape.
    steep = red_fields(rng, 40, size=64, slope=4.0)
    cut = red_fields(rng, 40, size=128, slope=4.0)[:, :64, :64]
    difference = band_powers(cut / cut.std(axis=(1, 2), keepdims=True), RESO, 6)[1].mean(axis=0) - band_powers(steep, RESO, 6)[1].mean(axis=0)
    assert np.ptp(difference[1:]) < 0.15
