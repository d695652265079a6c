"""Small files in the Planck Legacy Archive's layout for the offline tests of the `planck` preset.

The same file names, extension, HDU and column names, NESTED ordering and units (K_CMB, K_CMB^2)
as the archive, at a small nside. The sky is known: one CMB realisation (CAMB spectra), a smooth
polarised "dust" scaling with frequency, and white noise whose per-pixel variance is the file's
covariance columns; half missions carry independent noise of twice the variance, and the full
mission their mean. Commander and SMICA are the same CMB plus a little independent noise. Same seed, same files.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from astropy.io import fits

from cmbnn.planck.archive import FOREGROUND_TEMPLATES
from cmbnn.planck.maps import CMB_PRODUCTS, MASK_FILES, hfi_map_file

BEAMS = {100: 9.68, 143: 7.30, 217: 5.02}
NOISE_UK = {100: 6.0, 143: 4.0, 217: 5.0}  # Q/U rms per pixel of the full mission, uK
DUST_SCALE = {100: 0.3, 143: 0.6, 217: 1.5}
GNILC_545 = "COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits"


def write_pla_table(path, columns, ordering="NESTED", nside=32, extname="FREQ-MAP", header=(), vector=False, extra_hdus=()):
    """Write a PLA-like HEALPix table. columns: list of (name, values in file order, unit, format)."""
    cols = []
    for name, values, unit, fmt in columns:
        values = np.asarray(values)
        if vector:
            values = values.reshape(-1, 1024)
            fmt = f"1024{fmt}"
        cols.append(fits.Column(name=name, format=fmt, unit=unit, array=values))
    hdu = fits.BinTableHDU.from_columns(cols, name=extname)
    hdu.header["PIXTYPE"] = "HEALPIX"
    hdu.header["ORDERING"] = ordering
    hdu.header["NSIDE"] = nside
    hdu.header["INDXSCHM"] = "IMPLICIT"
    hdu.header["COORDSYS"] = "GALACTIC"
    for key, value in header:
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu, *extra_hdus]).writeto(path)
    return path


def write_table(path, columns, nside, extname, header=()):
    """A PLA-like binary table: columns = [(name, RING values in the file's unit, unit)], written NESTED."""
    nested = [(name, hp.reorder(np.asarray(v, dtype=np.float64), r2n=True).astype(np.float32), unit, "E") for name, v, unit in columns]
    return write_pla_table(path, nested, nside=nside, extname=extname, header=tuple(dict(header).items()))


def _smooth(alm, fwhm_arcmin, nside):
    lmax = hp.Alm.getlmax(alm.shape[-1])
    bl = hp.gauss_beam(np.radians(fwhm_arcmin / 60), lmax=lmax, pol=True)
    out = [hp.almxfl(a, bl[:, i]) for i, a in enumerate(alm)]
    return np.asarray(hp.alm2map(out, nside, lmax=lmax, pol=True, pixwin=True))


def pol_mask(nside, lat_cut_deg=25.0):
    """1 = kept: |b| > lat_cut_deg, minus a disc at high latitude (a stand-in for the common mask)."""
    lon, lat = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), lonlat=True)
    keep = (np.abs(lat) > lat_cut_deg).astype(np.float64)
    keep[hp.query_disc(nside, hp.ang2vec(60.0, 50.0, lonlat=True), np.radians(8.0))] = 0.0
    return keep


