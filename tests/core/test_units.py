"""TUNIT spellings (cmbnn.units.normalise_unit / unit_factor): the archive's own and their kin."""

import pytest

from cmbnn.units import k_rj_to_k_cmb, normalise_unit, unit_factor

# (TUNIT as written in a header, canonical name, power). HFI maps: Kcmb, K_CMB, (K_CMB)^2 and
# Kcmb^2 (SRoll/PLA covariances); Commander synchrotron (2015: uK_RJ) and PySM: uK_RJ, K_RJ;
# WMAP: mK,thermodynamic; GNILC: MJy/sr; QUIJOTE: mK_CMB, (mK_CMB)^2.
SPELLINGS = [
    ("Kcmb", "k_cmb", 1), ("K_CMB", "k_cmb", 1), ("K_{CMB}", "k_cmb", 1), ("K (CMB)", "k_cmb", 1),
    ("(K_CMB)^2", "k_cmb", 2), ("Kcmb^2", "k_cmb", 2), ("K_CMB**2", "k_cmb", 2), ("Kcmb2", "k_cmb", 2),
    ("mK_CMB", "mk_cmb", 1), ("(mK_CMB)^2", "mk_cmb", 2), ("mK,thermodynamic", "mk_cmb", 1),
    ("uK_CMB", "uk_cmb", 1), ("muK_CMB", "uk_cmb", 1), ("\u00b5K_CMB", "uk_cmb", 1), ("microK_CMB", "uk_cmb", 1),
    ("uK_RJ", "uk_rj", 1), ("uK RJ", "uk_rj", 1), ("uKRJ", "uk_rj", 1), ("uK(RJ)", "uk_rj", 1), ("\u03bcK_RJ", "uk_rj", 1),
    ("K_RJ", "k_rj", 1), ("K_{RJ}", "k_rj", 1), ("Krj", "k_rj", 1), ("K (antenna)", "k_rj", 1), ("mK_RJ", "mk_rj", 1),
    ("MJy/sr", "mjy/sr", 1), ("MJy sr^-1", "mjy/sr", 1), ("MJy.sr-1", "mjy/sr", 1), ("MJy/sr-1", "mjy/sr", 1), ("Jy/sr", "jy/sr", 1),
]


@pytest.mark.parametrize(("unit", "name", "power"), SPELLINGS)
def test_archive_spellings_reduce_to_one_name(unit, name, power):
    assert normalise_unit(unit) == (name, power)


def test_factors_follow_the_name_prefix_and_power():
    assert unit_factor("Kcmb") == 1e6 and unit_factor("mK,thermodynamic") == 1e3 and unit_factor("\u00b5K_CMB") == 1.0
    assert unit_factor("(K_CMB)^2") == pytest.approx(1e12) and unit_factor("(mK_CMB)^2") == pytest.approx(1e6)
    assert unit_factor("uK RJ", 30.0) == pytest.approx(float(k_rj_to_k_cmb(30.0)))
    assert unit_factor("K_{RJ}", 30.0) == pytest.approx(1e6 * float(k_rj_to_k_cmb(30.0)))


@pytest.mark.parametrize("unit", ["uK", "K", "mK", "Jy", "furlong", "(mK_CMB)^(-2)", "K_CMB^3", "T_CMB"])
def test_an_unknown_or_ambiguous_unit_is_refused_by_name(unit):
    with pytest.raises(ValueError, match=r"synch\.fits: column Q_STOKES: unknown unit '%s'" % __import__("re").escape(unit)):
        unit_factor(unit, 30.0, where="synch.fits: column Q_STOKES")
