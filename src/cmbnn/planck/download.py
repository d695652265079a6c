"""Downloads a user can trust, and the manifest of Planck archive files.

:func:`fetch` streams a URL to ``<name>.part`` beside the destination and
renames it to the final name only once the size, the checksum and the content
match, so nothing that looks finished (to Snakemake or to a user) exists
before the file is verified; Snakemake's ``--keep-incomplete`` is not needed.

- Content: only what was asked for is accepted (:func:`check_content`). A web
  page (HTML, whatever its content type) or an empty answer is refused before
  anything is written, quoting the answer's first bytes; a ``.fits`` file must
  start with the FITS signature, be as long as its headers declare, open with
  astropy (where installed) and hold the HDU, columns and NSIDE the manifest's
  ``content`` names; a ``.txt`` file must be rows of numbers. Many manifest
  entries have no size or checksum, so this is what stops an archive's error
  page from becoming ``HFI_SkyMap_...fits``.
- Resume: after an interruption the ``.part`` file is kept and the next
  attempt (in the same call, or a later run) asks for the rest with an HTTP
  ``Range`` request. A ``Content-Range`` that does not start where the
  ``.part`` ends restarts the file from byte 0. A server that answers 200
  instead of 206 cannot resume: the file is fetched from byte 0 once more and,
  if that copy is cut too, the download stops (each retry would fetch the
  whole file again).
- Incomplete: a body shorter than its Content-Length or the manifest's size,
  or a FITS file shorter than its headers declare (a server that sends no
  Content-Length and closes early), is a drop: resumed, never final.
- Retries: urllib3's ``Retry`` on the session retries timeouts, dropped
  connections and 429/5xx answers with exponential backoff; a loop here
  retries mid-stream drops (which urllib3 cannot, the body being streamed)
  with the same backoff, resuming each time. What cannot get better is not
  retried: a host name that does not resolve, a refused connection, 404 and
  other 4xx answers fail at once.
- Checksum mismatch: the ``.part`` is **deleted** and :class:`ChecksumError`
  is raised. A full-size corrupt ``.part`` kept on disk would be "resumed"
  forever (a Range request from its end fetches nothing), so it is never kept.
  The same goes for a complete file with the wrong content (:class:`ContentError`).
- A destination already in place is verified (checksum, or content where no
  checksum is known) and used, never fetched; a wrong one raises
  :class:`ChecksumError` and is left untouched (it may be the user's own
  copy): the message says what to do.
- Unreachable server: :class:`OfflineError` names the file, the URL and
  where to put a copy fetched by hand.
- Progress (percent, size, rate, ETA) goes to the logger every few percent or
  seconds, and to stderr as a live line when stderr is a terminal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16  # a drop loses at most the block being read
RETRY_STATUS = (429, 500, 502, 503, 504)
DIGESTS = ("md5", "sha256")
SNIFF_BYTES = 512  # read before writing anything: enough to tell a web page or a FITS card
SHOW_BYTES = 200  # of a refused answer, quoted in the error
FITS_BLOCK, FITS_CARD = 2880, 80
FITS_SIGNATURE = b"SIMPLE  ="
FITS_SUFFIXES = (".fits", ".fit", ".fts")
TEXT_SUFFIXES = (".txt", ".dat")
# What a manifest entry's ``content`` may say (see workflow/planck_manifest.yaml).
CONTENT_KEYS = ("format", "hdu", "columns", "nside", "n_columns")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--", b"<title", b"<h1", b"<p>", b"<pre")


class DownloadError(RuntimeError):
    """A download failed in a way a user must act on; the message says how."""


class ChecksumError(DownloadError):
    """Size or checksum of a downloaded (or already present) file is wrong."""


class ContentError(ChecksumError):
    """Not the file asked for: a web page, an empty or cut answer, not FITS, the wrong HDU,
    columns or NSIDE, or text that is not rows of numbers."""


class OfflineError(DownloadError):
    """The server could not be reached (offline, DNS, refused, timed out)."""


# --------------------------------------------------------------------------- checks


def file_digests(path, algorithms=DIGESTS, chunk=CHUNK_BYTES) -> dict:
    """Hex digests of a file, read once: {'md5': ..., 'sha256': ...}."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while block := f.read(chunk):
            for h in hashes.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashes.items()}


