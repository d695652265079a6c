"""Point sources rendered in real space: flux x the normalised Gaussian beam at the true distance.

A point source through band-limited alm rings (Gibbs oscillations around every
source, negative lobes included) and sits at a HEALPix pixel centre. Here each
source of a catalogue (see :func:`cmbnn.sky.foregrounds.point_source_catalogue`)
is evaluated at every pixel within a few beam widths, as flux times the beam
profile at the exact angular distance, on HEALPix maps and on patch pixels
alike. Polarisation is carried from the source to each pixel along the
source's own tangent-plane frame (parallel transport to first order, exact at
the source).
"""

from __future__ import annotations

import numpy as np

from cmbnn.projection import centre_frames, frame_angle, gnomonic_pixels, rotate_qu, unit_vectors
from cmbnn.units import ARCMIN, jy_per_sr_to_uk_cmb

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))
# Pixels farther than this many beam sigmas from a source get nothing (profile < 4e-6 of the peak).
REACH_SIGMA = 5.0


def beam_profile(distance_rad, fwhm_arcmin: float):
    """Gaussian beam normalised to unit integral, in sr^-1 (small-angle form)."""
    sigma = fwhm_arcmin * ARCMIN * FWHM_TO_SIGMA
    return np.exp(-0.5 * (np.asarray(distance_rad) / sigma) ** 2) / (2 * np.pi * sigma**2)


