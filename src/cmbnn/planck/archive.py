"""Readers for Planck Legacy Archive (PLA) files that respect what the files say.

Everything returned is in thermodynamic uK_CMB (maps), uK_CMB^2 (covariances),
RING ordering, and C_ell from ell = 0 in uK^2 (spectra), the pipeline's
conventions. What the files say is read from them, never assumed:

* columns are read **by name** (``TTYPEn``) from the first binary-table HDU
  that has them (HDU 1 in every PLA map; the Commander CMB file keeps its
  beams in HDU 2), never by position: CosmoVAE's ``field=-1`` read a mask
  (PMASKINP) as if it were the CMB;
* ordering from the ``ORDERING`` keyword: NESTED is reordered to RING with
  :func:`healpy.reorder`, RING is kept, anything else is an error;
* units from ``TUNITn`` per column (see :data:`UNIT_FACTORS` and
  :func:`unit_factor`): K_CMB / mK_CMB / uK_CMB, their squares for the
  ``*_COV`` columns, MJy/sr and Jy/sr (monochromatic thermodynamic
  conversion at the map's frequency, or an explicit Planck coefficient),
  K_RJ / uK_RJ; dimensionless columns (masks, HITS: blank, 'none', 'unitless')
  pass unchanged. Anything else is an error naming the file, column and unit
  (override with ``units={column: unit}`` if you know better than the header).
  A Stokes column without a unit is an error too (it would pass unconverted);
  a ``*_COV`` column labelled with a plain temperature unit is read as that
  unit squared (a variance), with a warning;
* UNSEEN (``hp.UNSEEN`` = -1.6375e30, compared with a relative tolerance so
  float32 storage matches), NaN, +-inf and integer ``TNULLn`` pixels are
  invalid: they are counted and logged, set to ``hp.UNSEEN`` in the returned
  float64 maps (so healpy recognises them) and reported in a boolean
  ``valid`` array of the same shape (True = usable pixel).
  :meth:`PlanckMaps.masked` gives the same as a ``numpy.ma.MaskedArray``.

Column aliases (case-insensitive; an exact name always wins over an alias):
the Stokes columns are called I_STOKES/Q_STOKES/U_STOKES in the HFI, LFI,
Commander, SMICA and GNILC R3 files, ``I``/``Q``/``U`` in the GNILC R2.00
545 GHz dust map, and TEMPERATURE/Q_POLARISATION/U_POLARISATION in files
written by healpy; asking for any one name of a group finds the others (see
:data:`COLUMN_ALIASES`). Masks (TMASK, PMASK, per-mask names such as
GAL060) have no aliases: :func:`read_planck_mask` with ``column=None``
takes the only column of a single-column file and otherwise lists the
choices.

Verified here only against files written by the tests in the archive's
layout; column names, units strings and ordering of the real files are taken
from the PLA documentation and the notes in REFERENCES.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmbnn.harmonics import gaussian_beam, pixel_window
from cmbnn.units import DIMENSIONLESS_UNITS, normalise_unit, unit_factor

log = logging.getLogger(__name__)

UNSEEN = -1.6375e30  # healpy.UNSEEN, the PLA's bad-pixel value

# Each group: names that mean the same column in different PLA products.
COLUMN_ALIASES = (
    ("I_STOKES", "I", "TEMPERATURE", "T", "INTENSITY"),
    ("Q_STOKES", "Q", "Q_POLARISATION", "Q_POLARIZATION", "Q-POLARISATION"),
    ("U_STOKES", "U", "U_POLARISATION", "U_POLARIZATION", "U-POLARISATION"),
)


@dataclass
class PlanckMaps:
    """Maps read from a PLA file: RING, float64, uK_CMB (or as converted), invalid pixels = UNSEEN.

    ``maps`` has shape (n_columns, npix); ``valid`` the same shape, True where a
    pixel is usable. ``columns`` are the names asked for, ``file_columns`` the
    names found in the file, ``units`` the TUNIT strings, ``factors`` what
    each column was multiplied by.
    """

    path: str
    maps: np.ndarray
    valid: np.ndarray
    columns: tuple
    file_columns: tuple
    units: tuple
    factors: tuple
    nside: int
    ordering_in: str
    freq_ghz: float | None
    header: dict = field(repr=False, default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        for i, (asked, found) in enumerate(zip(self.columns, self.file_columns)):
            if name.upper() in (asked.upper(), found.upper()):
                return self.maps[i]
        raise KeyError(f"{name!r} not read from {self.path} (read: {list(self.file_columns)})")

    def masked(self) -> np.ma.MaskedArray:
        """The maps as a masked array (mask True = invalid pixel)."""
        return np.ma.MaskedArray(self.maps, mask=~self.valid)

    @property
    def n_invalid(self) -> dict:
        return {c: int(np.sum(~v)) for c, v in zip(self.file_columns, self.valid)}


class MissingColumnError(KeyError):
    """A requested column is in no table of the file; the message lists what each table has."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _alias_group(name: str) -> tuple:
    for group in COLUMN_ALIASES:
        if name.upper() in group:
            return group
    return (name.upper(),)