def check_file(path, size=None, md5=None, sha256=None) -> tuple[list[str], dict]:
    """Problems of ``path`` against the expected size/checksums ([] = fine) and its digests."""
    path = Path(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != int(size):
        return [f"size {actual_size} bytes, expected {int(size)}"], {}
    expected = {a: v.lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}
    digests = file_digests(path, tuple(expected) or DIGESTS)
    problems = [f"{a} {digests[a]}, expected {v}" for a, v in expected.items() if digests[a] != v]
    return problems, digests


def content_format(name, content=None) -> str | None:
    """'fits', 'text' or None (nothing to check but "not a web page"): the manifest's
    ``content.format``, else the file name's suffix."""
    if content and content.get("format"):
        return content["format"]
    lower = str(name).lower()
    if lower.endswith(FITS_SUFFIXES):
        return "fits"
    if lower.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def check_content_spec(name, content) -> None:
    """ValueError (TypeError) for a manifest ``content`` entry this module would misread (a typo would silently check less)."""
    if content is None:
        return
    if not isinstance(content, dict):
        raise TypeError(f"{name}: content must be a mapping of {list(CONTENT_KEYS)}, not {content!r}")
    unknown = sorted(set(content) - set(CONTENT_KEYS))
    if unknown:
        raise ValueError(f"{name}: unknown content key(s) {unknown}; known: {list(CONTENT_KEYS)}")
    if content.get("format") not in (None, "fits", "text"):
        raise ValueError(f"{name}: content.format {content['format']!r}: fits or text")


def looks_like_markup(head: bytes) -> bool:
    """True when an answer starts like a web page or an XML error document (what archives
    send for a wrong URL, a login or an error), whatever its content type says."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    return start.startswith(_HTML_STARTS)


def _card_value(card: str):
    """The value of a FITS header card ``KEYWORD = value / comment`` (str, bool, int or float)."""
    text = card[10:].lstrip()
    if text.startswith("'"):
        m = re.match(r"'((?:[^']|'')*)'", text)  # '' is a quote inside a FITS string
        return m.group(1).replace("''", "'").rstrip() if m else text
    token = text.split("/", 1)[0].strip()
    if token in ("T", "F"):
        return token == "T"
    for kind in (int, float):
        try:
            return kind(token.replace("D", "E") if kind is float else token)
        except ValueError:
            pass
    return token


def fits_headers(path) -> tuple[list[dict], int]:
    """The headers of a FITS file's HDUs ({keyword: value}), read without astropy (the
    download environment has none), and how many bytes its headers declare beyond its end
    (0: complete; a cut download is short). Bytes after the last HDU that do not start
    another extension are ignored, as FITS readers do."""
    size = os.path.getsize(path)
    headers, offset = [], 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header, ended = {}, False
            while not ended:
                block = f.read(FITS_BLOCK)
                if headers and not header and not (block.startswith(b"XTENSION") or b"XTENSION".startswith(block)):
                    return headers, 0  # trailing bytes, not an extension
                if len(block) < FITS_BLOCK:
                    return headers + [header], FITS_BLOCK - len(block)  # cut inside a header
                offset += FITS_BLOCK
                for i in range(0, FITS_BLOCK, FITS_CARD):
                    card = block[i : i + FITS_CARD].decode("ascii", "replace")
                    key = card[:8].rstrip()
                    if key == "END":
                        ended = True
                        break
                    if card[8:10] == "= ":
                        header[key] = _card_value(card)
            headers.append(header)
            naxis = int(header.get("NAXIS", 0) or 0)
            axes = [int(header.get(f"NAXIS{i}", 0) or 0) for i in range(1, naxis + 1)]
            if header.get("GROUPS") is True and axes and axes[0] == 0:
                axes = axes[1:]  # random groups: NAXIS1 = 0 is not a dimension
            count = 1
            for n in axes:
                count *= n
            data = abs(int(header.get("BITPIX", 8))) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count) if naxis else 0
            if offset + data > size:
                return headers, offset + data - size
            offset += -(-data // FITS_BLOCK) * FITS_BLOCK  # data is padded to whole blocks
    return headers, 0


def _fits_problems(path, content) -> tuple[list[str], int]:
    with open(path, "rb") as f:
        head = f.read(FITS_CARD)
    if not head.startswith(FITS_SIGNATURE):
        what = "a web page" if looks_like_markup(head) else "not a FITS file"
        return [f"{what}: it does not start with the FITS signature 'SIMPLE  =' (first bytes {head!r})"], 0
    headers, missing = fits_headers(path)
    if missing:
        return [f"cut short: its FITS headers declare {missing} more bytes than the file has"], missing
    problems = []
    columns = [str(c) for c in content.get("columns") or ()]
    nside = content.get("nside")
    hdu = content.get("hdu", 1 if columns or nside else None)
    if hdu is not None:
        if hdu >= len(headers):
            problems.append(f"no HDU {hdu} (the file has {len(headers)})")
        else:
            header = headers[hdu]
            names = [str(header.get(f"TTYPE{i}", "")).strip() for i in range(1, int(header.get("TFIELDS", 0) or 0) + 1)]
            if columns and header.get("XTENSION") != "BINTABLE":
                problems.append(f"HDU {hdu} is {header.get('XTENSION', 'the primary array')!r}, not a binary table")
            lacking = [c for c in columns if c.upper() not in {n.upper() for n in names}]
            if columns and lacking and not problems:
                problems.append(f"HDU {hdu} lacks column(s) {lacking} (it has {names})")
            if nside is not None and header.get("NSIDE") != int(nside):
                problems.append(f"HDU {hdu} has NSIDE {header.get('NSIDE', 'missing')}, expected {int(nside)}")
    return problems + _astropy_problems(path, hdu, columns), 0


def _astropy_problems(path, hdu, columns) -> list[str]:
    """The file opens with astropy (as the workflow reads it) and, where named, the table has the columns."""
    # Imported here, not at module level: the Snakefile imports this module at every parse
    # (astropy adds a third of a second), and the download env (envs/download.yaml) has no astropy.
    try:
        from astropy.io import fits
    except ImportError:
        return []
    try:
        # Warnings (odd header characters, padding) are astropy's to give when the file is read; an exception is the finding here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=True) as hdul:
                n = len(hdul)  # reads every header
                if hdu is not None and hdu < n and columns:
                    _ = hdul[hdu].columns.names  # parses the table's column definitions
    except Exception as exc:  # noqa: BLE001 -- any failure to open is the finding
        return [f"astropy cannot open it: {type(exc).__name__}: {exc}"]
    return []


def _text_problems(path, content) -> list[str]:
    width, rows = None, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            if rows == 0 and looks_like_markup(line):
                return [f"a web page, not rows of numbers (line {number}: {raw[:SHOW_BYTES]!r})"]
            try:
                values = [float(t) for t in line.split()]
            except ValueError:
                return [f"line {number} is not numbers: {raw[:SHOW_BYTES]!r}"]
            if width is not None and len(values) != width:
                return [f"line {number} has {len(values)} numbers, the lines above {width} (cut, or not one table)"]
            width, rows = len(values), rows + 1
    if rows == 0:
        return ["no rows of numbers (empty, or only comments)"]
    expected = content.get("n_columns")
    if expected is not None and width != int(expected):
        return [f"{width} numbers a row, expected {int(expected)}"]
    return []


def check_content(path, content=None, name=None) -> tuple[list[str], int]:
    """Problems of a file's content ([] = fine) against what is known of it, and the bytes a
    FITS file's headers declare beyond its end (a cut download; 0 otherwise).

    ``content``: the manifest entry's ``content`` ({format, hdu, columns, nside, n_columns},
    any of them) or None. The format comes from it or from the file name (.fits, .txt):
    ``name`` (the final name of a .part file), else the path's.
    Any file: not empty, not a web page. FITS: the signature, every header and the declared
    data within the file, astropy opens it; ``columns`` (case-insensitive names) in binary
    table ``hdu`` (default 1) and its NSIDE keyword equal to ``nside``, where given. Text:
    rows of numbers ('#' comments and blank lines aside), each as long, ``n_columns`` wide
    where given.
    """
    path = Path(path)
    content = content or {}
    if path.stat().st_size == 0:
        return ["empty (0 bytes)"], 0
    name = name or path.name
    kind = content_format(name, content)
    if kind == "fits":
        return _fits_problems(path, content)
    if kind == "text":
        return _text_problems(path, content), 0
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    return ([f"a web page (first bytes {head[:SHOW_BYTES]!r})"] if looks_like_markup(head) and not name.lower().endswith((".html", ".htm", ".xml")) else []), 0


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of one download: to the logger every ``every_percent`` % or
    ``every_seconds`` s, and as a live line on ``tty`` (a stream) when given."""

    def __init__(self, name, total, start, logger=log, tty=None, every_percent=5.0, every_seconds=10.0):
        self.name, self.total, self.start = name, total, start
        self.done = start
        self.logger, self.tty = logger, tty
        self.every_percent, self.every_seconds = every_percent, every_seconds
        self.t0 = self.t_log = time.monotonic()
        self.pct_log = self._percent()

    def _percent(self):
        return 100.0 * self.done / self.total if self.total else 0.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = (self.done - self.start) / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_text = _duration(eta) if eta != float("inf") else "?"
            return (
                f"{self.name}: {self._percent():5.1f}% {_human(self.done)} / {_human(self.total)}"
                f" at {_human(rate)}/s, ETA {eta_text}"
            )
        return f"{self.name}: {_human(self.done)} at {_human(rate)}/s (size unknown)"

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty is not None:
            self.tty.write("\r" + self.line() + " " * 4)
            self.tty.flush()
        if now - self.t_log >= self.every_seconds or self._percent() - self.pct_log >= self.every_percent:
            self.logger.info(self.line())
            self.t_log, self.pct_log = now, self._percent()

    def close(self) -> None:
        if self.tty is not None:
            self.tty.write("\r" + self.line() + "\n")
            self.tty.flush()
        elapsed = time.monotonic() - self.t0
        self.logger.info(f"{self.line()}; {_human(self.done - self.start)} in {_duration(elapsed)}")


