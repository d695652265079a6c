"""Verified, resumable downloads against a local HTTP server on 127.0.0.1 (no other host)."""

import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import yaml
from archive_server import Archive
from conftest import ROOT

from cmbnn.planck.download import ChecksumError, DownloadError, OfflineError, fetch, file_url, load_manifest

FAST = dict(retries=3, backoff=0.001, backoff_max=0.01, timeout=(2.0, 5.0))


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


def payload(n=300_000, seed=1):
    return hashlib.shake_256(str(seed).encode()).digest(n)


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

    data = payload(50_000)
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
    assert 150_000 < starts[0] <= 200_000 < starts[1] <= 300_000
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
    data = payload(1000)
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
    config.write_text(yaml.safe_dump({"planck": {"base_urls": {"irsa": base}, "retries": 0, "backoff_s": 0.001}}))
    name = "COM_Mask_CMB-common-Mask-Int_2048_R3.00.fits"
    work = tmp_path / "work"
    proc = run_snakemake(work, [config], f"resources/planck/{name}")
    assert proc.returncode != 0
    url = base + "release_3/ancillary-data/masks/" + name
    dest = str((work / "resources" / "planck" / name).resolve())
    for text in (proc.stderr, (work / "results" / "logs" / "planck" / f"download_{name}.log").read_text()):
        assert "OfflineError" in text and url in text and dest in text and "b607003f2b30af87f43f4f76ca044055" in text
        assert "python -m cmbnn.planck.download verify" in text
    assert not (work / "resources" / "planck" / name).exists()


def test_snakemake_downloads_a_manifest_file_from_the_configured_mirror(archive, tmp_path):
    """The rule, end to end: config base URL -> local server, IRSA layout, manifest checksum."""
    name = "HFI_SkyMap_143_2048_R3.01_full.fits"
    data = payload(200_000, seed=7)
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
