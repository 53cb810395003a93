"""Plan units through submitit: processes on this machine, or a SLURM job array on a cluster.

Why: the book's units (and the ensemble's tens of encoder members) are independent pieces of
work whose results go into one shared store under per-unit locks, so any set of processes can
run them. submitit is the standard Python way to run such pieces as SLURM array tasks, and its
local executor runs the same code path (pickled task, one process per unit, logs per job) on one
machine, which is what ``sslmem plan --run --jobs N`` uses and what the tests exercise.

    sslmem plan --profile tiny --run --jobs 2                      # local executor, 2 at once
    sslmem plan --profile paper --run --executor slurm --partition gpu --time-min 30 \\
        --gpus-per-unit 1 --cpus-per-unit 8 --array-parallelism 16       # one array task per unit
    sslmem plan --profile paper --run --executor slurm --slurm-config cluster.toml --wait

Each unit is one task: it rebuilds the plan, finds its unit by name and runs it (``Unit.run``:
the unit's lock, results written atomically into the shared store). Before its time limit a task
gets submitit's signal (USR2) and is requeued (``Checkpointable``, at most 3 times), resuming
from the unit's last training checkpoint; SIGTERM (``scancel``, the time limit itself, a
preemption) stops the unit cleanly, and a task that ended without storing its unit is reported
with SLURM's state; rerunning the same command runs what is still missing, from its checkpoint.
Units that depend on another (chapter 4's retrains) are a second array that starts after the
first (``afterany``: they compute a missing dependency themselves). Before submitting, the
request is fitted to the partition (:mod:`sslmem.pipeline.slurm`: no GPU where it has none, no
more CPUs, memory or time than it offers); ``--wait`` follows the tasks with ``squeue`` (no
accounting needed); an interrupted plan cancels its jobs unless ``--leave-running``.

The store, the run cache (checkpoints) and the job logs (``<runs root>/submitit/``) must be on a
filesystem every node sees. A config file (TOML) holds the cluster's settings; options given on
the command line override it::

    [slurm]
    partition = "gpu"
    time_min = 30              # per unit
    cpus_per_unit = 8
    gpus_per_unit = 1
    mem_gb = 32
    array_parallelism = 16     # array tasks running at once
    account = "my-lab"         # also: qos, constraint, exclude
    setup = ["module load cuda/12.4", "source /shared/sslmem/.venv/bin/activate"]
    [slurm.additional]         # any other sbatch option
    mail-type = "END"
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from sslmem.errors import SSLMemError, Stopped
from sslmem.io import stderr_to
from sslmem.pipeline import slurm

EXECUTORS = ("local", "slurm")
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default is 2 minutes: units take longer
POLL_S = 1.0
STOP_GRACE_S = 30.0  # how long cancelled local units may take to stop


@dataclass
class Settings:
    """Where and with what each unit runs (``None``: the executor's default)."""

    executor: str = "local"
    partition: str | None = None
    time_min: int | None = None  # per unit
    cpus_per_unit: int | None = None  # local: cores // jobs
    gpus_per_unit: int | None = None  # default: 1 with a GPU (and --device not cpu), else 0
    mem_gb: float | None = None
    array_parallelism: int | None = None  # SLURM array tasks at once (default: all)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines before each task (SLURM)
    additional: dict = field(default_factory=dict)  # other sbatch options
    folder: str | None = None  # job logs (default: <runs root>/submitit)
    wait: bool = False  # SLURM: wait for the array and report each unit
    leave_running: bool = False  # SLURM: an interrupted plan leaves its jobs queued

    def slurm_parameters(self, count: int, cpu_only: bool = False, offer=None) -> dict:
        """``SlurmExecutor.update_parameters`` of an array of ``count`` tasks, one unit each
        (with ``offer``, :class:`sslmem.pipeline.slurm.Offer`: fitted to the partition)."""
        from sslmem.pipeline.slurm import parameters

        return parameters(self, count, cpu_only, offer)


def _count(text: str) -> int:
    """argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def add_arguments(parser) -> None:
    """``sslmem plan``'s options for submitit (executor, SLURM resources, a config file)."""
    from sslmem.pipeline.validate import positive_float, positive_int

    group = parser.add_argument_group(
        "executors (submitit)", "with --run: run the units as local processes or SLURM array "
        "tasks; options override --slurm-config")
    group.add_argument("--executor", choices=EXECUTORS, default=None,
                       help="local: processes here (as --jobs); slurm: one array task per unit")
    group.add_argument("--slurm-config", default=None, metavar="FILE",
                       help="TOML file with a [slurm] table (partition, time_min, ...)")
    group.add_argument("--partition", default=None)
    group.add_argument("--time-min", type=positive_int, default=None,
                       help="time limit of each unit in minutes (SLURM; default 60)")
    group.add_argument("--cpus-per-unit", type=positive_int, default=None)
    group.add_argument("--gpus-per-unit", type=_count, default=None,
                       help="GPUs per unit (default: 1 where the partition has GPUs, else 0)")
    group.add_argument("--mem-gb", type=positive_float, default=None)
    group.add_argument("--array-parallelism", type=positive_int, default=None,
                       help="SLURM array tasks running at once (default: all)")
    group.add_argument("--wait", action="store_true",
                       help="with --executor slurm: wait for the tasks and report each unit")
    group.add_argument("--leave-running", action="store_true",
                       help="with --executor slurm: an interrupted plan (Ctrl-C, SIGTERM) leaves "
                       "its jobs queued (default: it cancels them)")


def settings_from(args) -> Settings | None:
    """The ``Settings`` the parsed options ask for (``None``: units run here, in order)."""
    given = {k: getattr(args, k) for k in ("partition", "time_min", "cpus_per_unit",
                                           "gpus_per_unit", "mem_gb", "array_parallelism")
             if getattr(args, k) is not None}
    if args.executor is None:
        if args.slurm_config or given or args.wait or args.leave_running:
            raise SSLMemError("SLURM settings need --executor slurm (or local)")
        return None
    table = slurm.load_config(args.slurm_config) if args.slurm_config else {}
    return Settings(executor=args.executor, wait=args.wait, leave_running=args.leave_running,
                    **{**table, **given})


TERM_GRACE_S = 1.0  # how long a SIGTERM waits for the USR2 that may race it at a time limit


@contextlib.contextmanager
def _time_limit_signals():
    """USR2 (submitit's: checkpoint, ``scontrol requeue``, exit) requeues the task; SIGTERM
    raises :class:`Stopped`. At a time limit SLURM sends both, as separate messages whose order
    is not guaranteed (under load the SIGTERM may come first), so a SIGTERM first waits
    :data:`TERM_GRACE_S` for a USR2: a cancel is then judged a cancel a second later, and a
    time limit is never mistaken for one."""
    requeue, requeueing = signal.getsignal(signal.SIGUSR2), []

    def on_requeue(signum, frame):
        # the SIGTERM SLURM sends with it must not stop that, nor kill the scontrol it starts:
        # ignored here, blocked in it (SIGKILL still ends both)
        requeueing.append(signum)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        requeue(signum, frame)

    def on_term(signum, _frame):
        deadline = time.monotonic() + (TERM_GRACE_S if callable(requeue) else 0)
        while not requeueing and time.monotonic() < deadline:
            time.sleep(0.02)  # a USR2 arriving now runs its handler here, nested
        if not requeueing:
            raise Stopped(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
    if callable(requeue):
        previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, on_requeue)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class UnitTask(submitit.helpers.Checkpointable):
    """One unit as a submitit task: rebuild the plan, run the unit by name, return seconds.

    ``Checkpointable``: at its time limit SLURM sends submitit's signal (USR2, ``signal_delay_s``
    before the end, or with the kill) and submitit requeues the same task, which resumes from
    the unit's last checkpoint (what is stored is never recomputed); the SIGTERM that follows
    is then ignored. Any other SIGTERM (``scancel``, a preemption; submitit would ignore it
    until SIGKILL) stops the unit cleanly, as Ctrl-C does: no result file, nothing
    half-written, its lock released.
    """

    def __init__(self, profile: str, name: str, runtime: dict, threads: int | None = None):
        self.profile, self.name, self.runtime, self.threads = profile, name, runtime, threads

    def __call__(self) -> float:
        try:
            with _time_limit_signals():
                if self.threads:
                    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                        os.environ[var] = str(self.threads)
                    import torch

                    torch.set_num_threads(self.threads)
                from sslmem.pipeline import units

                chosen = units.select(units.book_units(self.profile, **self.runtime), [self.name])
                return chosen[0].run()
        except Stopped as stop:
            print(f"sslmem: unit {self.name} stopped by {signal.Signals(stop.signum).name} "
                  "(scancel, its time limit or a preemption): nothing half-written; rerun the "
                  "plan to resume it from its last checkpoint", file=sys.stderr, flush=True)
            raise SystemExit(128 + stop.signum) from None

    def __repr__(self) -> str:
        return f"UnitTask({self.profile}, {self.name})"


def run_units(profile: str, units: list, runtime: dict, *, jobs: int = 1,
              settings: Settings | None = None, log=print,
              running: list | None = None, budget_s: float | None = None,
              estimate=None, left: list | None = None) -> tuple[float, bool]:
    """Run ``units`` through submitit; returns (wall seconds, whether they still run).

    ``running``, if given, is kept equal to the names of the local units in progress (what an
    interruption names). Local: ``jobs`` processes at once, each unit one job; the call waits
    and raises an ``SSLMemError`` naming the units that failed. ``budget_s`` (local only): no
    unit starts that would end, by ``estimate(unit)`` seconds, after the budget; the units not
    started are appended to ``left``. SLURM: one array (two when some units depend on
    others), waited for only with ``settings.wait``.
    """
    from sslmem.io import runs_root
    from sslmem.pipeline.store import results_root

    settings = settings or Settings()
    runtime = dict(runtime)  # paths absolute: a task may start in another folder
    runtime["results_root"] = str(results_root(runtime.get("results_root")))
    runtime["runs_root"] = str(runs_root(runtime.get("runs_root")))
    if runtime.get("data_root"):
        runtime["data_root"] = str(Path(runtime["data_root"]).expanduser().absolute())
    folder = Path(settings.folder or Path(runtime["runs_root"]) / "submitit") / "%j"
    needed = {d for u in units for d in u.depends}  # what others wait for goes first
    first = ([u for u in units if u.name in needed]
             + [u for u in units if not u.depends and u.name not in needed])
    then = [u for u in units if u.depends]
    if not units:
        return 0.0, False
    if settings.executor == "slurm":
        return _run_slurm(profile, first, then, runtime, settings, folder, log,
                          [] if running is None else running)
    try:
        return _run_local(profile, first + then, runtime, settings, max(1, jobs), folder,
                          log, [] if running is None else running, budget_s, estimate,
                          [] if left is None else left), False
    finally:
        with contextlib.suppress(OSError):
            folder.rmdir()  # the empty "%j" folder submitit's local controller makes


def _gpu_ids(runtime: dict) -> list[str]:
    """The GPUs this process may use (as CUDA_VISIBLE_DEVICES names them); none for --device
    cpu."""
    if str(runtime.get("device", "auto")) == "cpu":
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(k) for k in range(torch.cuda.device_count())]