# --------------------------------------------------------------------------- fetch


class _Retry(Retry):
    """urllib3's Retry, except that a connection that cannot be made (a host name that does
    not resolve, a refused connection, no route) fails at once: backing off only delays an
    error that will not go away (offline, the first download took minutes to fail)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        # NewConnectionError subclasses ConnectTimeoutError; a connect timeout proper is not one and is retried.
        if isinstance(error, NewConnectionError):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def make_session(retries=5, backoff=1.0, backoff_max=120.0) -> requests.Session:
    """A requests session whose adapter retries timeouts, dropped connections and 429/5xx
    with exponential backoff (``backoff * 2**n`` seconds, at most ``backoff_max``); a
    connection that cannot be made (DNS, refused) is not retried."""
    retry = _Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff,
        backoff_max=backoff_max,
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "cmbnn-download (+requests)"
    # Byte ranges and sizes refer to the file itself, never to a compressed transfer of it.
    session.headers["Accept-Encoding"] = "identity"
    return session


def manual_copy_hint(dest, url, md5=None, sha256=None) -> str:
    dest = Path(dest).resolve()
    check = f"md5 {md5}" if md5 else f"sha256 {sha256}" if sha256 else "no checksum known yet"
    return (
        f"Fetch it by hand where there is internet (e.g. curl -fLC - -o {dest.name} '{url}') and put it at "
        f"{dest} ({check}); Snakemake then uses it without running the download, so check it first with "
        f"`python -m cmbnn.planck.download verify {dest}`. "
        "Or point the base URL (config planck.base_urls / planck.mirror) at a reachable mirror."
    )


class _Unreachable(Exception):
    """No answer from the server: at once for DNS/refused, after the session's retries for timeouts."""


