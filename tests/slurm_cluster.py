"""A real single-node SLURM cluster on localhost for the tests (Debian's slurm-wlm 22.05 and munge).

Everything lives in a temporary directory: slurm.conf, gres.conf, munge key and socket, state,
spool and logs. munged, slurmctld and slurmd run in the foreground as child processes of the
test session and are always stopped by PID. Install the packages with `./setup.sh test`.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SBIN = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "sacct")
PACKAGES = "slurmctld slurmd slurm-client munge"


def _which(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_reason():
    """Why the cluster cannot be started here, or None."""
    missing = [n for n in (*SBIN, *CLIENTS) if _which(n) is None]
    if missing:
        return f"SLURM test skipped: {', '.join(missing)} not found (Debian packages {PACKAGES}; `./setup.sh test` installs them)"
    if os.geteuid() != 0:
        # slurmd must run as root to start jobs as the submitting user.
        return "SLURM test skipped: a local slurmd needs root (run the tests as root, as ./setup.sh test does in CI)"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_memory_mb():
    with open("/proc/meminfo") as f:
        total_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    return total_kb // 1024


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict  # environment for snakemake and the SLURM clients: SLURM_CONF, wrappers first on PATH
    node: str
    cpus: int
    memory_mb: int
    procs: dict = field(default_factory=dict)

    @property
    def ctld_log(self):
        return self.root / "log" / "slurmctld.log"

    def run(self, *cmd, check=True):
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30, check=check)

    def submitted_job_ids(self):
        """Job ids slurmctld accepted through sbatch (its log names each batch submission)."""
        text = self.ctld_log.read_text(errors="replace") if self.ctld_log.exists() else ""
        return [int(j) for j in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)]

    def job_records(self):
        """JobId -> `scontrol show job` fields (kept MinJobAge = 300 s after the end)."""
        out = self.run("scontrol", "-o", "show", "job", check=False).stdout
        records = {}
        for line in out.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in fields:
                records[int(fields["JobId"])] = fields
        return records

    def cancel_all(self):
        """Cancel anything left (a failed or killed snakemake leaves jobs behind)."""
        if "slurmctld" not in self.procs:
            return
        self.run("scancel", "--user", str(os.getuid()), check=False)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.run("squeue", "-h", check=False).stdout.strip():
            time.sleep(0.5)

    def logs_tail(self, n=3000):
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = self.root / "log" / name
            if p.exists():
                parts.append(f"--- {name} ---\n{p.read_text(errors='replace')[-n:]}")
        return "\n".join(parts)


def _write_config(root, node, cpus, memory_mb, munge_socket):
    for d in ("state", "spool", "log", "run", "bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""# Single-node test cluster (tests/slurm_cluster.py); no accounting.
ClusterName=cmbnntest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
ReturnToService=2
# squeue (the status command without accounting) forgets a job MinJobAge seconds after its end.
MinJobAge=300
SchedulerParameters=sched_interval=1
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} Sockets=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    # A fake GPU: the scheduler counts it, nothing opens it.
    (root / "gres.conf").write_text(f"NodeName={node} Name=gpu File=/dev/null\n")
    # The jobstep plugin strips SLURM_* inside a job, so its `srun` would look for /etc/slurm/slurm.conf:
    # these wrappers, first on PATH, point every client at this cluster.
    for name in CLIENTS:
        wrapper = root / "bin" / name
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={conf}; export SLURM_CONF\nexec {_which(name)} "$@"\n')
        wrapper.chmod(0o755)
    return conf


def _start_munge(root, procs):
    mdir = root / "munge"
    mdir.mkdir(mode=0o755)
    mdir.chmod(0o755)  # munged refuses a group/world-writable directory
    key = mdir / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(stat.S_IRUSR)
    sock = mdir / "munge.socket"
    procs["munged"] = subprocess.Popen(
        [_which("munged"), "-F", f"--socket={sock}", f"--key-file={key}", f"--pid-file={mdir}/munged.pid",
         f"--log-file={root}/log/munged.log", f"--seed-file={mdir}/munged.seed", "--force"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if procs["munged"].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"munged did not start (exit {procs['munged'].poll()}):\n{(root / 'log' / 'munged.log').read_text(errors='replace') if (root / 'log' / 'munged.log').exists() else ''}")
        time.sleep(0.1)
    return sock


def _stop(procs):
    # Reverse start order: slurmd, slurmctld, munged.
    for name in reversed(list(procs)):
        proc = procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_cluster(root: Path):
    """Start munged, slurmctld and slurmd under `root`; returns the cluster once the node is idle.

    The caller must call stop_cluster() (in a finally); on a failed start the daemons are stopped here.
    """
    node = socket.gethostname().split(".")[0]
    cpus = os.cpu_count()
    # Below the real memory: slurmd drains a node that claims more than it has.
    memory_mb = int(_real_memory_mb() * 0.8)
    procs = {}
    try:
        munge_socket = _start_munge(root, procs)
        conf = _write_config(root, node, cpus, memory_mb, munge_socket)
        env = dict(os.environ, SLURM_CONF=str(conf), PATH=f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        cluster = SlurmCluster(root=root, conf=conf, env=env, node=node, cpus=cpus, memory_mb=memory_mb, procs=procs)
        for daemon, args in (("slurmctld", ["-D", "-i"]), ("slurmd", ["-D"])):
            with open(root / "log" / f"{daemon}.out", "w") as out:  # the child keeps its own descriptor
                procs[daemon] = subprocess.Popen([_which(daemon), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        state = ""
        while state != "idle":
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"SLURM node not idle (state {state!r}, exited: {dead}):\n{cluster.logs_tail()}")
            time.sleep(0.5)
            state = cluster.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
        return cluster
    except BaseException:
        _stop(procs)
        raise


def stop_cluster(cluster: SlurmCluster):
    try:
        cluster.cancel_all()
    finally:
        _stop(cluster.procs)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM (with one fake GPU); skipped only where the packages or root are missing."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
