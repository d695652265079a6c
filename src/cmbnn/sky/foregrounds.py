"""Galactic and extragalactic foregrounds without downloaded templates.

Everything is returned in thermodynamic uK_CMB. Spectral energy
distributions (SEDs) are ratios of uK_CMB at frequency nu to uK_CMB at the
component's reference frequency, so a template times its SED is the
component at nu.

A diffuse component is stored as K template alm sets (K, 3, nalm) and a
mixing matrix ``sed`` (n_freq, K): the alm at frequency i is
sum_k sed[i, k] alm[k]. With one SED for the whole sky K = 1 (one template
scaled by its SED); with spatially varying SEDs K = n_freq and sed =
identity. Point sources are a catalogue (positions, flux per frequency,
polarisation), rendered with the beam profile in real space.
"""

from __future__ import annotations

import logging

import numpy as np

from cmbnn.harmonics import alm_lm, synalm_teb, unit_gaussian_alm
from cmbnn.names import DIFFUSE
from cmbnn.planck.archive import foreground_template_info, read_foreground_template
from cmbnn.units import db_dt_cmb, k_rj_to_k_cmb, planck_intensity

log = logging.getLogger(__name__)


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


# Width of the cosine taper inside the latitude cut over which amplitudes are defined and
# measured: a sharp edge where csc|b| is brightest leaks large-scale power into ell ~ 80
# (+15% EE, +30-50% BB measured at a 20 deg cut), a 10 deg taper leaves a few per cent.
APODISATION_DEG = 10.0


def amplitude_weight(nside: int, lat_cut_deg: float) -> np.ndarray:
    """RING weight map of the sky where diffuse amplitudes are defined: 0 at |b| <= lat_cut_deg,
    rising as a cosine to 1 at lat_cut_deg + APODISATION_DEG (the patches' sky, tapered)."""
    import healpy as hp

    _, lat = hp.pix2ang(nside, np.arange(12 * nside**2), lonlat=True)
    x = np.clip((np.abs(lat) - lat_cut_deg) / APODISATION_DEG, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * x))


def modulation_field(nside: int, sigma: float, lmax_mod: int, galactic_profile: bool, rng, weight: np.ndarray | None = None) -> np.ndarray:
    """Positive large-scale amplitude modulation so foregrounds are not Gaussian.

    A log-normal field exp(sigma g) with g a unit-variance Gaussian field of
    multipoles <= lmax_mod, optionally times a csc|b| Galactic-latitude
    profile (capped at |b| = 3 deg). With ``weight`` (see
    :func:`amplitude_weight`) the product is divided by its root mean square
    weighted by weight^2, so a stationary field of power C_ell times it has
    power C_ell there again (the modulation moves power around, it adds none).
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
        mod = np.exp(sigma * g)
    if galactic_profile:
        _, lat = hp.pix2ang(nside, np.arange(12 * nside**2), lonlat=True)
        mod *= 1.0 / np.maximum(np.sin(np.radians(np.abs(lat))), np.sin(np.radians(3.0)))
    if weight is not None:
        mod /= np.sqrt(np.sum(weight**2 * mod**2) / np.sum(weight**2))
    return mod


def diffuse_reference_maps(nside: int, lmax: int, spectra_params: dict, modulation: dict, rng, weight=None, max_pol_fraction: float = 1.0) -> np.ndarray:
    """(T, Q, U) maps at the reference frequency: modulation x (offset + Gaussian power law).

    Q and U are the modulated Gaussian field, so their realised power where
    ``weight`` is non-zero is the configured one. The intensity gets a positive offset
    before modulation, 1.1 times the deepest negative excursion of the
    Gaussian field, so it stays positive (emission is; the offset adds power
    only at the large scales of the modulation), and the polarised intensity is capped at
    ``max_pol_fraction`` of the intensity.
    """
    import healpy as hp

    cls = power_law_spectra(lmax, **spectra_params)
    gaussian = synalm_teb(cls, lmax, rng)
    t, q, u = hp.alm2map(gaussian, nside, lmax=lmax, pol=True)
    mod = modulation_field(nside, rng=rng, weight=weight, **modulation)
    t = t - 1.1 * min(t.min(), 0.0)
    t, q, u = t * mod, q * mod, u * mod
    p = np.sqrt(q * q + u * u)
    with np.errstate(divide="ignore", invalid="ignore"):
        cap = np.where(p > max_pol_fraction * t, max_pol_fraction * t / p, 1.0)
    return np.stack([t, q * cap, u * cap])


def diffuse_template_alm(nside: int, lmax: int, spectra_params: dict, modulation: dict, rng, weight=None) -> np.ndarray:
    """(T, E, B) alm at the reference frequency (see :func:`diffuse_reference_maps`)."""
    import healpy as hp

    maps = diffuse_reference_maps(nside, lmax, spectra_params, modulation, rng, weight)
    return np.asarray(hp.map2alm(maps, lmax=lmax, pol=True, iter=1))


def realised_d80(maps: np.ndarray, weight: np.ndarray, alpha: float, ell_range=(40, 150)) -> dict:
    """Realised D_ell at ell = 80 of (T, Q, U) maps where ``weight`` is non-zero, for EE and BB.

    anafast of the weighted maps divided by the mean of weight^2 (the
    sky-fraction correction), fitted over ell_range with the power-law shape
    ell^alpha (weights 2 ell + 1, the number of modes).
    """
    import healpy as hp

    cl = hp.anafast(maps * weight, lmax=ell_range[1], pol=True, iter=1) / np.mean(weight**2)
    ell = np.arange(ell_range[0], ell_range[1] + 1)
    shape = (ell / 80.0) ** alpha * 2 * np.pi / (80 * 81)  # C_ell of D_80 = 1
    weights = 2 * ell + 1
    return {name: float(np.sum(weights * cl[k, ell]) / np.sum(weights * shape)) for k, name in ((1, "EE"), (2, "BB"))}


def sed_parameter_field(nside: int, mean: float, scatter: float, lmax_field: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Smooth Gaussian random field of an SED parameter: (alm up to lmax_field, RING map).

    White spectrum for 1 <= ell <= lmax_field, no monopole fluctuation, scaled
    so the map's pixel scatter is ``scatter`` and its mean ``mean``. The map is
    the alm's synthesis, so the stored alm reproduce it.
    """
    import healpy as hp

    ell, _ = alm_lm(lmax_field)
    alm = unit_gaussian_alm(lmax_field, 1, rng)[0] * (ell > 0)
    g = hp.alm2map(alm, nside, lmax=lmax_field)
    alm = alm * (scatter / np.std(g)) if scatter > 0 else alm * 0
    alm[0] = mean * np.sqrt(4 * np.pi)
    return alm, hp.alm2map(alm, nside, lmax=lmax_field)