class _Cut(requests.exceptions.ChunkedEncodingError):
    """The body ended before the file did (shorter than announced, pinned or declared): a drop."""


_DROPS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


def _causes(exc, depth=12):
    """An exception, the ones it wraps (requests -> urllib3 -> socket), and so on."""
    seen = []
    while exc is not None and len(seen) < depth and exc not in seen:
        seen.append(exc)
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = inner or exc.__cause__ or exc.__context__
    return seen


def _unreachable_reason(exc, url, retries) -> str:
    host = requests.utils.urlparse(url).netloc
    causes = _causes(exc)
    if any(isinstance(c, NameResolutionError) for c in causes):
        return f"the host name of {host} does not resolve (offline, or no DNS); not retried"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return f"{host} refused the connection (nothing listens there); not retried"
    for cause in causes:
        if isinstance(cause, NewConnectionError):
            return f"no connection to {host} ({cause}); not retried"
    return f"no answer after {retries} retries ({type(exc).__name__}: {exc})"


def _content_range(header):
    """(start, total) from 'bytes START-END/TOTAL' (total None when '*')."""
    m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", header or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _read_head(blocks, n) -> bytes:
    """At least ``n`` bytes from the start of a body (less if it ends first); the iterator goes on after them."""
    head = b""
    for block in blocks:
        head += block
        if len(head) >= n:
            break
    return head


