import os

import numpy as np
import pytest

from cmbnn.io import atomic_output, read_h5, read_patches_h5, write_h5, write_patches_h5


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "file.h5"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_patch_file_layout_and_required_datasets(tmp_path):
    data = {
        "M": np.zeros((2, 4, 4, 3), np.float32),
        "M0": np.zeros((2, 4, 4, 1), np.float32),
        "centers": np.zeros((2, 2)),
    }
    write_patches_h5(tmp_path / "p.h5", data, {"field": "Q"})
    back, attrs = read_patches_h5(tmp_path / "p.h5")
    assert back["M"].shape == (2, 4, 4, 3) and attrs["field"] == "Q"
    with pytest.raises(ValueError, match="centers"):
        write_patches_h5(tmp_path / "bad.h5", {"M": data["M"], "M0": data["M0"]}, {})
    assert not (tmp_path / "bad.h5").exists()


def test_files_written_seconds_apart_are_byte_identical(tmp_path):
    import time

    from cmbnn.io import write_h5

    data = {"M": np.arange(12, dtype=np.float32).reshape(3, 4), "centers": np.zeros((3, 2))}
    write_h5(tmp_path / "a.h5", data, {"seed": 1, "field": "Q"})
    time.sleep(1.1)
    write_h5(tmp_path / "b.h5", data, {"seed": 1, "field": "Q"})
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "sky.h5"
    # A writer killed mid-write (SIGKILL: no finally block runs) leaves its temporary behind.
    code = "import os, signal\nfrom cmbnn.io import atomic_output\nwith atomic_output(%r) as tmp:\n    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n" % str(target)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    (orphan,) = tmp_path.glob(".sky.tmp*.h5")
    alive = tmp_path / f".sky.tmp{os.getppid()}.h5"  # a live process's temporary is not touched
    alive.write_bytes(b"busy")
    write_h5(target, {"x": np.arange(3)}, {})
    assert not orphan.exists() and alive.exists() and read_h5(target)[0]["x"].tolist() == [0, 1, 2]


def test_a_full_disk_keeps_the_previous_file_and_names_the_path(tmp_path):
    """A write over the file size limit (RLIMIT_FSIZE, as a full disk: the write call fails) raises
    OSError naming the output; the previous file is byte for byte as it was; no temporary is left."""
    import resource
    import signal

    target = tmp_path / "patches.h5"
    write_h5(target, {"M": np.zeros(10, np.float32)}, {"run": 1})
    before = target.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
    try:
        with pytest.raises(OSError, match=r"patches\.h5: the write failed, so the file was not replaced"):
            write_h5(target, {"M": np.ones(1_000_000, np.float32)}, {"run": 2})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["patches.h5"]


def test_patch_files_are_checked_for_layout_shape_and_finite_values(tmp_path):
    from cmbnn.io import PatchFileError, read_healpix_map

    good = {"M": np.zeros((3, 4, 4, 2), np.float32), "M0": np.zeros((3, 4, 4, 1), np.float32), "centers": np.zeros((3, 2))}
    write_patches_h5(tmp_path / "p.h5", good, {})
    assert read_patches_h5(tmp_path / "p.h5", shape=(4, 4, None))[0]["M"].shape == (3, 4, 4, 2)
    cases = {
        "centers": ({**good, "centers": np.zeros((2, 2))}, r"dataset centers has shape \(2, 2\), expected \(3, 2\)"),
        "nan": ({**good, "M0": np.full((3, 4, 4, 1), np.inf, np.float32)}, r"dataset M0 has 48 NaN/inf values in patches 0\.\.2 \(first in patch 0\)"),
    }
    for name, (data, message) in cases.items():
        write_h5(tmp_path / f"{name}.h5", data, {})
        with pytest.raises(PatchFileError, match=message):
            read_patches_h5(tmp_path / f"{name}.h5")
    with pytest.raises(PatchFileError, match=r"holds 4 x 4 patches of 2 channels; this model takes \(8, 8, 2\)"):
        read_patches_h5(tmp_path / "p.h5", shape=(8, 8, 2))
    (tmp_path / "page.h5").write_text("<html>not found</html>")
    with pytest.raises(OSError, match=r"page\.h5: cannot be read as HDF5"):
        read_h5(tmp_path / "page.h5")
    with pytest.raises(ValueError, match=r"page\.h5: not a HEALPix FITS map"):
        read_healpix_map(tmp_path / "page.h5")