def diffuse_component(name: str, settings: dict, nside: int, lmax: int, freqs_ghz, lat_cut_deg: float, rng, template_maps=None):
    """One diffuse component: (templates, sed, extra datasets, realised amplitudes).

    ``template_maps``: a real-sky template at the reference frequency (RING,
    uK_CMB, nside), (T, Q, U) or (Q, U), used instead of the modelled
    Gaussian field: no modulation, no polarisation-fraction cap; a (Q, U)
    template keeps the modelled intensity. The amplitude table then gives
    configured_d80 = NaN and realised_d80 measured on the template.

    With every SED scatter 0 the component is one template at the reference
    frequency (K = 1) times its mean SED. Otherwise each pixel has its own SED
    (beta_d and T_d for dust, beta_s for synchrotron, smooth random fields)
    and the templates are the alm at every frequency (K = n_freq, sed =
    identity); the fields' alm are returned as extra datasets.
    """
    import healpy as hp

    freqs = np.asarray(freqs_ghz, dtype=np.float64)
    weight = amplitude_weight(nside, lat_cut_deg)
    spectra = {k: settings[k] for k in ("d80_ee", "alpha", "bb_over_ee", "tt_over_ee", "te_correlation")}
    modulation = {"sigma": settings["modulation_sigma"], "lmax_mod": settings["modulation_lmax"], "galactic_profile": settings["galactic_profile"]}
    # Progress lines: at nside 2048 each spherical-harmonic step takes minutes.
    log.info("%s: drawing the Gaussian field and its modulation (lmax %d, nside %d)", name, lmax, nside)
    ref = diffuse_reference_maps(nside, lmax, spectra, modulation, rng, weight, settings["max_polarization_fraction"])
    configured = {"EE": settings["d80_ee"], "BB": settings["d80_ee"] * settings["bb_over_ee"]}
    if template_maps is not None:
        # The modelled field is still drawn, so the SED fields below are those of the Gaussian model.
        template_maps = np.asarray(template_maps, dtype=np.float64)
        if template_maps.shape not in ((3, ref.shape[1]), (2, ref.shape[1])):
            raise ValueError(f"{name} template has shape {template_maps.shape}; expected (3 or 2, {ref.shape[1]}) RING maps at nside {nside}")
        ref = np.concatenate([ref[:1], template_maps]) if template_maps.shape[0] == 2 else template_maps.copy()
        configured = {"EE": float("nan"), "BB": float("nan")}
    realised = realised_d80(ref, weight, settings["alpha"])
    amplitudes = [{"spectrum": k, "configured_d80": configured[k], "realised_d80": realised[k]} for k in ("EE", "BB")]
    nu_ref = settings["reference_GHz"]
    # One field per SED parameter, drawn in a fixed order from this component's generator.
    params = {"beta": ("beta", "beta_scatter")}
    if name == "dust":
        params["temperature"] = ("temperature_K", "temperature_scatter_K")
    fields, extra = {}, {}
    for key, (mean_key, scatter_key) in params.items():
        alm, fields[key] = sed_parameter_field(nside, settings[mean_key], settings[scatter_key], settings["sed_lmax"], rng)
        if settings[scatter_key] > 0:
            extra[f"{key}_alm"] = alm
    if name == "dust" and fields["temperature"].min() < 3.0:
        raise ValueError(f"dust temperature field reaches {fields['temperature'].min():.2f} K: temperature_scatter_K is too large")

    def sed(nu, beta, temperature=None):
        if name == "dust":
            return dust_sed(nu, beta, temperature, nu_ref)
        return synchrotron_sed(nu, beta, nu_ref)

    if not extra:
        log.info("%s: one SED over the sky, the template's alm", name)
        template = np.asarray(hp.map2alm(ref, lmax=lmax, pol=True, iter=1))[None]
        mean_sed = sed(freqs, settings["beta"], settings.get("temperature_K"))
        return template, mean_sed[:, None], extra, amplitudes
    templates = []
    for i, nu in enumerate(freqs):
        log.info("%s: SED varies over the sky, alm at %g GHz (%d of %d)", name, nu, i + 1, freqs.size)
        scale = sed(nu, fields["beta"], fields.get("temperature"))
        templates.append(hp.map2alm(ref * scale, lmax=lmax, pol=True, iter=1))
    return np.asarray(templates), np.eye(freqs.size), extra, amplitudes


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