# More than 8 parameters: after url and dest, keyword-only knobs of one download (what is expected, timeouts, retries, progress cadence), each with a default.
def fetch(
    url,
    dest,
    *,
    size=None,
    md5=None,
    sha256=None,
    content=None,
    retries=5,
    backoff=1.0,
    backoff_max=120.0,
    timeout=(15.0, 120.0),
    session=None,
    logger=None,
    tty=None,
    chunk=CHUNK_BYTES,
    every_percent=5.0,
    every_seconds=10.0,
) -> Path:
    """Download ``url`` to ``dest`` with verification, resume, retries and progress.

    ``size``/``md5``/``sha256``: expected values, None where unknown (then the
    size the server announces is enforced and the digests are logged so they
    can be pinned). ``content``: what the manifest knows of the file's content
    (see :func:`check_content`); with None the file name's suffix still asks for
    a FITS file or rows of numbers, and no web page or empty answer is accepted.
    ``retries``: attempts after the first, both for the session's
    timeout/status retries and for mid-stream drops; waits grow as
    ``backoff * 2**n`` s (capped at ``backoff_max``). A host that does not
    resolve, a refused connection or an HTTP 4xx fails at once.
    ``tty``: stream for the live progress line; default stderr when it is a
    terminal. Returns ``dest``.
    """
    logger = logger or log
    dest = Path(dest)
    name = dest.name
    check_content_spec(name, content)
    if tty is None and sys.stderr.isatty():
        tty = sys.stderr
    if dest.exists():
        return _use_existing(dest, url, size, md5, sha256, content, logger)
    if size is None and not (md5 or sha256):
        logger.warning(f"{name}: no size or checksum known; the size the server announces and the content are checked")
    dest.parent.mkdir(parents=True, exist_ok=True)
    job = _Job(url, dest, size, md5, sha256, content, timeout, chunk, logger, tty, every_percent, every_seconds)
    part = job.part
    own_session = session is None
    session = session or make_session(retries, backoff, backoff_max)
    try:
        attempt = 0
        while True:
            try:
                total = job.transfer(session)
                content_problems = job.check_cut(total)
                break
            except _Unreachable as exc:
                have = part.stat().st_size if part.exists() else 0
                kept = f" ({_human(have)} kept in {part.name}, resumed later)" if have else ""
                raise OfflineError(
                    f"cannot download {name} from {url}: {exc}{kept}. "
                    "Offline, or the archive is down? " + manual_copy_hint(dest, url, md5, sha256)
                ) from None
            except _DROPS as exc:
                have = part.stat().st_size if part.exists() else 0
                if job.no_range:
                    raise DownloadError(
                        f"download of {name} from {url} was cut at {_human(have)} ({exc}), and this server ignores "
                        "HTTP Range requests (it answered 200 instead of 206 when asked to resume), so every retry "
                        f"would fetch the whole file again: stopped after {job.full_fetches} full attempt(s). "
                        f"{part.name} is kept for a mirror that can resume. " + manual_copy_hint(dest, url, md5, sha256)
                    ) from exc
                if attempt >= retries:
                    raise DownloadError(
                        f"download of {name} from {url} failed after {attempt + 1} attempts ({exc}); "
                        f"{_human(have)} kept in {part}, resumed by the next run. "
                        + manual_copy_hint(dest, url, md5, sha256)
                    ) from exc
                wait = min(backoff * 2**attempt, backoff_max)
                attempt += 1
                logger.warning(
                    f"{name}: interrupted at {_human(have)} ({type(exc).__name__}: {exc}); "
                    f"retry {attempt}/{retries} in {wait:.3g} s, resuming from byte {have}"
                )
                time.sleep(wait)
        logger.info(f"{name}: verifying {_human(part.stat().st_size)}")
        problems, digests = check_file(part, size if size is not None else total, md5, sha256)
        if problems:
            part.unlink()
            raise ChecksumError(
                f"{name} downloaded from {url} is corrupt: {'; '.join(problems)}. The partial file {part.name} was "
                "deleted (a full-size corrupt file cannot be resumed). Rerun to download it again; if it fails "
                "the same way, the archive's file differs from the manifest's checksum: check it and update the "
                "manifest."
            )
        if content_problems and (md5 or sha256):
            # The pinned checksum says this is the archive's file: the content entry is what is wrong.
            logger.warning(
                f"{name}: the checksum matches the manifest, so the file is kept, but it does not match the "
                f"manifest's content entry ({'; '.join(content_problems)}): correct that entry"
            )
        elif content_problems:
            part.unlink()
            raise ContentError(
                f"{name} downloaded from {url} is not the expected file: {'; '.join(content_problems)}. "
                f"{part.name} was deleted; nothing was put at {dest}. If the archive's file is right and the "
                "manifest's content entry (columns, nside, hdu) is wrong, correct the manifest. "
                + manual_copy_hint(dest, url, md5, sha256)
            )
        os.replace(part, dest)
        pinned = ", ".join(f"{a} {v}" for a, v in digests.items())
        logger.info(f"{name}: verified ({pinned}) -> {dest}")
        if not (md5 or sha256):
            logger.warning(f"{name}: no checksum in the manifest; pin this one after checking it: {pinned}")
        return dest
    finally:
        if own_session:
            session.close()


