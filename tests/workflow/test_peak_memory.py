"""Peak memory of jobs: the high-water mark every script logs, and benchmarks/peak_memory.py."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import peak_memory  # noqa: E402

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(bench, job, rss):
    (bench / job).parent.mkdir(parents=True, exist_ok=True)
    (bench / f"{job}.tsv").write_text(BENCH_HEADER + f"12.5\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t90\t11.0\n")


def test_script_log_ends_with_the_high_water_mark_of_a_short_peak(tmp_path):
    # 400 MiB held for an instant: Snakemake's 30 s sampling would miss it, the kernel's mark does not.
    log = tmp_path / "job.log"
    script = textwrap.dedent(f"""
        import sys, types
        sys.path.insert(0, {str(ROOT / "workflow" / "scripts")!r})
        import numpy as np
        from _helpers import configure
        configure(types.SimpleNamespace(log=[{str(log)!r}]), "job")
        a = np.ones(400 * 2**20 // 8)
        del a
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    last = log.read_text().strip().splitlines()[-1]
    assert "peak memory" in last
    mib = peak_memory.logged_peak_mib(log)
    assert 400 <= mib < 400 + 1000  # the array plus the interpreter and numpy


def test_peak_table_takes_the_larger_of_sampled_and_logged_and_flags_the_limit(tmp_path, capsys):
    bench, logs = tmp_path / "benchmarks", tmp_path / "logs"
    for job, rss, logged in (("sky/r0/observe", 900.0, 2048), ("patches/cut_train", 3000.0, 1500), ("theory/camb", 100.0, None)):
        write_benchmark(bench, job, rss)
        if logged is not None:
            (logs / job).parent.mkdir(parents=True, exist_ok=True)
            (logs / f"{job}.log").write_text(f"2026 x INFO done\n2026 _helpers INFO peak memory {logged} MiB (high-water mark)\n")
    peaks = peak_memory.job_peaks(bench)
    assert list(peaks.job) == ["patches/cut_train", "sky/r0/observe", "theory/camb"]
    assert list(peaks.peak_mib) == [3000.0, 2048.0, 100.0]
    assert peaks.logged_mib.isna().tolist() == [False, False, True]
    assert peak_memory.main([str(bench), "--limit-gib", "4"]) == 0
    out = capsys.readouterr().out
    assert "| `patches/cut_train` | 12 | 2.93 | 1.46 | 11 |" in out and "largest: patches/cut_train at 2.93 GiB; 3 jobs" in out
    assert peak_memory.main([str(bench), "--limit-gib", "2"]) == 1
    assert "over 2 GiB: patches/cut_train" in capsys.readouterr().err


def test_peak_table_names_a_file_that_is_not_a_benchmark(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "b" / "notes.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"notes.tsv: not a Snakemake benchmark file \(no column cpu_time, max_rss, s\)"):
        peak_memory.job_peaks(tmp_path / "b")
    with pytest.raises(ValueError, match="no benchmark files"):
        peak_memory.job_peaks(tmp_path / "logs")


SNAKEMAKE_LOG = """\
[Tue Dec  1 10:37:26 2026]
localrule foreground:
    output: results/sky/r0/foreground_dust.h5
    log: results/logs/sky/r0/foreground_dust.log
    jobid: 6
    benchmark: results/benchmarks/sky/r0/foreground_dust.tsv
    wildcards: realisation=0, component=dust
    threads: 2
    resources: tmpdir=/tmp, runtime=40, mem_mb=11512, mem=11.51 GB, mem_mib=10979
Select jobs to execute...
localrule observe:
    benchmark: results/benchmarks/sky/r0/observe.tsv
    resources: tmpdir=/tmp, runtime=40, mem_mb=2000, mem=2 GB, mem_mib=1908
localrule report:
    resources: tmpdir=/tmp, mem_mb=500, mem_mib=477
"""


def test_requests_come_from_the_snakemake_log_and_a_peak_over_its_request_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the log's paths are relative to the workflow's directory
    bench = Path("results/benchmarks")
    write_benchmark(bench, "sky/r0/foreground_dust", 9073.0)
    write_benchmark(bench, "sky/r0/observe", 1500.0)
    write_benchmark(bench, "theory/camb", 100.0)
    log = tmp_path / "run.snakemake.log"
    log.write_text(SNAKEMAKE_LOG)
    # The rule without a benchmark (report) is not a job of the table; camb was not in this log.
    assert peak_memory.requested_mib(log, bench) == {"sky/r0/foreground_dust": 10979.0, "sky/r0/observe": 1908.0}
    assert peak_memory.main([str(bench), "--snakemake-log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "requested (GiB) |" in out and "| `sky/r0/foreground_dust` | 12 | 8.86 | n/a | 11 | 10.72 |" in out
    assert "| `theory/camb` | 12 | 0.10 | n/a | 11 | n/a |" in out
    # A request below the peak is what a cluster would kill: flagged, status 1.
    log.write_text(SNAKEMAKE_LOG.replace("mem_mib=1908", "mem_mib=1400"))
    assert peak_memory.main([str(bench), "--snakemake-log", str(log)]) == 1
    assert "peak over the requested memory: sky/r0/observe" in capsys.readouterr().err


def test_requests_from_a_log_without_benchmarked_jobs_are_an_error(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("Building DAG of jobs...\nNothing to be done.\n")
    with pytest.raises(ValueError, match="no job with a benchmark under"):
        peak_memory.requested_mib(log, tmp_path)


# High-water marks (MiB) measured at the cenn_paper geometry (README, "Memory at paper scale").
PAPER_PEAKS_MIB = {
    "sky/r0/observe": 17275,
    "sky/r0/foreground_dust": 9073,
    "sky/r0/foreground_synchrotron": 8684,
    "patches/cut_train": 6318,
    "patches/cut_validation": 6287,
    "sky/r0/cmb_map": 3512,
    "cenn/predict_Q_test": 1560,
    "cenn/train_U": 1045,
    "cenn/train_Q": 1041,
}


def test_paper_scale_requests_cover_the_measured_peaks_and_fit_a_24_gib_node(tmp_path, monkeypatch):
    # What a cluster run of config/cenn_paper_memory.yaml would submit (rules/resources.smk).
    targets = ["results/predictions/cenn/Q/test.h5", "results/predictions/cenn/U/test.h5"]
    configs = [str(ROOT / "config" / "cenn_paper.yaml"), str(ROOT / "config" / "cenn_paper_memory.yaml")]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "16", *targets, "--configfile", *configs],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = tmp_path / "dry_run.log"
    log.write_text(proc.stdout + proc.stderr)
    monkeypatch.chdir(tmp_path)
    requests = peak_memory.requested_mib(log, Path("results/benchmarks"))
    for job, peak in PAPER_PEAKS_MIB.items():
        assert peak < requests[job] < 24 * 1024, (job, peak, requests[job])
    # The spherical-harmonic rules ask for a thread per 256 of nside.
    for rule in ("cmb_map", "foreground", "observe"):
        assert re.search(rf"rule {rule}:\n(?:    .*\n)*?    threads: 8\n", log.read_text()), rule