def point_source_catalogue(freqs_ghz, population: dict, rng) -> dict:
    """Catalogue of one point-source population, uniform on the sphere.

    Each source has a flux from the population's counts at ``reference_GHz``,
    its own spectral index (S ~ nu^alpha, alpha ~ N(mean, scatter)), the
    population's polarisation fraction and a uniformly random polarisation
    angle (HEALPix convention, in the local frame at the source). Returns
    lon_deg, lat_deg (n,), flux_Jy (n, n_freq), pol_angle_rad (n,),
    pol_fraction (n,). Sources are rendered with each frequency's beam
    profile (:mod:`cmbnn.sky.sources`), never through band-limited alm.
    """
    freqs = np.atleast_1d(np.asarray(freqs_ghz, dtype=np.float64))
    n, flux = draw_point_sources(
        population["density_per_sr"], population["flux_min_Jy"], population["flux_max_Jy"], population["slope"], rng
    )
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lon = rng.uniform(0.0, 360.0, n)
    alpha = population["spectral_index"] + population["spectral_index_scatter"] * rng.standard_normal(n)
    pol_angle = rng.uniform(0, np.pi, n)
    return {
        "lon_deg": lon,
        "lat_deg": lat,
        "flux_Jy": flux[:, None] * (freqs[None, :] / population["reference_GHz"]) ** alpha[:, None],
        "pol_angle_rad": pol_angle,
        "pol_fraction": np.full(n, float(population["polarization_fraction"])),
    }


def component_alm(name: str, settings: dict, nside: int, lmax: int, freqs_ghz, rng, lat_cut_deg: float = 0.0):
    """A diffuse component: templates (K, 3, nalm), mixing matrix (n_freq, K), extra datasets
    (the SED parameter fields' alm) and realised amplitudes; see :func:`diffuse_component`.

    With ``settings["template"]`` other than 'gaussian' (dust: gnilc, synchrotron: commander)
    the Planck template in ``settings["template_file"]`` (set by the foreground rule) is read
    (:func:`cmbnn.planck.archive.read_foreground_template`, beam ``template_fwhm_arcmin`` kept) and
    scaled with the component's SED; ``reference_GHz`` must be the template's frequency.
    """
    if name in DIFFUSE:
        template = settings.get("template", "gaussian")
        maps = None
        if template != "gaussian":
            info = foreground_template_info(name, template)
            if float(settings["reference_GHz"]) != info["freq_GHz"]:
                raise ValueError(
                    f"foregrounds.{name}.reference_GHz is {settings['reference_GHz']} but the {template} template is at {info['freq_GHz']:g} GHz: set reference_GHz: {info['freq_GHz']:g}"
                )
            if not settings.get("template_file"):
                raise ValueError(f"foregrounds.{name}.template {template}: no template_file ({info['file']}) given")
            maps = read_foreground_template(settings["template_file"], info["columns"], info["freq_GHz"], nside, settings["template_fwhm_arcmin"])
        return diffuse_component(name, settings, nside, lmax, freqs_ghz, lat_cut_deg, rng, template_maps=maps)
    raise ValueError(f"{name!r} is not a diffuse foreground component; diffuse: {', '.join(DIFFUSE)}")


def alm_at_frequency(templates: np.ndarray, sed: np.ndarray, i_freq: int) -> np.ndarray:
    """(3, nalm) alm of a component at frequency index i_freq."""
    return np.tensordot(sed[i_freq], templates, axes=(0, 0))
