import numpy as np
import pytest

from cmbnn.io import atomic_output, read_patches_h5, write_patches_h5


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
