"""The style checks contributors share, configured in pyproject.toml: ruff on the Python, snakefmt on the rules."""

import subprocess
import sys

from conftest import ROOT


def run_tool(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    proc = run_tool("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_snakefmt_leaves_the_snakefile_and_rules_as_they_are():
    proc = run_tool("snakefmt", "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