def _use_existing(dest, url, size, md5, sha256, content, logger) -> Path:
    problems, digests = check_file(dest, size, md5, sha256)
    if not problems and not (md5 or sha256):
        # No checksum: the content is all there is to tell a map from an error page saved by an older run.
        problems = check_content(dest, content)[0]
    if problems:
        error = ChecksumError if md5 or sha256 else ContentError
        raise error(
            f"{dest} is already there but is not the expected file: {'; '.join(problems)}. It was left as it is. "
            f"Move it aside (or delete it) to download it again from {url}, or, if you trust this copy, "
            "update the size/checksum (or content) in the manifest."
        )
    if md5 or sha256:
        logger.info(f"{dest.name}: already in place and verified; not downloaded")
    else:
        logger.warning(
            f"{dest.name}: already in place, no checksum to verify it against; its content checks out, used as it is "
            f"({', '.join(f'{a} {v}' for a, v in digests.items())})"
        )
    return dest


class _Job:
    """One file's download (private to fetch): what is expected, and what the requests so far taught."""

    # More than 8 parameters: one download's expectations and progress cadence, passed on from fetch.
    def __init__(self, url, dest, size, md5, sha256, content, timeout, chunk, logger, tty, every_percent, every_seconds):
        self.url, self.dest, self.name = url, dest, dest.name
        self.part = dest.with_name(dest.name + ".part")
        self.size = int(size) if size is not None else None
        self.md5, self.sha256, self.content = md5, sha256, content
        self.format = content_format(dest.name, content)
        self.timeout, self.chunk, self.logger, self.tty = timeout, chunk, logger, tty
        self.every_percent, self.every_seconds = every_percent, every_seconds
        self.no_range = False  # the server answered a Range request with the whole file
        self.full_fetches = 0  # answers streamed from byte 0

    def hint(self) -> str:
        return manual_copy_hint(self.dest, self.url, self.md5, self.sha256)

    def transfer(self, session) -> int | None:
        """One request: append to (or restart) the .part; return the file's size where the
        server or the manifest says it (None otherwise) once the body has ended.

        Raises one of ``_DROPS`` when the stream ends early, DownloadError for HTTP errors,
        ContentError for a web page, an empty answer or a file that does not start as asked.
        """
        name, part, size, logger = self.name, self.part, self.size, self.logger
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            logger.warning(f"{name}: {part.name} is larger than the expected {size} bytes; restarting")
            part.unlink()
            have = 0
        if size is not None and have == size:
            return have  # complete from an earlier run: verified by the caller
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = session.get(self.url, stream=True, headers=headers, timeout=self.timeout, allow_redirects=True)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            retries = session.get_adapter(self.url).max_retries.total
            raise _Unreachable(_unreachable_reason(exc, self.url, retries)) from exc
        with resp:
            if resp.status_code == 416 and have:
                _, total = _content_range(resp.headers.get("Content-Range"))
                if total == have:
                    return have
                logger.warning(f"{name}: server refused to resume at byte {have}; restarting")
                part.unlink()
                raise requests.exceptions.ConnectionError("range not satisfiable; restarting from byte 0")
            if resp.status_code >= 400:
                retried = resp.status_code in RETRY_STATUS
                raise DownloadError(
                    f"cannot download {name} from {_url_of(resp, self.url)}: HTTP {resp.status_code} {resp.reason} "
                    + ("(after the session's retries). " if retried else "(not retried: asking again gets the same answer). ")
                    + self.hint()
                )
            mode, start = "wb", 0
            if have and resp.status_code == 206:
                start, total = _content_range(resp.headers.get("Content-Range"))
                if start == have:
                    mode = "ab"
                    logger.info(f"{name}: resuming at byte {have}")
                else:
                    logger.warning(f"{name}: server answered range from byte {start}, not {have}; restarting")
                    resp.close()
                    part.unlink()
                    raise requests.exceptions.ConnectionError("unexpected Content-Range; restarting from byte 0")
            else:
                if have:
                    self.no_range = True
                    logger.warning(
                        f"{name}: the server ignored the Range request (HTTP {resp.status_code} instead of 206), so it "
                        f"cannot resume: fetching the whole file again from byte 0, this once (if this copy is cut too, "
                        "the download stops rather than fetch the whole file yet again)"
                    )
                length = resp.headers.get("Content-Length")
                total = int(length) if length is not None and "Content-Encoding" not in resp.headers else None
            if total is None:
                total = size
            elif size is not None and total != size:
                raise ChecksumError(
                    f"{name}: {_url_of(resp, self.url)} announces {total} bytes, the manifest expects {size}: "
                    "not the expected file (an error page, or another version). Nothing was written."
                )
            blocks = resp.iter_content(chunk_size=self.chunk)
            head = _read_head(blocks, SNIFF_BYTES)
            self.check_head(resp, head, start, have)  # before anything is written
            if start == 0:
                self.full_fetches += 1
            progress = Progress(name, total, start, logger, self.tty, self.every_percent, self.every_seconds)
            with open(part, mode) as f:
                f.write(head)
                progress.update(len(head))
                for block in blocks:
                    f.write(block)
                    progress.update(len(block))
            progress.close()
        got = part.stat().st_size
        if total is not None and got < total:
            raise _Cut(f"connection closed at byte {got} of {total}")
        return total

    def check_head(self, resp, head, start, have) -> None:
        """Refuse a web page, an empty answer or a file that does not start as its format must."""
        kept = f" {_part_note(self.part, have)}" if have else ""
        shown = f"First bytes of the answer: {head[:SHOW_BYTES]!r}."
        where = f"cannot download {self.name} from {_url_of(resp, self.url)}: HTTP {resp.status_code}"
        content_type = resp.headers.get("Content-Type", "")
        html_ok = self.name.lower().endswith((".html", ".htm"))
        if not html_ok and ("text/html" in content_type.lower() or looks_like_markup(head)):
            raise ContentError(
                f"{where} answered with a web page ({content_type or 'no content type'}), not the file: a wrong URL, "
                f"a login or an error page. {shown} Nothing was written{kept}. Check the URL in a browser. " + self.hint()
            )
        if start == 0 and not head:
            raise ContentError(f"{where} answered with an empty body, not the file. Nothing was written{kept}. " + self.hint())
        if start == 0 and self.format == "fits" and not head.startswith(FITS_SIGNATURE):
            raise ContentError(
                f"{where} answered with something that is not a FITS file (no 'SIMPLE  =' card at its start). "
                f"{shown} Nothing was written{kept}. " + self.hint()
            )

    def check_cut(self, total) -> list[str]:
        """The content's problems once a transfer has ended; a FITS file shorter than its headers
        declare, from a server that gave no size, is a drop (``_Cut``: resumed), not a problem."""
        problems, missing = check_content(self.part, self.content, self.name)
        if missing and total is None:
            raise _Cut(f"the body ended {missing} bytes before the end its FITS headers declare (no Content-Length)")
        return problems


