"""Physical constants and unit conversions: the one place where uK_CMB meets other units.

The pipeline works in thermodynamic uK_CMB; these convert at its edges (Planck files in K_RJ or
MJy/sr, point-source fluxes in Jy, SEDs as uK_CMB ratios). ``unit_factor`` reads the TUNIT
strings of FITS columns.
"""

from __future__ import annotations

import re

import numpy as np

# The one definition of the arcminute in radians.
ARCMIN = np.pi / 180 / 60


H_PLANCK = 6.62607015e-34  # J s
K_BOLTZMANN = 1.380649e-23  # J / K
C_LIGHT = 2.99792458e8  # m / s
T_CMB = 2.7255  # K
JY = 1e-26  # W m^-2 Hz^-1
GHZ = 1e9


def planck_intensity(nu_ghz, temperature_k):
    """Black-body specific intensity B_nu(T) in W m^-2 Hz^-1 sr^-1."""
    nu = np.asarray(nu_ghz, dtype=np.float64) * GHZ
    x = H_PLANCK * nu / (K_BOLTZMANN * temperature_k)
    return 2 * H_PLANCK * nu**3 / C_LIGHT**2 / np.expm1(x)


def db_dt_cmb(nu_ghz):
    """dB_nu/dT at T_CMB in W m^-2 Hz^-1 sr^-1 K^-1 (intensity per K_CMB)."""
    nu = np.asarray(nu_ghz, dtype=np.float64) * GHZ
    x = H_PLANCK * nu / (K_BOLTZMANN * T_CMB)
    return 2 * K_BOLTZMANN * nu**2 / C_LIGHT**2 * x**2 * np.exp(x) / np.expm1(x) ** 2


def k_rj_to_k_cmb(nu_ghz):
    """Factor turning a Rayleigh-Jeans brightness temperature into K_CMB."""
    nu = np.asarray(nu_ghz, dtype=np.float64) * GHZ
    x = H_PLANCK * nu / (K_BOLTZMANN * T_CMB)
    return np.expm1(x) ** 2 / (x**2 * np.exp(x))


def jy_per_sr_to_uk_cmb(nu_ghz):
    """uK_CMB per Jy/sr at frequency nu."""
    return JY / db_dt_cmb(nu_ghz) * 1e6


# Planck's own band-integrated coefficients (MJy/sr per K_CMB). 2015 release
# (Planck 2015 results VIII): 545 GHz 58.04. Pass one as ``mjysr_per_kcmb`` to
# match Planck's conversion instead of the monochromatic one.
PLANCK_2015_MJYSR_PER_KCMB = {545: 58.04}



# Canonical unit names (from :func:`normalise_unit`) and their factor: "cmb" to uK_CMB
# directly; "rj" to uK_RJ, then times k_rj_to_k_cmb(nu); "intensity" to MJy/sr, then times
# the MJy/sr -> uK_CMB conversion at nu; dimensionless (masks, hits) unchanged. A square
# (K_CMB^2, (K_CMB)**2, Kcmb2) squares the factor (covariances).
_CMB = {"k_cmb": 1e6, "mk_cmb": 1e3, "uk_cmb": 1.0}
_RJ = {"k_rj": 1e6, "mk_rj": 1e3, "uk_rj": 1.0}
_INTENSITY = {"mjy/sr": 1.0, "jy/sr": 1e-6}
DIMENSIONLESS_UNITS = {"", "none", "unitless", "dimensionless", "1", "counts", "hits", "n/a"}
UNIT_FACTORS = {"cmb": _CMB, "rj": _RJ, "intensity": _INTENSITY, "none": DIMENSIONLESS_UNITS}

# Spellings seen in Planck, WMAP, QUIJOTE and PySM headers, reduced to a canonical name:
# Kcmb, K_CMB, K(CMB), K_{CMB}, uK_CMB, muK_CMB, microK_CMB, K_RJ, uK_RJ, uK RJ, K (antenna),
# mK,thermodynamic, MJy/sr, MJy sr^-1, MJy.sr-1, MJy/sr-1.
_TEMPERATURE = re.compile(r"(?P<prefix>u|m)?k(?P<scale>cmb|rj|thermodynamic|thermo|antenna|ant|brightness)")
_SCALES = {"cmb": "cmb", "thermodynamic": "cmb", "thermo": "cmb", "rj": "rj", "antenna": "rj", "ant": "rj", "brightness": "rj"}
_INTENSITY_SPELLING = re.compile(r"(?P<prefix>m)?jy(/sr|sr-1|/sr-1|sr\^-1|sr\*\*-1|/steradian)")


