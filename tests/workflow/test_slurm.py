"""The SLURM profiles: their consistency, and the tiny DAG through a real single-node SLURM (sbatch).

The cluster comes from tests/slurm_cluster.py (Debian's slurmctld/slurmd/munge, started and stopped
by this module); the test is skipped, with the reason in `pytest -ra`, only where they are not installed.
"""

import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT
from rule_text import rule_blocks
from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)

PROFILES = ROOT / "profiles"
CONFIGS = [str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "tiny.yaml")]
# One cut_patches job per split writes every field's patches and the split's source table.
PATCH_TARGETS = [f"results/patches/sources_{s}.tsv" for s in ("train", "validation", "test")]
# Training and one prediction: the GPU jobs, on the patches above.
GPU_TARGETS = ["results/models/cenn/QU/model.keras", "results/predictions/cenn/Q/test.h5"]
# No accounting on the test cluster: job states from squeue (profiles/slurm-noacct), first check soon.
NO_ACCOUNTING = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]


def profile(name):
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def start_snakemake(workdir, *args, env=None):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", *CONFIGS, *args]
    env = dict(env or os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(proc, timeout=240):
    """Wait for a snakemake started by start_snakemake; on a timeout stop it with SIGINT
    (the SLURM plugin then cancels its jobs). Returns its output; raises if it failed."""
    args = " ".join(proc.args[proc.args.index("-d") + 2:])
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        raise AssertionError(f"snakemake {args} ran past {timeout} s:\n{out[-6000:]}") from None
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed ({proc.returncode}):\n{out[-8000:]}")
    return out


def snakemake(workdir, *args, env=None, timeout=240):
    return finish(start_snakemake(workdir, *args, env=env), timeout)


def submitted_jobs(output):
    """SLURM job id -> (rule, resources Snakemake printed for it), from a run's output.

    Snakemake prints each job as a `rule NAME:` block (with `jobid: N` and `resources: k=v, ...`);
    the SLURM plugin then logs `Job N has been submitted with SLURM jobid J (log: ...)`.
    """
    blocks = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", output, re.M):
        jobid = re.search(r"^    jobid: (\d+)$", m.group(2), re.M)
        res = re.search(r"^    resources: (.*)$", m.group(2), re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        threads = re.search(r"^    threads: (\d+)$", m.group(2), re.M)
        resources["threads"] = threads.group(1) if threads else "1"
        blocks[int(jobid.group(1))] = (m.group(1), resources)
    return {int(slurm): blocks[int(job)] for job, slurm in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)}


def by_rule(jobs):
    rules = {}
    for slurm_id, (rule, _) in jobs.items():
        rules.setdefault(rule, []).append(slurm_id)
    return rules


def assert_sbatch_got_the_rule_resources(jobs, records):
    """Each job finished, with the rule's mem_mb, runtime and threads as SLURM's --mem, --time, --cpus-per-task."""
    for slurm_id, (rule, resources) in jobs.items():
        record = records[slurm_id]
        assert record["JobState"] == "COMPLETED", (rule, record)
        assert record["MinMemoryNode"] == f"{resources['mem_mb']}M", (rule, resources, record)
        minutes = int(resources["runtime"])
        assert record["TimeLimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00", (rule, resources, record)
        assert record["CPUs/Task"] == resources["threads"], (rule, resources, record)
        assert ("gpu" in record.get("TresPerJob", "")) == (resources.get("gpu", "0") != "0"), (rule, resources, record)


def assert_same_hdf5(a, b):
    """Byte-identical, or (HDF5 stores no timestamps by default, but be robust) equal datasets and attributes."""
    if a.read_bytes() == b.read_bytes():
        return
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert names_a == names_b, f"{a.name}: objects differ"
        for name in ["/", *names_a]:
            assert dict(fa[name].attrs).keys() == dict(fb[name].attrs).keys(), f"{a}:{name} attributes differ"
            for k in fa[name].attrs:
                assert np.array_equal(fa[name].attrs[k], fb[name].attrs[k]), f"{a}:{name} attribute {k} differs"
            if isinstance(fa[name], h5py.Dataset):
                assert np.array_equal(fa[name][()], fb[name][()]), f"{a}:{name} data differ"


# --- The profiles (no cluster needed) ---


def test_noacct_profile_is_the_slurm_profile_with_squeue_status():
    slurm, noacct = profile("slurm"), profile("slurm-noacct")
    assert noacct.pop("slurm-status-command") == "squeue"
    assert noacct == slurm, "profiles/slurm-noacct must equal profiles/slurm apart from slurm-status-command"


def test_gpu_profile_differs_from_the_slurm_profile_only_in_set_resources():
    slurm, gpu = profile("slurm"), profile("slurm-gpu")
    assert {k: v for k, v in gpu.items() if k != "set-resources"} == {k: v for k, v in slurm.items() if k != "set-resources"}


def test_every_gpu_rule_gets_a_gpu_only_in_the_gpu_profile():
    """A rule asking for `gpu` must be listed in both profiles: gpu 0 on CPU nodes, 1 on GPU nodes."""
    gpu_rules = {name for name, block in rule_blocks().items() if re.search(r"^\s+gpu\s*=", block.get("resources", ""), re.M)}
    assert "train_cenn" in gpu_rules
    cpu_set, gpu_set = profile("slurm")["set-resources"], profile("slurm-gpu")["set-resources"]
    for rule in gpu_rules | {"train_cenn", "predict_cenn"}:
        assert gpu_set.get(rule, {}).get("gpu") == 1, f"profiles/slurm-gpu: set-resources {rule}: gpu: 1 missing"
    for rule in gpu_rules:
        assert cpu_set.get(rule, {}).get("gpu") == 0, f"profiles/slurm: set-resources {rule}: gpu: 0 missing (CPU nodes reject --gpus)"


def test_slurm_profiles_plan_the_tiny_dag_with_resources(tmp_path):
    for name in ("slurm", "slurm-gpu", "slurm-noacct"):
        out = snakemake(tmp_path, "-n", "--workflow-profile", str(PROFILES / name), *GPU_TARGETS, timeout=120)
        gpus = re.search(r"rule train_cenn:.*?resources: ([^\n]*)", out, re.S).group(1)
        assert ("gpu=1" in gpus) == (name == "slurm-gpu"), f"{name}: train_cenn resources {gpus}"
        assert re.search(r"rule cut_patches:.*?resources: [^\n]*mem_mb=\d+", out, re.S), out[-3000:]


# --- A real SLURM ---


@pytest.mark.slow
def test_tiny_dag_through_slurm_matches_a_local_run(slurm_cluster, tmp_path):  # noqa: F811
    start = time.monotonic()
    cluster = slurm_cluster
    local_patches, work = tmp_path / "local", tmp_path / "slurm"
    # The local reference (default profile) runs on one core while the SLURM run mostly waits on status checks.
    local = start_snakemake(local_patches, "--cores", "1", *PATCH_TARGETS)
    try:
        out = snakemake(work, "--workflow-profile", str(PROFILES / "slurm"), *NO_ACCOUNTING, *PATCH_TARGETS, env=cluster.env)
    except BaseException:
        local.kill()
        local.communicate()
        raise
    finish(local)
    cpu_done = time.monotonic()
    jobs = submitted_jobs(out)
    rules = by_rule(jobs)
    assert len(rules.get("cut_patches", [])) == 3, f"expected 3 cut_patches jobs through sbatch:\n{out[-4000:]}"
    assert set(jobs) <= set(cluster.submitted_job_ids()), "a job id Snakemake reported is not in slurmctld's log"
    assert_sbatch_got_the_rule_resources(jobs, cluster.job_records())

    patch_files = sorted(p.relative_to(local_patches) for p in (local_patches / "results" / "patches").rglob("*.h5"))
    assert len(patch_files) >= 6
    for rel in patch_files:
        assert_same_hdf5(local_patches / rel, work / rel)
    for rel in PATCH_TARGETS:
        assert (local_patches / rel).read_bytes() == (work / rel).read_bytes(), rel

    # GPU profile: training and a prediction, each given the (fake) GPU by SLURM.
    out = snakemake(work, "--workflow-profile", str(PROFILES / "slurm-gpu"), *NO_ACCOUNTING, *GPU_TARGETS, env=cluster.env)
    jobs = submitted_jobs(out)
    assert sorted(by_rule(jobs)) == ["predict_cenn", "train_cenn"], f"expected only the GPU jobs (patches were done):\n{out[-4000:]}"
    assert set(jobs) <= set(cluster.submitted_job_ids()), "a job id Snakemake reported is not in slurmctld's log"
    records = cluster.job_records()
    assert_sbatch_got_the_rule_resources(jobs, records)
    assert all(records[j].get("TresPerJob") == "gres:gpu:1" for j in jobs), "the GPU jobs did not get the GPU"
    for target in GPU_TARGETS:
        assert (work / target).stat().st_size > 0
    print(f"SLURM test: patches (and the local reference) {cpu_done - start:.0f} s, training + prediction {time.monotonic() - cpu_done:.0f} s")