def _resolve(name: str, available: list[str]) -> str | None:
    upper = {c.upper(): c for c in available}
    if name.upper() in upper:
        return upper[name.upper()]
    for alias in _alias_group(name):
        if alias in upper:
            return upper[alias]
    return None


def _find_table(hdul, columns, path):
    """First binary table holding every requested column (by name or alias)."""
    from astropy.io import fits

    seen = []
    for i, hdu in enumerate(hdul):
        if not isinstance(hdu, fits.BinTableHDU):
            continue
        names = list(hdu.columns.names)
        resolved = [_resolve(c, names) for c in columns]
        if all(r is not None for r in resolved):
            return i, hdu, resolved
        missing = [c for c, r in zip(columns, resolved) if r is None]
        seen.append(f"HDU {i} ({hdu.name}): missing {missing}, has {names}")
    if not seen:
        raise ValueError(f"{path}: no binary-table HDU (not a HEALPix FITS table)")
    raise MissingColumnError(f"{path}: column(s) {list(columns)} not found (aliases tried: see cmbnn.planck.archive.COLUMN_ALIASES); " + "; ".join(seen))


_FILENAME_FREQ = re.compile(r"(?:SkyMap_|[-_]F)(\d{2,3})(?=[_.-])", re.IGNORECASE)


def _frequency(header, path) -> tuple[float | None, str]:
    for key in ("FREQ", "FREQUENCY", "FREQ_GHZ", "NU_GHZ"):
        if key in header:
            match = re.match(r"\s*([0-9.]+)", str(header[key]))
            if match:
                return float(match.group(1)), f"header {key}"
    match = _FILENAME_FREQ.search(Path(path).name)
    if match:
        return float(match.group(1)), "file name"
    return None, "unknown"


