"""The sky-simulation stages, one function per workflow rule.

Each function takes plain config values and returns arrays; the workflow
scripts only read inputs, call one of these and write the outputs.
"""

from __future__ import annotations

import logging

import numpy as np

from . import foregrounds as fg
from .patches import SPLITS, assign_regions, draw_centers, fields_from_alm, fields_from_maps, patch_noise
from .projection import patch_geometry
from .seeding import rng_for
from .sky import (
    alm_to_maps,
    gaussian_beam,
    pixel_side_arcmin,
    pixel_window,
    scalar_eb_maps,
    smooth_alm,
    synalm_teb,
    white_noise,
)

log = logging.getLogger(__name__)


def lmax_for(nside: int) -> int:
    return 3 * nside - 1


def map_pixel_window(observation: dict, nside: int) -> np.ndarray:
    """Transfer (lmax+1, 3) of the HEALPix pixel window when the maps carry it, else ones."""
    lmax = lmax_for(nside)
    return pixel_window(nside, lmax) if observation["pixel_window"] else np.ones((lmax + 1, 3))


def cmb_realisation(cls: dict, nside: int, seed: int, realisation: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsmoothed CMB (T, E, B) alm and (T, Q, U) maps in uK_CMB."""
    lmax = lmax_for(nside)
    alm = synalm_teb(cls, lmax, rng_for(seed, "cmb", realisation))
    return alm, alm_to_maps(alm, nside, lmax)


def foreground_realisation(name: str, settings: dict, nside: int, freqs, seed: int, realisation: int):
    """Templates (K, 3, nalm) and mixing matrix (n_freq, K) of one component, uK_CMB."""
    rng = rng_for(seed, "foreground", realisation, name)
    return fg.component_alm(name, settings, nside, lmax_for(nside), freqs, rng)


def observe(cmb_alm: np.ndarray, components: list, freqs, observation: dict, nside: int, seed: int, realisation: int):
    """Beam-smoothed signal alm per frequency and the observed full-sky maps.

    components: list of (templates, sed) pairs. Returns (signal_alm
    (n_freq, 3, nalm), maps (n_freq, 3 or 5, npix)): maps are T, Q, U
    [, E, B] of CMB + foregrounds smoothed by the beam (and pixel window)
    plus white noise.
    """
    lmax = lmax_for(nside)
    pixwin = map_pixel_window(observation, nside)
    pixel_area = pixel_side_arcmin(nside) ** 2
    signal, maps = [], []
    for i, nu in enumerate(freqs):
        sky = cmb_alm.copy()
        for templates, sed in components:
            sky += fg.alm_at_frequency(templates, sed, i)
        smoothed = smooth_alm(sky, gaussian_beam(observation["beam_fwhm_arcmin"][i], lmax))
        signal.append(smoothed)
        rng = rng_for(seed, "noise", realisation, float(nu))
        levels = (observation["noise_T_uK_arcmin"][i], observation["noise_P_uK_arcmin"][i], observation["noise_P_uK_arcmin"][i])
        noise = np.stack([white_noise(12 * nside**2, level, pixel_area, rng) for level in levels])
        tqu = alm_to_maps(smooth_alm(smoothed, pixwin), nside, lmax) + noise
        if observation["scalar_eb"]:
            import healpy as hp

            teb = np.asarray(hp.map2alm(tqu, lmax=lmax, pol=True, iter=3))
            tqu = np.concatenate([tqu, scalar_eb_maps(teb, nside, lmax)])
        maps.append(tqu)
        log.info("observed %g GHz (beam %.2f arcmin)", nu, observation["beam_fwhm_arcmin"][i])
    return np.asarray(signal), np.asarray(maps)


def label_alm(cmb_alm: np.ndarray, freqs, label_frequency: float, observation: dict, nside: int) -> np.ndarray:
    """The CMB smoothed by the beam of the label frequency (the networks' target)."""
    i = list(freqs).index(label_frequency)
    return smooth_alm(cmb_alm, gaussian_beam(observation["beam_fwhm_arcmin"][i], lmax_for(nside)))


def split_centers(patches: dict, seed: int, realisation: int, split: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Patch centres of one split and realisation (same config -> same centres)."""
    owner = assign_regions(patches["region_nside"], patches["split_fractions"], rng_for(seed, "regions"))
    return draw_centers(
        patches["counts"][split],
        split,
        owner,
        patches["lat_cut_deg"],
        patches["height"],
        patches["width"],
        patches["reso_arcmin"],
        rng_for(seed, "centers", realisation, split),
        mask=mask,
    )


def cut_realisation(
    split: str,
    realisation: int,
    centers: np.ndarray,
    patches: dict,
    freqs,
    observation: dict,
    nside: int,
    seed: int,
    signal_alm: np.ndarray,
    label: np.ndarray,
    maps: np.ndarray | None = None,
    nthreads: int = 1,
) -> tuple[dict, dict]:
    """Inputs {field: (N, H, W, C)} and labels {field: (N, H, W, 1)} for one realisation.

    ``method: exact`` evaluates signal_alm at every patch pixel and adds white
    noise drawn at the patch resolution; ``method: pixel`` interpolates the
    observed HEALPix ``maps`` (n_freq, rows, npix), noise included.
    """
    fields = patches["fields"]
    height, width, reso = patches["height"], patches["width"], patches["reso_arcmin"]
    n = len(centers)
    inputs = {f: np.empty((n, height, width, len(freqs)), np.float32) for f in fields}
    labels = {f: np.empty((n, height, width, 1), np.float32) for f in fields}
    lmax = lmax_for(nside)
    if patches["method"] == "pixel":
        if maps is None:
            raise ValueError("the pixel method needs the observed maps")
        label_pixwin = smooth_alm(label, map_pixel_window(observation, nside))
        label_maps = alm_to_maps(label_pixwin, nside, lmax)
        if any(f in ("E", "B") for f in fields):
            label_maps = np.concatenate([label_maps, scalar_eb_maps(label_pixwin, nside, lmax)])
    chunk = patches["chunk"]
    for start in range(0, n, chunk):
        idx = np.arange(start, min(start + chunk, n))
        theta, phi, psi = patch_geometry(centers[idx], height, width, reso)
        for i, nu in enumerate(freqs):
            if patches["method"] == "exact":
                values = fields_from_alm(fields, signal_alm[i], lmax, theta, phi, psi, nthreads)
                for f in fields:
                    values[f] = values[f] + patch_noise(
                        f,
                        idx,
                        height,
                        width,
                        observation["noise_T_uK_arcmin"][i],
                        observation["noise_P_uK_arcmin"][i],
                        reso,
                        seed,
                        (split, realisation, float(nu)),
                    )
            else:
                values = fields_from_maps(fields, maps[i], theta, phi, psi, patches["interpolation"])
            for f in fields:
                inputs[f][idx, ..., i] = values[f]
        if patches["method"] == "exact":
            values = fields_from_alm(fields, label, lmax, theta, phi, psi, nthreads)
        else:
            values = fields_from_maps(fields, label_maps, theta, phi, psi, patches["interpolation"])
        for f in fields:
            labels[f][idx, ..., 0] = values[f]
        log.info("%s realisation %d: %d/%d patches cut", split, realisation, idx[-1] + 1, n)
    return inputs, labels


__all__ = [
    "SPLITS",
    "cmb_realisation",
    "foreground_realisation",
    "observe",
    "label_alm",
    "split_centers",
    "cut_realisation",
]
