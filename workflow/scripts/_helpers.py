"""Shared set-up for the workflow scripts (Snakemake puts this folder on sys.path).

``configure(snakemake)`` makes the library in src/ importable even in a
conda env that does not install it, sends logging and uncaught exceptions
to the rule's log file, logs the job's peak memory when it exits, and
returns a logger.
"""

import atexit
import logging
import os
import resource
import sys
import warnings
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def configure(snakemake, name: str) -> logging.Logger:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    # Full progress goes to the rule's log file; the console only sees warnings.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if snakemake.log else logging.INFO)
    handlers = [console]
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.getLogger("healpy").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logger = logging.getLogger(name)

    def log_uncaught(exc_type, exc, tb):
        # Into the rule's log file and, through the console handler, onto stderr once.
        logger.error("failed", exc_info=(exc_type, exc, tb))

    sys.excepthook = log_uncaught
    atexit.register(log_peak_memory, logger)
    return logger


def peak_memory_mib() -> float:
    """The kernel's high-water mark of this process's resident memory (VmHWM), MiB.

    Snakemake's benchmark samples RSS every 30 s after a job's first 15 s and can miss a
    short peak; this cannot. Not getrusage's ru_maxrss: on Linux that keeps the RSS the
    process had when it was forked (a script started from a large process would report
    the parent's size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20 if sys.platform == "darwin" else kib / 1024  # bytes on macOS, KiB elsewhere


def log_peak_memory(logger: logging.Logger) -> None:
    # The last line of every job's log; benchmarks/peak_memory.py reads it beside the benchmark.
    logger.info("peak memory %.0f MiB (high-water mark)", peak_memory_mib())


def freq_tag(nu) -> str:
    """File-name tag of a frequency: 143 -> '143GHz', 143.5 -> '143.5GHz'."""
    return f"{float(nu):g}GHz"