def invalid_pixels(values: np.ndarray) -> np.ndarray:
    """True where a value is UNSEEN (relative tolerance 1e-5, so float32 matches), NaN or infinite."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(values) | (np.abs(values - UNSEEN) <= 1e-5 * abs(UNSEEN))


def read_planck_map(
    path,
    columns=("I_STOKES", "Q_STOKES", "U_STOKES"),
    nside_out: int | None = None,
    freq_ghz: float | None = None,
    mjysr_per_kcmb: float | None = None,
    units: dict | None = None,
    dtype=np.float64,
) -> PlanckMaps:
    """Read named columns of a PLA HEALPix table as RING maps in uK_CMB.

    ``columns``: names (or aliases, see :data:`COLUMN_ALIASES`) in any order;
    the result follows the order asked for, whatever the order in the file.
    ``freq_ghz``: frequency for MJy/sr and K_RJ columns; by default from the
    header (FREQ, FREQUENCY) or the file name (``SkyMap_545``, ``-F545``).
    ``mjysr_per_kcmb``: Planck's band-integrated coefficient to use instead of
    the monochromatic conversion (see :func:`mjysr_to_uk_cmb`).
    ``units``: {column: unit} overriding TUNIT.
    ``nside_out``: change nside by pixel averaging (``healpy.ud_grade``,
    invalid pixels ignored in the averages; a parent with no valid child stays
    UNSEEN). Columns named ``*_COV`` are variances and are scaled as the
    variance of a mean (power 2), HITS are summed (power -2). This changes
    pixels, not beams: use :func:`change_resolution` for that.

    Invalid pixels (UNSEEN, NaN, inf, TNULL) are logged, set to UNSEEN in
    ``maps`` and False in ``valid`` (see :class:`PlanckMaps`).
    Full-sky tables only; a partial-sky (explicit PIXEL index) table is an error.
    """
    import healpy as hp
    from astropy.io import fits

    if isinstance(columns, str):
        columns = (columns,)
    columns = tuple(columns)
    path = str(path)
    units = {k.upper(): v for k, v in (units or {}).items()}
    with fits.open(path, memmap=True) as hdul:
        index, hdu, file_columns = _find_table(hdul, columns, path)
        header = hdu.header
        primary = hdul[0].header
        indxschm = str(header.get("INDXSCHM", "IMPLICIT")).strip().upper()
        if indxschm == "EXPLICIT" or header.get("OBJECT", "").strip().upper() == "PARTIAL":
            raise ValueError(f"{path}: partial-sky table (INDXSCHM={indxschm!r}); only full-sky maps are supported")
        ordering = str(header.get("ORDERING", primary.get("ORDERING", ""))).strip().upper()
        if ordering not in ("RING", "NESTED", "NEST"):
            raise ValueError(f"{path}: ORDERING is {ordering or 'missing'!r} in HDU {index}; expected RING or NESTED")
        if freq_ghz is None:
            freq_ghz, freq_source = _frequency(header, path)
            if freq_ghz is None:
                freq_ghz, freq_source = _frequency(primary, path)
        else:
            freq_source = "argument"
        maps, valid, tunits, factors = [], [], [], []
        nside = None
        for asked, name in zip(columns, file_columns):
            col = hdu.columns.names.index(name) + 1
            raw = np.asarray(hdu.data[name]).ravel()  # TFORM 'E' or '1024E': one or many pixels a row
            npix = raw.size
            if nside is None:
                if not hp.isnpixok(npix):
                    raise ValueError(f"{path}: column {name} has {npix} pixels, not a full HEALPix map (12 nside^2)")
                nside = hp.npix2nside(npix)
                if "NSIDE" in header and int(header["NSIDE"]) != nside:
                    raise ValueError(f"{path}: NSIDE={header['NSIDE']} but column {name} has {npix} pixels")
            elif npix != hp.nside2npix(nside):
                raise ValueError(f"{path}: column {name} has {npix} pixels, other columns {hp.nside2npix(nside)}")
            bad = invalid_pixels(raw)
            tnull = header.get(f"TNULL{col}")
            if tnull is not None and not np.issubdtype(raw.dtype, np.floating):
                bad |= raw == tnull
            unit = units.get(name.upper(), units.get(asked.upper(), header.get(f"TUNIT{col}", "")))
            where = f"{path}: column {name}"
            unit_name, power = normalise_unit(unit)
            if unit_name in DIMENSIONLESS_UNITS and _alias_group(name) != (name.upper(),):
                raise ValueError(f"{where}: a Stokes map with no unit (TUNIT{col}={unit!r}); pass units={{{name!r}: 'K_CMB'}} or similar")
            if name.upper().endswith("_COV") and power == 1 and unit_name not in DIMENSIONLESS_UNITS:
                log.warning("%s: covariance labelled %r, read as its square (%s^2)", where, unit, unit)
                unit = f"({unit})^2"
            factor = unit_factor(unit, freq_ghz, mjysr_per_kcmb, where=where)
            values = raw.astype(dtype) * factor
            values[bad] = UNSEEN
            if bad.any():
                log.info("%s: %d invalid pixels (UNSEEN/NaN/inf/TNULL) of %d", where, int(bad.sum()), npix)
            maps.append(values)
            valid.append(~bad)
            tunits.append(str(unit))
            factors.append(factor)
        header_copy = dict(header)
    maps = np.stack(maps)
    valid = np.stack(valid)
    if ordering.startswith("NEST"):
        maps = np.asarray(hp.reorder(maps, n2r=True))
        valid = np.asarray(hp.reorder(valid, n2r=True)).astype(bool)
    if nside_out is not None and nside_out != nside:
        out = []
        for name, m in zip(file_columns, maps):
            power = 2 if name.upper().endswith("_COV") else (-2 if name.upper() == "HITS" else None)
            out.append(hp.ud_grade(m, nside_out, order_in="RING", order_out="RING", power=power, pess=False))
        maps = np.stack(out).astype(dtype)
        valid = ~invalid_pixels(maps)
        nside = nside_out
    log.info("%s: read %s (HDU %d, %s -> RING, units %s, frequency %s GHz from %s)", path, list(file_columns), index, ordering, tunits, freq_ghz, freq_source)
    return PlanckMaps(
        path=path,
        maps=maps,
        valid=valid,
        columns=columns,
        file_columns=tuple(file_columns),
        units=tuple(tunits),
        factors=tuple(factors),
        nside=int(nside),
        ordering_in=ordering,
        freq_ghz=freq_ghz,
        header=header_copy,
    )


def read_planck_mask(path, column: str | None = None, nside_out: int | None = None, as_bool: bool = False) -> np.ndarray:
    """One mask column of a PLA mask file as a RING map (float64; 1 = kept).

    ``column=None`` takes the only column of a single-column file and lists
    the choices otherwise (the common masks carry TMASK or per-mask columns
    such as GAL060). Invalid pixels count as masked (0). ``as_bool``: True
    where the mask is > 0.5. ``nside_out`` degrades by averaging, giving the
    kept fraction per pixel (threshold it yourself, or use ``as_bool``).
    """
    from astropy.io import fits

    if column is None:
        with fits.open(str(path), memmap=True) as hdul:
            tables = [(i, list(h.columns.names)) for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU)]
        if not tables:
            raise ValueError(f"{path}: no binary-table HDU")
        names = tables[0][1]
        if len(names) != 1:
            raise ValueError(f"{path}: several columns {names}: pass column= (one of them)")
        column = names[0]
    result = read_planck_map(path, (column,), nside_out=nside_out)
    mask = np.where(result.valid[0], result.maps[0], 0.0)
    if np.any(mask < 0) or np.any(mask > 1 + 1e-6):
        log.warning("%s: mask column %s has values outside [0, 1] (min %g, max %g)", path, column, mask.min(), mask.max())
    return mask > 0.5 if as_bool else mask


def _transfer(beam, lmax: int, ncomp: int, name: str) -> np.ndarray:
    """(lmax+1, ncomp) beam from a FWHM in arcmin or a b_ell array (lmax+1,) / (lmax+1, >=ncomp)."""
    if np.ndim(beam) == 0:
        bl = gaussian_beam(float(beam), lmax)
    else:
        bl = np.asarray(beam, dtype=np.float64)
        if bl.shape[0] < lmax + 1:
            raise ValueError(f"{name}: b_ell has {bl.shape[0]} multipoles, need lmax+1 = {lmax + 1}")
        bl = bl[: lmax + 1]
        bl = np.repeat(bl[:, None], 3, axis=1) if bl.ndim == 1 else bl
    return bl[:, :ncomp] if ncomp == 1 else bl[:, :3]


# More than 8 parameters: the beam, pixel window and band limit of the input and of the output map, all but the first four defaulted.
def change_resolution(
    maps,
    fwhm_in_arcmin,
    fwhm_out_arcmin,
    nside_out: int,
    lmax: int | None = None,
    pol: bool = True,
    pixwin_in: bool = False,
    pixwin_out: bool = False,
    unseen: str = "raise",
    iterations: int = 3,
    min_beam: float = 1e-6,
) -> np.ndarray:
    """Change beam and nside in harmonic space: alm * b_out / b_in (* p_out / p_in).

    ``maps``: one RING map (npix,) or (T, Q, U) (3, npix) in any unit; with
    ``pol=True`` and three maps Q/U are treated as spin-2 (E/B beams).
    ``fwhm_*_arcmin``: Gaussian FWHM in arcmin, or a b_ell array (lmax+1,) or
    (lmax+1, 3) for T, E, B (e.g. the beam table of the Commander file).
    ``lmax``: default min(3 nside_in, 3 nside_out) - 1. ``pixwin_in``: divide
    by the input pixel window (the map carries it), ``pixwin_out``: multiply
    by the output one. Multipoles where b_in < ``min_beam`` are set to zero
    rather than amplified (deconvolution beyond what the map holds).
    ``unseen``: 'raise' (default) refuses maps with UNSEEN/NaN pixels;
    'zero' fills them with 0 before map2alm (logged; the filled region and
    its surroundings are then wrong in the output, mask them afterwards).
    ``iterations``: healpy map2alm Jacobi iterations. Returns RING maps at
    ``nside_out`` with the input's shape convention.
    """
    import healpy as hp

    maps = np.array(maps, dtype=np.float64)  # copy: filling must not touch the caller's maps
    single = maps.ndim == 1
    if single:
        maps = maps[None]
    nside_in = hp.npix2nside(maps.shape[-1])
    if lmax is None:
        lmax = min(3 * nside_in, 3 * nside_out) - 1
    bad = invalid_pixels(maps)
    if bad.any():
        if unseen == "raise":
            raise ValueError(f"{int(bad.sum())} UNSEEN/NaN pixels in the input maps: fill or mask them first, or pass unseen='zero'")
        if unseen != "zero":
            raise ValueError(f"unseen must be 'raise' or 'zero', got {unseen!r}")
        log.warning("change_resolution: %d UNSEEN/NaN pixels set to 0 before map2alm", int(bad.sum()))
        maps[bad] = 0.0
    use_pol = pol and maps.shape[0] == 3
    ncomp = 3 if use_pol else 1
    b_in = _transfer(fwhm_in_arcmin, lmax, ncomp, "fwhm_in_arcmin")
    b_out = _transfer(fwhm_out_arcmin, lmax, ncomp, "fwhm_out_arcmin")
    with np.errstate(divide="ignore", invalid="ignore"):
        transfer = np.where(np.abs(b_in) >= min_beam, b_out / b_in, 0.0)
    if pixwin_in:
        pw_in = pixel_window(nside_in, lmax)[:, :ncomp]  # polarisation window is 0 at ell < 2
        transfer = np.divide(transfer, pw_in, out=np.zeros_like(transfer), where=pw_in > 0)
    if pixwin_out:
        transfer = transfer * pixel_window(nside_out, lmax)[:, :ncomp]
    ell, _ = hp.Alm.getlm(lmax)
    if use_pol:
        alm = np.asarray(hp.map2alm(maps, lmax=lmax, pol=True, iter=iterations))
        alm = alm * transfer.T[:, ell]
        out = np.asarray(hp.alm2map(np.ascontiguousarray(alm), nside_out, lmax=lmax, pol=True))
    else:
        out = []
        for m in maps:
            alm = hp.map2alm(m, lmax=lmax, iter=iterations) * transfer[ell, 0]
            out.append(hp.alm2map(alm, nside_out, lmax=lmax))
        out = np.asarray(out)
    return out[0] if single else out


# Planck foreground templates usable in the simulation (config foregrounds.<component>.template):
# file, Stokes columns, frequency of the map (GHz; the component's reference_GHz must match).
FOREGROUND_TEMPLATES = {
    "dust": {
        "gnilc": {
            "file": "COM_CompMap_IQU-thermaldust-gnilc-unires_2048_R3.00.fits",
            "columns": ("I_STOKES", "Q_STOKES", "U_STOKES"),
            "freq_GHz": 353.0,
        },
    },
    "synchrotron": {
        "commander": {
            "file": "COM_CompMap_QU-synchrotron-commander_2048_R3.00_full.fits",
            "columns": ("Q_STOKES", "U_STOKES"),
            "freq_GHz": 30.0,
        },
    },
}


def foreground_template_info(component: str, template: str) -> dict:
    """The :data:`FOREGROUND_TEMPLATES` entry of a component's Planck template (ValueError if none)."""
    choices = FOREGROUND_TEMPLATES.get(component, {})
    if template not in choices:
        raise ValueError(f"foregrounds.{component}.template: {template!r} is not a Planck template for {component}; choose gaussian or one of {sorted(choices)}")
    return choices[template]


