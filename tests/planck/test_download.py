"""Verified, resumable downloads against a local HTTP server on 127.0.0.1 (no other host)."""

import hashlib
import io
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml
from astropy.io import fits

from archive_server import Archive
from cmbnn.planck.download import (
    ChecksumError,
    ContentError,
    DownloadError,
    OfflineError,
    check_content,
    fetch,
    file_url,
    load_manifest,
)
from conftest import ROOT

FAST = dict(retries=3, backoff=0.001, backoff_max=0.01, timeout=(2.0, 5.0))
# The config's defaults (config/config.yaml planck.retries/backoff_s): a backoff loop would take a minute.
PATIENT = {"retries": 5, "backoff": 2.0, "timeout": (15.0, 60.0)}
HFI_COLUMNS = ["I_STOKES", "Q_STOKES", "U_STOKES", "II_COV", "QQ_COV", "UU_COV", "QU_COV"]
ERROR_PAGE = b"<!DOCTYPE html>\n<html><head><title>Planck Legacy Archive - error</title></head><body>Service unavailable</body></html>\n"


@pytest.fixture()
def archive():
    srv = Archive()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture()
def no_proxies(monkeypatch):
    """A proxy would answer for a host that does not resolve: these tests are about the direct connection."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def payload(n=300_000, seed=1, columns=("I_STOKES", "Q_STOKES", "U_STOKES"), nside=2048):
    """A FITS file of about ``n`` bytes in the PLA's layout: an empty primary HDU, then a
    HEALPix binary table (float32 columns, NSIDE in its header) in HDU 1."""
    rows = max(1, n // (4 * len(columns)))
    rng = np.random.default_rng(seed)
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name=c, format="E", array=rng.standard_normal(rows).astype(np.float32)) for c in columns]
    )
    table.header.update({"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": nside})
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buf)
    return buf.getvalue()


def numbers(rows=2000, seed=1):
    """A text table like the PR3 theory file: a '#' header line, then rows of 6 numbers."""
    rng = np.random.default_rng(seed)
    lines = ["#    L    TT    TE    EE    BB    PP"]
    lines += [f"{ell:5d} " + " ".join(f"{v:.6E}" for v in rng.uniform(0, 6000, 5)) for ell in range(2, rows + 2)]
    return ("\n".join(lines) + "\n").encode()


def md5(data):
    return hashlib.md5(data).hexdigest()


def test_download_completes_and_verifies(archive, tmp_path, caplog):
    data = payload()
    archive.files["/maps/a.fits"] = data
    dest = tmp_path / "planck" / "a.fits"
    with caplog.at_level(logging.INFO):
        fetch(archive.url + "maps/a.fits", dest, size=len(data), md5=md5(data), chunk=16384, every_percent=20, **FAST)
    assert dest.read_bytes() == data
    assert not (tmp_path / "planck" / "a.fits.part").exists()
    assert archive.requests == [("/maps/a.fits", None)]
    text = caplog.text
    assert "100.0%" in text and "/s" in text and "ETA" in text and "verified" in text


def test_progress_goes_to_a_terminal_stream(archive, tmp_path):
    import io

    data = numbers(800)
    archive.files["/a.txt"] = data
    tty = io.StringIO()
    fetch(archive.url + "a.txt", tmp_path / "a.txt", md5=md5(data), tty=tty, chunk=8192, **FAST)
    assert "\r" in tty.getvalue() and "100.0%" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_a_corrupted_byte_is_a_checksum_error_and_leaves_nothing_finished(archive, tmp_path):
    data = bytearray(payload())
    good = md5(bytes(data))
    data[1234] ^= 0xFF
    archive.files["/a.fits"] = bytes(data)
    dest = tmp_path / "a.fits"
    with pytest.raises(ChecksumError, match=r"a\.fits.*corrupt.*md5"):
        fetch(archive.url + "a.fits", dest, size=len(data), md5=good, **FAST)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # the corrupt .part is removed, never resumed
    # A server announcing another size is refused before anything is written.
    with pytest.raises(ChecksumError, match="announces"):
        fetch(archive.url + "a.fits", dest, size=len(data) + 1, md5=good, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_dropped_connection_resumes_with_range(archive, tmp_path, caplog):
    data = payload(400_000)
    archive.files["/a.fits"] = data
    archive.drop_after["/a.fits"] = 2  # two drops: at 1/2, then at 3/4
    dest = tmp_path / "a.fits"
    with caplog.at_level(logging.INFO):
        fetch(archive.url + "a.fits", dest, size=len(data), md5=md5(data), chunk=4096, **FAST)
    assert dest.read_bytes() == data
    # Two resumes, each from where the .part ended (a little short of the drop: urllib3's buffer).
    ranges = [r for _, r in archive.requests]
    assert ranges[0] is None and len(ranges) == 3
    starts = [int(r[len("bytes="):-1]) for r in ranges[1:]]
    n = len(data)
    assert 0.375 * n < starts[0] <= n / 2 < starts[1] <= 0.75 * n
    assert f"resuming at byte {starts[0]}" in caplog.text


def test_a_part_left_by_an_earlier_run_is_resumed_and_a_server_without_ranges_restarts(archive, tmp_path):
    data = payload()
    archive.files["/a.fits"] = data
    dest = tmp_path / "a.fits"
    (tmp_path / "a.fits.part").write_bytes(data[:1000])
    fetch(archive.url + "a.fits", dest, md5=md5(data), **FAST)
    assert dest.read_bytes() == data and archive.requests[-1] == ("/a.fits", "bytes=1000-")
    dest.unlink()
    archive.ignore_range = True
    (tmp_path / "a.fits.part").write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    fetch(archive.url + "a.fits", dest, md5=md5(data), **FAST)
    assert dest.read_bytes() == data


def test_retries_of_drops_are_bounded(archive, tmp_path):
    data = payload()
    archive.files["/a.fits"] = data
    archive.drop_after["/a.fits"] = 100
    with pytest.raises(DownloadError, match=r"a\.fits.*failed after 3 attempts.*kept in"):
        fetch(archive.url + "a.fits", tmp_path / "a.fits", md5=md5(data), **{**FAST, "retries": 2})
    assert len(archive.requests) == 3
    assert not (tmp_path / "a.fits").exists() and (tmp_path / "a.fits.part").exists()


def test_server_errors_are_retried_with_a_bound(archive, tmp_path):
    data = payload()
    archive.files["/a.fits"] = data
    archive.unavailable["/a.fits"] = 2
    fetch(archive.url + "a.fits", tmp_path / "a.fits", md5=md5(data), **FAST)
    assert (tmp_path / "a.fits").read_bytes() == data and len(archive.requests) == 3
    archive.requests.clear()
    archive.unavailable["/a.fits"] = 100
    with pytest.raises(DownloadError, match=r"b\.fits.*HTTP 503"):
        fetch(archive.url + "a.fits", tmp_path / "b.fits", md5=md5(data), **{**FAST, "retries": 2})
    assert len(archive.requests) == 3 and not (tmp_path / "b.fits").exists()


def test_a_full_size_corrupt_part_is_removed_not_resumed_forever(archive, tmp_path):
    data = payload()
    archive.files["/a.fits"] = data
    dest = tmp_path / "a.fits"
    (tmp_path / "a.fits.part").write_bytes(b"\0" * len(data))
    with pytest.raises(ChecksumError, match="corrupt"):
        fetch(archive.url + "a.fits", dest, size=len(data), md5=md5(data), **FAST)
    assert list(tmp_path.iterdir()) == [] and archive.requests == []
    fetch(archive.url + "a.fits", dest, size=len(data), md5=md5(data), **FAST)
    assert dest.read_bytes() == data


def test_no_server_gives_the_offline_message(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/release_3/a.fits"
    dest = tmp_path / "planck" / "a.fits"
    with pytest.raises(OfflineError) as err:
        fetch(url, dest, md5="0" * 32, **FAST)
    text = str(err.value)
    assert "a.fits" in text and url in text and str(dest.resolve()) in text and "by hand" in text
    assert not dest.exists()


def test_http_errors_name_the_file_and_url(archive, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.fits.*HTTP 404"):
        fetch(archive.url + "missing.fits", tmp_path / "missing.fits", **FAST)
    archive.files["/page.fits"] = b"<html>product not found</html>"
    archive.html.add("/page.fits")
    with pytest.raises(DownloadError, match=r"page\.fits.*web page"):
        fetch(archive.url + "page.fits", tmp_path / "page.fits", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_verified_file_in_place_is_not_fetched_and_a_wrong_one_is_kept_with_advice(archive, tmp_path):
    data = payload()
    archive.files["/a.fits"] = data
    dest = tmp_path / "a.fits"
    dest.write_bytes(data)
    fetch(archive.url + "a.fits", dest, size=len(data), md5=md5(data), **FAST)
    assert archive.requests == []
    dest.write_bytes(data[:-1] + b"!")
    with pytest.raises(ChecksumError, match=r"already there.*md5.*left as it is.*Move it aside"):
        fetch(archive.url + "a.fits", dest, md5=md5(data), **FAST)
    assert archive.requests == [] and dest.read_bytes() == data[:-1] + b"!"


def test_verify_command_checks_copies_fetched_by_hand(tmp_path):
    data = payload(1000)  # a small FITS file: the unpinned one is checked by its content
    manifest = tmp_path / "m.yaml"
    entry = {"paths": {}, "size": len(data), "md5": md5(data), "sha256": None, "used_for": "test"}
    manifest.write_text(yaml.safe_dump({"files": {"good.fits": entry, "bad.fits": entry, "new.fits": {**entry, "size": None, "md5": None}}}))
    (tmp_path / "good.fits").write_bytes(data)
    (tmp_path / "bad.fits").write_bytes(data[::-1])
    (tmp_path / "new.fits").write_bytes(data)
    cmd = [sys.executable, "-m", "cmbnn.planck.download", "verify", "--manifest", str(manifest)]
    ok = subprocess.run([*cmd, str(tmp_path / "good.fits"), str(tmp_path / "new.fits")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK") and "UNPINNED" in ok.stdout and md5(data) in ok.stdout
    bad = subprocess.run([*cmd, "--dir", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "WRONG" in bad.stdout and "bad.fits" in bad.stdout and "OK" in bad.stdout
    # An unpinned copy that is an error page saved under the map's name is WRONG, not UNPINNED.
    (tmp_path / "new.fits").write_bytes(ERROR_PAGE)
    page = subprocess.run([*cmd, str(tmp_path / "new.fits")], capture_output=True, text=True, check=False)
    assert page.returncode == 1 and page.stdout.startswith("WRONG") and "FITS signature" in page.stdout


def test_the_manifest_names_every_issue_file_with_urls_per_mirror():
    manifest = load_manifest(ROOT / "workflow" / "planck_manifest.yaml")
    for nu in (100, 143, 217):
        for kind in ("full", "halfmission-1", "halfmission-2"):
            assert f"HFI_SkyMap_{nu}_2048_R3.01_{kind}.fits" in manifest
    for name in (
        "COM_CMB_IQU-commander_2048_R3.00_full.fits",
        "COM_CMB_IQU-smica_2048_R3.00_full.fits",
        "COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits",
        "COM_Mask_CMB-common-Mask-Pol_2048_R3.00.fits",
        "COM_Mask_CMB-Inpainting-Mask-Int_2048_R3.00.fits",
        "COM_CompMap_IQU-thermaldust-gnilc-unires_2048_R3.00.fits",
        "COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits",
        "COM_CompMap_QU-synchrotron-commander_2048_R3.00_full.fits",
        "COM_PowerSpect_CMB-base-plikHM-TTTEEE-lowl-lowE-lensing-minimum-theory_R3.01.txt",
    ):
        assert name in manifest
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["planck"]
    for name, entry in manifest.items():
        assert entry["md5"] is None or len(entry["md5"]) == 32
        url = file_url(name, entry, config["base_urls"], "irsa")
        assert url.startswith("https://irsa.ipac.caltech.edu/data/Planck/release_") and url.endswith("/" + name)
        assert file_url(name, entry, config["base_urls"], "pla").endswith("=" + name)
        assert file_url(name, entry, {"mine": "http://host/planck/"}, "mine") == "http://host/planck/" + name
    assert manifest["COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits"]["md5"] == "b607003f2b30af87f43f4f76ca044055"


# --------------------------------------------------------------------------- only what was asked for


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream", "text/plain", "application/fits"])
def test_a_web_page_is_refused_whatever_its_content_type(archive, tmp_path, content_type):
    """12 of the 15 preset files have no size or checksum: the page must not become the map."""
    archive.files["/a.fits"] = ERROR_PAGE
    archive.content_types["/a.fits"] = content_type
    dest = tmp_path / "a.fits"
    with pytest.raises(ContentError, match=r"a\.fits.*web page") as err:
        fetch(archive.url + "a.fits", dest, **FAST)
    assert repr(ERROR_PAGE[:100])[:-1] in str(err.value)  # the answer's first bytes, quoted
    assert archive.url + "a.fits" in str(err.value) and "Nothing was written" in str(err.value)
    assert list(tmp_path.iterdir()) == [] and len(archive.requests) == 1  # refused at once, not retried
    # A text file too, and the rerun does not find anything "already in place".
    archive.files["/t.txt"] = ERROR_PAGE
    archive.content_types["/t.txt"] = content_type
    with pytest.raises(ContentError, match="web page"):
        fetch(archive.url + "t.txt", tmp_path / "t.txt", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_web_page_answering_a_resume_leaves_the_part_as_it_was(archive, tmp_path):
    data = payload()
    part = tmp_path / "a.fits.part"
    part.write_bytes(data[:10_000])
    archive.files["/a.fits"] = ERROR_PAGE  # e.g. a maintenance page, sent as 200 to the Range request
    archive.ignore_range = True
    with pytest.raises(ContentError, match=r"web page.*already in a\.fits\.part kept"):
        fetch(archive.url + "a.fits", tmp_path / "a.fits", **FAST)
    assert part.read_bytes() == data[:10_000] and not (tmp_path / "a.fits").exists()


def test_an_empty_answer_is_refused(archive, tmp_path):
    for name in ("a.fits", "b.txt", "c.bin"):
        archive.files["/" + name] = b""
        with pytest.raises(ContentError, match=rf"{re.escape(name)}.*empty"):
            fetch(archive.url + name, tmp_path / name, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_fits_name_that_gets_something_else_is_refused_at_its_first_bytes(archive, tmp_path):
    junk = hashlib.shake_256(b"junk").digest(300_000)
    archive.files["/a.fits"] = junk
    with pytest.raises(ContentError, match=r"a\.fits.*not a FITS file.*First bytes") as err:
        fetch(archive.url + "a.fits", tmp_path / "a.fits", **FAST)
    assert repr(junk[:20])[:-1] in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_fits_columns_and_nside_are_checked_before_the_final_name(archive, tmp_path, caplog):
    data = payload(50_000)  # I/Q/U only, NSIDE 2048
    archive.files["/a.fits"] = data
    dest = tmp_path / "a.fits"
    with pytest.raises(ContentError, match=r"lacks column\(s\) \['II_COV', 'QQ_COV', 'UU_COV', 'QU_COV'\]"):
        fetch(archive.url + "a.fits", dest, content={"hdu": 1, "columns": HFI_COLUMNS, "nside": 2048}, **FAST)
    assert list(tmp_path.iterdir()) == []  # the complete but wrong .part is not kept
    with pytest.raises(ContentError, match="NSIDE 2048, expected 1024"):
        fetch(archive.url + "a.fits", dest, content={"nside": 1024}, **FAST)
    with pytest.raises(ContentError, match="no HDU 2"):
        fetch(archive.url + "a.fits", dest, content={"hdu": 2, "columns": ["I_STOKES"]}, **FAST)
    assert list(tmp_path.iterdir()) == []
    fetch(archive.url + "a.fits", dest, content={"hdu": 1, "columns": ["i_stokes", "Q_STOKES", "U_STOKES"], "nside": 2048}, **FAST)
    assert dest.read_bytes() == data
    # With a pinned checksum that matches, the file is the archive's: a content mismatch only warns.
    dest.unlink()
    with caplog.at_level(logging.WARNING):
        fetch(archive.url + "a.fits", dest, md5=md5(data), content={"columns": ["TMASK"]}, **FAST)
    assert dest.read_bytes() == data and "correct that entry" in caplog.text


def test_a_text_file_must_be_rows_of_numbers(archive, tmp_path):
    archive.files["/theory.txt"] = numbers(300)
    fetch(archive.url + "theory.txt", tmp_path / "theory.txt", content={"format": "text", "n_columns": 6}, **FAST)
    archive.files["/words.txt"] = b"# L TT\n2 1.0\nproduct not found\n"
    with pytest.raises(ContentError, match=r"words\.txt.*line 3 is not numbers"):
        fetch(archive.url + "words.txt", tmp_path / "words.txt", **FAST)
    with pytest.raises(ContentError, match="6 numbers a row, expected 5"):
        fetch(archive.url + "theory.txt", tmp_path / "five.txt", content={"n_columns": 5}, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theory.txt"]


def test_check_content_tells_a_cut_fits_file(tmp_path):
    data = payload(100_000)
    path = tmp_path / "a.fits"
    for cut in (100, 2880 + 40, len(data) // 2, len(data) - 2880 - 5):
        path.write_bytes(data[:cut])
        problems, missing = check_content(path)
        assert missing > 0 and "cut short" in problems[0], cut
    path.write_bytes(data)
    assert check_content(path) == ([], 0)
    path.write_bytes(data + b"\0" * 100)  # trailing bytes after the last HDU are not an HDU
    assert check_content(path) == ([], 0)


# --------------------------------------------------------------------------- incomplete is never final


def test_a_body_without_length_closed_early_is_resumed_not_accepted(archive, tmp_path, caplog):
    data = payload(300_000)
    archive.files["/a.fits"] = data
    archive.no_length.add("/a.fits")  # no Content-Length: the early close looks like the end
    archive.drop_after["/a.fits"] = 1
    dest = tmp_path / "a.fits"
    with caplog.at_level(logging.INFO):
        fetch(archive.url + "a.fits", dest, **FAST)  # no size, no checksum: the FITS headers tell
    assert dest.read_bytes() == data
    ranges = [r for _, r in archive.requests]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1] == f"bytes={len(data) // 2}-"
    assert "FITS headers declare" in caplog.text and f"resuming at byte {len(data) // 2}" in caplog.text
    # Cut every time: never final, the genuine partial kept for the next run.
    archive.requests.clear()
    archive.drop_after["/b.fits"] = 100
    archive.files["/b.fits"] = data
    archive.no_length.add("/b.fits")
    with pytest.raises(DownloadError, match=r"b\.fits.*failed after 3 attempts"):
        fetch(archive.url + "b.fits", tmp_path / "b.fits", **{**FAST, "retries": 2})
    assert not (tmp_path / "b.fits").exists() and (tmp_path / "b.fits.part").read_bytes() == data[: len(data) - len(data) // 8]


def test_a_body_without_length_shorter_than_the_pinned_size_is_resumed(archive, tmp_path):
    data = numbers(3000)
    archive.files["/theory.txt"] = data
    archive.no_length.add("/theory.txt")
    archive.drop_after["/theory.txt"] = 1
    dest = tmp_path / "theory.txt"
    fetch(archive.url + "theory.txt", dest, size=len(data), **FAST)
    assert dest.read_bytes() == data and len(archive.requests) == 2


# --------------------------------------------------------------------------- fast, clear failures


def test_an_unresolvable_host_fails_at_once_with_the_manual_copy_advice(tmp_path, no_proxies):
    url = "http://planck-archive.invalid/release_3/a.fits"  # RFC 2606: .invalid never resolves
    dest = tmp_path / "planck" / "a.fits"
    t0 = time.monotonic()
    with pytest.raises(OfflineError) as err:
        fetch(url, dest, md5="0" * 32, **PATIENT)  # a backoff loop at these settings would take a minute
    elapsed = time.monotonic() - t0
    assert elapsed < 30, f"took {elapsed:.1f} s"
    text = str(err.value)
    assert "a.fits" in text and url in text and str(dest.resolve()) in text and "by hand" in text
    assert "does not resolve" in text and "not retried" in text
    assert not dest.exists() and not (tmp_path / "planck" / "a.fits.part").exists()


def test_a_refused_connection_fails_at_once(tmp_path, no_proxies):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/release_3/a.fits"
    t0 = time.monotonic()
    with pytest.raises(OfflineError, match=r"a\.fits.*refused the connection.*not retried.*by hand"):
        fetch(url, tmp_path / "a.fits", **PATIENT)
    assert time.monotonic() - t0 < 30


def test_a_404_fails_at_once(archive, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"missing\.fits.*HTTP 404.*not retried.*by hand"):
        fetch(archive.url + "missing.fits", tmp_path / "missing.fits", **PATIENT)
    assert time.monotonic() - t0 < 30 and len(archive.requests) == 1


def test_timeouts_are_still_retried(archive, tmp_path):
    data = payload(20_000)
    archive.files["/a.fits"] = data
    archive.delay["/a.fits"] = [1.0, 1.0]  # the first two answers come after the read timeout
    fetch(archive.url + "a.fits", tmp_path / "a.fits", **{**FAST, "timeout": (2.0, 0.3)})
    assert (tmp_path / "a.fits").read_bytes() == data and len(archive.requests) == 3


def test_a_server_that_ignores_range_is_fetched_at_most_twice(archive, tmp_path, caplog):
    data = payload(200_000)
    archive.files["/a.fits"] = data
    archive.ignore_range = True
    archive.drop_after["/a.fits"] = 100  # every copy is cut
    dest = tmp_path / "a.fits"
    with caplog.at_level(logging.WARNING), pytest.raises(DownloadError, match=r"a\.fits.*ignores HTTP Range.*stopped after 2 full"):
        fetch(archive.url + "a.fits", dest, md5=md5(data), **{**FAST, "retries": 5})
    ranges = [r for _, r in archive.requests]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")  # detected at the first resume
    assert "ignored the Range request (HTTP 200 instead of 206)" in caplog.text
    assert not dest.exists() and (tmp_path / "a.fits.part").exists()
    # Cut once: the second full copy completes.
    (tmp_path / "a.fits.part").unlink()
    archive.requests.clear()
    archive.drop_after["/a.fits"] = 1
    fetch(archive.url + "a.fits", dest, md5=md5(data), **FAST)
    assert dest.read_bytes() == data and len(archive.requests) == 2


def test_an_error_page_left_under_the_final_name_is_not_used(archive, tmp_path):
    """An older version renamed such pages to the final name; a rerun must not say 'used as it is'."""
    dest = tmp_path / "a.fits"
    dest.write_bytes(ERROR_PAGE)
    with pytest.raises(ContentError, match=r"already there but is not the expected file.*FITS signature.*left as it is.*Move it aside"):
        fetch(archive.url + "a.fits", dest, **FAST)
    assert archive.requests == [] and dest.read_bytes() == ERROR_PAGE


def test_the_manifest_pins_the_public_checksums_and_says_what_each_file_holds(tmp_path):
    manifest = load_manifest(ROOT / "workflow" / "planck_manifest.yaml")
    pinned = {
        "HFI_SkyMap_100_2048_R3.01_full.fits": "2bb9d1c09f2e75ad1af014b60486e00e",
        "HFI_SkyMap_143_2048_R3.01_full.fits": "4151e22bea78a318ea19a8040625f502",
        "HFI_SkyMap_217_2048_R3.01_full.fits": "03101e030eb246e307c8e5e81c3cffd1",
        "COM_CMB_IQU-smica_2048_R3.00_full.fits": "ee2fc49a2eb70c2eca0d582e4aae5d05",
        "COM_CompMap_IQU-thermaldust-gnilc-unires_2048_R3.00.fits": "bf0a5adb8a1828614850c217751818da",
        "COM_CompMap_Dust-GNILC-F545_2048_R2.00.fits": "96de58c0df7a82feebdcf61d4bc5dd24",
    }
    for name, value in pinned.items():
        assert manifest[name]["md5"] == value and manifest[name]["checksum_source"] == "third-party"
    assert manifest["COM_CMB_IQU-smica_2048_R3.00_full.fits"]["size"] == 2_013_312_960
    for name, entry in manifest.items():
        content = entry["content"]
        if name.endswith(".fits"):
            assert content["hdu"] == 1 and content["nside"] == 2048, name
        else:
            assert content == {"format": "text", "n_columns": 6}
    for nu in (100, 143, 217):
        assert set(HFI_COLUMNS) <= set(manifest[f"HFI_SkyMap_{nu}_2048_R3.01_full.fits"]["content"]["columns"])
    bad = tmp_path / "m.yaml"
    bad.write_text(yaml.safe_dump({"files": {"a.fits": {"paths": {}, "size": None, "md5": None, "sha256": None, "used_for": "", "content": {"colums": ["I"]}}}}))
    with pytest.raises(ValueError, match=r"a\.fits.*unknown content key.*colums"):
        load_manifest(bad)


def run_snakemake(work, configs, *targets, flags=()):
    env = dict(os.environ, PYTHONWARNINGS="ignore", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1",
         *flags, "--configfile", str(ROOT / "config" / "config.yaml"), *map(str, configs), "--", *targets],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_only_a_target_that_asks_for_a_planck_file_plans_a_download(tmp_path):
    default = run_snakemake(tmp_path, [], flags=["-n"])
    assert default.returncode == 0, default.stderr[-3000:]
    assert "download_planck" not in default.stdout + default.stderr
    one = run_snakemake(tmp_path, [], "resources/planck/HFI_SkyMap_143_2048_R3.01_full.fits", flags=["-n"])
    assert one.returncode == 0, one.stderr[-3000:]
    assert re.search(r"^download_planck\s+1$", one.stdout + one.stderr, re.M)
    assert re.search(r"^total\s+1$", one.stdout + one.stderr, re.M)
    assert not (tmp_path / "resources").exists()


def test_snakemake_offline_fails_with_the_manual_copy_advice(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "planck.yaml"
    base = f"http://127.0.0.1:{port}/"
    # The config's own retries and backoff (5, 2 s): a refused connection is not retried, so even
    # with the rule's Snakemake retries this fails in seconds (it took minutes with a backoff loop).
    config.write_text(yaml.safe_dump({"planck": {"base_urls": {"irsa": base}}}))
    name = "COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits"
    work = tmp_path / "work"
    t0 = time.monotonic()
    proc = run_snakemake(work, [config], f"resources/planck/{name}")
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert elapsed < 30, f"snakemake took {elapsed:.0f} s to fail"  # Snakemake's start-up included
    url = base + "release_3/ancillary-data/masks/" + name
    dest = str((work / "resources" / "planck" / name).resolve())
    for text in (proc.stderr, (work / "results" / "logs" / "planck" / f"download_{name}.log").read_text()):
        assert "OfflineError" in text and url in text and dest in text and "b607003f2b30af87f43f4f76ca044055" in text
        assert "python -m cmbnn.planck.download verify" in text
    assert not (work / "resources" / "planck" / name).exists()


def test_snakemake_leaves_nothing_when_a_mirror_serves_a_web_page_as_a_fits_file(archive, tmp_path):
    """A local mirror answers 200 with its error page under the map's name (a manifest entry
    with no size or checksum): the job fails naming the file, and resources/planck stays empty,
    so a rerun does not find the page 'already in place'."""
    name = "COM_CompMap_QU-synchrotron-commander_2048_R3.00_full.fits"
    entry = load_manifest(ROOT / "workflow" / "planck_manifest.yaml")[name]
    assert entry["md5"] is None and entry["size"] is None
    archive.files["/" + name] = ERROR_PAGE
    archive.content_types["/" + name] = "application/octet-stream"
    config = tmp_path / "planck.yaml"
    config.write_text(yaml.safe_dump({"planck": {"mirror": "local", "base_urls": {"local": archive.url}}}))
    work = tmp_path / "work"
    for _ in range(2):
        proc = run_snakemake(work, [config], f"resources/planck/{name}")
        assert proc.returncode != 0
        assert "ContentError" in proc.stderr and name in proc.stderr and "web page" in proc.stderr, proc.stderr[-3000:]
        planck_dir = work / "resources" / "planck"
        assert not planck_dir.exists() or list(planck_dir.iterdir()) == []
    assert len(archive.requests) == 2  # asked again on the rerun, never taken as in place


def test_snakemake_downloads_a_manifest_file_from_the_configured_mirror(archive, tmp_path):
    """The rule, end to end: config base URL -> local server, IRSA layout, manifest checksum."""
    name = "HFI_SkyMap_143_2048_R3.01_full.fits"
    data = payload(200_000, seed=7, columns=HFI_COLUMNS)
    entry = load_manifest(ROOT / "workflow" / "planck_manifest.yaml")[name]
    archive.files["/" + entry["paths"]["irsa"]] = data
    archive.drop_after["/" + entry["paths"]["irsa"]] = 1
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"files": {name: {**entry, "size": len(data), "md5": md5(data)}}}))
    config = tmp_path / "planck.yaml"
    config.write_text(
        yaml.safe_dump(
            {"planck": {"manifest": str(manifest), "mirror": "irsa", "base_urls": {"irsa": archive.url}, "backoff_s": 0.001}}
        )
    )
    work = tmp_path / "work"
    proc = run_snakemake(work, [config], f"resources/planck/{name}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = work / "resources" / "planck" / name
    assert md5(out.read_bytes()) == md5(data)
    log = (work / "results" / "logs" / "planck" / f"download_{name}.log").read_text()
    ranges = [r for _, r in archive.requests]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
    assert f"resuming at byte {int(ranges[1][6:-1])}" in log and "verified" in log
    assert (work / "results" / "benchmarks" / "planck" / f"download_{name}.tsv").exists()
