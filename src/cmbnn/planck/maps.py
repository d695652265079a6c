"""Planck archive maps brought to the simulation's conventions (what the `planck` preset reads).

* PLA file names of the HFI frequency maps, the CMB products and the masks;
* inhomogeneous noise covariances from each HFI map's own per-pixel II/QQ/UU/QU columns
  (:func:`noise_variance`; :func:`cmbnn.sky.noise.correlated_noise` draws from them);
* the real frequency maps and Planck's CMB products at the simulation's resolution
  (:func:`prepare_frequency_map`, :func:`prepare_cmb_map`): same beam as the simulated
  channel, the simulation's pixel window, RING, uK_CMB; masks as booleans (:func:`keep_mask`).
"""

from __future__ import annotations

import logging

import numpy as np

from cmbnn.io import write_maps_fits
from cmbnn.planck.archive import change_resolution, read_planck_map, read_planck_mask

log = logging.getLogger(__name__)


# HFI frequency maps (release 3.01), one file per frequency and data split.
HFI_FREQUENCIES = (100, 143, 217, 353)



HFI_DATA = {"full": "full", "hm1": "halfmission-1", "hm2": "halfmission-2"}



CMB_PRODUCTS = {
    "commander": "COM_CMB_IQU-commander_2048_R3.00_full.fits",
    "smica": "COM_CMB_IQU-smica_2048_R3.00_full.fits",
}



MASK_FILES = {
    "common_pol": "COM_Mask_CMB-common-Mask-Pol_2048_R3.00.fits",
    "common_int": "COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits",
}



STOKES = ("I_STOKES", "Q_STOKES", "U_STOKES")



COV_COLUMNS = ("II_COV", "QQ_COV", "UU_COV", "QU_COV")



def hfi_map_file(freq, data: str = "full") -> str:
    """PLA file name of an HFI frequency map: ``data`` is full, hm1 or hm2 (half missions)."""
    nu = float(freq)
    if nu not in HFI_FREQUENCIES:
        raise ValueError(f"no HFI frequency map at {nu:g} GHz: the real-sky inputs must be among {list(HFI_FREQUENCIES)} GHz")
    if data not in HFI_DATA:
        raise ValueError(f"HFI data split {data!r}: choose one of {sorted(HFI_DATA)}")
    return f"HFI_SkyMap_{int(nu)}_2048_R3.01_{HFI_DATA[data]}.fits"



def noise_variance(path, nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel noise covariance (II, QQ, UU, QU) in uK_CMB^2 at ``nside``, and the bad pixels.

    Read by name from an HFI map (K_CMB^2 -> uK_CMB^2, NESTED -> RING); degrading
    averages the children and divides by their number (the variance of a mean, as
    :func:`cmbnn.planck.archive.read_planck_map` does for ``*_COV``). Pixels without a usable
    covariance (unobserved, UNSEEN, or not positive) get the median variances and zero
    QU covariance, so the simulated noise stays finite there; they are returned as
    ``bad`` (True) and logged.
    """
    pm = read_planck_map(path, COV_COLUMNS, nside_out=nside)
    var = np.array(pm.maps, dtype=np.float64)
    bad = ~pm.valid.all(axis=0) | (var[:3] <= 0).any(axis=0)
    # A 2x2 Q/U block must be positive definite for the Cholesky draw.
    bad |= var[3] ** 2 >= var[1] * var[2]
    if bad.all():
        raise ValueError(f"{path}: no pixel has a usable noise covariance")
    for i in range(3):
        var[i, bad] = np.median(var[i, ~bad])
    var[3, bad] = 0.0
    if bad.any():
        log.warning("%s: %d of %d pixels have no usable noise covariance; given the median variance", path, int(bad.sum()), bad.size)
    return var, bad



def _fill_and_flag(pm) -> tuple[np.ndarray, np.ndarray]:
    valid = pm.valid.all(axis=0)
    maps = np.where(valid, pm.maps, 0.0)
    if not valid.all():
        log.warning("%s: %d invalid pixels set to 0 before the harmonic transform (flagged)", pm.path, int((~valid).sum()))
    return maps, valid



def _degrade_valid(valid: np.ndarray, nside: int) -> np.ndarray:
    """True where every child pixel of an output pixel was valid (False if any was not)."""
    import healpy as hp

    if hp.npix2nside(valid.size) == nside:
        return valid.copy()
    return hp.ud_grade(valid.astype(np.float64), nside, pess=False) > 1.0 - 1e-9



def prepare_frequency_map(path, nside: int, fwhm_arcmin: float, lmax: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An HFI frequency map as the simulation writes its channel: (T, Q, U) RING uK_CMB at ``nside``.

    The map keeps its own beam (``fwhm_arcmin``, the channel's beam in the simulation:
    Gaussian approximations of the HFI beams); its nside 2048 pixel window is replaced by
    the one at ``nside`` (harmonic space, :func:`cmbnn.planck.archive.change_resolution`). Returns
    the maps and ``valid`` (npix,) at ``nside`` (False where an input pixel was invalid;
    those were set to 0 before the transform and should stay outside the patches).
    """
    pm = read_planck_map(path, STOKES)
    maps, valid = _fill_and_flag(pm)
    out = change_resolution(maps, fwhm_arcmin, fwhm_arcmin, nside, lmax=lmax, pixwin_in=True, pixwin_out=True)
    return out, _degrade_valid(valid, nside)



def prepare_cmb_map(path, nside: int, fwhm_in_arcmin: float, fwhm_out_arcmin: float, pixwin_in: bool = True, lmax: int | None = None):
    """A Planck CMB product (Commander, SMICA) at the label beam: (T, Q, U) RING uK_CMB at ``nside``.

    Smoothed from the product's beam ``fwhm_in_arcmin`` (5' for the PR3 CMB maps) to the
    network's label beam ``fwhm_out_arcmin``, with the pixel window at ``nside`` like the
    simulated labels (``pixwin_in``: the product carries the nside 2048 window).
    Returns the maps and the valid pixels as :func:`prepare_frequency_map` does.
    """
    if fwhm_out_arcmin < fwhm_in_arcmin:
        raise ValueError(f"the CMB product's beam {fwhm_in_arcmin}' is wider than the label beam {fwhm_out_arcmin}': deconvolving would amplify its noise")
    pm = read_planck_map(path, STOKES)
    maps, valid = _fill_and_flag(pm)
    out = change_resolution(maps, fwhm_in_arcmin, fwhm_out_arcmin, nside, lmax=lmax, pixwin_in=pixwin_in, pixwin_out=True)
    return out, _degrade_valid(valid, nside)



def keep_mask(path, nside: int, column: str | None = None, threshold: float = 0.999) -> np.ndarray:
    """A PLA mask (1 = kept) at ``nside`` as booleans: True where at least ``threshold`` of the pixel is kept."""
    fraction = read_planck_mask(path, column=column, nside_out=nside)
    return fraction >= threshold


def write_prepared_map(path, maps: np.ndarray, valid: np.ndarray, source) -> None:
    """A prepared map as the planck rules write it: T, Q, U (uK_CMB) plus VALID (0 where an input
    pixel was unusable), the PLA file it came from in the header."""
    header = [("SOURCE", str(source).split("/")[-1][:68], "PLA file")]
    write_maps_fits(path, np.concatenate([maps, valid[None].astype(np.float64)]), ["T", "Q", "U", "VALID"], extra_header=header)
