"""SLURM as ``sslmem plan --executor slurm`` sees it: the ``--slurm-config`` file, what a
partition offers, an array's sbatch parameters fitted to it, its tasks' states without
accounting, and how each task ended.

Why: sbatch must not be handed a request the cluster refuses (a GPU on a partition without one:
a submitit traceback) or can never grant (more CPUs than a node has: pending forever, reason
``PartitionConfig``), and waiting must not depend on ``sacct``, which clusters without accounting
lack. So the request is checked before submission against ``sinfo`` and ``scontrol show
partition`` (one line naming the value and what the partition offers); the tasks' states come
from ``squeue`` (which keeps an ended job for ``MinJobAge``, 5 minutes by default); each task is
reported as it ends, with its unit's error line or SLURM's reason; a job SLURM can never start is
reported with SLURM's reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sslmem.errors import SSLMemError, one_line
from sslmem.pipeline.validate import Float, Int

DEFAULT_CPUS, DEFAULT_TIME_MIN = 4, 60
NEVER = {  # pending reasons of a job that no wait will start -> what to change
    "PartitionConfig": "the partition's limits exclude it (`scontrol show partition`): "
                       "change --cpus-per-unit, --mem-gb, --gpus-per-unit or --partition",
    "PartitionTimeLimit": "its time limit exceeds the partition's: lower --time-min",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "BadConstraints": "no node satisfies its constraints: change constraint/additional in "
                      "--slurm-config",
    "InvalidAccount": "the account is not valid here: change --slurm-config's account",
    "InvalidQOS": "the QOS is not valid here: change --slurm-config's qos",
    "DependencyNeverSatisfied": "the array it waits for can never end as required",
}
ENDINGS = {  # how a task that stored nothing ended, by SLURM state
    "CANCELLED": "cancelled on the cluster (scancel)",
    "TIMEOUT": "stopped at its time limit (raise --time-min)",
    "OUT_OF_MEMORY": "killed for lack of memory (raise --mem-gb)",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "preempted",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "its deadline passed",
    "FAILED": "exited with an error",
    "COMPLETED": "exited without a result",
}
RESULT_GRACE_S = 30.0  # a result file on a shared filesystem may show up late on this host


def load_config(path: str | os.PathLike) -> dict:
    """The ``[slurm]`` table of a TOML file (or its top level), checked against ``Settings``:
    every value of the right type and range, or one line naming the key, the value and what is
    allowed."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            found = tomllib.load(fh)
    except OSError as err:
        raise SSLMemError(f"--slurm-config {path}: cannot read it ({err.strerror or err})") \
            from None
    except tomllib.TOMLDecodeError as err:
        raise SSLMemError(f"--slurm-config {path}: not valid TOML ({err})") from None
    table = found.get("slurm", found)
    if not isinstance(table, dict):
        raise SSLMemError(f"--slurm-config {path}: slurm must be a table ([slurm]), got "
                          f"{table!r}")
    unknown = sorted(set(table) - set(_CHECKS))
    if unknown:
        raise SSLMemError(f"--slurm-config {path}: unknown key(s) {', '.join(unknown)}; known: "
                          + ", ".join(sorted(_CHECKS)))
    try:
        return {key: _CHECKS[key](key, value) for key, value in table.items()}
    except SSLMemError as err:
        raise SSLMemError(f"--slurm-config {path}: {err}") from None


