"""A private single-node SLURM cluster on this machine, for tests/test_slurm.py.

Debian's packages (``apt-get install slurmctld slurmd slurm-client munge``) and root are all it
needs. Everything it starts is its own: a munged on a socket of its own with a fresh key, a
slurmctld and a slurmd on free ports, state, spool and logs in one temporary folder, and a
``slurm.conf`` that ``$SLURM_CONF`` points the client commands (sbatch, squeue, scancel, sinfo)
at. The daemons run in the foreground as children of this process, so stopping them stops exactly
what was started; every process of the cluster (daemons, slurmstepd, job tasks) carries
``SLURM_CONF=<its slurm.conf>`` in its environment, which is how :meth:`Cluster.leftovers` finds
anything left behind. A machine's own SLURM or munge (if any) is not touched.

    python tests/slurm_cluster.py     # bring one up, print its SLURM_CONF, stop on Enter
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "srun",
            "scontrol")
KILL_WAIT_S = 5  # SIGTERM to SIGKILL of a cancelled or timed-out task


def missing() -> str | None:
    """Why no cluster can be brought up here (``None``: it can)."""
    absent = [name for name in COMMANDS if shutil.which(name) is None
              and not Path("/usr/sbin", name).exists()]
    if absent:
        return ("SLURM packages absent (" + ", ".join(absent) + "): apt-get install slurmctld "
                "slurmd slurm-client munge")
    if os.geteuid() != 0:
        return "a private SLURM cluster needs root (slurmd starts tasks as their user)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 1024


class Cluster:
    """One node (this machine, ``cpus`` CPUs), a default partition ``debug`` and a partition
    ``pairs`` whose jobs must span two nodes (on one node they pend forever, reason
    ``PartitionNodeLimit``: a job SLURM can never start)."""

    partition, pairs = "debug", "pairs"

    def __init__(self, root: Path | None = None, cpus: int | None = None,
                 max_time_min: int = 10):
        self.own_root = root is None  # a folder of its own: removed once stopped cleanly
        self.root = Path(root or tempfile.mkdtemp(prefix="sslmem-slurm-"))
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = int(_memory_mb() * 0.8)
        self.max_time_min = max_time_min
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: dict[str, subprocess.Popen] = {}

    def _write_conf(self) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(f"""\
ClusterName=sslmemtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait={KILL_WAIT_S}
MinJobAge=300
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime={self.max_time_min} State=UP
PartitionName={self.pairs} Nodes={self.node} MinNodes=2 MaxTime={self.max_time_min} State=UP
""")

    def start(self, timeout_s: float = 30) -> Cluster:
        self._write_conf()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        logs = self.root / "log"
        daemons = {
            "munged": [_binary("munged"), "--foreground", "--force", f"--key-file={key}",
                       f"--socket={self.root}/munge.socket", f"--pid-file={self.root}/munged.pid",
                       f"--log-file={logs}/munged.log", f"--seed-file={self.root}/munged.seed"],
            "slurmctld": [_binary("slurmctld"), "-D", "-c", "-i", "-f", str(self.conf)],
            "slurmd": [_binary("slurmd"), "-D", "-f", str(self.conf), "-N", self.node],
        }
        try:
            for name, argv in daemons.items():
                with open(logs / f"{name}.out", "ab") as out:
                    self.processes[name] = subprocess.Popen(
                        argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, start_new_session=True)
                if name == "munged":
                    self._until(lambda: (self.root / "munge.socket").exists(), timeout_s,
                                "munged did not open its socket")
                if name == "slurmctld":
                    self._until(lambda: self.run("sinfo", check=False).returncode == 0,
                                timeout_s, "slurmctld did not answer")
            self._until(lambda: self.node_state() == "idle", timeout_s,
                        "the node did not become idle")
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _until(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{what}: {name} exited ({process.returncode}); "
                                       f"see {self.root}/log: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} within {timeout_s:.0f} s; see {self.root}/log: "
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        text = []
        for log in sorted((self.root / "log").glob("*")):
            with contextlib.suppress(OSError):
                text += [f"{log.name}: {line}" for line in
                         log.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(text)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                              check=check, timeout=30)

    def node_state(self) -> str:
        done = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%T", check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def jobs(self) -> list[str]:
        """Lines ``jobid state reason`` of the jobs pending, running or completing."""
        done = self.run("squeue", "-h", "-r", "-o", "%i %T %r", check=False)
        return [line for line in done.stdout.splitlines() if line.strip()]

    def wait_idle(self, timeout_s: float = 30) -> None:
        """Until no job is queued or running and the node is idle again."""
        self._until(lambda: not self.jobs() and self.node_state() == "idle", timeout_s,
                    f"jobs still queued: {self.jobs()}")

    def leftovers(self) -> list[str]:
        """Processes of this cluster still alive (daemons, slurmstepd, tasks), as ``pid cmd``."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found.append(f"{proc.name} {cmd.strip()}")
        return found

    def stop(self, check: bool = True) -> list[str]:
        """Cancel every job, stop the daemons started here; returns what was left behind."""
        left = []
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            jobs = self.jobs()
            if jobs:
                left.append(f"jobs still queued at the end: {jobs}")
                self.run("scancel", "--full", "-u", str(os.geteuid()), check=False)
                with contextlib.suppress(RuntimeError):
                    self.wait_idle(timeout_s=KILL_WAIT_S + 20)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                left.append(f"{name} needed SIGKILL")
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)
        left += [f"process left: {p}" for p in self.leftovers()]
        if left:
            left.append(f"state and logs kept in {self.root}")
        elif self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if check and left:
            raise AssertionError("; ".join(left))
        return left


if __name__ == "__main__":
    cluster = Cluster().start()
    print(f"export SLURM_CONF={cluster.conf}")
    try:
        input("Enter stops it ")
    finally:
        print(cluster.stop(check=False))
