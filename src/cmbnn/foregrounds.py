"""Galactic and extragalactic foregrounds without downloaded templates.

Everything is returned in thermodynamic uK_CMB. Spectral energy
distributions (SEDs) are ratios of uK_CMB at frequency nu to uK_CMB at the
component's reference frequency, so a template times its SED is the
component at nu.

A component is stored as K template alm sets (K, 3, nalm) and a mixing
matrix ``sed`` (n_freq, K): the alm at frequency i is sum_k sed[i, k] alm[k].
Diffuse components have K = 1 (one template scaled by its SED); point
sources, whose members each have their own spectral index, have K = n_freq
and sed = identity.
"""

from __future__ import annotations

import numpy as np

from .sky import alm_lm, synalm_teb, unit_gaussian_alm

H_PLANCK = 6.62607015e-34  # J s
K_BOLTZMANN = 1.380649e-23  # J / K
C_LIGHT = 2.99792458e8  # m / s
T_CMB = 2.7255  # K
JY = 1e-26  # W m^-2 Hz^-1

GHZ = 1e9
COMPONENTS = ("dust", "synchrotron", "radio_sources", "infrared_sources")


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


def dust_sed(nu_ghz, beta_d: float, t_d: float, nu_ref_ghz: float = 353.0):
    """Modified black body I ~ nu^beta B_nu(T_d), as a uK_CMB ratio to nu_ref."""
    nu = np.asarray(nu_ghz, dtype=np.float64)
    intensity_ratio = (nu / nu_ref_ghz) ** beta_d * planck_intensity(nu, t_d) / planck_intensity(nu_ref_ghz, t_d)
    return intensity_ratio * db_dt_cmb(nu_ref_ghz) / db_dt_cmb(nu)


def synchrotron_sed(nu_ghz, beta_s: float, nu_ref_ghz: float = 30.0):
    """Power law in Rayleigh-Jeans temperature, T_RJ ~ nu^beta_s, as a uK_CMB ratio to nu_ref."""
    nu = np.asarray(nu_ghz, dtype=np.float64)
    return (nu / nu_ref_ghz) ** beta_s * k_rj_to_k_cmb(nu) / k_rj_to_k_cmb(nu_ref_ghz)


def power_law_spectra(lmax: int, d80_ee: float, alpha: float, bb_over_ee: float, tt_over_ee: float, te_correlation: float):
    """C_ell = C_80 (ell/80)^alpha for ell >= 2 (zero below), TT/EE/BB/TE in uK^2.

    ``d80_ee`` is D_ell^EE at ell = 80; alpha is the slope of C_ell
    (Planck dust: C_ell^EE ~ ell^-2.42).
    """
    ell = np.arange(lmax + 1, dtype=np.float64)
    shape = np.zeros(lmax + 1)
    shape[2:] = (ell[2:] / 80.0) ** alpha
    ee = d80_ee * 2 * np.pi / (80 * 81) * shape
    tt = tt_over_ee * ee
    return {"TT": tt, "EE": ee, "BB": bb_over_ee * ee, "TE": te_correlation * np.sqrt(tt * ee)}


def modulation_field(nside: int, sigma: float, lmax_mod: int, galactic_profile: bool, rng) -> np.ndarray:
    """Positive large-scale amplitude modulation so foregrounds are not Gaussian.

    A log-normal field exp(sigma g - sigma^2) with g a unit-variance Gaussian
    field of multipoles <= lmax_mod (its mean square is 1), optionally times a
    csc|b| Galactic-latitude profile (1 at the poles, capped at |b| = 3 deg).
    """
    import healpy as hp

    mod = np.ones(12 * nside**2)
    if sigma > 0:
        ell, _ = alm_lm(lmax_mod)
        cl = np.zeros(lmax_mod + 1)
        cl[1:] = 1.0
        g_alm = unit_gaussian_alm(lmax_mod, 1, rng)[0] * np.sqrt(cl[ell])
        g = hp.alm2map(g_alm, nside, lmax=lmax_mod)
        g /= np.std(g)
        mod = np.exp(sigma * g - sigma**2)
    if galactic_profile:
        _, lat = hp.pix2ang(nside, np.arange(12 * nside**2), lonlat=True)
        mod *= 1.0 / np.maximum(np.sin(np.radians(np.abs(lat))), np.sin(np.radians(3.0)))
    return mod


