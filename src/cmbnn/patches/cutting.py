"""Cutting patches: every field of the observed sky at every patch pixel, by exact evaluation of
the alm or by interpolating the HEALPix maps, a chunk of patches at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cmbnn.harmonics import alm_to_maps, scalar_eb_maps, smooth_alm
from cmbnn.projection import evaluate_alm, patch_geometry, rotate_qu, sample_maps
from cmbnn.seeding import rng_for
from cmbnn.settings import RunSettings
from cmbnn.sky.noise import white_noise
from cmbnn.sky.simulate import map_pixel_window
from cmbnn.sky.sources import PatchSources, bright_source_mask, merge, render_patches

log = logging.getLogger(__name__)


def needs_spin2(fields) -> bool:
    return any(f in ("Q", "U") for f in fields)


def fields_from_alm(fields, teb_alm: np.ndarray, lmax: int, theta, phi, psi, nthreads: int = 1) -> dict:
    """Exact values of each field at the positions, Q/U rotated into the patch frame."""
    out = {}
    if "T" in fields:
        out["T"] = evaluate_alm(teb_alm[0], lmax, theta, phi, spin=0, nthreads=nthreads)
    if needs_spin2(fields):
        q, u = evaluate_alm(teb_alm[1:3], lmax, theta, phi, spin=2, nthreads=nthreads)
        out["Q"], out["U"] = rotate_qu(q, u, psi)
    for i, name in ((1, "E"), (2, "B")):
        if name in fields:
            out[name] = evaluate_alm(teb_alm[i], lmax, theta, phi, spin=0, nthreads=nthreads)
    return {f: out[f] for f in fields}


def fields_from_maps(fields, maps: np.ndarray, theta, phi, psi, interpolation: str) -> dict:
    """Interpolated values of each field; maps rows are T, Q, U[, E, B] as written by the observation step."""
    out = {}
    if "T" in fields:
        out["T"] = sample_maps(maps[0], theta, phi, interpolation)[0]
    if needs_spin2(fields):
        q, u = sample_maps(maps[1:3], theta, phi, interpolation)
        out["Q"], out["U"] = rotate_qu(q, u, psi)
    for i, name in ((3, "E"), (4, "B")):
        if name in fields:
            if maps.shape[0] <= i:
                raise ValueError(f"field {name} needs scalar E/B maps (observation.scalar_eb: true)")
            out[name] = sample_maps(maps[i], theta, phi, interpolation)[0]
    return {f: out[f] for f in fields}



def patch_noise(run: RunSettings, field: str, indices, i_freq: int, keys) -> np.ndarray:
    """White noise of frequency ``i_freq`` at patch pixels of area reso^2.

    One generator per (patch index, field), so how patches are chunked does
    not change the draws. T uses the temperature depth, Q/U/E/B the
    polarisation depth (white Q/U noise has E/B noise of the same depth).
    ``keys`` (split, realisation, frequency) tell the patch sets apart.
    """
    height, width, reso = run.patches["height"], run.patches["width"], run.patches["reso_arcmin"]
    level = run.observation["noise_T_uK_arcmin" if field == "T" else "noise_P_uK_arcmin"][i_freq]
    out = np.empty((len(indices), height, width))
    for j, i in enumerate(indices):
        out[j] = white_noise((height, width), level, reso**2, rng_for(run.seed, "patch_noise", *keys, int(i), field))
    return out


@dataclass(frozen=True)
class ObservedSky:
    """What patches are cut from, for one realisation: ``signal_alm`` (n_freq, 3, nalm) CMB +
    diffuse foregrounds smoothed by each beam, ``label`` the CMB alm at the label beam, the
    observed HEALPix ``maps`` (n_freq, rows, npix; the pixel method only) and the point-source
    catalogues ``sources``."""

    signal_alm: np.ndarray
    label: np.ndarray
    maps: np.ndarray | None = None
    sources: tuple = ()


@dataclass
class PatchSet:
    """Patches of one realisation and split: inputs {field: (N, H, W, n_freq)}, labels
    {field: (N, H, W, 1)} (CMB only), the bright-source mask (N, H, W) uint8 (1 = masked)
    and the bright sources near each patch (rows of dicts, ``patch`` indexing these centres)."""

    inputs: dict
    labels: dict
    mask: np.ndarray
    sources: list = field(default_factory=list)


@dataclass
class PatchChunk(PatchSet):
    """Patches start:start+len(mask) of a realisation (``sources[i]['patch']`` counts from the
    realisation's first patch, not the chunk's)."""

    start: int = 0


def _cut(run: RunSettings, centers, index: PatchSources, sample_inputs, sample_label) -> PatchSet:
    """All chunks of :func:`_cut_chunks` gathered into one PatchSet."""
    fields = run.patches["fields"]
    height, width = run.patches["height"], run.patches["width"]
    n = len(centers)
    inputs = {f: np.empty((n, height, width, len(run.freqs)), np.float32) for f in fields}
    labels = {f: np.empty((n, height, width, 1), np.float32) for f in fields}
    mask = np.zeros((n, height, width), np.uint8)
    table = []
    for chunk in _cut_chunks(run, centers, index, sample_inputs, sample_label):
        rows = slice(chunk.start, chunk.start + len(chunk.mask))
        for f in fields:
            inputs[f][rows] = chunk.inputs[f]
            labels[f][rows] = chunk.labels[f]
        mask[rows] = chunk.mask
        table += chunk.sources
    return PatchSet(inputs, labels, mask, table)


def _cut_chunks(run: RunSettings, centers, index: PatchSources, sample_inputs, sample_label):
    """The loop shared by both methods: chunks of patches, inputs per frequency, label, mask.

    Yields a :class:`PatchChunk` of at most ``patches['chunk']`` patches at a time.
    sample_inputs(i_freq, idx, theta, phi, psi) -> {field: (n, H, W)} and
    sample_label(idx, theta, phi, psi) -> {field: (n, H, W)}. Without a label
    frequency the mask stays empty.
    """
    patches, freqs = run.patches, run.freqs
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
        if run.label_frequency is not None:
            i_label = run.i_label
            radius = patches["source_mask_radius_fwhm"] * run.beam(i_label)
            mask[:], rows = bright_source_mask(index, i_label, patches["source_mask_flux_Jy"], radius, centers[idx], theta, phi, reso)
            table = [{**row, "patch": int(idx[row["patch"]])} for row in rows]
        log.info("%d/%d patches cut", idx[-1] + 1, n)
        yield PatchChunk(inputs, labels, mask, table, start=start)


def cut_exact(run: RunSettings, split: str, realisation: int, centers, sky: ObservedSky, nthreads: int = 1, chunks: bool = False):
    """Patches by exact evaluation of ``sky.signal_alm`` (CMB + diffuse foregrounds, beam-smoothed) at
    every patch pixel, point sources rendered with each frequency's beam profile, and white
    noise drawn at the patch resolution; the label is ``sky.label`` (CMB alm) evaluated likewise.
    A PatchSet, or with ``chunks`` an iterator of :class:`PatchChunk` (one chunk resident at a time)."""
    patches, freqs = run.patches, run.freqs
    fields = patches["fields"]
    reso = patches["reso_arcmin"]
    lmax = run.lmax
    index = PatchSources(merge(list(sky.sources), len(freqs)))
    if len(index.vec) and any(f in ("E", "B") for f in fields):
        log.warning("scalar E/B patches carry no point sources (they are rendered in T, Q and U only)")

    rendered = {}  # point sources of the current chunk, all frequencies at once

    def sample_inputs(i, idx, theta, phi, psi):
        nu = freqs[i]
        values = fields_from_alm(fields, sky.signal_alm[i], lmax, theta, phi, psi, nthreads)
        if rendered.get("start") != idx[0]:
            rendered.update(start=idx[0], maps=render_patches(index, freqs, run.observation["beam_fwhm_arcmin"], centers[idx], theta, phi, reso, fields))
        for f in fields:
            values[f] = values[f] + rendered["maps"][i].get(f, 0.0)
            values[f] = values[f] + patch_noise(run, f, idx, i, (split, realisation, float(nu)))
        return values

    def sample_label(idx, theta, phi, psi):
        return fields_from_alm(fields, sky.label, lmax, theta, phi, psi, nthreads)

    return (_cut_chunks if chunks else _cut)(run, centers, index, sample_inputs, sample_label)


def cut_pixel(run: RunSettings, centers, sky: ObservedSky, chunks: bool = False):
    """Patches by interpolating the observed HEALPix ``sky.maps`` (n_freq, rows, npix; noise and
    point sources included); the label is ``sky.label`` (CMB alm) synthesised as a map with the
    same pixel window and sampled the same way. A PatchSet, or with ``chunks`` an iterator of
    :class:`PatchChunk`."""
    patches = run.patches
    fields = patches["fields"]
    label_pixwin = smooth_alm(sky.label, map_pixel_window(run))
    label_maps = alm_to_maps(label_pixwin, run.nside, run.lmax)
    if any(f in ("E", "B") for f in fields):
        label_maps = np.concatenate([label_maps, scalar_eb_maps(label_pixwin, run.nside, run.lmax)])

    def sample_inputs(i, idx, theta, phi, psi):
        return fields_from_maps(fields, sky.maps[i], theta, phi, psi, patches["interpolation"])

    def sample_label(idx, theta, phi, psi):
        return fields_from_maps(fields, label_maps, theta, phi, psi, patches["interpolation"])

    cut = _cut_chunks if chunks else _cut
    return cut(run, centers, PatchSources(merge(list(sky.sources), len(run.freqs))), sample_inputs, sample_label)


def cut_realisation(run: RunSettings, split: str, realisation: int, centers, sky: ObservedSky, nthreads: int = 1, chunks: bool = False):
    """Patches of one realisation by ``patches['method']`` (see :func:`cut_exact`, :func:`cut_pixel`):
    a PatchSet, or with ``chunks`` an iterator of :class:`PatchChunk` of at most ``patches['chunk']``
    patches, so that a writer can store each chunk and memory does not grow with the number of patches."""
    if run.patches["method"] == "exact":
        return cut_exact(run, split, realisation, centers, sky, nthreads, chunks=chunks)
    if sky.maps is None:
        raise ValueError("the pixel method needs the observed maps")
    return cut_pixel(run, centers, sky, chunks=chunks)