def _run_local(profile: str, order: list, runtime: dict, settings: Settings, jobs: int,
               folder: Path, log, names: list, budget_s: float | None = None, estimate=None,
               left: list | None = None) -> float:
    gpus = _gpu_ids(runtime)
    per_unit = settings.gpus_per_unit if settings.gpus_per_unit is not None else min(1, len(gpus))
    threads = settings.cpus_per_unit or max(1, (os.cpu_count() or 1) // jobs)
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=settings.time_min or LOCAL_TIMEOUT_MIN)
    log(f"running {len(order)} unit(s) with submitit's local executor in {jobs} processes of "
        f"{threads} thread(s) each" + (f", {per_unit} GPU(s) each" if per_unit else "")
        + f"; logs in {folder.parent}")
    t0, queue, running, failed = time.perf_counter(), list(order), {}, []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                if budget_s is not None and estimate is not None and (
                        time.perf_counter() - t0 + estimate(queue[0]) > budget_s):
                    (left if left is not None else []).extend(queue)  # none starts late
                    queue.clear()
                    break
                slot = min(set(range(jobs)) - set(running))
                unit = queue.pop(0)
                # the slot's own GPUs (submitit's local executor would otherwise hide them all)
                mine = [gpus[(slot * per_unit + k) % len(gpus)] for k in range(per_unit)] \
                    if gpus and per_unit else []
                executor.update_parameters(setup=[
                    f"export CUDA_VISIBLE_DEVICES={shlex.quote(','.join(mine))}"] if mine else [])
                with stderr_to(folder.parent / "controllers.log"):
                    job = executor.submit(UnitTask(profile, unit.name, runtime, threads))
                running[slot] = (unit, job, time.perf_counter())
                names[:] = [u.name for u, _, _ in running.values()]
                log(f"started {unit.name}")
            time.sleep(POLL_S)
            for slot, (unit, job, start) in list(running.items()):
                if job.done():
                    del running[slot]
                    names[:] = [u.name for u, _, _ in running.values()]
                    if not _report(unit, job, start, log):
                        failed.append(unit.name)
    except BaseException:  # Ctrl-C, SIGTERM (sslmem.errors.Stopped) or a failure here
        _cancel([job for _, job, _ in running.values()], log)
        raise
    finally:
        quiet = folder.parent / "controllers.log"
        with contextlib.suppress(OSError):
            if quiet.stat().st_size == 0:
                quiet.unlink()  # nothing was said: no file
    if failed:
        raise SSLMemError(f"unit(s) {', '.join(failed)} failed; rerun the same command to "
                          "retry them (finished units are stored)")
    return time.perf_counter() - t0