def diffuse_template_alm(nside: int, lmax: int, spectra_params: dict, modulation: dict, rng) -> np.ndarray:
    """(T, E, B) alm at the reference frequency: Gaussian power law times a modulation."""
    import healpy as hp

    cls = power_law_spectra(lmax, **spectra_params)
    gaussian = synalm_teb(cls, lmax, rng)
    maps = hp.alm2map(gaussian, nside, lmax=lmax, pol=True)
    mod = modulation_field(nside, rng=rng, **modulation)
    return np.asarray(hp.map2alm(maps * mod, lmax=lmax, pol=True, iter=1))


def draw_point_sources(density_per_sr: float, flux_min_jy: float, flux_max_jy: float, slope: float, rng):
    """Poisson number of sources with dN/dS ~ S^-slope on [S_min, S_max], uniform on the sky.

    Returns (n_sources, fluxes in Jy at the population's reference frequency).
    """
    if not 0 < flux_min_jy < flux_max_jy:
        raise ValueError(f"need 0 < flux_min_Jy < flux_max_Jy, got {flux_min_jy}, {flux_max_jy}")
    n = rng.poisson(density_per_sr * 4 * np.pi)
    u = rng.random(n)
    if np.isclose(slope, 1.0):
        flux = flux_min_jy * (flux_max_jy / flux_min_jy) ** u
    else:
        a = 1.0 - slope
        lo, hi = flux_min_jy**a, flux_max_jy**a
        flux = (lo + u * (hi - lo)) ** (1.0 / a)
    return n, flux


def point_source_alm(
    nside: int,
    lmax: int,
    freqs_ghz,
    population: dict,
    rng,
) -> np.ndarray:
    """(n_freq, 3, nalm) alm of a point-source population in uK_CMB.

    Each source has a flux from the population's counts at ``reference_GHz``,
    its own spectral index (S ~ nu^alpha, alpha ~ N(mean, scatter)), a
    polarisation fraction and a uniformly random polarisation angle. Sources
    sit at pixel centres; the flux is spread over the pixel's solid angle.
    """
    import healpy as hp

    npix = 12 * nside**2
    n, flux = draw_point_sources(
        population["density_per_sr"], population["flux_min_Jy"], population["flux_max_Jy"], population["slope"], rng
    )
    pix = rng.integers(0, npix, n)
    alpha = population["spectral_index"] + population["spectral_index_scatter"] * rng.standard_normal(n)
    pol_angle = rng.uniform(0, np.pi, n)
    pol_frac = population["polarization_fraction"]
    omega_pix = 4 * np.pi / npix
    alms = []
    for nu in np.atleast_1d(freqs_ghz):
        s_nu = flux * (nu / population["reference_GHz"]) ** alpha
        to_uk = jy_per_sr_to_uk_cmb(nu) / omega_pix
        t = np.bincount(pix, weights=s_nu, minlength=npix) * to_uk
        q = np.bincount(pix, weights=pol_frac * s_nu * np.cos(2 * pol_angle), minlength=npix) * to_uk
        u = np.bincount(pix, weights=pol_frac * s_nu * np.sin(2 * pol_angle), minlength=npix) * to_uk
        alms.append(hp.map2alm([t, q, u], lmax=lmax, pol=True, iter=1))
    return np.asarray(alms)


def component_alm(name: str, settings: dict, nside: int, lmax: int, freqs_ghz, rng) -> tuple[np.ndarray, np.ndarray]:
    """Templates (K, 3, nalm) and mixing matrix (n_freq, K) of one component."""
    freqs = np.asarray(freqs_ghz, dtype=np.float64)
    if name in ("dust", "synchrotron"):
        spectra = {k: settings[k] for k in ("d80_ee", "alpha", "bb_over_ee", "tt_over_ee", "te_correlation")}
        modulation = {
            "sigma": settings["modulation_sigma"],
            "lmax_mod": settings["modulation_lmax"],
            "galactic_profile": settings["galactic_profile"],
        }
        template = diffuse_template_alm(nside, lmax, spectra, modulation, rng)[None]
        if name == "dust":
            sed = dust_sed(freqs, settings["beta"], settings["temperature_K"], settings["reference_GHz"])
        else:
            sed = synchrotron_sed(freqs, settings["beta"], settings["reference_GHz"])
        return template, sed[:, None]
    if name in ("radio_sources", "infrared_sources"):
        return point_source_alm(nside, lmax, freqs, settings, rng), np.eye(freqs.size)
    raise ValueError(f"unknown foreground component {name!r}; known: {', '.join(COMPONENTS)}")


def alm_at_frequency(templates: np.ndarray, sed: np.ndarray, i_freq: int) -> np.ndarray:
    """(3, nalm) alm of a component at frequency index i_freq."""
    return np.tensordot(sed[i_freq], templates, axes=(0, 0))
