"""The workflow used as a Snakemake module, the way catalog workflows are deployed.

A user's own directory holds a Snakefile with a `module` directive pointing at this
repository's Snakefile, their config/ and, after a run, their results/. Every schema,
script, env, report caption and manifest must then be found from the workflow's own files,
never from the working directory."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

USER_SNAKEFILE = """\
configfile: "config/config.yaml"


module cmbnn:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from cmbnn
"""


def snakemake(deployment, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args,
         "--configfile", "config/config.yaml", "config/tiny.yaml"],
        cwd=deployment, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )


def files_under(path):
    return {p.relative_to(path) for p in path.rglob("*")} if path.exists() else set()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A user directory as `snakedeploy deploy-workflow` lays it out: their Snakefile and a copy of config/."""
    user = tmp_path_factory.mktemp("deployed")
    (user / "Snakefile").write_text(USER_SNAKEFILE.format(snakefile=ROOT / "Snakefile"))
    shutil.copytree(ROOT / "config", user / "config")
    return user


def test_module_plans_the_whole_dag_from_another_directory(deployment):
    proc = snakemake(deployment, "-n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "train_cenn" in proc.stdout and "dust_statistics" in proc.stdout
    # The Planck manifest is the workflow's own (a config-relative path the user does not have).
    planck = snakemake(deployment, "-n", "resources/planck/HFI_SkyMap_143_2048_R3.01_full.fits")
    assert planck.returncode == 0, planck.stderr[-3000:]
    assert "download_planck" in planck.stdout


def test_module_runs_rules_with_outputs_under_the_users_directory_only(deployment):
    repository_before = files_under(ROOT / "results") | files_under(ROOT / ".snakemake")
    targets = ["results/figures/cls_dl.png", "results/patches/Q/test.h5"]
    proc = snakemake(deployment, *targets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for target in targets:
        assert (deployment / target).stat().st_size > 1000
    assert (deployment / "results" / "logs" / "patches" / "cut_test.log").exists()
    assert files_under(ROOT / "results") | files_under(ROOT / ".snakemake") == repository_before
