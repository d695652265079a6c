"""The small scales of the T truth patches: what the simulation's band limit leaves out.

The sky is simulated to lmax = 3 nside - 1 (1,535 at nside 512), and exactly evaluated patches are
point samples of that band-limited field. A 64 x 64 grid of 6.87' pixels resolves multipoles to its
Nyquist, 1,572 along the axes and 2,223 on the diagonal: a quarter of its Fourier modes are empty,
so the pixels are redundant and the Gaussian conditional mean rebuilds a 3-pixel hole from the far
pixels to ~0.6 uK^2 (measured; 1e-4 of the pixel variance). Point samples of the real sky, whose
beam-smoothed power goes on past 1,535, allow no such thing: with the spectrum continued to 3,000
the same discs' bound is ~200 uK^2. The inpainting benchmark is about the sky, not the band limit,
so the truth patches get the missing multipoles, lmax_sky < ell <= label_lmax, as an independent
Gaussian field drawn at the pixel centres (the modes of a Gaussian isotropic sky are independent;
its covariance is the correlation function of those multipoles at the pixel separations, aliasing
included). The Gaussian baseline and the samples' prior use the extended spectrum.
"""

from __future__ import annotations

import numpy as np

from cmbnn.analysis.gaussian_field import FlatSkyCovariance, gaussian_realisations

# Realisations per call: the dense factor's product stays ~100 MB at 64 x 64.
CHUNK = 2048


def extended_spectra(sky_cls: dict, camb_cls: dict, lmax_sky: int) -> dict:
    """Spectra to the CAMB table's lmax: the sky's own up to ``lmax_sky`` (whatever its source),
    CAMB's beyond (same keys, ell from 0)."""
    out = {}
    for name, cl in camb_cls.items():
        if name not in sky_cls:
            continue
        sky = np.asarray(sky_cls[name], dtype=np.float64)
        if sky.size <= lmax_sky:
            raise ValueError(f"the sky's {name} spectrum stops at ell {sky.size - 1}, below its lmax {lmax_sky}")
        out[name] = np.concatenate([sky[: lmax_sky + 1], np.asarray(cl, dtype=np.float64)[lmax_sky + 1 :]])
    return out


# More than 8 parameters: the spectrum and its cut, the patch grid, the beam and the draws.
def small_scales(cl_tt, lmax_sky: int, height: int, width: int, reso_arcmin: float, beam_fwhm_arcmin: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n patches (n, H, W) uK_CMB of the Gaussian field with TT C_ell x beam^2 at lmax_sky < ell <=
    len(cl_tt) - 1 and nothing below, at the pixel centres (module docstring)."""
    cl = np.array(cl_tt, dtype=np.float64)
    if cl.size <= lmax_sky + 1:
        raise ValueError(f"label spectrum stops at ell {cl.size - 1}: nothing beyond the sky's lmax {lmax_sky} to add")
    cl[: lmax_sky + 1] = 0.0
    cov = FlatSkyCovariance(cl, height, width, reso_arcmin, beam_fwhm_arcmin=beam_fwhm_arcmin)
    return np.concatenate([gaussian_realisations(cov, min(CHUNK, n - start), rng) for start in range(0, n, CHUNK)]) if n else np.zeros((0, height, width))
