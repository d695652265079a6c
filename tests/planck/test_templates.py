"""Planck foreground templates in the simulation (foregrounds.dust.template: gnilc,
foregrounds.synchrotron.template: commander), on tiny files written in the archive's layout."""

import re

import healpy as hp
import numpy as np
import pytest
import yaml
from astropy.io import fits

from cmbnn import units
from cmbnn.harmonics import alm_lm, unit_gaussian_alm
from cmbnn.planck.archive import FOREGROUND_TEMPLATES, change_resolution
from cmbnn.seeding import rng_for
from cmbnn.sky import foregrounds as fg
from conftest import ROOT

NSIDE = 32
LMAX = 3 * NSIDE - 1
GNILC = FOREGROUND_TEMPLATES["dust"]["gnilc"]["file"]
COMMANDER = FOREGROUND_TEMPLATES["synchrotron"]["commander"]["file"]


def default_settings(component):
    return dict(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["foregrounds"][component])


def smooth_maps(seed, n, nside=NSIDE, scale=1.0):
    rng = np.random.default_rng(seed)
    ell = np.arange(3 * nside)
    cl = np.zeros(3 * nside)
    cl[2:] = (ell[2:] / 10.0) ** -2.5
    # Seeded draws (hp.synfast would use numpy's global state and ignore the seed).
    alm = unit_gaussian_alm(ell[-1], n, rng) * np.sqrt(cl)[alm_lm(ell[-1])[0]]
    return np.stack([scale * hp.alm2map(a, nside) + (3 * scale if i == 0 and n == 3 else 0) for i, a in enumerate(alm)])


def write_template(path, columns, ring_maps, unit):
    """A PLA-like template: NESTED binary table, columns by the archive's names, TUNIT = unit."""
    nested = [hp.reorder(m, r2n=True) for m in ring_maps]
    cols = [fits.Column(name=c, format="E", unit=unit, array=m.astype(np.float32)) for c, m in zip(columns, nested)]
    hdu = fits.BinTableHDU.from_columns(cols, name="COMP-MAP")
    hdu.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": NSIDE, "INDXSCHM": "IMPLICIT", "COORDSYS": "GALACTIC"})
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    # What the reader sees: float32 storage.
    return np.stack([m.astype(np.float32).astype(np.float64) for m in ring_maps])


def test_gnilc_dust_is_the_template_at_353_and_times_each_pixels_sed_elsewhere(tmp_path):
    k_cmb = smooth_maps(1, 3, scale=1e-4)  # K_CMB, like the GNILC file
    k_cmb = write_template(tmp_path / GNILC, ("I_STOKES", "Q_STOKES", "U_STOKES"), k_cmb, "K_CMB")
    settings = {**default_settings("dust"), "template": "gnilc", "template_file": str(tmp_path / GNILC)}
    freqs = [100.0, 353.0]
    templates, sed, extra, amplitudes = fg.component_alm("dust", settings, NSIDE, LMAX, freqs, rng_for(1, "fg"), 20.0)
    expected = change_resolution(k_cmb * 1e6, 80.0, 80.0, NSIDE)  # uK_CMB, the template's 80' beam kept
    np.testing.assert_array_equal(sed, np.eye(2))
    # 353 GHz: the template itself.
    ref_alm = hp.map2alm(expected, lmax=LMAX, pol=True, iter=1)
    np.testing.assert_allclose(templates[1], ref_alm, rtol=0, atol=1e-6 * np.abs(ref_alm).max())
    # 100 GHz: the template times each pixel's own modified black body.
    beta = hp.alm2map(extra["beta_alm"], NSIDE, lmax=settings["sed_lmax"])
    temp = hp.alm2map(extra["temperature_alm"], NSIDE, lmax=settings["sed_lmax"])
    assert np.std(beta) > 0.05 and np.std(temp) > 0.5
    scaled = expected * fg.dust_sed(100.0, beta, temp, 353.0)
    alm_100 = hp.map2alm(scaled, lmax=LMAX, pol=True, iter=1)
    np.testing.assert_allclose(templates[0], alm_100, rtol=0, atol=1e-6 * np.abs(alm_100).max())
    # Not a single SED: the ratio varies from pixel to pixel.
    got_100 = hp.alm2map(templates[0], NSIDE, lmax=LMAX, pol=True)
    assert not np.allclose(got_100[1], expected[1] * np.median(fg.dust_sed(100.0, beta, temp, 353.0)), rtol=0.02)
    # Amplitudes: nothing configured, the template's measured.
    assert all(np.isnan(a["configured_d80"]) and np.isfinite(a["realised_d80"]) and a["realised_d80"] > 0 for a in amplitudes)