TEMPLATE_KEYS = ("template", "template_fwhm_arcmin")


def foreground_template_file(config: dict, component: str):
    """<planck.resources_dir>/<file> of a component's Planck template; [] for the Gaussian model."""
    settings = config["foregrounds"][component]
    if settings.get("template", "gaussian") == "gaussian":
        return []
    info = foreground_template_info(component, settings["template"])
    return str(Path(config["planck"]["resources_dir"]) / info["file"])


def foreground_rule_settings(config: dict, component: str) -> dict:
    """The foreground rule's settings: without the template keys for the Gaussian model (so its
    params and output attributes are those of before the templates existed); with a Planck
    template, plus ``template_file`` for :func:`cmbnn.sky.foregrounds.component_alm`."""
    settings = dict(config["foregrounds"][component])
    if settings.get("template", "gaussian") == "gaussian":
        return {k: v for k, v in settings.items() if k not in TEMPLATE_KEYS}
    return {**settings, "template_file": foreground_template_file(config, component)}


def read_foreground_template(path, columns, freq_ghz: float, nside_out: int, fwhm_arcmin: float) -> np.ndarray:
    """A Planck foreground template as RING maps in uK_CMB at ``nside_out``, one row per column.

    Read with :func:`read_planck_map` (columns by name, NESTED -> RING, TUNIT ->
    uK_CMB at ``freq_ghz``), then resampled in harmonic space with
    :func:`change_resolution` keeping the template's own beam (``fwhm_arcmin``
    in and out: no deconvolution, band limit min(3 nside) - 1). Q/U-only
    templates are treated as spin 2 (with a zero intensity alongside).
    Invalid pixels are set to 0 before the transform (logged).
    """
    pm = read_planck_map(path, columns, freq_ghz=freq_ghz)
    maps = np.where(pm.valid, pm.maps, 0.0)
    if (~pm.valid).any():
        log.warning("%s: %d invalid template pixels set to 0", path, int((~pm.valid).sum()))
    names = [c.upper() for c in pm.columns]
    if len(names) == 3:
        return change_resolution(maps, fwhm_arcmin, fwhm_arcmin, nside_out, pol=True)
    if names == ["Q_STOKES", "U_STOKES"]:
        iqu = np.stack([np.zeros_like(maps[0]), maps[0], maps[1]])
        return change_resolution(iqu, fwhm_arcmin, fwhm_arcmin, nside_out, pol=True)[1:]
    raise ValueError(f"{path}: a template needs I/Q/U or Q/U columns, got {list(pm.columns)}")


