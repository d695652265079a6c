"""The real Planck sky (cmbnn.realsky, rules/planck_sky.smk): inhomogeneous noise from the maps'
covariances, maps brought to the run's resolution, centres outside the mask, the comparison
spectra, and the whole `planck` preset DAG on a fake archive served from 127.0.0.1."""

import hashlib
import re
import threading
from pathlib import Path

import healpy as hp
import numpy as np
import pandas as pd
import pytest
import yaml

from archive_server import Archive
from cmbnn.analysis.powspec import FlatSpectra, linear_bin_edges
from cmbnn.cenn import realsky
from cmbnn.patches.sets import centers_in_mask
from cmbnn.planck import maps as planck_maps
from cmbnn.settings import RunSettings
from cmbnn.sky.noise import correlated_noise
from cmbnn.sky.simulate import observe
from conftest import ROOT
from fake_planck import BEAMS, pol_mask, write_fake_archive, write_table


def test_correlated_noise_has_the_per_pixel_covariance():
    n = 400_000
    ii, qq, uu, qu = 9.0, 4.0, 1.0, -1.2
    var = np.stack([np.full(n, ii), np.full(n, qq), np.full(n, uu), np.full(n, qu)])
    t, q, u = correlated_noise(var, np.random.default_rng(1))
    cov = np.cov(np.stack([t, q, u]))
    expected = np.array([[ii, 0, 0], [0, qq, qu], [0, qu, uu]])
    # Sampling error of a (co)variance from n draws: ~ sqrt(2/n) x scale (< 0.3% here).
    np.testing.assert_allclose(cov, expected, atol=0.02 * np.sqrt(ii * qq))


