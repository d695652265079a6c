import numpy as np
import pytest

from cmbnn.theory import camb_spectra, dl_from_cl, read_cls, write_cls


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