def read_planck_theory(path, lmax: int | None = None, check: bool = True) -> dict[str, np.ndarray]:
    """Planck minimum-theory spectra (PR3 ``..._minimum-theory_R3.01.txt``) as C_ell from ell = 0.

    The file has a header line starting with '#' naming the columns
    (``L TT TE EE BB PP``) and whitespace-separated rows from L = 2 holding
    D_ell = ell (ell+1) C_ell / 2 pi in uK^2. Returned: {'TT','TE','EE','BB': C_ell in
    uK^2, 'PP': C_L^phiphi}, arrays indexed by ell from 0 with zeros at 0 and 1
    (and at any multipole the file lacks). PP is taken to be
    [L(L+1)]^2 C_L^phiphi / 2 pi (CAMB's convention; unverified for this
    file). CosmoVAE used the D_ell column as C_ell: this converts.
    ``check``: refuse a TT column whose largest value at ell 150-300 is not of
    the order of the ~5700 uK^2 first acoustic peak (a C_ell or K^2 file
    given by mistake).
    """
    path = str(path)
    names = None
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                tokens = s.lstrip("#").split()
                if tokens and tokens[0].upper() in ("L", "ELL"):
                    names = [t.upper() for t in tokens]
                continue
            break
    table = np.loadtxt(path, comments="#", ndmin=2)
    if names is None:
        names = ["L", "TT", "TE", "EE", "BB", "PP"][: table.shape[1]]
        log.warning("%s: no '# L TT ...' header line; assuming columns %s", path, names)
    if len(names) != table.shape[1]:
        raise ValueError(f"{path}: header names {names} but rows have {table.shape[1]} columns")
    ell = table[:, 0]
    if np.any(ell != np.round(ell)) or np.any(ell < 0) or np.any(np.diff(ell) <= 0):
        raise ValueError(f"{path}: the L column must hold increasing integer multipoles")
    ell = ell.astype(int)
    top = int(ell.max()) if lmax is None else int(lmax)
    keep = ell <= top
    ell_k = ell[keep]
    out = {}
    factor = np.zeros(ell_k.size)
    nonzero = ell_k >= 1
    factor[nonzero] = 2 * np.pi / (ell_k[nonzero] * (ell_k[nonzero] + 1.0))
    for i, name in enumerate(names[1:], start=1):
        cl = np.zeros(top + 1)
        dl = table[keep, i]
        if name == "PP":
            cl[ell_k] = dl * factor / np.where(nonzero, ell_k * (ell_k + 1.0), 1.0)
        else:
            cl[ell_k] = dl * factor
        cl[:2] = 0.0
        out[name] = cl
    if check and "TT" in names:
        tt = table[:, names.index("TT")]
        near_peak = (ell >= 150) & (ell <= 300)
        peak = tt[near_peak].max() if near_peak.any() else tt.max()
        if not 1e3 < peak < 1e5:
            raise ValueError(
                f"{path}: TT at the first acoustic peak (ell 150-300) is {peak:g}, not ~5700: is this D_ell in uK^2? (check=False to skip)"
            )
    return out
