"""The sky-simulation stages, one function per workflow rule.

Each function takes the run's settings (:class:`cmbnn.settings.RunSettings`) and returns
arrays; the workflow scripts only read inputs, call one of these and write the outputs.
"""

from __future__ import annotations

import logging

import numpy as np

from cmbnn.harmonics import alm_to_maps, gaussian_beam, pixel_side_arcmin, pixel_window, scalar_eb_maps, smooth_alm, synalm_teb
from cmbnn.seeding import rng_for
from cmbnn.settings import RunSettings
from cmbnn.sky import foregrounds as fg
from cmbnn.sky.noise import correlated_noise, white_noise
from cmbnn.sky.sources import merge, render_healpix

log = logging.getLogger(__name__)


def lmax_for(nside: int) -> int:
    return 3 * nside - 1


def map_pixel_window(run: RunSettings) -> np.ndarray:
    """Transfer (lmax+1, 3) of the HEALPix pixel window when the maps carry it, else ones."""
    return pixel_window(run.nside, run.lmax) if run.observation["pixel_window"] else np.ones((run.lmax + 1, 3))


def cmb_realisation(run: RunSettings, cls: dict, realisation: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsmoothed CMB (T, E, B) alm and (T, Q, U) maps in uK_CMB."""
    alm = synalm_teb(cls, run.lmax, rng_for(run.seed, "cmb", realisation))
    return alm, alm_to_maps(alm, run.nside, run.lmax)


def foreground_realisation(run: RunSettings, name: str, settings: dict, realisation: int, lat_cut_deg: float = 0.0):
    """A diffuse component: templates (K, 3, nalm), mixing matrix (n_freq, K), the SED
    parameter fields' alm and the realised vs configured amplitudes, uK_CMB."""
    rng = rng_for(run.seed, "foreground", realisation, name)
    return fg.component_alm(name, settings, run.nside, run.lmax, run.freqs, rng, lat_cut_deg)


def source_catalogue(run: RunSettings, name: str, settings: dict, realisation: int) -> dict:
    """Catalogue of one point-source population (see :func:`cmbnn.sky.foregrounds.point_source_catalogue`)."""
    return fg.point_source_catalogue(run.freqs, settings, rng_for(run.seed, "foreground", realisation, name))


def observe(run: RunSettings, cmb_alm: np.ndarray, components: list, realisation: int, sources: list = (), noise_variance=None):
    """Beam-smoothed signal alm per frequency and the observed full-sky maps.

    components: list of (templates, sed) pairs of diffuse components;
    sources: list of point-source catalogues. Returns (signal_alm
    (n_freq, 3, nalm): CMB + diffuse foregrounds, beam-smoothed, no point
    sources (patches render those directly); maps (n_freq, 3 or 5, npix): T,
    Q, U [, E, B] of CMB + diffuse foregrounds smoothed by the beam (and pixel
    window), plus the point sources with the beam profile at pixel centres,
    plus noise). The noise is white at the configured uK-arcmin depths, or, with
    ``noise_variance`` (one (II, QQ, UU, QU) uK_CMB^2 array (4, npix) per frequency,
    e.g. from :func:`cmbnn.planck.maps.noise_variance`), inhomogeneous with that
    per-pixel covariance.
    """
    nside, lmax, freqs, observation = run.nside, run.lmax, run.freqs, run.observation
    pixwin = map_pixel_window(run)
    pixel_area = pixel_side_arcmin(nside) ** 2
    point_sources = render_healpix(merge(list(sources), len(freqs)), freqs, observation["beam_fwhm_arcmin"], nside)
    # Filled in place: stacking lists of per-frequency arrays at the end held every map twice
    # (21 GB peak at nside 2048 with 3 frequencies).
    signal = np.empty((len(freqs),) + cmb_alm.shape, dtype=np.result_type(cmb_alm, np.complex128))
    maps = None
    for i, nu in enumerate(freqs):
        sky = cmb_alm.copy()
        for templates, sed in components:
            sky += fg.alm_at_frequency(templates, sed, i)
        smoothed = smooth_alm(sky, gaussian_beam(observation["beam_fwhm_arcmin"][i], lmax))
        del sky
        signal[i] = smoothed
        rng = rng_for(run.seed, "noise", realisation, float(nu))
        if noise_variance is not None:
            noise = correlated_noise(noise_variance[i], rng)
        else:
            levels = (observation["noise_T_uK_arcmin"][i], observation["noise_P_uK_arcmin"][i], observation["noise_P_uK_arcmin"][i])
            noise = np.stack([white_noise(12 * nside**2, level, pixel_area, rng) for level in levels])
        tqu = alm_to_maps(smooth_alm(smoothed, pixwin), nside, lmax) + point_sources[i] + noise
        if observation["scalar_eb"]:
            import healpy as hp

            teb = np.asarray(hp.map2alm(tqu, lmax=lmax, pol=True, iter=3))
            tqu = np.concatenate([tqu, scalar_eb_maps(teb, nside, lmax)])
        if maps is None:
            maps = np.empty((len(freqs),) + tqu.shape, dtype=tqu.dtype)
        maps[i] = tqu
        del tqu, smoothed
        log.info("observed %g GHz (beam %.2f arcmin)", nu, observation["beam_fwhm_arcmin"][i])
    return signal, maps


def label_alm(run: RunSettings, cmb_alm: np.ndarray) -> np.ndarray:
    """The CMB smoothed by the beam of the label frequency (the networks' target)."""
    return smooth_alm(cmb_alm, gaussian_beam(run.beam(run.i_label), run.lmax))


__all__ = ["lmax_for", "map_pixel_window", "cmb_realisation", "foreground_realisation", "source_catalogue", "observe", "label_alm"]