def _report(unit, job, start: float, log) -> bool:
    """Log how a finished job ended; True if its unit is stored. A stored unit's logs go."""
    minutes = (time.perf_counter() - start) / 60
    try:
        job.result()
    except submitit.core.utils.FailedJobError as err:
        log(f"  {unit.name} failed: {slurm.last_error(str(err))} (log: {job.paths.stderr})")
        return False
    except submitit.core.utils.UncompletedJobError:
        log(f"  {unit.name} ended without a result (killed?) (log: {job.paths.stderr})")
        return False
    log(f"  {unit.name} stored in {minutes:.1f} min")
    with contextlib.suppress(OSError):
        shutil.rmtree(job.paths.folder)
    return True


def _cancel(jobs: list, log) -> None:
    """Stop running local jobs (SIGINT, then SIGKILL from submitit's controller) and wait."""
    if not jobs:
        return
    log(f"stopping {len(jobs)} running unit(s); rerun the same command to resume them")
    for job in jobs:
        with contextlib.suppress(Exception):
            job.cancel(check=False)
    deadline = time.monotonic() + STOP_GRACE_S
    for job in jobs:
        process = getattr(job, "_process", None)
        if process is None:
            continue
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - still running: kill the controller and its tasks
            with contextlib.suppress(OSError):
                process.kill()


