"""Every preset in config/ validates and plans a DAG, as its header comment says to run it.

A dry run on a fresh directory: the schema, the cross-key checks (cmbnn.config) and every rule's
input functions run; nothing is computed. Overlays are stacked as their headers say (tiny and
the paper presets on top of config/config.yaml, cenn_paper_memory on top of cenn_paper)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, planned_jobs

CONFIG = ROOT / "config"
# preset -> (config files on top of config.yaml, rules the plan must hold)
PRESETS = {
    "default": ((), {"camb_spectra", "cmb_map", "train_cenn", "train_cosmovae", "train_dustvae", "spectra"}),
    "tiny": (("tiny.yaml",), {"camb_spectra", "cut_patches", "train_cenn", "spectra"}),
    "cenn_paper": (("cenn_paper.yaml",), {"cmb_map", "train_cenn"}),
    "cenn_paper_memory": (("cenn_paper.yaml", "cenn_paper_memory.yaml"), {"cmb_map", "train_cenn"}),
    "cosmovae_paper": (("cosmovae_paper.yaml",), {"train_cosmovae"}),
    "dustvae_paper": (("dustvae_paper.yaml",), {"train_dustvae"}),
    "full_training": (("full_training.yaml",), {"train_cenn", "train_cosmovae"}),
    "dust_wph200": (("dust_wph200.yaml",), {"dust_wph_synthesis", "dust_statistics"}),
    "planck": (("planck.yaml",), {"download_planck", "train_cenn"}),
    "planck+dustvae_paper": (("planck.yaml", "dustvae_paper.yaml"), {"download_planck", "train_dustvae"}),
}


def test_every_preset_file_is_listed():
    listed = {name for files, _ in PRESETS.values() for name in files} | {"config.yaml"}
    assert listed == {p.name for p in CONFIG.glob("*.yaml")}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_plans_a_dag(tmp_path, preset):
    overlays, must_plan = PRESETS[preset]
    configs = [str(CONFIG / "config.yaml"), *(str(CONFIG / name) for name in overlays)]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "4", "--configfile", *configs],
        capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"), timeout=300,
    )
    assert proc.returncode == 0, f"{preset}: dry run failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    jobs = planned_jobs(proc.stdout)
    assert must_plan <= set(jobs), f"{preset}: plan lacks {sorted(must_plan - set(jobs))}; planned {sorted(jobs)}"
    assert not list(tmp_path.glob("results/**/*.*")), "a dry run wrote results"