def _url_of(resp, url) -> str:
    """The URL asked for, and where a redirect led."""
    return url if not resp.url or resp.url == url else f"{url} (redirected to {resp.url})"


def _part_note(part, have) -> str:
    return f"({_human(have)} already in {part.name} kept)"


# --------------------------------------------------------------------------- manifest


def load_manifest(path) -> dict:
    """The manifest as {file name: entry}; each entry has ``paths`` (mirror -> path
    under its base URL), ``size``, ``md5``, ``sha256`` (None where unknown), ``used_for``
    and ``content`` (what is known of the content, see :func:`check_content`; None if nothing)."""
    with open(path) as f:
        data = yaml.safe_load(f)
    files = data["files"]
    for name, entry in files.items():
        for key in ("paths", "size", "md5", "sha256", "used_for"):
            if key not in entry:
                raise ValueError(f"{path}: entry {name} lacks '{key}'")
        entry.setdefault("content", None)
        try:
            check_content_spec(name, entry["content"])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None
    return files


def file_url(name, entry, base_urls: dict, mirror: str) -> str:
    """URL of a manifest file on a mirror: base URL + the entry's path there
    (the file name alone for a mirror the entry does not list: a flat local copy)."""
    if mirror not in base_urls:
        raise ValueError(f"planck.mirror '{mirror}' is not one of planck.base_urls: {sorted(base_urls)}")
    base = base_urls[mirror]
    path = entry["paths"].get(mirror, name)
    return base.rstrip("/") + "/" + path.lstrip("/")