def test_commander_synchrotron_replaces_q_u_keeps_the_modelled_intensity(tmp_path):
    uk_rj = smooth_maps(2, 2, scale=5.0)
    uk_rj = write_template(tmp_path / COMMANDER, ("Q_STOKES", "U_STOKES"), uk_rj, "uK_RJ")
    base = {**default_settings("synchrotron"), "beta_scatter": 0.0}
    settings = {**base, "template": "commander", "template_file": str(tmp_path / COMMANDER)}
    freqs = [30.0, 100.0]
    templates, sed, _, _ = fg.component_alm("synchrotron", settings, NSIDE, LMAX, freqs, rng_for(2, "fg"), 20.0)
    gaussian, _, _, _ = fg.component_alm("synchrotron", base, NSIDE, LMAX, freqs, rng_for(2, "fg"), 20.0)
    assert templates.shape[0] == 1  # one SED for the whole sky: K = 1
    np.testing.assert_allclose(sed[:, 0], fg.synchrotron_sed(np.array(freqs), base["beta"], 30.0), rtol=1e-12)
    np.testing.assert_allclose(templates[0, 0], gaussian[0, 0], rtol=1e-12, atol=0)  # intensity: the Gaussian model's
    qu = uk_rj * float(units.k_rj_to_k_cmb(30.0))  # uK_RJ -> uK_CMB at 30 GHz
    expected = change_resolution(np.stack([np.zeros(qu.shape[1]), *qu]), 40.0, 40.0, NSIDE)
    expected[0] = hp.alm2map(gaussian[0, 0], NSIDE, lmax=LMAX)
    want = hp.map2alm(expected, lmax=LMAX, pol=True, iter=1)
    np.testing.assert_allclose(templates[0, 1:], want[1:], rtol=0, atol=1e-6 * np.abs(want[1:]).max())


def test_a_template_at_another_reference_frequency_is_refused(tmp_path):
    settings = {**default_settings("dust"), "template": "gnilc", "template_file": str(tmp_path / GNILC), "reference_GHz": 545}
    with pytest.raises(ValueError, match="reference_GHz.*353"):
        fg.component_alm("dust", settings, NSIDE, LMAX, [100.0], rng_for(1, "fg"))


def test_gnilc_dust_plans_the_template_download_and_runs_with_a_copy_in_place(tmp_path, tiny_snakemake):
    overlay = tmp_path / "gnilc.yaml"
    overlay.write_text(yaml.safe_dump({"foregrounds": {"dust": {"template": "gnilc"}}}))
    target = "results/sky/r0/foreground_dust.h5"
    dry = tiny_snakemake(tmp_path, "-n", "--", target, configs=[overlay])
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert re.search(r"^download_planck\s+1$", out, re.M) and "resources/planck/" + GNILC in out
    # The default (Gaussian) dust plans no download.
    plain = tiny_snakemake(tmp_path, "-n", "--", target)
    assert plain.returncode == 0 and "download_planck" not in plain.stdout + plain.stderr
    (tmp_path / "resources" / "planck").mkdir(parents=True)
    write_template(tmp_path / "resources" / "planck" / GNILC, ("I_STOKES", "Q_STOKES", "U_STOKES"), smooth_maps(3, 3, scale=1e-4), "K_CMB")
    tiny_snakemake(tmp_path, "--", target, configs=[overlay], check=True)
    import pandas as pd

    table = pd.read_csv(tmp_path / "results" / "sky" / "r0" / "foreground_dust_amplitude.tsv", sep="\t", comment="#")
    assert table.configured_d80.isna().all() and (table.realised_d80 > 0).all()  # configured: empty (null)