def _text(key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SSLMemError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _lines(key: str, value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SSLMemError(f"{key} must be a list of shell lines (strings), got {value!r}")
    return value


# sbatch options that Settings sets itself: [slurm.additional] may not set them behind its back
_OWN = {"cpus-per-task": "cpus_per_unit", "gpus-per-node": "gpus_per_unit", "gpus": "gpus_per_unit",
        "gres": "gpus_per_unit", "mem": "mem_gb", "time": "time_min", "partition": "partition",
        "array": "array_parallelism", "account": "account", "qos": "qos",
        "constraint": "constraint", "exclude": "exclude", "output": None, "error": None,
        "job-name": None, "signal": None, "open-mode": None}


def _options(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise SSLMemError(f"{key} must be a table of sbatch options ([slurm.{key}]), got "
                          f"{value!r}")
    for option, setting in value.items():
        own = option.replace("_", "-")
        if own in _OWN:
            instead = (f"set {_OWN[own]} instead" if _OWN[own]
                       else "submitit sets it for each task")
            raise SSLMemError(f"{key}.{option} = {setting!r} is not allowed: {instead}")
        if not isinstance(setting, (str, int, float, bool)) or isinstance(setting, dict):
            raise SSLMemError(f"{key}.{option} must be a string, number or true, got "
                              f"{setting!r}")
    return value


_CHECKS = {"partition": _text, "account": _text, "qos": _text, "constraint": _text,
           "exclude": _text, "time_min": Int(low=1), "cpus_per_unit": Int(low=1),
           "gpus_per_unit": Int(low=0), "mem_gb": Float(low=0, open_low=True),
           "array_parallelism": Int(low=1), "setup": _lines, "additional": _options}


class CannotStart(SSLMemError):
    """SLURM holds a submitted job that can never start (a reason in ``NEVER``)."""


def command(*argv: str) -> str:
    """The output of a SLURM client command; one line (``SSLMemError``) if it fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SSLMemError(f"`{shlex.join(argv)}` did not answer ({one_line(err)}); is the SLURM "
                          "controller reachable from here (`sinfo`)?") from None
    if done.returncode:
        said = ((done.stderr or done.stdout).strip().splitlines() or [""])[-1]  # sinfo: fatal
        said = one_line(said) or f"exit status {done.returncode}"
        raise SSLMemError(f"`{shlex.join(argv)}` failed: {said}; is the SLURM controller "
                          "reachable from here (`sinfo`)?")
    return done.stdout


@dataclass
class Offer:
    """What one task may have on a partition (the largest node, within the partition's limits)."""

    partition: str
    cpus: int
    mem_mb: int | None  # None: not known
    gpus: int
    time_min: int | None  # the partition's MaxTime; None: unlimited
    state: str = "up"


def _number(text: str) -> int | None:
    found = re.match(r"\d+", text.strip())
    return int(found.group()) if found else None


def _gpus(gres: str) -> int:
    """GPUs per node in sinfo's GRES column (``gpu:4``, ``gpu:a100:4(S:0-1)``, ``(null)``)."""
    return max([int(n) for n in re.findall(r"gpu(?::[^:,()]+)?:(\d+)", gres)] or [0])


def minutes(text: str) -> int | None:
    """SLURM's ``[days-]hours:minutes:seconds`` (or ``minutes:seconds``, ``minutes``) in whole
    minutes; None for UNLIMITED/infinite."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if "-" not in text and len(parts) <= 2:  # minutes[:seconds]
        total = parts[0] * 60 + (parts[1] if len(parts) > 1 else 0)
    else:
        parts = [0] * (3 - len(parts)) + parts
        total = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return (int(days or 0) * 86400 + total) // 60


def offer(partition: str | None) -> Offer | None:
    """What ``partition`` (default: the cluster's default) offers a task; None without sinfo."""
    if shutil.which("sinfo") is None:
        return None
    rows = [line.split("|") for line in command("sinfo", "-h", "-o", "%P|%a|%c|%m|%G|%l")
            .splitlines() if line.count("|") == 5]
    names = sorted({row[0].rstrip("*") for row in rows})
    default = next((row[0].rstrip("*") for row in rows if row[0].endswith("*")), None)
    where = f"choose one with --partition (or partition in --slurm-config): {', '.join(names)}"
    if partition is None and default is None:
        raise SSLMemError(f"this SLURM cluster has no default partition; {where}")
    name = partition or default
    mine = [row for row in rows if row[0].rstrip("*") == name]
    if not mine:
        raise SSLMemError(f"partition {name!r} is not on this SLURM cluster (sinfo); {where}")
    limits = dict(re.findall(r"(\w+)=(\S+)", command("scontrol", "-o", "show", "partition",
                                                     name)))
    cpus = max(_number(row[2]) or 0 for row in mine)
    mem = max(_number(row[3]) or 0 for row in mine) or None
    if _number(limits.get("MaxCPUsPerNode", "")):
        cpus = min(cpus, _number(limits["MaxCPUsPerNode"]))
    if _number(limits.get("MaxMemPerNode", "")) and mem:
        mem = min(mem, _number(limits["MaxMemPerNode"]))
    return Offer(name, cpus, mem, max(_gpus(row[4]) for row in mine),
                 minutes(limits.get("MaxTime", mine[0][5])), mine[0][1])


def _too_much(key: str, value, offered: str, most, option: str) -> SSLMemError:
    return SSLMemError(f"{key} = {value} asks for more than {offered}; ask for at most {most} "
                       f"(--{option}, or {key} in --slurm-config)")


def parameters(s, count: int, cpu_only: bool = False, offer: Offer | None = None) -> dict:
    """``SlurmExecutor.update_parameters`` of an array of ``count`` tasks, one unit each, from
    settings ``s`` (:class:`sslmem.pipeline.executors.Settings`); with ``offer``, the defaults
    fit the partition and a request beyond it is refused in one line."""
    gpus = s.gpus_per_unit
    if gpus is None:
        gpus = 0 if cpu_only or (offer is not None and not offer.gpus) else 1
    cpus = s.cpus_per_unit or (min(DEFAULT_CPUS, offer.cpus) if offer else DEFAULT_CPUS)
    time_min = s.time_min or min(DEFAULT_TIME_MIN, (offer and offer.time_min) or DEFAULT_TIME_MIN)
    if offer is not None:
        on = f"partition {offer.partition}"
        if cpus > offer.cpus:
            raise _too_much("cpus_per_unit", cpus, f"the {offer.cpus} CPUs per node of {on}",
                            offer.cpus, "cpus-per-unit")
        if gpus > offer.gpus:
            raise _too_much("gpus_per_unit", gpus, f"{on}'s {offer.gpus or 'no'} GPU(s) per node"
                            " (sinfo's GRES)", offer.gpus, "gpus-per-unit")
        if s.mem_gb and offer.mem_mb and s.mem_gb * 1024 > offer.mem_mb:
            raise _too_much("mem_gb", s.mem_gb, f"the {offer.mem_mb / 1024:.1f} GB per node of "
                            f"{on}", f"{offer.mem_mb / 1024:.1f}", "mem-gb")
        if offer.time_min is not None and time_min > offer.time_min:
            raise _too_much("time_min", time_min, f"the time limit of {on} ({offer.time_min} "
                            "min)", offer.time_min, "time-min")
    params = {"time": time_min, "job_name": "sslmem", "cpus_per_task": cpus,
              "array_parallelism": min(count, s.array_parallelism or count),
              # submitit's requeue signal (a checkpointed unit goes on after its time limit):
              # 90 s before the end, or a quarter of a short limit
              "signal_delay_s": min(90, time_min * 15)}
    if gpus:
        params["gpus_per_node"] = gpus
    if offer is not None and s.partition is None:
        params["partition"] = offer.partition
    for key in ("partition", "account", "qos", "constraint", "exclude"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if s.mem_gb:
        mem = float(s.mem_gb)
        params["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{int(mem * 1024)}MB"
    if s.setup:
        params["setup"] = list(s.setup)
    if s.additional:
        params["additional_parameters"] = dict(s.additional)
    return params


def sbatch_refused(err: BaseException) -> str:
    """sbatch's own words from a failed submission (submitit puts its stderr in the error)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    said = [re.sub(r"^sbatch: error:\s*", "", line) for line in lines if "error" in line]
    return "; ".join(dict.fromkeys(said or lines[-1:])) or type(err).__name__


def submit(executor, params: dict, tasks: list) -> list:
    """Submit ``tasks`` as one array; sbatch's refusal becomes one line."""
    import submitit

    said = io.StringIO()
    try:
        executor.update_parameters(**params)
        with contextlib.redirect_stderr(said), executor.batch():
            jobs = [executor.submit(task) for task in tasks]
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError,
            ValueError, OSError) as err:
        raise SSLMemError(f"sbatch refused the array: {sbatch_refused(err)}; change the "
                          "settings it names (--partition, --cpus-per-unit, --gpus-per-unit, "
                          "--mem-gb, --time-min or --slurm-config)") from None
    return jobs


def states(arrays: list[str]) -> dict[str, tuple[str, str, str]]:
    """Task id (``12_3``) -> (state, reason, start time) for the tasks of ``arrays`` that SLURM
    remembers."""
    try:
        done = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(arrays), "-o",
                               "%i|%T|%r|%S"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SSLMemError(f"squeue did not answer ({one_line(err)}); the array job(s) "
                          f"{', '.join(arrays)} may still run: `squeue -j {arrays[0]}`") from None
    if done.returncode and "Invalid job id" not in done.stderr:  # all ended long ago
        raise SSLMemError(f"squeue failed: {one_line(done.stderr)}; the array job(s) "
                          f"{', '.join(arrays)} may still run")
    found = {}
    for line in done.stdout.splitlines():
        task, state, reason, start = (line.strip().split("|") + ["", "", ""])[:4]
        found[task] = (state.split()[0] if state else "", reason, start)
    return found


def never_starts(arrays: list[str], found: dict | None = None) -> None:
    """Raise ``CannotStart`` with SLURM's reason if a task of ``arrays`` can never start."""
    found = states(arrays) if found is None else found
    for task, (state, reason, _) in sorted(found.items()):
        if state == "PENDING" and reason in NEVER:
            raise CannotStart(f"SLURM cannot start array job {task.split('_')[0]}: pending with "
                              f"reason {reason} ({NEVER[reason]})")


def cancel(arrays: list[str]) -> None:
    """``scancel`` the array jobs (their tasks stop cleanly: SIGTERM, then SIGKILL)."""
    subprocess.run(["scancel", *arrays], capture_output=True, timeout=120, check=False)


def last_error(trace: str) -> str:
    """The exception line of a failed job's traceback, without sslmem's module path."""
    lines = [line.strip() for line in trace.splitlines()]
    body = [line for line in lines if line and not set(line) <= {"-"}]
    ends = [k for k, line in enumerate(body) if line.startswith("You can check full logs")]
    body = body[:ends[0]] if ends else body
    last = body[-1] if body else trace.strip()
    return re.sub(r"^sslmem\.errors\.SSLMemError: ", "", last)


def _summary(found: dict, tasks: list[str]) -> str:
    counts: dict[str, int] = {}
    for task in tasks:
        state, reason, _ = found.get(task, ("", "", ""))
        if state in ("PENDING", "RUNNING"):
            key = state.lower() + (f" ({reason})" if state == "PENDING" and reason not in
                                   ("", "None") else "")
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {key}" for key, n in sorted(counts.items()))


def wait(submitted: list, arrays: list[str], log, start: float, running: list) -> list[str]:
    """Wait for the tasks ``submitted`` ((unit, submitit job) pairs) to end, logging each as it
    ends and what is queued when that changes; returns one line for each unit not stored
    (its name, what happened, its log). Polls ``squeue`` (every second at first, every 30 s
    after 10 minutes): no ``sacct`` needed."""
    left = {job.job_id: (unit, job) for unit, job in submitted}
    failed, said, seen_end, began, told = [], "", {}, {}, set()
    while left:
        found = states(arrays)
        never_starts(arrays, found)
        for task, (unit, job) in list(left.items()):
            state, _, since = found.get(task, ("GONE", "", ""))
            old = began.get(task)  # a requeued task pends again, or runs from a later start
            if old and (task, old) not in told and (
                    state in ("PENDING", "REQUEUED") or (state == "RUNNING" and since != old)):
                told.add((task, old))
                log(f"  {unit.name} requeued (SLURM task {task}: its time limit, or a "
                    "preemption); it resumes from its last checkpoint")
            if state == "RUNNING":
                began[task] = since
            if not job.paths.result_pickle.exists():
                if state not in ENDINGS and state != "GONE":
                    continue
                if state == "COMPLETED" and time.monotonic() - seen_end.setdefault(
                        task, time.monotonic()) < RESULT_GRACE_S:
                    continue  # the result file may reach this host late
            del left[task]
            running[:] = [u.name for u, _ in left.values()]
            failure = _ended(unit, job, state, start, log)
            if failure:
                log(f"  {failure}")
                failed.append(failure)
        now = _summary(found, list(left))
        if now and now != said:
            log(f"SLURM array job {', '.join(arrays)}: {now}")
        said = now
        if left:
            time.sleep(min(30.0, 1.0 + (time.perf_counter() - start) / 20))
    return failed


def _ended(unit, job, state: str, start: float, log) -> str | None:
    """How a task ended: None if its unit is stored (its logs then go), else one line."""
    from submitit.core.utils import pickle_load

    outcome, value = "ended", None
    if job.paths.result_pickle.exists():
        try:
            outcome, value = pickle_load(job.paths.result_pickle)
        except Exception:  # noqa: BLE001 - a truncated result file: judged by SLURM's state
            pass
    if outcome == "success":
        log(f"  {unit.name} stored in {(time.perf_counter() - start) / 60:.1f} min")
        shutil.rmtree(job.paths.folder, ignore_errors=True)
        return None
    if outcome == "error":
        return (f"{unit.name} failed on SLURM task {job.job_id}: {last_error(str(value))} "
                f"(log: {job.paths.stderr})")
    how = ENDINGS.get(state, "left the queue without a result")
    return (f"{unit.name} did not finish: SLURM task {job.job_id} {how} (state "
            f"{state.lower() if state != 'GONE' else 'unknown'}); nothing half-written, a rerun "
            f"resumes it from its last checkpoint (log: {job.paths.stderr})")
