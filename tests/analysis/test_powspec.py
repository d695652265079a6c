import numpy as np
import pytest

nmt = pytest.importorskip("pymaster")

from cmbnn.analysis.powspec import ARCMIN, FlatSpectra, bandpowers, linear_bin_edges  # noqa: E402

SIDE, RESO = 64, 6.0
LX = SIDE * RESO * ARCMIN
ELL = np.arange(4000, dtype=np.float64)


def input_spectra():
    """Smooth EE and BB (uK^2) with a Gaussian beam so the patch resolution is not aliased."""
    shape = np.exp(-((ELL * 6.0 * ARCMIN) ** 2) / 2) * 1e-3 / (1 + (ELL / 300.0) ** 1.5)
    return shape, 0.3 * shape


def gaussian_qu_patches(n, ee, bb, seed):
    cls = [ee, np.zeros_like(ee), bb]
    return np.array([nmt.synfast_flat(SIDE, SIDE, LX, LX, cls, [2], seed=seed + i) for i in range(n)])


@pytest.fixture(scope="module")
def spectra():
    return FlatSpectra(SIDE, SIDE, RESO, linear_bin_edges(SIDE, SIDE, RESO, 6), spin=2, aposize_deg=1.5, border_px=2)


def test_purified_bandpowers_recover_input_within_scatter(spectra):
    ee, bb = input_spectra()
    patches = gaussian_qu_patches(30, ee, bb, seed=100)
    bp = bandpowers(spectra, patches)
    theory = spectra.theory(ELL, [ee, np.zeros_like(ee), np.zeros_like(ee), bb])
    mean, err = bp.mean(axis=0), bp.std(axis=0, ddof=1) / np.sqrt(len(bp))
    for k, name in ((0, "EE"), (3, "BB")):
        z = (mean[k] - theory[k]) / err[k]
        assert np.all(np.abs(z) < 3.5), (name, z)
    # EB is consistent with zero.
    assert np.all(np.abs(mean[1] / err[1]) < 3.5)


def test_purification_keeps_e_to_b_leakage_low(spectra):
    ee, _ = input_spectra()
    patches = gaussian_qu_patches(10, ee, np.zeros_like(ee), seed=200)
    bp = bandpowers(spectra, patches).mean(axis=0)
    assert np.all(np.abs(bp[3] / bp[0]) < 1e-3), bp[3] / bp[0]
    # Without purification the same patches leak far more E into B.
    plain = FlatSpectra(SIDE, SIDE, RESO, linear_bin_edges(SIDE, SIDE, RESO, 6), spin=2, aposize_deg=1.5, border_px=2, purify_b=False)
    leak = bandpowers(plain, patches).mean(axis=0)
    assert np.max(np.abs(leak[3] / leak[0])) > 10 * np.max(np.abs(bp[3] / bp[0]))


def test_reused_workspace_equals_recomputing_it(spectra):
    ee, bb = input_spectra()
    patches = gaussian_qu_patches(3, ee, bb, seed=300)
    edges = linear_bin_edges(SIDE, SIDE, RESO, 6)
    for patch in patches:
        fresh = FlatSpectra(SIDE, SIDE, RESO, edges, spin=2, aposize_deg=1.5, border_px=2)
        np.testing.assert_allclose(spectra(patch), fresh(patch), rtol=1e-10, atol=0)


def test_spin0_scalar_patches():
    tt = 1e-2 * np.exp(-((ELL * 6.0 * ARCMIN) ** 2) / 2)
    maps = np.array([nmt.synfast_flat(SIDE, SIDE, LX, LX, [tt], [0], seed=1000 + i)[0] for i in range(40)])
    s0 = FlatSpectra(SIDE, SIDE, RESO, linear_bin_edges(SIDE, SIDE, RESO, 5), spin=0, aposize_deg=1.5, border_px=2)
    bp = bandpowers(s0, maps)
    theory = s0.theory(ELL, [tt])[0]
    z = (bp.mean(axis=0)[0] - theory) / (bp.std(axis=0, ddof=1)[0] / np.sqrt(len(bp)))
    assert np.all(np.abs(z) < 4), z
    # A 10% normalisation error would not pass.
    z_bad = (bp.mean(axis=0)[0] - 1.1 * theory) / (bp.std(axis=0, ddof=1)[0] / np.sqrt(len(bp)))
    assert np.max(np.abs(z_bad)) > 4


def test_saved_workspace_reads_back_identically(spectra, tmp_path):
    ee, bb = input_spectra()
    patch = gaussian_qu_patches(1, ee, bb, seed=500)[0]
    spectra.save(tmp_path / "ws.fits")
    loaded = FlatSpectra(SIDE, SIDE, RESO, linear_bin_edges(SIDE, SIDE, RESO, 6), spin=2, aposize_deg=1.5, border_px=2, workspace_file=tmp_path / "ws.fits")
    np.testing.assert_allclose(loaded(patch), spectra(patch), rtol=1e-12, atol=0)


def test_residual_bandpowers_from_autos_and_cross_equal_the_direct_ones(spectra):
    """The evaluation derives residual spectra from autos and the cross (bilinearity, purified
    fields included) instead of building a field of the residual: both must agree."""
    from cmbnn.analysis.powspec import residual_bandpowers

    ee, bb = input_spectra()
    label = gaussian_qu_patches(3, ee, bb, seed=600)
    output = 0.7 * label + gaussian_qu_patches(3, 0.5 * ee, 2 * bb, seed=700)
    direct = bandpowers(spectra, output - label)
    derived = residual_bandpowers(bandpowers(spectra, output), bandpowers(spectra, label), bandpowers(spectra, output, label), 2)
    np.testing.assert_allclose(derived, direct, rtol=1e-8, atol=1e-10 * np.abs(direct).max())
    # Forgetting the EB/BE swap of the reversed cross breaks the EB entries.
    wrong = bandpowers(spectra, output) + bandpowers(spectra, label) - 2 * bandpowers(spectra, output, label)
    assert not np.allclose(wrong[:, 1], direct[:, 1], rtol=1e-3, atol=0)
    s0 = FlatSpectra(SIDE, SIDE, RESO, linear_bin_edges(SIDE, SIDE, RESO, 5), spin=0, aposize_deg=1.5, border_px=2)
    a, b = label[:, 0], output[:, 1]
    np.testing.assert_allclose(
        residual_bandpowers(bandpowers(s0, a), bandpowers(s0, b), bandpowers(s0, a, b), 0), bandpowers(s0, a - b), rtol=1e-8, atol=1e-10 * np.abs(bandpowers(s0, a - b)).max()
    )
