#!/usr/bin/env python
"""Peak memory of every job of a run, from Snakemake's benchmark files and the jobs' logs.

Each rule writes `results/benchmarks/<stage>/<job>.tsv` (the `benchmark:` directive: wall
seconds, max_rss in MiB, CPU seconds, ...). Snakemake samples RSS twice a second for a
job's first 15 s and every 30 s after, so a short peak can fall between samples; every
job's log therefore ends with the kernel's high-water mark of its process
(`peak memory N MiB`, workflow/scripts/_helpers.py), read from
`results/logs/<stage>/<job>.log`. This prints one Markdown table row per job, largest
peak first (the larger of the two), and exits with status 1 when a job went over --limit-gib:

    .venv/bin/python benchmarks/peak_memory.py results/benchmarks --limit-gib 24

With --snakemake-log (a run's .snakemake/log/*.snakemake.log, or what `snakemake -n` printed for
the same targets and config) the table also gives the memory each job requested (its mem_mib,
rules/resources.smk) and flags a job whose peak went over its request: the check that the
estimates a cluster run submits with are large enough.

A file with several rows (a rule run with `benchmark: repeat(...)`) counts its largest peak.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import pandas as pd

LOG_PEAK = re.compile(r"peak memory (\d+) MiB")
REQUESTED = re.compile(r"\bmem_mib=(\d+)")


def requested_mib(snakemake_log: Path, directory: Path) -> dict[str, float]:
    """{job: requested MiB} from a Snakemake log's job blocks ("benchmark: <file>" followed by
    "resources: ..., mem_mib=N"), jobs named by their benchmark file under `directory` as in
    :func:`job_peaks`; run from the workflow's directory, as the log's paths are relative to it.
    A job listed twice (a rerun) keeps its last request."""
    requests, benchmark, root = {}, None, directory.resolve()
    for line in snakemake_log.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            benchmark = None
        elif line.startswith("benchmark: "):
            benchmark = Path(line.removeprefix("benchmark: ")).resolve()
        elif line.startswith("resources: ") and benchmark is not None:
            found = REQUESTED.search(line)
            if found and benchmark.is_relative_to(root):
                requests[str(benchmark.relative_to(root).with_suffix(""))] = float(found.group(1))
            benchmark = None
    if not requests:
        raise ValueError(f"{snakemake_log}: no job with a benchmark under {directory} and a mem_mib request")
    return requests


def logged_peak_mib(log: Path) -> float:
    """The high-water mark a job's log ends with (MiB), or NaN without a log or that line."""
    if not log.is_file():
        return float("nan")
    found = LOG_PEAK.findall(log.read_text(errors="replace"))
    return float(found[-1]) if found else float("nan")


def job_peaks(directory: Path, logs: Path | None = None) -> pd.DataFrame:
    """One row per benchmark file: job (its path under `directory`), wall s, sampled peak RSS
    MiB (the benchmark's max_rss), the log's high-water mark MiB, their larger ("peak_mib"), CPU s.
    logs: where the jobs' logs mirror the benchmark paths (default: `directory`/../logs)."""
    logs = directory.parent / "logs" if logs is None else logs
    rows = []
    for path in sorted(directory.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        missing = {"s", "max_rss", "cpu_time"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no column {', '.join(sorted(missing))})")
        rss = pd.to_numeric(table["max_rss"], errors="coerce")
        if rss.isna().all():
            raise ValueError(f"{path}: no max_rss was recorded (the job ran too briefly to be sampled, or failed)")
        i = rss.idxmax()
        job = path.relative_to(directory).with_suffix("")
        logged = logged_peak_mib(logs / job.with_suffix(".log"))
        rows.append({"job": str(job), "wall_s": float(table["s"][i]), "sampled_mib": float(rss[i]),
                     "logged_mib": logged, "peak_mib": float(rss[i]) if math.isnan(logged) else max(float(rss[i]), logged),
                     "cpu_s": float(table["cpu_time"][i])})
    if not rows:
        raise ValueError(f"no benchmark files (*.tsv) under {directory}")
    return pd.DataFrame(rows).sort_values("peak_mib", ascending=False, ignore_index=True)


def _gib(mib: float) -> str:
    return "n/a" if math.isnan(mib) else f"{mib / 1024:.2f}"


def markdown(peaks: pd.DataFrame) -> str:
    requested = "requested_mib" in peaks
    header = "| job | wall (s) | peak RSS, sampled (GiB) | high-water mark (GiB) | CPU time (s) |"
    lines = [header + (" requested (GiB) |" if requested else ""), "|---" * (6 if requested else 5) + "|"]
    for row in peaks.itertuples():
        line = f"| `{row.job}` | {row.wall_s:.0f} | {_gib(row.sampled_mib)} | {_gib(row.logged_mib)} | {row.cpu_s:.0f} |"
        lines.append(line + (f" {_gib(row.requested_mib)} |" if requested else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a run's benchmark folder, e.g. results/benchmarks")
    parser.add_argument("--logs", type=Path, help="the run's log folder (default: the benchmark folder's sibling 'logs')")
    parser.add_argument("--limit-gib", type=float, default=24.0, help="flag jobs whose peak RSS exceeds this (default 24)")
    parser.add_argument("--snakemake-log", type=Path, help="a Snakemake log (or dry-run output) of the same jobs: add their mem_mib requests")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a folder")
    try:
        peaks = job_peaks(args.directory, args.logs)
        if args.snakemake_log:
            if not args.snakemake_log.is_file():
                raise ValueError(f"{args.snakemake_log} is not a file")
            requests = requested_mib(args.snakemake_log, args.directory)
            peaks["requested_mib"] = [requests.get(job, float("nan")) for job in peaks.job]
    except ValueError as err:
        parser.error(str(err))
    print(markdown(peaks))
    largest = peaks.iloc[0]
    print(f"\nlargest: {largest.job} at {largest.peak_mib / 1024:.2f} GiB; {len(peaks)} jobs")
    status = 0
    over = peaks[peaks.peak_mib > args.limit_gib * 1024]
    if len(over):
        print(f"over {args.limit_gib:g} GiB: {', '.join(over.job)}", file=sys.stderr)
        status = 1
    if "requested_mib" in peaks:
        short = peaks[peaks.peak_mib > peaks.requested_mib]  # NaN (not in the log) compares False
        if len(short):
            print(f"peak over the requested memory: {', '.join(short.job)}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