def find_manifest(path, basedir) -> Path:
    """The manifest file: ``path`` as given (absolute, or relative to the working
    directory) when it exists, else relative to the workflow's directory ``basedir``."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        found = path
    else:
        found = Path(basedir) / path
    if not found.is_file():
        raise FileNotFoundError(f"config key 'planck.manifest': {path} not found (looked in the working directory and in {basedir})")
    return found


def download_params(manifest: dict, planck: dict, name: str) -> dict:
    """What the download rule passes to :func:`fetch` for one manifest file
    (``planck``: the config's planck section). Not the entry's ``content``: these are the
    rule's params, and a new key would make Snakemake redo every download already made
    (params rerun trigger); a script wanting it reads ``manifest[name]["content"]``."""
    entry = manifest[name]
    return {
        "url": file_url(name, entry, planck["base_urls"], planck["mirror"]),
        "size": entry["size"],
        "md5": entry["md5"],
        "sha256": entry["sha256"],
        "used_for": entry["used_for"],
        "retries": planck["retries"],
        "backoff_s": planck["backoff_s"],
        "timeout_s": planck["timeout_s"],
    }


def verify_files(paths, manifest: dict) -> list[str]:
    """Check files against their manifest entries (by file name); one line per file,
    starting with OK, WRONG, MISSING, UNPINNED (no checksum known; the content checks out) or UNKNOWN."""
    lines = []
    for path in map(Path, paths):
        entry = manifest.get(path.name)
        if entry is None:
            lines.append(f"UNKNOWN  {path}: not in the manifest")
        elif not path.exists():
            lines.append(f"MISSING  {path}")
        else:
            problems, digests = check_file(path, entry["size"], entry["md5"], entry["sha256"])
            pinned = entry["md5"] or entry["sha256"]
            if not problems and not pinned:
                problems = check_content(path, entry.get("content"))[0]
            if problems:
                lines.append(f"WRONG    {path}: {'; '.join(problems)}")
            elif pinned:
                lines.append(f"OK       {path}")
            else:
                digest_text = ", ".join(f"{a} {v}" for a, v in digests.items())
                lines.append(f"UNPINNED {path}: content checks out, no checksum to check it against; pin after checking it: {digest_text}")
    return lines


def main(argv=None) -> int:
    """``python -m cmbnn.planck.download verify [FILE ...]``: check Planck files against the manifest."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cmbnn.planck.download", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check files (default: all of --dir) against the manifest")
    verify.add_argument("files", nargs="*", type=Path)
    verify.add_argument("--manifest", type=Path, default=Path(__file__).resolve().parents[2] / "workflow" / "planck_manifest.yaml")
    verify.add_argument("--dir", type=Path, default=Path("resources/planck"), help="folder checked when no file is named")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    files = args.files or sorted(p for p in args.dir.glob("*") if p.name in manifest)
    lines = verify_files(files, manifest)
    print("\n".join(lines) if lines else f"no manifest files in {args.dir}")
    return 1 if any(line.startswith(("WRONG", "MISSING", "UNKNOWN")) for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