def angular_distance(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Great-circle distance between unit vectors (..., 3), accurate at small angles."""
    chord = np.sqrt(np.sum((v1 - v2) ** 2, axis=-1))
    return 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def merge(catalogues: list, n_freq: int) -> dict:
    """One catalogue from several (columns concatenated). With none, empty columns of the same
    shapes: ``flux_Jy`` (0, n_freq), so that looking up a frequency's fluxes finds no source
    rather than failing (a config without point sources)."""
    keys = ("lon_deg", "lat_deg", "flux_Jy", "pol_angle_rad", "pol_fraction")
    if not catalogues:
        return {k: np.zeros((0, n_freq) if k == "flux_Jy" else (0,)) for k in keys}
    return {k: np.concatenate([np.asarray(c[k]) for c in catalogues]) for k in keys}


def render_healpix(catalogue: dict, freqs, fwhm_arcmin, nside: int, batch: int = 20000) -> np.ndarray:
    """(n_freq, 3, npix) T, Q, U in uK_CMB (HEALPix's local Q/U frames) of every source, each
    frequency with its own beam, sampled at pixel centres (no pixel window)."""
    import healpy as hp

    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    fwhm = np.atleast_1d(np.asarray(fwhm_arcmin, dtype=np.float64))
    npix = 12 * nside**2
    out = np.zeros((freqs.size, 3, npix))
    n = len(catalogue["lon_deg"])
    if n == 0:
        return out
    reach = REACH_SIGMA * fwhm.max() * ARCMIN * FWHM_TO_SIGMA
    vec = unit_vectors(catalogue["lon_deg"], catalogue["lat_deg"])
    _, _, north = centre_frames(catalogue["lon_deg"], catalogue["lat_deg"])
    # Batches of sources bound the memory of the (pixel, source) lists at high nside.
    for start in range(0, n, batch):
        pixels, owners = [], []
        for k in range(start, min(start + batch, n)):
            pix = hp.query_disc(nside, vec[k], reach, inclusive=True)
            pixels.append(pix)
            owners.append(np.full(pix.size, k))
        pix = np.concatenate(pixels)
        src = np.concatenate(owners)
        vpix = np.stack(hp.pix2vec(nside, pix), axis=-1)
        distance = angular_distance(vpix, vec[src])
        # Polarisation angle in each pixel's local frame: the source's angle (its local frame
        # = its tangent frame at the source) minus the frame's rotation psi at the pixel.
        psi = frame_angle(north[src, 0], north[src, 1], north[src, 2], vpix[:, 0], vpix[:, 1], vpix[:, 2])
        angle = 2 * (catalogue["pol_angle_rad"][src] - psi)
        for i, nu in enumerate(freqs):
            t = catalogue["flux_Jy"][src, i] * beam_profile(distance, fwhm[i]) * jy_per_sr_to_uk_cmb(nu)
            p = catalogue["pol_fraction"][src] * t
            out[i, 0] += np.bincount(pix, t, npix)
            out[i, 1] += np.bincount(pix, p * np.cos(angle), npix)
            out[i, 2] += np.bincount(pix, p * np.sin(angle), npix)
    return out


class PatchSources:
    """The sources of a catalogue near each patch, with their fractional pixel positions.

    Candidates come from a coarse HEALPix index of the catalogue; a source is
    kept for a patch when its projected position lies within ``margin_px``
    pixels of the patch (in front of the tangent plane).
    """

    INDEX_NSIDE = 16

    def __init__(self, catalogue: dict):
        import healpy as hp

        self.catalogue = catalogue
        self.vec = unit_vectors(catalogue["lon_deg"], catalogue["lat_deg"]).reshape(-1, 3)
        cell = hp.vec2pix(self.INDEX_NSIDE, *self.vec.T) if len(self.vec) else np.zeros(0, int)
        self.order = np.argsort(cell, kind="stable")
        self.bounds = np.searchsorted(cell[self.order], np.arange(12 * self.INDEX_NSIDE**2 + 1))

    def near(self, center_deg, height: int, width: int, reso_arcmin: float, margin_px: float):
        """(source indices, row, col) of sources within margin_px of the patch."""
        import healpy as hp

        if len(self.vec) == 0:
            return np.zeros(0, int), np.zeros(0), np.zeros(0)
        half_diagonal = 0.5 * np.hypot(height + 2 * margin_px, width + 2 * margin_px) * reso_arcmin * ARCMIN
        radius = min(np.pi, 1.05 * np.arctan(half_diagonal) + 1e-3)
        cells = hp.query_disc(self.INDEX_NSIDE, unit_vectors(center_deg[0], center_deg[1]), radius, inclusive=True)
        idx = np.concatenate([self.order[self.bounds[c] : self.bounds[c + 1]] for c in cells])
        idx.sort()
        row, col, front = gnomonic_pixels(center_deg, self.vec[idx], height, width, reso_arcmin)
        keep = front & (row > -1 - margin_px) & (row < height + margin_px) & (col > -1 - margin_px) & (col < width + margin_px)
        return idx[keep], row[keep], col[keep]


def _boxes(row, col, half: int, height: int, width: int):
    """Pixel index boxes (n, k, k) around fractional positions, with a validity mask."""
    offsets = np.arange(-half, half + 2)
    r = np.floor(row).astype(int)[:, None, None] + offsets[None, :, None]
    c = np.floor(col).astype(int)[:, None, None] + offsets[None, None, :]
    r, c = np.broadcast_arrays(r, c)
    valid = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    return np.clip(r, 0, height - 1), np.clip(c, 0, width - 1), valid


def _pixel_vectors(theta, phi):
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def render_patches(index: PatchSources, freqs, fwhm_arcmin, centers, theta, phi, reso_arcmin: float, fields) -> list:
    """Sources in patches: per frequency a dict {field: (N, H, W)} in uK_CMB to add to the sky.

    T is flux x beam at each pixel's true distance from the source; Q and U are
    the source's polarisation rotated into the patch frame (flat-sky
    convention, like the sky's; see :func:`cmbnn.projection.rotate_qu`) at
    the source, times the same profile. Scalar E/B patches get no sources.
    """
    freqs = np.atleast_1d(np.asarray(freqs, dtype=np.float64))
    fwhm = np.atleast_1d(np.asarray(fwhm_arcmin, dtype=np.float64))
    n, height, width = theta.shape
    want = [f for f in fields if f in ("T", "Q", "U")]
    out = [{f: np.zeros((n, height, width)) for f in want} for _ in freqs]
    if not want:
        return out
    half = int(np.ceil(REACH_SIGMA * fwhm.max() * FWHM_TO_SIGMA / reso_arcmin)) + 1
    cat = index.catalogue
    for j in range(n):
        idx, row, col = index.near(centers[j], height, width, reso_arcmin, half)
        if idx.size == 0:
            continue
        r, c, valid = _boxes(row, col, half, height, width)
        vpix = _pixel_vectors(theta[j][r, c], phi[j][r, c])
        distance = angular_distance(vpix, index.vec[idx][:, None, None, :])
        _, _, north = centre_frames([centers[j][0]], [centers[j][1]])
        vs = index.vec[idx]
        psi = frame_angle(north[0, 0], north[0, 1], north[0, 2], vs[:, 0], vs[:, 1], vs[:, 2])
        chi = cat["pol_angle_rad"][idx]
        q_frame, u_frame = rotate_qu(np.cos(2 * chi), np.sin(2 * chi), psi)
        flat = (r * width + c).ravel()
        for i, nu in enumerate(freqs):
            t = cat["flux_Jy"][idx, i, None, None] * beam_profile(distance, fwhm[i]) * jy_per_sr_to_uk_cmb(nu) * valid
            p = cat["pol_fraction"][idx, None, None] * t
            parts = {"T": t, "Q": p * q_frame[:, None, None], "U": p * u_frame[:, None, None]}
            for f in want:
                # Boxes of neighbouring sources overlap: accumulate (bincount sums repeated pixels).
                out[i][f][j] += np.bincount(flat, parts[f].ravel(), height * width).reshape(height, width)
    return out


def bright_source_mask(index: PatchSources, i_label: int, flux_cut_jy: float, radius_arcmin: float, centers, theta, phi, reso_arcmin: float):
    """Mask (N, H, W) uint8 (1 = within radius of a source brighter than the cut at the label
    frequency) and the list of those sources per patch (dicts with the patch index within
    these centres, catalogue index, lon, lat, flux per frequency, fractional pixel x = col, y = row)."""
    n, height, width = theta.shape
    mask = np.zeros((n, height, width), np.uint8)
    rows = []
    cat = index.catalogue
    half = int(np.ceil(radius_arcmin / reso_arcmin)) + 1
    radius = radius_arcmin * ARCMIN
    for j in range(n):
        idx, row, col = index.near(centers[j], height, width, reso_arcmin, half)
        bright = cat["flux_Jy"][idx, i_label] > flux_cut_jy
        idx, row, col = idx[bright], row[bright], col[bright]
        if idx.size == 0:
            continue
        r, c, valid = _boxes(row, col, half, height, width)
        distance = angular_distance(_pixel_vectors(theta[j][r, c], phi[j][r, c]), index.vec[idx][:, None, None, :])
        hit = valid & (distance < radius)
        mask[j][r[hit], c[hit]] = 1
        inside = (row >= -0.5) & (row < height - 0.5) & (col >= -0.5) & (col < width - 0.5)
        for k in np.flatnonzero(hit.any(axis=(1, 2)) | inside):
            s = idx[k]
            rows.append(
                {
                    "patch": j,
                    "source": int(s),
                    "lon_deg": float(cat["lon_deg"][s]),
                    "lat_deg": float(cat["lat_deg"][s]),
                    "flux_Jy": cat["flux_Jy"][s].astype(float).tolist(),
                    "x": float(col[k]),
                    "y": float(row[k]),
                }
            )
    return mask, rows
