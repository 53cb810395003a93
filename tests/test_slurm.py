"""``sslmem plan --run --executor slurm`` against a live SLURM cluster (all SLURM tests: one file).

A private single-node cluster (tests/slurm_cluster.py: Debian's slurmctld, slurmd and munge, no
accounting, ``KillWait=2``) comes up once for this file; a temporary folder stands for the shared
filesystem (the store and the runs root of each test). The plan runs as a user runs it, as
``python -m sslmem plan ...`` with ``$SLURM_CONF`` pointing at the cluster; its array tasks run
real units of the tiny profile. A task is paused at a known point (just after a training
checkpoint, tests/faults_slurm) when a test must cancel it or end its time limit, rather than
racing a 10-second unit. After each test nothing may be queued; after the file no daemon,
slurmstepd or task of the cluster may be alive, and no lock in the shared folder may be held.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster

from sslmem.pipeline.store import read_frame

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).resolve().parent / "faults_slurm"
SIMCLR, SUPERVISED, BYOL = "ens-simclr-e6-000", "ens-supervised-e6-000", "ens-byol-e6-000"
# what differs between any two runs of a unit: times, each store's paths, and the checkout's
# commit (other work may commit between the two runs)
VOLATILE = {"wall_s", "written_at", "run_dir", "results_root", "runs_root", "git_commit"}
PLAN_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """The folder every node sees (here: one machine): each test's store and runs root."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def cluster(shared):
    """A live cluster for this file; afterwards nothing of it is left, no lock held."""
    why = slurm_cluster.missing()
    if why and os.environ.get("CI"):
        pytest.fail(f"{why}: .ci/run should have installed them")  # never skipped in CI
    if why:
        pytest.skip(why)
    up = slurm_cluster.Cluster().start()
    yield up
    left = up.stop(check=False)
    held = [str(p) for p in shared.rglob("*.lock") if _held(p)] + \
        [str(p) for p in shared.rglob(".lock") if _held(p)]
    half = [str(p) for p in shared.rglob("*.tmp")]
    assert not (left or held or half), {"left": left, "locks held": held, "half-written": half}


@pytest.fixture(autouse=True)
def _queue_empty_after(cluster):
    yield
    deadline = time.monotonic() + 20
    while cluster.jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not cluster.jobs(), f"jobs left queued by the test: {cluster.jobs()}"


def _held(path: Path) -> bool:
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _env(cluster, **extra) -> dict:
    env = {**cluster.env, "PYTHONPATH": os.pathsep.join([str(FAULTS), str(REPO)]),
           "PYTHONUNBUFFERED": "1", "SSLMEM_CALIBRATE": "0", **extra}  # one memory format
    return {k: v for k, v in env.items() if v is not None}


def _args(root: Path, units: list[str], *more: str) -> list[str]:
    return [sys.executable, "-m", "sslmem", "plan", "--profile", "tiny", "--units",
            ",".join(units), "--results-root", str(root / "results"), "--runs-root",
            str(root / "runs"), *more]


