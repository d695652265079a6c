import numpy as np
import pytest

from cmbnn.sky.theory import camb_spectra, dl_from_cl, read_cls, write_cls


def test_spectra_indexed_from_ell_zero_in_uk2(camb_cls):
    tt = camb_cls["TT"]
    assert tt[0] == 0 and tt[1] == 0
    dl = dl_from_cl(tt)
    # C_ell[2] is the quadrupole: Planck best-fit D_2^TT ~ 1000 uK^2 (K^2 would be 1e-9).
    assert 700 < dl[2] < 1400
    # First acoustic peak at ell ~ 220 with ~5700 uK^2: an index shift by 3 moves it off 219..222.
    peak = 150 + np.argmax(dl[150:300])
    assert 218 <= peak <= 222
    assert 5400 < dl[peak] < 6100
    # EE reionisation bump and first EE peak are in uK^2 too.
    assert 0.01 < dl_from_cl(camb_cls["EE"])[5] < 0.1


def test_r_zero_has_only_lensing_bb(camb_cls):
    assert np.all(camb_cls["BB_tensor"] == 0)
    np.testing.assert_allclose(camb_cls["BB"], camb_cls["BB_lensing"], rtol=1e-10, atol=0)
    # Lensing B-modes peak near ell ~ 1000 at D_ell ~ 0.1 uK^2.
    dl_bb = dl_from_cl(camb_cls["BB"])
    assert 0.05 < dl_bb[1000] < 0.2


def test_tensor_bb_scales_with_r():
    low, high = camb_spectra(300, r=0.05), camb_spectra(300, r=0.1)
    ell = np.arange(30, 150)
    np.testing.assert_allclose(high["BB_tensor"][ell], 2 * low["BB_tensor"][ell], rtol=0.02)
    np.testing.assert_allclose(high["BB"] - high["BB_lensing"], high["BB_tensor"], atol=1e-12)
    # r = 0.1 recombination bump: D_80^BB ~ 0.01..0.05 uK^2.
    assert 0.005 < dl_from_cl(high["BB_tensor"])[80] < 0.05


def test_negative_r_is_refused():
    with pytest.raises(ValueError, match="r must be >= 0"):
        camb_spectra(100, r=-0.1)


def test_table_round_trip_and_ell_checks(tmp_path, camb_cls):
    cls = {k: v[:101] for k, v in camb_cls.items()}
    path = tmp_path / "cls.tsv"
    write_cls(path, cls, r=0.0)
    back = read_cls(path)
    for name in ("TT", "EE", "BB", "TE"):
        np.testing.assert_allclose(back[name], cls[name], rtol=1e-9)
    # A table whose first row is ell = 2 (the CENN trap) is refused, not silently shifted.
    lines = path.read_text().splitlines()
    shifted = tmp_path / "shifted.tsv"
    shifted.write_text("\n".join(lines[:3] + lines[5:]) + "\n")
    with pytest.raises(ValueError, match="ell column"):
        read_cls(shifted)


PR3_NAME = "COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt"


def write_pr3_file(path, lmax):
    """A tiny file in the PR3 minimum-theory layout: '# L TT TE EE BB PP', D_ell in uK^2 from ell = 2."""
    ell = np.arange(2, lmax + 1)
    dl = {
        "TT": 1000 + 4700 * np.exp(-0.5 * ((ell - 220) / 80.0) ** 2),
        "TE": 100 * np.sin(ell / 50.0),
        "EE": 0.05 + 40 * np.exp(-0.5 * ((ell - 1000) / 300.0) ** 2),
        "BB": 0.01 + 0.1 * ell / lmax,
        "PP": 1e-7 * np.ones(ell.size),
    }
    with open(path, "w") as f:
        f.write("#    L    TT             TE             EE             BB             PP\n")
        for i, l in enumerate(ell):
            f.write(f"{l:6d}" + "".join(f"   {dl[n][i]:.8E}" for n in ("TT", "TE", "EE", "BB", "PP")) + "\n")
    return ell, dl


def test_planck_pr3_table_is_the_files_d_ell_as_c_ell(tmp_path):
    from cmbnn.sky.theory import planck_pr3_spectra

    path = tmp_path / PR3_NAME
    ell, dl = write_pr3_file(path, 400)
    lmax = 3 * 64 - 1
    table = tmp_path / "cls.tsv"
    write_cls(table, planck_pr3_spectra(path, lmax), 0.0, source="Planck PR3 test")
    cls = read_cls(table)
    assert set(cls) == {"TT", "EE", "BB", "TE", "BB_lensing", "BB_tensor"}
    keep = ell <= lmax
    for name in ("TT", "TE", "EE", "BB"):
        assert cls[name].size == lmax + 1 and cls[name][0] == 0 and cls[name][1] == 0
        np.testing.assert_allclose(cls[name][2:], dl[name][keep] * 2 * np.pi / (ell[keep] * (ell[keep] + 1)), rtol=1e-8)
    np.testing.assert_array_equal(cls["BB_lensing"], cls["BB"])
    assert np.all(cls["BB_tensor"] == 0)
    assert open(table).readline().startswith("# Planck PR3 test")


def test_planck_pr3_refuses_r_and_a_short_file(tmp_path):
    from cmbnn.sky.theory import planck_pr3_spectra

    path = tmp_path / PR3_NAME
    write_pr3_file(path, 400)
    with pytest.raises(ValueError, match="r must be 0"):
        planck_pr3_spectra(path, 300, r=0.01)
    with pytest.raises(ValueError, match="end at ell = 400.*up to 511"):
        planck_pr3_spectra(path, 511)


def test_planck_pr3_source_plans_the_download_and_writes_the_table(tmp_path, tiny_snakemake):
    import re

    dry = tiny_snakemake(tmp_path, "-n", "--config", "theory={source: planck_pr3}", "--", "results/theory/cls.tsv")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert re.search(r"^download_planck\s+1$", out, re.M) and re.search(r"^planck_pr3_spectra\s+1$", out, re.M)
    assert "resources/planck/" + PR3_NAME in out and "camb_spectra" not in out
    # With the file in place nothing is downloaded and the table is the file's C_ell.
    (tmp_path / "resources" / "planck").mkdir(parents=True)
    ell, dl = write_pr3_file(tmp_path / "resources" / "planck" / PR3_NAME, 300)
    run = tiny_snakemake(tmp_path, "--config", "theory={source: planck_pr3}", "--", "results/theory/cls.tsv", check=True)
    assert "download_planck" not in run.stdout + run.stderr
    cls = read_cls(tmp_path / "results" / "theory" / "cls.tsv")
    lmax = 3 * 64 - 1
    np.testing.assert_allclose(cls["EE"][2:], (dl["EE"] * 2 * np.pi / (ell * (ell + 1)))[: lmax - 1], rtol=1e-8)
    # r > 0 is refused before anything runs.
    overlay = tmp_path / "r.yaml"
    overlay.write_text("theory: {source: planck_pr3, r: 0.01}\n")
    bad = tiny_snakemake(tmp_path, "-n", configs=[overlay])
    assert bad.returncode != 0 and "theory.r must be 0" in bad.stdout + bad.stderr
