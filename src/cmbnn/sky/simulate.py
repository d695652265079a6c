"""The sky-simulation stages, one function per workflow rule.

Each function takes plain config values and returns arrays; the workflow
scripts only read inputs, call one of these and write the outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cmbnn.harmonics import alm_to_maps, gaussian_beam, pixel_side_arcmin, pixel_window, scalar_eb_maps, smooth_alm, synalm_teb
from cmbnn.patches import SPLITS, assign_regions, draw_centers, fields_from_alm, fields_from_maps, patch_noise
from cmbnn.projection import patch_geometry
from cmbnn.seeding import rng_for
from cmbnn.sky import foregrounds as fg
from cmbnn.sky.noise import correlated_noise, white_noise
from cmbnn.sky.sources import PatchSources, bright_source_mask, merge, render_healpix, render_patches

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


def foreground_realisation(name: str, settings: dict, nside: int, freqs, seed: int, realisation: int, lat_cut_deg: float = 0.0):
    """A diffuse component: templates (K, 3, nalm), mixing matrix (n_freq, K), the SED
    parameter fields' alm and the realised vs configured amplitudes, uK_CMB."""
    rng = rng_for(seed, "foreground", realisation, name)
    return fg.component_alm(name, settings, nside, lmax_for(nside), freqs, rng, lat_cut_deg)


def source_catalogue(name: str, settings: dict, freqs, seed: int, realisation: int) -> dict:
    """Catalogue of one point-source population (see :func:`cmbnn.foregrounds.point_source_catalogue`)."""
    return fg.point_source_catalogue(freqs, settings, rng_for(seed, "foreground", realisation, name))


def observe(
    cmb_alm: np.ndarray, components: list, freqs, observation: dict, nside: int, seed: int, realisation: int, sources: list = (), noise_variance=None
):
    """Beam-smoothed signal alm per frequency and the observed full-sky maps.

    components: list of (templates, sed) pairs of diffuse components;
    sources: list of point-source catalogues. Returns (signal_alm
    (n_freq, 3, nalm): CMB + diffuse foregrounds, beam-smoothed, no point
    sources (patches render those directly); maps (n_freq, 3 or 5, npix): T,
    Q, U [, E, B] of CMB + diffuse foregrounds smoothed by the beam (and pixel
    window), plus the point sources with the beam profile at pixel centres,
    plus noise). The noise is white at the configured uK-arcmin depths, or, with
    ``noise_variance`` (one (II, QQ, UU, QU) uK_CMB^2 array (4, npix) per frequency,
    e.g. from :func:`cmbnn.realsky.noise_variance`), inhomogeneous with that
    per-pixel covariance.
    """
    lmax = lmax_for(nside)
    pixwin = map_pixel_window(observation, nside)
    pixel_area = pixel_side_arcmin(nside) ** 2
    point_sources = render_healpix(merge(list(sources)), freqs, observation["beam_fwhm_arcmin"], nside)
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
        rng = rng_for(seed, "noise", realisation, float(nu))
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


@dataclass
class PatchSet:
    """Patches of one realisation and split: inputs {field: (N, H, W, n_freq)}, labels
    {field: (N, H, W, 1)} (CMB only), the bright-source mask (N, H, W) uint8 (1 = masked)
    and the bright sources near each patch (rows of dicts, ``patch`` indexing these centres)."""

    inputs: dict
    labels: dict
    mask: np.ndarray
    sources: list = field(default_factory=list)


def _cut(centers, patches: dict, freqs, observation: dict, index: PatchSources, label_frequency, sample_inputs, sample_label) -> PatchSet:
    """All chunks of :func:`_cut_chunks` gathered into one PatchSet."""
    fields = patches["fields"]
    height, width = patches["height"], patches["width"]
    n = len(centers)
    inputs = {f: np.empty((n, height, width, len(freqs)), np.float32) for f in fields}
    labels = {f: np.empty((n, height, width, 1), np.float32) for f in fields}
    mask = np.zeros((n, height, width), np.uint8)
    table = []
    for chunk in _cut_chunks(centers, patches, freqs, observation, index, label_frequency, sample_inputs, sample_label):
        rows = slice(chunk.start, chunk.start + len(chunk.mask))
        for f in fields:
            inputs[f][rows] = chunk.inputs[f]
            labels[f][rows] = chunk.labels[f]
        mask[rows] = chunk.mask
        table += chunk.sources
    return PatchSet(inputs, labels, mask, table)


@dataclass
class PatchChunk(PatchSet):
    """Patches start:start+len(mask) of a realisation (``sources[i]['patch']`` counts from the
    realisation's first patch, not the chunk's)."""

    start: int = 0


