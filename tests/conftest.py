import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def tiny_snakemake():
    """Run snakemake in `work` on the default + tiny configs (plus overlay files `configs`); returns the process."""

    def run(work, *args, configs=()):
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1",
             "--configfile", str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "tiny.yaml"), *map(str, configs), *args],
            # A guard against a hung run, not a speed test: the planck DAG took over 300 s on a busy machine.
            capture_output=True, text=True, env=env, timeout=900,
        )

    return run


@pytest.fixture(scope="session")
def camb_cls():
    """Planck 2018 lensed spectra to ell = 3000 (r = 0), computed once per session."""
    from cmbnn.sky.theory import camb_spectra

    return camb_spectra(3000, r=0.0)


def binned_z_scores(measured, expected, ell_min, ell_max, width, n_modes_per_ell=None):
    """(measured - expected) / cosmic-variance sigma in bins of `width` multipoles."""
    z = []
    for lo in range(ell_min, ell_max - width + 1, width):
        ell = np.arange(lo, lo + width)
        modes = np.sum(2 * ell + 1) if n_modes_per_ell is None else np.sum(n_modes_per_ell[ell])
        c_hat, c = measured[ell].mean(), expected[ell].mean()
        z.append((c_hat - c) / (c * np.sqrt(2.0 / modes)))
    return np.array(z)