def _plan(cluster, root: Path, units: list[str], *more: str, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(_args(root, units, *more), env=_env(cluster, **env), cwd=REPO,
                          capture_output=True, text=True, timeout=PLAN_TIMEOUT_S)
    _no_traceback(done.stdout, done.stderr)
    return done


def _start(cluster, root: Path, units: list[str], *more: str, **env) -> subprocess.Popen:
    return subprocess.Popen(_args(root, units, *more), env=_env(cluster, **env), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _no_traceback(out: str, err: str) -> None:
    assert "Traceback" not in out + err, out + err
    assert "sacct" not in out + err, out + err  # no "Bypassing sacct error" flood
    assert err.count("\n") <= 1, err  # at most one line: the error, or the interruption


def _paused(marker: Path, process: subprocess.Popen | None = None, timeout_s: float = 120) -> str:
    """Wait until a task has paused (tests/faults_slurm); returns ``pid path`` it wrote."""
    deadline = time.monotonic() + timeout_s
    while not marker.exists() or not marker.read_text().endswith("\n"):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the plan ended first: {process.communicate()}")
        assert time.monotonic() < deadline, "no task paused in time"
        time.sleep(0.2)
    return marker.read_text().strip()


def _job_of(cluster) -> str:
    (line,) = [j for j in cluster.jobs() if " RUNNING " in f" {j} "]
    return line.split()[0]


def _states(root: Path, units: list[str]) -> dict[str, str]:
    from sslmem.pipeline.units import book_units, select

    return {u.name: u.state() for u in select(book_units(
        "tiny", results_root=str(root / "results"), runs_root=str(root / "runs")), units)}


def _stored(root: Path, units: list[str]) -> bool:
    return set(_states(root, units).values()) == {"yes"}


def _normalized(results: Path) -> dict:
    """Each stored file: a table without its measured seconds, a sidecar or record without
    wall times, dates and paths (what differs between two runs of the same unit)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        return [strip(v) for v in value] if isinstance(value, list) else value

    found = {}
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        key = str(path.relative_to(results))
        if path.name.endswith(".csv.gz"):
            frame = read_frame(path)[0]  # checks the sidecar's hash and row count
            found[key] = frame.drop(columns=["seconds"], errors="ignore").to_csv(index=False)
        elif path.suffix == ".json":
            record = json.loads(path.read_text())
            if path.name.startswith("history-"):
                record.pop("sha256")  # its table holds the measured seconds of each epoch
            found[key] = strip(record)
        else:
            found[key] = path.read_bytes()
    return found


def test_two_plans_at_once_store_what_the_local_executor_stores(cluster, shared):
    """Two units through one array job (--wait) while a second plan, submitted at the same
    time, asks for one of them: both succeed, the store is consistent (every table passes its
    hash) and equals what the local executor stores for the same units. Only wall times,
    dates, the paths of each store, the commit of the checkout and each history's measured
    seconds (so its hash) differ."""
    cpus = "1"  # the same threads both ways (the same numbers), two tasks at once
    root = shared / "array"
    one = _start(cluster, root, [SIMCLR, SUPERVISED], "--run", "--executor", "slurm",
                 "--wait", "--cpus-per-unit", cpus)
    two = _start(cluster, root, [SUPERVISED], "--run", "--executor", "slurm", "--wait",
                 "--cpus-per-unit", cpus)
    outs = []
    for plan in (one, two):
        out, err = plan.communicate(timeout=PLAN_TIMEOUT_S)
        _no_traceback(out, err)
        assert plan.returncode == 0, out + err
        outs.append(out)
    assert "submitted 2 unit(s) as SLURM array job" in outs[0], outs[0]
    assert f"({cpus} CPU(s), 0 GPU(s)" in outs[0]  # a CPU-only cluster: no GPU asked for
    assert not list(root.rglob("*.tmp"))
    assert _stored(root, [SIMCLR, SUPERVISED]), (_states(root, [SIMCLR, SUPERVISED]), outs)
    listing = _plan(cluster, root, [SIMCLR, SUPERVISED])
    assert "every unit asked for is stored" in listing.stdout, listing.stdout
    local = _plan(cluster, shared / "local", [SIMCLR, SUPERVISED], "--run", "--executor",
                  "local", "--cpus-per-unit", cpus, "--jobs", str(min(2, cluster.cpus)))
    assert local.returncode == 0, local.stdout + local.stderr
    array, here = (_normalized(shared / n / "results") for n in ("array", "local"))
    assert sorted(array) == sorted(here)
    assert any(k.startswith("tiny/digits/supervised-") for k in array)
    for key in array:
        assert array[key] == here[key], key
    assert not list((root / "runs" / "submitit").iterdir())  # all stored: their logs went


def test_cancelled_and_timed_out_tasks_resume_from_their_checkpoint(cluster, shared):
    """scancel a running task: it stops cleanly (SIGTERM), is reported with SLURM's state, and
    the same command resumes the unit from its last checkpoint. There its time limit ends
    (SLURM: submitit's USR2, then SIGTERM, SIGKILL after KillWait): submitit requeues the task,
    which resumes from the newer checkpoint in the same plan. Each epoch is trained once."""
    from sslmem.train.fit import load_checkpoint

    root, marker = shared / "resume", shared / "resume-paused"
    pause = {"SSLMEM_FAULT_PAUSE_AFTER": str(root / "runs" / "*" / "checkpoint.pt"),
             "SSLMEM_FAULT_PAUSED": str(marker)}
    command = ("--run", "--executor", "slurm", "--wait")
    plan = _start(cluster, root, [SIMCLR], *command, **pause)
    checkpoint = Path(_paused(marker, plan).split(" ", 1)[1])
    first, job = load_checkpoint(checkpoint), _job_of(cluster)
    cluster.run("scancel", job)
    out, err = plan.communicate(timeout=PLAN_TIMEOUT_S)
    _no_traceback(out, err)
    assert plan.returncode == 2, out + err
    assert f"{SIMCLR} did not finish: SLURM task {job} cancelled on the cluster (scancel) " \
        "(state cancelled); nothing half-written, a rerun resumes it from its last " \
        "checkpoint (log: " in err, err
    assert not list(root.rglob("*.tmp")) and not _stored(root, [SIMCLR])

    marker.unlink()
    plan = _start(cluster, root, [SIMCLR], *command, **pause)  # the same command again
    _paused(marker, plan)
    second, job = load_checkpoint(checkpoint), _job_of(cluster)
    assert (first["epoch"], second["epoch"]) == (4, 6)  # it went on from epoch 4
    cluster.run("scontrol", "update", f"JobId={job}", "EndTime=now")  # its time limit, now
    deadline = time.monotonic() + 60
    while f"{job} PENDING BeginTime" not in cluster.jobs():  # requeued; SLURM holds it a while
        assert plan.poll() is None, plan.communicate()
        assert time.monotonic() < deadline, cluster.jobs()
        time.sleep(0.2)
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now", "TimeLimit=5")
    out, err = plan.communicate(timeout=PLAN_TIMEOUT_S)
    _no_traceback(out, err)
    assert plan.returncode == 0 and _stored(root, [SIMCLR]), out + err
    assert f"{SIMCLR} requeued (SLURM task {job}: its time limit" in out, out
    (history,) = (root / "results").rglob("simclr-*/history-ens0-seed0-*.csv.gz")
    seconds = [round(s, 6) for s in read_frame(history)[0]["seconds"]]
    # epochs 1-4 are the cancelled task's, 5-6 the timed-out one's: none trained twice
    assert seconds == [round(r["seconds"], 6) for r in second["history"]]
    assert seconds[:4] == [round(r["seconds"], 6) for r in first["history"]]


def test_a_task_failing_on_its_node_reports_its_error_line(cluster, shared, tmp_path):
    """The node cannot read the data (an unreadable file there): the submitting terminal gets
    the unit's name, its error line and the task's log, in one line."""
    import sklearn.datasets

    data = Path(sklearn.datasets.__file__).parent / "data"  # digits: the tiny profile's data
    config = tmp_path / "cluster.toml"
    config.write_text(f'[slurm]\nsetup = ["export SSLMEM_FAULT_UNREADABLE={data}"]\n')
    done = _plan(cluster, shared / "failing", [BYOL], "--run", "--executor", "slurm",
                 "--wait", "--slurm-config", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr
    assert line.startswith(f"sslmem plan: error: {BYOL} failed on SLURM task "), line
    assert "PermissionError" in line and "digits.csv.gz" in line, line
    log = Path(line.split("(log: ", 1)[1].split(")", 1)[0])
    assert log.exists() and "Permission denied" in log.read_text()
    assert not _stored(shared / "failing", [BYOL])


@pytest.mark.parametrize("option, says", [
    (["--cpus-per-unit", "64"], "asks for more than the {cpus} CPUs per node of partition "
                                "debug; ask for at most {cpus} (--cpus-per-unit"),
    (["--gpus-per-unit", "1"], "gpus_per_unit = 1 asks for more than partition debug"),
    (["--mem-gb", "100000"], "mem_gb = 100000.0 asks for more than the"),
    (["--time-min", "11"], "time_min = 11 asks for more than the time limit of partition "
                           "debug (10 min)"),
    (["--partition", "gpu"], "partition 'gpu' is not on this SLURM cluster (sinfo); choose "
                             "one with --partition"),
    ("cpus_per_unit = -2", "cpus_per_unit must be an int >= 1, got -2"),
    ("time_min = 'thirty'", "time_min must be an int >= 1, got 'thirty'"),
    ("[slurm.additional]\ncpus-per-task = -2", "additional.cpus-per-task = -2 is not allowed: "
                                              "set cpus_per_unit instead"),
    ("[slurm.additional]\ntmp = '100000G'", "sbatch refused the array: Temporary disk "
                                            "specification can not be satisfied"),
], ids=["cpus", "gpus", "memory", "time", "partition", "negative-cpus", "time-type",
        "additional-cpus", "sbatch-refuses"])
def test_requests_beyond_the_partition_end_before_submission(cluster, shared, tmp_path,
                                                             capsys, monkeypatch, option, says):
    """What the partition cannot give, and a config value of the wrong type or range: one line
    naming the value and what is allowed, and nothing is submitted."""
    from sslmem.cli import main

    if isinstance(option, str):
        (tmp_path / "c.toml").write_text(f"[slurm]\n{option}\n" if "[" not in option[:1]
                                         else option + "\n")
        option = ["--slurm-config", str(tmp_path / "c.toml")]
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    root = shared / "refused"
    assert main(["plan", "--profile", "tiny", "--run", "--executor", "slurm", "--units",
                 SIMCLR, "--results-root", str(root / "results"), "--runs-root",
                 str(root / "runs"), *option]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sslmem plan: error: "), err
    assert says.format(cpus=cluster.cpus) in err, err
    assert not cluster.jobs()


def test_a_job_slurm_cannot_start_is_reported_with_its_reason(cluster, shared):
    """A partition whose jobs need two nodes (this cluster has one): pending forever, reason
    PartitionNodeLimit; the plan says so in one line and cancels the job."""
    done = _plan(cluster, shared / "pairs", [SIMCLR], "--run", "--executor", "slurm",
                 "--wait", "--partition", cluster.pairs)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SLURM cannot start array job" in done.stderr, done.stderr
    # SLURM's reason (it says PartitionConfig first, PartitionNodeLimit after a while)
    assert re.search(r"pending with reason Partition(Config|NodeLimit) \(", done.stderr), \
        done.stderr
    assert done.stderr.rstrip().endswith("cancelled it"), done.stderr
    said = cluster.run("squeue", "-h", "-t", "all", "-p", cluster.pairs, "-o", "%T").stdout
    assert said.split() == ["CANCELLED"], said


@pytest.mark.parametrize("how, leave", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["sigterm-cancels", "ctrl-c-leave-running"])
def test_an_interrupted_plan_cancels_its_jobs_unless_asked(cluster, shared, how, leave):
    """SIGTERM (or Ctrl-C) while the plan waits: it cancels its array job (the unit stops
    cleanly) in one line; with --leave-running the job goes on and the plan says where."""
    root, marker = shared / f"interrupted-{how.name}", shared / f"paused-{how.name}"
    plan = _start(cluster, root, [SUPERVISED], "--run", "--executor", "slurm", "--wait",
                  *(["--leave-running"] if leave else []),
                  SSLMEM_FAULT_PAUSE_AFTER=str(root / "runs" / "*" / "epoch-0001.pt"),
                  SSLMEM_FAULT_PAUSED=str(marker))
    _paused(marker, plan)
    job = _job_of(cluster)
    plan.send_signal(how)
    out, err = plan.communicate(timeout=60)
    _no_traceback(out, err)
    assert plan.returncode == 128 + how, out + err
    assert ("stopped by SIGTERM" if how == signal.SIGTERM else "interrupted (Ctrl-C)") in err
    if leave:
        assert f"left SLURM array job(s) {job} running (--leave-running)" in out, out
        assert any(line.startswith(f"{job} RUNNING") for line in cluster.jobs())
        cluster.run("scancel", job)  # what the user would do once done looking
    else:
        assert f"cancelled SLURM array job(s) {job}" in out and "--leave-running" in out, out
        assert f"interrupted unit(s): {SUPERVISED}" in err, err
    cluster.wait_idle()
    assert not list(root.rglob("*.tmp")) and not _stored(root, [SUPERVISED])
