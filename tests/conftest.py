"""Fixtures and helpers shared by the test packages (tests/<package>/ mirrors src/cmbnn/<package>/).

ROOT, the one tiny-DAG runner and the session's CAMB spectra live here; support modules beside
this file (fake_planck, archive_server, slurm_cluster, rule_text) are imported by name, since
pytest puts this folder on sys.path. No test module imports another."""

import os
import re
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


def run_snakemake(work, *args, configs=(), check=False, timeout=900):
    """snakemake in ``work`` on the default + tiny configs (plus overlay files ``configs``).

    Returns the finished process; with ``check`` a non-zero exit fails the test with the
    output's tail. The timeout is a guard against a hung run, not a speed test: the planck
    DAG took over 300 s on a busy machine."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1",
         "--configfile", str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "tiny.yaml"), *map(str, configs), *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_snakemake():
    """The one tiny-DAG runner (:func:`run_snakemake`) as a fixture."""
    return run_snakemake


def planned_jobs(output: str) -> dict:
    """Rule -> count from the 'Job stats' table of a dry run."""
    jobs = {}
    table = output.split("Job stats:", 1)[-1]
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


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