def mjysr_to_uk_cmb(nu_ghz, mjysr_per_kcmb: float | None = None):
    """uK_CMB per MJy/sr at frequency ``nu_ghz`` (multiply a MJy/sr map by this).

    By default the monochromatic thermodynamic conversion at nu with
    T_CMB = 2.7255 K, 1 / (dB_nu/dT), the same as astropy's
    ``u.thermodynamic_temperature(nu, T_cmb=2.7255 K)`` equivalency (tested to
    1e-6). Planck's own conversions integrate over the instrument bandpass
    (and Planck's MJy/sr maps follow the IRAS nu I_nu = const convention), so
    they differ from the monochromatic value: at 545 GHz the 2015 release
    quotes 58.04 MJy/sr per K_CMB against 57.12 monochromatic (1.6 %); at
    857 GHz the gap is tens of percent (2015 value about 2.27, not verified
    here, against 1.44 monochromatic). See
    :data:`PLANCK_2015_MJYSR_PER_KCMB`. To reproduce Planck's numbers pass
    the band-integrated coefficient as ``mjysr_per_kcmb``: the result is then
    1e6 / mjysr_per_kcmb and ``nu_ghz`` is not used.
    """
    if mjysr_per_kcmb is not None:
        if mjysr_per_kcmb <= 0:
            raise ValueError(f"mjysr_per_kcmb must be > 0, got {mjysr_per_kcmb}")
        return 1e6 / float(mjysr_per_kcmb)
    nu = np.asarray(nu_ghz, dtype=np.float64)
    if np.any(nu <= 0):
        raise ValueError(f"frequency must be > 0 GHz, got {nu_ghz}")
    return 1e6 * jy_per_sr_to_uk_cmb(nu)


def uk_cmb_to_mjysr(nu_ghz, mjysr_per_kcmb: float | None = None):
    """MJy/sr per uK_CMB at ``nu_ghz``: the inverse of :func:`mjysr_to_uk_cmb`."""
    return 1.0 / mjysr_to_uk_cmb(nu_ghz, mjysr_per_kcmb)


def monochromatic_mjysr_per_kcmb(nu_ghz):
    """Monochromatic MJy/sr per K_CMB at nu (dB_nu/dT at T_CMB), for comparison with Planck's tables."""
    return db_dt_cmb(nu_ghz) / 1e-20


def normalise_unit(unit: str) -> tuple[str, int]:
    """(canonical name, power) of a TUNIT string: ('k_cmb', 2) for 'K_CMB^2', '(K_CMB)**2' or
    'Kcmb^2'; ('uk_rj', 1) for 'uK_RJ', 'uK RJ', 'microK_RJ' or 'uK (antenna)'; ('mjy/sr', 1)
    for 'MJy/sr' or 'MJy sr^-1'. A string it does not recognise comes back lower-cased, to be
    refused by :func:`unit_factor` with its name."""
    u = str(unit).strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")
    u = re.sub(r"[\s_{}\[\],.]", "", u).replace("micro", "u").replace("milli", "m")
    power = 1
    squared = re.fullmatch(r"\(?(.+?)\)?(\^2|\*\*2|2)", u)
    if squared and not squared.group(1).endswith(("^", "*", "-")):
        u, power = squared.group(1), 2
    u = u.strip("()")
    u = re.sub(r"^mu(?=k)", "u", u).replace("(", "").replace(")", "")
    temperature = _TEMPERATURE.fullmatch(u)
    if temperature:
        return f"{temperature['prefix'] or ''}k_{_SCALES[temperature['scale']]}", power
    intensity = _INTENSITY_SPELLING.fullmatch(u)
    if intensity:
        return f"{intensity['prefix'] or ''}jy/sr", power
    return u, power


def unit_factor(unit: str, nu_ghz: float | None = None, mjysr_per_kcmb: float | None = None, where: str = "") -> float:
    """Factor turning a column in ``unit`` into uK_CMB (uK_CMB^2 for squared units).

    ``nu_ghz`` is needed for MJy/sr, Jy/sr and K_RJ only. Dimensionless units
    ('', 'none', ...) give 1. An unknown unit raises ValueError naming
    ``where`` (the file and column).
    """
    name, power = normalise_unit(unit)
    if name in DIMENSIONLESS_UNITS and power == 1:
        return 1.0
    if name in _CMB:
        base = _CMB[name]
    elif name in _RJ or name in _INTENSITY:
        if nu_ghz is None and not (name in _INTENSITY and mjysr_per_kcmb is not None):
            raise ValueError(
                f"{where}: unit {unit!r} needs the map's frequency to convert to uK_CMB; none found in the header "
                "(FREQ) or the file name: pass freq_ghz="
            )
        if name in _RJ:
            base = _RJ[name] * float(k_rj_to_k_cmb(nu_ghz))
        else:
            base = _INTENSITY[name] * float(mjysr_to_uk_cmb(nu_ghz, mjysr_per_kcmb))
    else:
        known = sorted({*_CMB, *_RJ, *_INTENSITY} - {""})
        raise ValueError(
            f"{where}: unknown unit {unit!r} (TUNIT); known: {known}, their squares (e.g. K_CMB^2) and "
            f"dimensionless ('', 'none'); pass units={{column: unit}} to override"
        )
    return base**power
