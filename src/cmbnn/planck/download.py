"""Downloads a user can trust, and the manifest of Planck archive files.

:func:`fetch` streams a URL to ``<name>.part`` beside the destination and
renames it to the final name only once the size and the checksum match, so
nothing that looks finished (to Snakemake or to a user) exists before the
file is verified; Snakemake's ``--keep-incomplete`` is not needed.

- Resume: after an interruption the ``.part`` file is kept and the next
  attempt (in the same call, or a later run) asks for the rest with an HTTP
  ``Range`` request. A server that answers 200 instead of 206, or a
  ``Content-Range`` that does not start where the ``.part`` ends, restarts
  the file from byte 0.
- Retries: urllib3's ``Retry`` on the session retries connection errors and
  429/5xx answers with exponential backoff; a loop here retries mid-stream
  drops (which urllib3 cannot, the body being streamed) with the same backoff,
  resuming each time.
- Checksum mismatch: the ``.part`` is **deleted** and :class:`ChecksumError`
  is raised. A full-size corrupt ``.part`` kept on disk would be "resumed"
  forever (a Range request from its end fetches nothing), so it is never kept.
- A destination already in place is verified and used, never fetched; one
  whose size or checksum is wrong raises :class:`ChecksumError` and is left
  untouched (it may be the user's own copy): the message says what to do.
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
from pathlib import Path

import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16  # a drop loses at most the block being read
RETRY_STATUS = (429, 500, 502, 503, 504)
DIGESTS = ("md5", "sha256")


class DownloadError(RuntimeError):
    """A download failed in a way a user must act on; the message says how."""


class ChecksumError(DownloadError):
    """Size or checksum of a downloaded (or already present) file is wrong."""


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


def make_session(retries=5, backoff=1.0, backoff_max=120.0) -> requests.Session:
    """A requests session whose adapter retries connection errors and 429/5xx
    with exponential backoff (``backoff * 2**n`` seconds, at most ``backoff_max``)."""
    retry = Retry(
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
    """No answer from the server after the session's own retries."""


_DROPS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


def _content_range(header):
    """(start, total) from 'bytes START-END/TOTAL' (total None when '*')."""
    m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", header or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


