"""Faults for tests/workflow/test_faults.py, injected into Snakemake's job processes.

Python imports ``sitecustomize`` at start-up from its path: a fault test puts this folder on
PYTHONPATH, so every Python process of that run imports it. It does nothing unless
CMBNN_FAULT_RULE names the rule whose script this process runs (Snakemake runs a ``script:`` as
``python .snakemake/scripts/tmpXXXX.<script name>.py``); then:

CMBNN_KILL_AT_RENAME=<glob>  SIGKILL this process just before its Nth (CMBNN_KILL_AT_COUNT,
                             default 1) ``os.replace`` onto a path matching the glob: the output
                             is written under its temporary name, not yet renamed into place.
CMBNN_FILE_SIZE_LIMIT=<bytes>  RLIMIT_FSIZE, as a full disk: a write past it fails (EFBIG).
"""

import fnmatch
import os
import resource
import signal


def _this_rule() -> bool:
    script = os.environ.get("CMBNN_FAULT_RULE")
    if not script:
        return False
    with open("/proc/self/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace").split("\0")
    return any(arg.endswith(f".{script}.py") for arg in argv)


if _this_rule():
    _pattern = os.environ.get("CMBNN_KILL_AT_RENAME")
    if _pattern:
        _replace, _seen, _at = os.replace, [], int(os.environ.get("CMBNN_KILL_AT_COUNT", "1"))

        def _replace_or_die(src, dst, *args, **kwargs):
            if fnmatch.fnmatch(os.fspath(dst), _pattern):
                _seen.append(dst)
                if len(_seen) == _at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return _replace(src, dst, *args, **kwargs)

        os.replace = _replace_or_die
    _limit = os.environ.get("CMBNN_FILE_SIZE_LIMIT")
    if _limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write() (EFBIG), not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(_limit), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
