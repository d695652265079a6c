"""Peak memory of jobs: the high-water mark every script logs, and benchmarks/peak_memory.py."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peak_memory  # noqa: E402

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


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
        (bench / job).parent.mkdir(parents=True, exist_ok=True)
        (bench / f"{job}.tsv").write_text(BENCH_HEADER + f"12.5\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t90\t11.0\n")
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
