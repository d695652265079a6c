"""Flat-sky patches on gnomonic tangent planes, for many patches at once.

Orientation follows healpy.gnomview (``flip='astro'``) so a patch can be
compared with healpy's own projection: array index [row, col], row 0 at the
bottom (south), columns increasing towards the west (east is on the left).

Polarisation: HEALPix Q/U are defined in the local (theta, phi) frame of each
pixel, whose north drifts away from the patch's +y axis off-centre (fast near
the poles). Every sample is rotated into the patch frame by the angle psi
between local north and the patch's +y axis, and the pair is given the
flat-sky sign convention (Q > 0 east-west, along the rows; U > 0 along the
north-east, i.e. up-left, diagonal) under which flat-sky E/B (NaMaster's
NmtFieldFlat on these arrays) equal healpy's E/B: TE, TB and EB measured on
patches match the full-sky spectra in sign and amplitude (tested).

Two samplers:
- ``sample_maps``: nearest-pixel or bilinear interpolation of HEALPix maps,
  for real maps (cheap, but it leaks E into B at the lensing-B level);
- ``evaluate_alm``: exact synthesis of the harmonic coefficients at the patch
  pixels (ducc0's synthesis_general), for simulated skies.
"""

from __future__ import annotations

import numpy as np

from cmbnn.units import ARCMIN


def plane_offsets(height: int, width: int, reso_arcmin: float) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane (x_east, y_north) of pixel centres in radians, each (H, W)."""
    rows = (np.arange(height) - (height - 1) / 2) * reso_arcmin * ARCMIN
    cols = (np.arange(width) - (width - 1) / 2) * reso_arcmin * ARCMIN
    y, x_west = np.meshgrid(rows, cols, indexing="ij")
    return -x_west, y


def centre_frames(lon_deg, lat_deg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (N, 3): centre, local east and local north at each centre."""
    lon = np.radians(np.asarray(lon_deg, dtype=np.float64))
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    centre = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=-1)
    return centre, east, north


def patch_geometry(centers_deg: np.ndarray, height: int, width: int, reso_arcmin: float):
    """Sky positions of every pixel of every patch and their polarisation angle.

    centers_deg: (N, 2) Galactic (lon, lat) in degrees.
    Returns theta, phi, psi, each (N, H, W), in radians. psi is the angle
    from local north to the patch's +y axis, positive towards east.
    """
    centers_deg = np.atleast_2d(np.asarray(centers_deg, dtype=np.float64))
    x, y = plane_offsets(height, width, reso_arcmin)
    centre, east, north = centre_frames(centers_deg[:, 0], centers_deg[:, 1])
    # Point on the tangent plane c + x e + y n, then onto the sphere (inverse gnomonic
    # projection); one (N, H, W) array per Cartesian component keeps temporaries small.
    c, e, n = (a[:, :, None, None] for a in (centre, east, north))
    vx, vy, vz = c[:, 0] + x * e[:, 0] + y * n[:, 0], c[:, 1] + x * e[:, 1] + y * n[:, 1], c[:, 2] + x * e[:, 2] + y * n[:, 2]
    norm = np.sqrt(vx * vx + vy * vy + vz * vz)
    vx /= norm
    vy /= norm
    vz /= norm
    theta = np.arctan2(np.sqrt(vx * vx + vy * vy), vz)
    phi = np.mod(np.arctan2(vy, vx), 2 * np.pi)
    psi = frame_angle(n[:, 0], n[:, 1], n[:, 2], vx, vy, vz)
    return theta, phi, psi


def frame_angle(nx, ny, nz, vx, vy, vz):
    """Angle psi at unit vectors v from local north to the direction of the frame's +y axis.

    The frame's +y at v is its centre's north n projected onto the tangent plane
    at v. Its components along local east and north, both times sin(theta):
      east:  n_y v_x - n_x v_y
      north: n_z (v_x^2 + v_y^2) - v_z (n_x v_x + n_y v_y)
    """
    along_east = ny * vx - nx * vy
    along_north = nz * (vx * vx + vy * vy) - vz * (nx * vx + ny * vy)
    return np.arctan2(along_east, along_north)


def unit_vectors(lon_deg, lat_deg) -> np.ndarray:
    """Unit vectors (..., 3) of Galactic (lon, lat) in degrees."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def gnomonic_pixels(center_deg, vectors: np.ndarray, height: int, width: int, reso_arcmin: float):
    """Fractional (row, col) of unit vectors (n, 3) in the patch about ``center_deg`` (lon, lat),
    in the orientation of :func:`plane_offsets` (pixel centres at integers), and whether each
    lies in front of the tangent plane. Inverse of the projection in :func:`patch_geometry`."""
    centre, east, north = (a[0] for a in centre_frames([center_deg[0]], [center_deg[1]]))
    depth = vectors @ centre
    with np.errstate(divide="ignore", invalid="ignore"):
        x_east = (vectors @ east) / depth
        y_north = (vectors @ north) / depth
    step = reso_arcmin * ARCMIN
    row = y_north / step + (height - 1) / 2
    col = -x_east / step + (width - 1) / 2
    return row, col, depth > 0


def rotate_qu(q: np.ndarray, u: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q/U from the local (theta, phi) frame into the patch frame: P' = -P exp(2 i psi).

    HEALPix measures polarisation angles from north towards west; the patch's
    +y axis lies psi east of north, i.e. -psi towards west, so every angle
    grows by psi in the patch frame (the wrong sign mixes E and B). The
    overall minus sign (a 90 degree turn of the reference axis) moves Q's
    reference from north-south to east-west, the flat-sky convention in which
    E and B keep healpy's signs (without it TE and TB come out negated).
    """
    c, s = np.cos(2 * psi), np.sin(2 * psi)
    return u * s - q * c, -(q * s + u * c)


def sample_maps(maps: np.ndarray, theta: np.ndarray, phi: np.ndarray, interpolation: str = "nearest") -> np.ndarray:
    """Values of RING HEALPix maps (n_maps, npix) at positions (...): (n_maps, ...)."""
    import healpy as hp

    maps = np.atleast_2d(maps)
    nside = hp.npix2nside(maps.shape[-1])
    if interpolation == "nearest":
        pix = hp.ang2pix(nside, theta, phi)
        return maps[:, pix]
    if interpolation == "bilinear":
        pix, weights = hp.get_interp_weights(nside, theta.ravel(), phi.ravel())
        out = np.einsum("kp,mkp->mp", weights, maps[:, pix])
        return out.reshape((maps.shape[0],) + theta.shape)
    raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")


def evaluate_alm(alm: np.ndarray, lmax: int, theta: np.ndarray, phi: np.ndarray, spin: int, nthreads: int = 1, epsilon: float = 1e-7):
    """Exact synthesis of alm at arbitrary positions.

    spin 0: alm (nalm,) -> values (...); spin 2: alm (2, nalm) = (E, B) ->
    (Q, U) in the local (theta, phi) frame with healpy's sign conventions.
    """
    import ducc0

    loc = np.stack([theta.ravel(), phi.ravel()], axis=-1)
    alm = np.atleast_2d(np.asarray(alm, dtype=np.complex128))
    out = ducc0.sht.synthesis_general(alm=alm, spin=spin, lmax=lmax, loc=loc, epsilon=epsilon, nthreads=nthreads)
    out = out.reshape((alm.shape[0],) + theta.shape)
    return out[0] if spin == 0 else out