def write_fake_archive(directory, cls: dict, nside: int = 128, freqs=(100, 143, 217), seed: int = 11) -> dict:
    """Every file the `planck` preset downloads, under ``directory``; returns {name: path}.

    ``cls``: {'TT', 'EE', 'BB', 'TE': C_ell in uK^2 from ell = 0}.
    """
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    npix = hp.nside2npix(nside)
    lmax = 3 * nside - 1
    # healpy's synalm draws from numpy's global generator: seed it here, and put its state back.
    state = np.random.get_state()
    np.random.seed(seed)
    cmb_alm = hp.synalm([cls["TT"][: lmax + 1], cls["EE"][: lmax + 1], cls["BB"][: lmax + 1], cls["TE"][: lmax + 1]], lmax=lmax, new=True)
    ell = np.arange(lmax + 1)
    dust_cl = np.where(ell >= 2, 50.0 * (np.maximum(ell, 2) / 80.0) ** -2.4 * 2 * np.pi / (80 * 81), 0.0)
    dust_alm = hp.synalm([dust_cl * 100, dust_cl, dust_cl * 0.5, dust_cl * 0], lmax=lmax, new=True)
    np.random.set_state(state)
    files = {}

    def write_hfi(nu, data, noise_var, noise):
        sky = _smooth(cmb_alm, BEAMS[nu], nside) + DUST_SCALE[nu] * _smooth(dust_alm, BEAMS[nu], nside) + noise
        k, k2 = 1e-6, 1e-12  # uK -> K_CMB, uK^2 -> K_CMB^2
        columns = [
            ("I_STOKES", sky[0] * k, "K_CMB"),
            ("Q_STOKES", sky[1] * k, "K_CMB"),
            ("U_STOKES", sky[2] * k, "K_CMB"),
            ("HITS", np.full(npix, 100.0), ""),
            ("II_COV", noise_var[0] * k2, "K_CMB^2"),
            ("IQ_COV", np.zeros(npix), "K_CMB^2"),
            ("IU_COV", np.zeros(npix), "K_CMB^2"),
            ("QQ_COV", noise_var[1] * k2, "K_CMB^2"),
            ("QU_COV", noise_var[3] * k2, "K_CMB^2"),
            ("UU_COV", noise_var[2] * k2, "K_CMB^2"),
        ]
        name = hfi_map_file(nu, data)
        files[name] = write_table(directory / name, columns, nside, "FREQ-MAP", [("FREQ", str(nu))])

    for nu in freqs:
        # Inhomogeneous: twice the variance in one hemisphere, a small Q/U correlation.
        _, lat = hp.pix2ang(nside, np.arange(npix), lonlat=True)
        var = NOISE_UK[nu] ** 2 * np.where(lat > 0, 2.0, 1.0)
        hm_var = np.stack([4 * var, 2 * var, 2 * var, 0.2 * var])  # II, QQ, UU, QU of one half mission
        hm_noise = []
        for data in ("hm1", "hm2"):
            n = rng.standard_normal((3, npix))
            q = np.sqrt(hm_var[1]) * n[1]
            u = hm_var[3] / np.sqrt(hm_var[1]) * n[1] + np.sqrt(hm_var[2] - hm_var[3] ** 2 / hm_var[1]) * n[2]
            hm_noise.append(np.stack([np.sqrt(hm_var[0]) * n[0], q, u]))
            write_hfi(nu, data, hm_var, hm_noise[-1])
        write_hfi(nu, "full", hm_var / 2, (hm_noise[0] + hm_noise[1]) / 2)
    for product in CMB_PRODUCTS:
        cmb = _smooth(cmb_alm, 5.0, nside) + rng.normal(0.0, 0.05, (3, npix))  # a noise power ~1e-3 of the CMB's
        columns = [(c, cmb[i] * 1e-6, "K_CMB") for i, c in enumerate(("I_STOKES", "Q_STOKES", "U_STOKES"))]
        columns += [("TMASK", np.ones(npix), ""), ("PMASK", pol_mask(nside), "")]
        files[CMB_PRODUCTS[product]] = write_table(directory / CMB_PRODUCTS[product], columns, nside, "COMP-MAP")
    for kind, path in MASK_FILES.items():
        files[path] = write_table(directory / path, [("TMASK" if kind == "common_int" else "PMASK", pol_mask(nside), "")], nside, "MASK")
    # Foreground templates: GNILC dust I/Q/U in K_CMB at 353 GHz, Commander synchrotron Q/U in uK_RJ at 30 GHz.
    dust = _smooth(dust_alm, 80.0, nside) * 10.0
    info = FOREGROUND_TEMPLATES["dust"]["gnilc"]
    files[info["file"]] = write_table(directory / info["file"], [(c, dust[i] * 1e-6, "K_CMB") for i, c in enumerate(info["columns"])], nside, "COMP-MAP")
    synch = _smooth(dust_alm, 40.0, nside) * 0.3
    info = FOREGROUND_TEMPLATES["synchrotron"]["commander"]
    files[info["file"]] = write_table(directory / info["file"], [(c, synch[i + 1], "uK_RJ") for i, c in enumerate(info["columns"])], nside, "COMP-MAP")
    # GNILC dust intensity at 545 GHz (MJy/sr, column I): positive, log-normal about a 1/sin|b| profile.
    g = _smooth(dust_alm, 5.0, nside)[0]
    _, lat = hp.pix2ang(nside, np.arange(npix), lonlat=True)
    intensity = np.exp(0.7 * g / g.std()) / np.sin(np.radians(np.maximum(np.abs(lat), 5.0)))
    files[GNILC_545] = write_table(directory / GNILC_545, [("I", intensity, "MJy/sr")], nside, "COMP-MAP")
    return files