# More than 8 parameters: after url and dest, keyword-only knobs of one download (timeouts, retries, progress cadence), each with a default.
def fetch(
    url,
    dest,
    *,
    size=None,
    md5=None,
    sha256=None,
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
    can be pinned). ``retries``: attempts after the first, both for the
    session's connection/status retries and for mid-stream drops; waits grow
    as ``backoff * 2**n`` s (capped at ``backoff_max``).
    ``tty``: stream for the live progress line; default stderr when it is a
    terminal. Returns ``dest``.
    """
    logger = logger or log
    dest = Path(dest)
    name = dest.name
    if tty is None and sys.stderr.isatty():
        tty = sys.stderr
    if dest.exists():
        return _use_existing(dest, url, size, md5, sha256, logger)
    if size is None and not (md5 or sha256):
        logger.warning(f"{name}: no size or checksum known; the size the server announces is enforced")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or make_session(retries, backoff, backoff_max)
    try:
        attempt = 0
        while True:
            try:
                total = _transfer(session, url, part, size, timeout, chunk, logger, tty, every_percent, every_seconds)
                break
            except _Unreachable as exc:
                have = part.stat().st_size if part.exists() else 0
                kept = f" ({_human(have)} kept in {part.name}, resumed later)" if have else ""
                raise OfflineError(
                    f"cannot download {name} from {url}: the server cannot be reached{kept} ({exc}). "
                    "Offline, or the archive is down? " + manual_copy_hint(dest, url, md5, sha256)
                ) from None
            except _DROPS as exc:
                have = part.stat().st_size if part.exists() else 0
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
        os.replace(part, dest)
        pinned = ", ".join(f"{a} {v}" for a, v in digests.items())
        logger.info(f"{name}: verified ({pinned}) -> {dest}")
        if not (md5 or sha256):
            logger.warning(f"{name}: no checksum in the manifest; pin this one after checking it: {pinned}")
        return dest
    finally:
        if own_session:
            session.close()


def _use_existing(dest, url, size, md5, sha256, logger) -> Path:
    problems, digests = check_file(dest, size, md5, sha256)
    if problems:
        raise ChecksumError(
            f"{dest} is already there but is not the expected file: {'; '.join(problems)}. It was left as it is. "
            f"Move it aside (or delete it) to download it again from {url}, or, if you trust this copy, "
            "update the size/checksum in the manifest."
        )
    if md5 or sha256:
        logger.info(f"{dest.name}: already in place and verified; not downloaded")
    else:
        logger.warning(
            f"{dest.name}: already in place, no checksum to verify it against; used as it is "
            f"({', '.join(f'{a} {v}' for a, v in digests.items())})"
        )
    return dest


# More than 8 parameters: one HTTP request's state and its progress cadence (private to fetch).
def _transfer(session, url, part, size, timeout, chunk, logger, tty, every_percent, every_seconds) -> int:
    """One request: append to (or restart) ``part``; return the total size once complete.

    Raises one of ``_DROPS`` when the stream ends early, DownloadError for HTTP errors.
    """
    name = part.name[: -len(".part")]
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > int(size):
        logger.warning(f"{name}: {part.name} is larger than the expected {size} bytes; restarting")
        part.unlink()
        have = 0
    if size is not None and have == int(size):
        return have  # complete from an earlier run: verified by the caller
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = session.get(url, stream=True, headers=headers, timeout=timeout, allow_redirects=True)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        # The session's Retry has already retried with backoff: the server cannot be reached.
        raise _Unreachable(str(exc)) from exc
    with resp:
        if resp.status_code == 416 and have:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total == have:
                return have
            logger.warning(f"{name}: server refused to resume at byte {have}; restarting")
            part.unlink()
            raise requests.exceptions.ConnectionError("range not satisfiable; restarting from byte 0")
        if resp.status_code >= 400:
            raise DownloadError(
                f"cannot download {name} from {url}: HTTP {resp.status_code} {resp.reason}. "
                + manual_copy_hint(part.with_name(name), url)
            )
        if "text/html" in resp.headers.get("Content-Type", "") and not name.endswith((".html", ".htm")):
            raise DownloadError(
                f"cannot download {name} from {url}: the server answered with a web page (text/html), not the "
                "file: a wrong URL, a login or an error page. Check the URL in a browser. "
                + manual_copy_hint(part.with_name(name), url)
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
                logger.warning(f"{name}: server ignored the Range request (HTTP {resp.status_code}); restarting")
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None and "Content-Encoding" not in resp.headers else None
        if total is None:
            total = int(size) if size is not None else None
        elif size is not None and total != int(size):
            raise ChecksumError(
                f"{name}: {url} announces {total} bytes, the manifest expects {int(size)}: "
                "not the expected file (an error page, or another version). Nothing was written."
            )
        progress = Progress(name, total, start, logger, tty, every_percent, every_seconds)
        with open(part, mode) as f:
            for block in resp.iter_content(chunk_size=chunk):
                f.write(block)
                progress.update(len(block))
        progress.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise requests.exceptions.ChunkedEncodingError(f"connection closed at byte {got} of {total}")
    return got


# --------------------------------------------------------------------------- manifest


def load_manifest(path) -> dict:
    """The manifest as {file name: entry}; each entry has ``paths`` (mirror -> path
    under its base URL), ``size``, ``md5``, ``sha256`` (None where unknown) and ``used_for``."""
    with open(path) as f:
        data = yaml.safe_load(f)
    files = data["files"]
    for name, entry in files.items():
        for key in ("paths", "size", "md5", "sha256", "used_for"):
            if key not in entry:
                raise ValueError(f"{path}: entry {name} lacks '{key}'")
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
        return path
    return Path(basedir) / path


def download_params(manifest: dict, planck: dict, name: str) -> dict:
    """What the download rule passes to :func:`fetch` for one manifest file
    (``planck``: the config's planck section)."""
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
    starting with OK, WRONG, MISSING, UNPINNED (no size/checksum known) or UNKNOWN."""
    lines = []
    for path in map(Path, paths):
        entry = manifest.get(path.name)
        if entry is None:
            lines.append(f"UNKNOWN  {path}: not in the manifest")
        elif not path.exists():
            lines.append(f"MISSING  {path}")
        else:
            problems, digests = check_file(path, entry["size"], entry["md5"], entry["sha256"])
            if problems:
                lines.append(f"WRONG    {path}: {'; '.join(problems)}")
            elif entry["md5"] or entry["sha256"]:
                lines.append(f"OK       {path}")
            else:
                pinned = ", ".join(f"{a} {v}" for a, v in digests.items())
                lines.append(f"UNPINNED {path}: nothing to check it against; pin after checking it: {pinned}")
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