def test_noise_variance_reads_k_cmb2_nested_and_degrades_as_a_mean(tmp_path):
    nside = 16
    npix = hp.nside2npix(nside)
    rng = np.random.default_rng(3)
    var = rng.uniform(1.0, 4.0, (4, npix))  # uK^2, RING
    var[3] = 0.3 * np.sqrt(var[1] * var[2])
    var[1, 5] = 0.0  # an unobserved pixel
    cols = [(c, v * 1e-12, "K_CMB^2") for c, v in zip(planck_maps.COV_COLUMNS, var)]
    path = write_table(tmp_path / "HFI_SkyMap_143_2048_R3.01_full.fits", cols, nside, "FREQ-MAP")
    same, bad = planck_maps.noise_variance(path, nside)
    assert bad.sum() == 1 and bad[5]
    ok = ~bad
    np.testing.assert_allclose(same[:, ok], var[:, ok], rtol=1e-6)
    assert same[1, 5] == pytest.approx(np.median(var[1, ok]), rel=1e-6) and same[3, 5] == 0.0
    # nside 8: the variance of the mean of 4 children = their mean / 4.
    coarse, _ = planck_maps.noise_variance(path, nside // 2)
    nest = hp.reorder(var[2], r2n=True).reshape(-1, 4).mean(axis=1) / 4
    np.testing.assert_allclose(coarse[2], hp.reorder(nest, n2r=True), rtol=1e-6)


def test_observe_draws_the_noise_of_the_covariance_map(camb_cls):
    nside = 32
    npix = hp.nside2npix(nside)
    _, lat = hp.pix2ang(nside, np.arange(npix), lonlat=True)
    qq = np.where(lat > 0, 400.0, 100.0)  # uK^2: north twice the rms of the south
    variance = [np.stack([qq, qq, qq, np.zeros(npix)])]
    observation = {"beam_fwhm_arcmin": [30.0], "noise_T_uK_arcmin": [0.0], "noise_P_uK_arcmin": [0.0], "pixel_window": True, "scalar_eb": False}
    cmb = np.zeros((3, hp.Alm.getsize(3 * nside - 1)), complex)
    run = RunSettings(nside=nside, seed=1, freqs=[143.0], observation=observation)
    _, maps = observe(run, cmb, [], 0, noise_variance=variance)
    for hemisphere, expected in ((lat > 0, 20.0), (lat < 0, 10.0)):
        assert np.std(maps[0, 1, hemisphere]) == pytest.approx(expected, rel=0.03)
    _, white = observe(run, cmb, [], 0)
    assert np.all(white == 0)  # zero white-noise depth: the covariances were what added noise


def test_prepared_frequency_map_has_the_simulations_beam_and_pixel_window(tmp_path, camb_cls):
    nside_in, nside = 64, 32
    lmax = 3 * nside - 1
    alm = hp.synalm([camb_cls[k][: 3 * nside_in] for k in ("TT", "EE", "BB", "TE")], lmax=3 * nside_in - 1, new=True, )
    bl = hp.gauss_beam(np.radians(BEAMS[143] / 60), lmax=3 * nside_in - 1, pol=True)
    sky = hp.alm2map([hp.almxfl(a, bl[:, i]) for i, a in enumerate(alm)], nside_in, pol=True, pixwin=True)
    path = write_table(tmp_path / "HFI_SkyMap_143_2048_R3.01_full.fits", [(c, m * 1e-6, "K_CMB") for c, m in zip(planck_maps.STOKES, sky)], nside_in, "FREQ-MAP")
    maps, valid = planck_maps.prepare_frequency_map(path, nside, BEAMS[143])
    assert valid.all() and maps.shape == (3, hp.nside2npix(nside))
    # What the simulation writes at nside: the same alm x beam x pixel window of nside.
    pw = hp.pixwin(nside, pol=True, lmax=lmax)
    small = [hp.almxfl(hp.resize_alm(a, 3 * nside_in - 1, 3 * nside_in - 1, lmax, lmax), bl[: lmax + 1, i] * (pw[0] if i == 0 else pw[1])) for i, a in enumerate(alm)]
    expected = hp.alm2map(small, nside, pol=True)
    for got, want in zip(maps, expected):
        assert np.std(got - want) < 0.02 * np.std(want)


def test_centres_keep_the_whole_footprint_on_the_kept_sky():
    nside = 64
    keep = pol_mask(nside) > 0.5
    centers = centers_in_mask(20, keep, 20.0, 16, 16, 30.0, np.random.default_rng(2))
    from cmbnn.projection import patch_geometry

    theta, phi, _ = patch_geometry(centers, 16, 16, 30.0)
    assert keep[hp.ang2pix(nside, theta, phi)].all() and np.all(np.abs(centers[:, 1]) > 20.0)
    with pytest.raises(RuntimeError, match="placed only"):
        centers_in_mask(5, np.zeros_like(keep), 20.0, 16, 16, 30.0, np.random.default_rng(2), max_rounds=3)


def test_comparison_noise_bias_is_the_full_mission_noise_power():
    """hm_i = s + n_i, full = s + (n1 + n2) / 2: auto(full) - cross(hm1, hm2) is the white-noise
    power of (n1 + n2) / 2, sigma^2 / 2 x pixel area, and CENN = Commander gives ratio 1, difference 0."""
    h = w = 32
    reso = 10.0
    # Without B purification: its mask derivatives bias white noise near the Nyquist bin (not under test here).
    spectra = FlatSpectra(h, w, reso, linear_bin_edges(h, w, reso, 4), spin=2, aposize_deg=1.0, border_px=2, purify_b=False)
    rng = np.random.default_rng(5)
    n, sigma = 40, 3.0
    s = rng.normal(0, 10.0, (n, 2, h, w))  # white "CMB": only the noise bias is tested
    n1, n2 = rng.normal(0, sigma, (2, n, 2, h, w))
    cenn = {"full": s + (n1 + n2) / 2, "hm1": s + n1, "hm2": s + n2}
    bp = realsky.comparison_bandpowers(spectra, cenn, cenn["full"], smica=s)
    expected = sigma**2 / 2 * np.radians(reso / 60) ** 2  # white-noise C_ell = variance x pixel solid angle
    nb = bp["noise_bias"].mean(axis=0)
    err = bp["noise_bias"].std(axis=0, ddof=1) / np.sqrt(n)
    for k in (0, 3):  # EE, BB
        assert np.all(np.abs(nb[k] - expected) < 4 * err[k] + 0.05 * expected), (nb[k], expected)
    np.testing.assert_allclose(bp["cenn_minus_commander"], 0.0, atol=1e-9 * np.abs(bp["cenn"]).max())
    table = realsky.comparison_table(spectra, bp)
    ratio = table[table.quantity == "ratio_cenn_x_commander_to_commander"]
    np.testing.assert_allclose(ratio.value, 1.0, rtol=1e-10)
    assert set(table.spectrum) == {"EE", "BB"}


def test_ratio_of_means_error_matches_the_scatter_of_ratios_over_independent_sets():
    rng = np.random.default_rng(0)
    b = rng.normal(10.0, 1.0, (200, 100, 1))  # 200 independent sets of 100 patches
    a = 2 * b + rng.normal(0, 1.0, b.shape)  # correlated with b, as spectra of the same patches are
    results = [realsky.ratio_of_means(a[i], b[i]) for i in range(len(a))]
    ratios = np.array([r[0] for r, _ in results])
    errors = np.array([e[0] for _, e in results])
    assert ratios.mean() == pytest.approx(2.0, abs=3 * ratios.std() / np.sqrt(len(ratios)))
    assert errors.mean() == pytest.approx(ratios.std(ddof=1), rel=0.15)
    assert realsky.ratio_of_means(2 * b[0], b[0])[1][0] == pytest.approx(0.0, abs=1e-12)


def test_hfi_file_names_and_bad_frequencies():
    assert planck_maps.hfi_map_file(143, "hm2") == "HFI_SkyMap_143_2048_R3.01_halfmission-2.fits"
    with pytest.raises(ValueError, match="no HFI frequency map at 70 GHz"):
        planck_maps.hfi_map_file(70)


# ----- the whole preset on a fake archive -------------------------------------------------------


@pytest.fixture(scope="module")
def fake_archive(tmp_path_factory, camb_cls):
    directory = tmp_path_factory.mktemp("pla")
    files = write_fake_archive(directory, camb_cls, nside=128)
    srv = Archive()
    srv.files = {f"/{name}": Path(path).read_bytes() for name, path in files.items()}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, files
    srv.shutdown()
    srv.server_close()


def test_planck_preset_dag_runs_end_to_end_on_a_fake_archive(fake_archive, tmp_path, tiny_snakemake, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    srv, files = fake_archive
    # A manifest with the fake files' true sizes and checksums: every download is verified.
    manifest = {"files": {}}
    for name, path in files.items():
        data = Path(path).read_bytes()
        manifest["files"][name] = {"paths": {}, "size": len(data), "md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(), "used_for": "test"}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    tiny = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    overlay = {
        # Back to the tiny geometry after the preset's nside 1024 (the fake files are nside 128).
        "nside": tiny["nside"],
        "patches": {"reso_arcmin": tiny["patches"]["reso_arcmin"]},
        "planck": {
            "manifest": str(tmp_path / "manifest.yaml"),
            "mirror": "local",
            "base_urls": {"local": srv.url},
            "retries": 1,
            "backoff_s": 0.01,
            "real_sky": {"n_patches": 4},
        },
        # The one-epoch CosmoVAE on this fake sky loses to zero fill on Galactic holes (measured:
        # its composite mean 1.6e7 uK^2 against 1.4e4): not what this test is about.
        "inpainting": {"check_against_zero_fill": False},
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    configs = [ROOT / "config" / "planck.yaml", tmp_path / "overlay.yaml"]
    dry = tiny_snakemake(tmp_path, "-n", configs=configs)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert re.search(r"^download_planck\s+15$", out, re.M), out[-3000:]
    assert re.search(r"^planck_comparison\s+1$", out, re.M) and re.search(r"^predict_cenn_planck\s+3$", out, re.M)
    tiny_snakemake(tmp_path, configs=configs, check=True)
    # Every planned file came from the server once and matches its checksum.
    needed = {name for name in files if "Mask-Int" not in name}  # the preset masks with the polarisation mask
    assert {path for path, _ in srv.requests} == {f"/{name}" for name in needed}
    for name in needed:
        got = tmp_path / "resources" / "planck" / name
        assert hashlib.sha256(got.read_bytes()).hexdigest() == manifest["files"][name]["sha256"]
    # The simulations drew the maps' own inhomogeneous noise.
    assert (tmp_path / "results" / "planck" / "noise_variance_143GHz.fits").exists()
    table = pd.read_csv(tmp_path / "results" / "planck" / "comparison.tsv", sep="\t", comment="#")
    quantities = set(table.quantity)
    assert {"cenn", "cenn_hm_cross", "noise_bias", "commander", "smica", "cenn_minus_commander", "ratio_cenn_hm_cross_to_commander"} <= quantities
    assert (table.n_patches[table.quantity == "commander"] == 4).all()
    # SMICA and Commander hold the same CMB (plus little noise) at the same centres: their EE agrees,
    # which fails if the products were cut at different places, rotated differently or mis-scaled.
    ratio = table[(table.quantity == "ratio_smica_to_commander") & (table.spectrum == "EE")]
    np.testing.assert_allclose(ratio.value, 1.0, atol=0.03)
    assert (tmp_path / "results" / "figures" / "planck_comparison.png").stat().st_size > 10_000
    # Rerunning plans nothing: no second download, nothing out of date.
    again = tiny_snakemake(tmp_path, "-n", configs=configs)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_documented_preset_command_plans_downloads_and_the_comparison(tmp_path):
    """`snakemake -n --configfile config/planck.yaml`, as README says, on a fresh directory (with -d
    elsewhere the Snakefile's own configfile path is relative to it, so the default is named too)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "--configfile", str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "planck.yaml")],
        capture_output=True, text=True, timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for rule, count in (("download_planck", 15), ("planck_frequency_map", 9), ("planck_noise_variance", 3), ("predict_cenn_planck", 3), ("planck_comparison", 1)):
        assert re.search(rf"^{rule}\s+{count}$", out, re.M), (rule, out[-3000:])
    assert "HFI_SkyMap_217_2048_R3.01_halfmission-2.fits" in out