def _run_slurm(profile: str, first: list, then: list, runtime: dict, settings: Settings,
               folder: Path, log, running: list) -> tuple[float, bool]:
    try:
        executor = submitit.SlurmExecutor(folder=folder)
    except RuntimeError as err:
        raise SSLMemError(f"--executor slurm: {err} (srun not found); run the units here with "
                          "--executor local, or print one command per unit for another "
                          "scheduler with --emit-commands") from None
    cpu_only = str(runtime.get("device", "auto")) == "cpu"
    offer = slurm.offer(settings.partition)  # before anything is submitted: one line if unfit
    plans = [(group, settings.slurm_parameters(len(group), cpu_only, offer))
             for group in (first, then) if group]
    if offer is not None and offer.state != "up":
        log(f"partition {offer.partition} is {offer.state}: the jobs wait until it is up")
    t0, submitted, arrays = time.perf_counter(), [], []
    try:
        for group, params in plans:
            if arrays:  # chapter 4's retrains once the scored half's array has ended
                params["additional_parameters"] = {**params.get("additional_parameters", {}),
                                                   "dependency": f"afterany:{arrays[0]}"}
            jobs = slurm.submit(executor, params, [UnitTask(profile, u.name, runtime,
                                                        params["cpus_per_task"]) for u in group])
            submitted += list(zip(group, jobs))
            arrays.append(jobs[0].job_id.split("_")[0])
            running[:] = [u.name for u, _ in submitted]
            log(f"submitted {len(group)} unit(s) as SLURM array job {arrays[-1]} "
                f"({params['cpus_per_task']} CPU(s), {params.get('gpus_per_node', 0)} GPU(s), "
                f"{params['time']} min each"
                + (f"; starts after {arrays[0]}" if len(arrays) > 1 else "")
                + f"); logs in {folder.parent}")
        if not settings.wait:
            slurm.never_starts(arrays)
            running.clear()
            log(f"`squeue -j {','.join(arrays)}` shows them; `sslmem plan --profile {profile}` "
                "lists what is stored; rerun with --run to retry units that failed")
            return time.perf_counter() - t0, True
        failed = slurm.wait(submitted, arrays, log, t0, running)
    except slurm.CannotStart as err:
        running.clear()
        if not settings.leave_running:
            slurm.cancel(arrays)
        left = (f"left queued (--leave-running; `scancel {' '.join(arrays)}` removes it)"
                if settings.leave_running else "cancelled it")
        raise SSLMemError(f"{err}; {left}") from None
    except (KeyboardInterrupt, Stopped):
        _leave_or_cancel(arrays, settings, log, running)
        raise
    if failed:
        what = failed[0] if len(failed) == 1 else f"{len(failed)} units not stored (above)"
        raise SSLMemError(f"{what}; rerun the same command to retry (finished units are "
                          "stored)")
    for array in arrays:  # every unit stored: the arrays' sbatch files (and links to them) go
        shutil.rmtree(folder.parent / array, ignore_errors=True)
    for link in folder.parent.glob(".submission_file_*.sh"):
        if link.is_symlink() and not link.exists():
            link.unlink(missing_ok=True)
    return time.perf_counter() - t0, False


def _leave_or_cancel(arrays: list[str], settings: Settings, log, running: list) -> None:
    """An interrupted plan: cancel its array jobs, or with --leave-running say where they are."""
    if not arrays:
        return
    ids = ", ".join(arrays)
    if settings.leave_running:
        running.clear()
        log(f"left SLURM array job(s) {ids} running (--leave-running): `squeue -j "
            f"{','.join(arrays)}` shows them; rerun the same command once they end")
        return
    slurm.cancel(arrays)
    log(f"cancelled SLURM array job(s) {ids} (scancel: their units stop cleanly); pass "
        "--leave-running to keep a plan's jobs when it is interrupted")