def _cut_chunks(centers, patches: dict, freqs, observation: dict, index: PatchSources, label_frequency, sample_inputs, sample_label):
    """The loop shared by both methods: chunks of patches, inputs per frequency, label, mask.

    Yields a :class:`PatchChunk` of at most ``patches['chunk']`` patches at a time.
    sample_inputs(i_freq, idx, theta, phi, psi) -> {field: (n, H, W)} and
    sample_label(idx, theta, phi, psi) -> {field: (n, H, W)}. Without a label
    frequency the mask stays empty.
    """
    fields = patches["fields"]
    height, width, reso = patches["height"], patches["width"], patches["reso_arcmin"]
    n = len(centers)
    chunk = patches["chunk"]
    for start in range(0, n, chunk):
        idx = np.arange(start, min(start + chunk, n))
        inputs = {f: np.empty((len(idx), height, width, len(freqs)), np.float32) for f in fields}
        labels = {f: np.empty((len(idx), height, width, 1), np.float32) for f in fields}
        mask = np.zeros((len(idx), height, width), np.uint8)
        table = []
        theta, phi, psi = patch_geometry(centers[idx], height, width, reso)
        for i in range(len(freqs)):
            values = sample_inputs(i, idx, theta, phi, psi)
            for f in fields:
                inputs[f][..., i] = values[f]
        values = sample_label(idx, theta, phi, psi)
        for f in fields:
            labels[f][..., 0] = values[f]
        if label_frequency is not None:
            i_label = list(freqs).index(label_frequency)
            radius = patches["source_mask_radius_fwhm"] * observation["beam_fwhm_arcmin"][i_label]
            mask[:], rows = bright_source_mask(index, i_label, patches["source_mask_flux_Jy"], radius, centers[idx], theta, phi, reso)
            table = [{**row, "patch": int(idx[row["patch"]])} for row in rows]
        log.info("%d/%d patches cut", idx[-1] + 1, n)
        yield PatchChunk(inputs, labels, mask, table, start=start)


def cut_exact(
    split, realisation, centers, patches, freqs, observation, nside, seed, signal_alm, label, sources=(), label_frequency=None, nthreads=1, chunks=False
):
    """Patches by exact evaluation of signal_alm (CMB + diffuse foregrounds, beam-smoothed) at
    every patch pixel, point sources rendered with each frequency's beam profile, and white
    noise drawn at the patch resolution; the label is ``label`` (CMB alm) evaluated likewise.
    A PatchSet, or with ``chunks`` an iterator of :class:`PatchChunk` (one chunk resident at a time)."""
    fields = patches["fields"]
    height, width, reso = patches["height"], patches["width"], patches["reso_arcmin"]
    lmax = lmax_for(nside)
    index = PatchSources(merge(list(sources)))
    if len(index.vec) and any(f in ("E", "B") for f in fields):
        log.warning("scalar E/B patches carry no point sources (they are rendered in T, Q and U only)")

    rendered = {}  # point sources of the current chunk, all frequencies at once

    def sample_inputs(i, idx, theta, phi, psi):
        nu = freqs[i]
        values = fields_from_alm(fields, signal_alm[i], lmax, theta, phi, psi, nthreads)
        if rendered.get("start") != idx[0]:
            rendered.update(start=idx[0], maps=render_patches(index, freqs, observation["beam_fwhm_arcmin"], centers[idx], theta, phi, reso, fields))
        for f in fields:
            values[f] = values[f] + rendered["maps"][i].get(f, 0.0)
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
        return values

    def sample_label(idx, theta, phi, psi):
        return fields_from_alm(fields, label, lmax, theta, phi, psi, nthreads)

    return (_cut_chunks if chunks else _cut)(centers, patches, freqs, observation, index, label_frequency, sample_inputs, sample_label)


def cut_pixel(centers, patches, freqs, observation, nside, label, maps, sources=(), label_frequency=None, chunks=False):
    """Patches by interpolating the observed HEALPix ``maps`` (n_freq, rows, npix; noise and
    point sources included); the label is ``label`` (CMB alm) synthesised as a map with the
    same pixel window and sampled the same way. A PatchSet, or with ``chunks`` an iterator of
    :class:`PatchChunk`."""
    fields = patches["fields"]
    lmax = lmax_for(nside)
    label_pixwin = smooth_alm(label, map_pixel_window(observation, nside))
    label_maps = alm_to_maps(label_pixwin, nside, lmax)
    if any(f in ("E", "B") for f in fields):
        label_maps = np.concatenate([label_maps, scalar_eb_maps(label_pixwin, nside, lmax)])

    def sample_inputs(i, idx, theta, phi, psi):
        return fields_from_maps(fields, maps[i], theta, phi, psi, patches["interpolation"])

    def sample_label(idx, theta, phi, psi):
        return fields_from_maps(fields, label_maps, theta, phi, psi, patches["interpolation"])

    cut = _cut_chunks if chunks else _cut
    return cut(centers, patches, freqs, observation, PatchSources(merge(list(sources))), label_frequency, sample_inputs, sample_label)


def cut_realisation(
    split, realisation, centers, patches, freqs, observation, nside, seed, signal_alm, label, maps=None, sources=(), label_frequency=None, nthreads=1,
    chunks=False,
):
    """Patches of one realisation by ``patches['method']`` (see :func:`cut_exact`, :func:`cut_pixel`):
    a PatchSet, or with ``chunks`` an iterator of :class:`PatchChunk` of at most ``patches['chunk']``
    patches, so that a writer can store each chunk and memory does not grow with the number of patches."""
    if patches["method"] == "exact":
        return cut_exact(
            split, realisation, centers, patches, freqs, observation, nside, seed, signal_alm, label, sources, label_frequency, nthreads, chunks=chunks
        )
    if maps is None:
        raise ValueError("the pixel method needs the observed maps")
    return cut_pixel(centers, patches, freqs, observation, nside, label, maps, sources, label_frequency, chunks=chunks)


__all__ = [
    "SPLITS",
    "cmb_realisation",
    "foreground_realisation",
    "observe",
    "label_alm",
    "split_centers",
    "cut_realisation",
    "cut_exact",
    "cut_pixel",
    "PatchSet",
    "PatchChunk",
    "source_catalogue",
]
