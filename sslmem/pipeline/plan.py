"""The run plan: every unit of work the book needs for a profile, its cost, whether it is stored.

Why units: GPU time comes in slices (a lent GPU for 10-minute commands that keep nothing but the
files they send back; a cluster's job limit; a preemptible cloud VM). A unit is the smallest
piece whose output is only small files: one f/g pair trained, scored and analysed while both
encoders exist, or one chapter-4 retrain and its probes. Each unit writes its results into the
store atomically when it completes, so any sequence of machines (or a scheduler's array of
processes sharing the store) adds up to the whole book, and ``make book`` renders it anywhere.

    sslmem plan --profile paper                        # list units, cost here, stored or not
    sslmem plan --profile laptop --run --budget-minutes 9   # run what fits, in order
    sslmem plan --profile paper --emit-commands | xargs -P 4 -I{} sh -c {}   # in parallel
    sslmem plan --profile paper --run --executor slurm --partition gpu   # a SLURM job array
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from sslmem.errors import SSLMemError, one_line
from sslmem.io import computed_on, location
from sslmem.pipeline.costs import measured_rates
from sslmem.pipeline.store import (
    results_root,
)
from sslmem.pipeline.units import Unit, book_units, select


def _table(units: list[Unit], state: dict, rates: dict) -> str:
    wn = max([28, *(len(u.name) for u in units)])  # columns as wide as their longest entry
    wc = max([9, *(len(",".join(u.chapters)) for u in units)])
    lines = [f"{'unit':{wn}} {'chapters':{wc}} {'kind':8} {'est. min':>8} {'on H100':>8}  "
             "stored   measured"]
    for u in units:
        last = u.measured() if state[u.name] == "yes" else None
        when = f"{last[0]:.1f} min on {last[1]}" if last else ""
        lines.append(f"{u.name:{wn}} {','.join(u.chapters):{wc}} {u.kind:8} "
                     f"{u.estimate_s(rates) / 60:8.1f} {u.estimate_s(rates, 'cuda') / 60:8.1f}"
                     f"  {state[u.name]:7}  {when}")
    return "\n".join(lines)


def unit_command(profile: str, name: str, options: dict, *, fresh: bool = False) -> list[str]:
    """The ``sslmem`` arguments that run unit ``name`` as this plan would run it.

    The one place that decides them, for ``--emit-commands`` and for ``--jobs``: every option
    that chooses where the unit reads and writes (data, run cache, results store, a fresh
    store's staging folder via ``--fresh``) or what it runs on (device). Paths are absolute, so
    a scheduler may start the command in another folder.
    """
    args = ["plan", "--profile", profile, "--run", "--units", name]
    if options.get("device") not in (None, "auto"):
        args += ["--device", str(options["device"])]
    for key in ("data_root", "runs_root", "results_root"):
        if options.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(Path(options[key]).expanduser().absolute())]
    return args + (["--fresh"] if fresh else [])


_RUNNING: list[str] = []  # units in progress (here or in child processes), for an interruption


def resume_text() -> str:
    """How to go on after ``sslmem plan`` was interrupted (names the units it interrupted)."""
    if _RUNNING:
        return (f"interrupted unit(s): {', '.join(_RUNNING)} (stopped, nothing half-written); "
                "rerun the same command to resume them (finished units are stored, training "
                "resumes from its last checkpoint)")
    return "rerun the same command to resume (finished units are stored)"


def _fresh_root(profile: str, root: Path) -> Path:
    return root / f".fresh-{profile}"


def _swap_in(profile: str, root: Path, staging: Path, log) -> None:
    """Replace ``root/profile`` by the fresh store computed in ``staging`` (old one kept aside)."""
    new, target = staging / profile, root / profile
    old = root / f".previous-{profile}"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"fresh store of {profile} swapped in at {target} (the previous one is at {old} until "
        "the next --fresh run)")


def run_plan(profile: str, *, run: bool = False, budget_minutes: float | None = None,
             names=None, emit: bool = False, fresh: bool = False, jobs: int = 1, log=None,
             executor=None, **runtime) -> int:
    """List (and with ``run``, execute) the units of ``profile``; returns an exit code.

    ``jobs > 1`` or ``executor`` (:class:`sslmem.pipeline.executors.Settings`): the missing units
    run through submitit, as local processes or SLURM array tasks
    (:mod:`sslmem.pipeline.executors`). Listing only reads results: where the data is absent,
    the store's data cards stand in for it (:mod:`sslmem.pipeline.datacard`).
    """
    log = log or (lambda *a: print(*a, flush=True))
    options = dict(runtime)  # as given: what a unit's own command repeats
    root = results_root(runtime.get("results_root"))
    if fresh:
        runtime["results_root"] = str(_fresh_root(profile, root))
    listing = not run and not emit  # reads the store only: data cards may stand in
    units = book_units(profile, **({**runtime, "results_only": True} if listing else runtime))
    chosen = select(units, names)
    rates = measured_rates(units)
    state = {u.name: u.state() for u in chosen}
    stored = {name: value == "yes" for name, value in state.items()}
    missing = [u for u in chosen if not stored[u.name]]
    damaged = [u.name for u in chosen if state[u.name] == "damaged"]
    what = "unit(s) asked for" if names else "unit(s)"
    device = computed_on(location(chosen[0].exp.device)) if chosen else "?"
    if emit:
        for stage, group in ((1, [u for u in missing if not u.depends]),
                             (2, [u for u in missing if u.depends])):
            if group:
                log(f"# stage {stage}: {len(group)} independent unit(s)"
                    + ("" if stage == 1 else " (each waits for its stage-1 dependency)"))
            for u in group:
                log(shlex.join(["sslmem", *unit_command(profile, u.name, options, fresh=fresh)]))
        return 0
    log(f"profile {profile}: {len(chosen)} {what}, {sum(stored.values())} stored; estimates "
        f"for {device}{' (fresh store: ' + runtime['results_root'] + ')' if fresh else ''}")
    log(_table(chosen, state, rates))
    if damaged:
        log(f"damaged: {', '.join(damaged)} (a stored result fails its hash; --run recomputes "
            "it)")
    if not run:
        total = sum(u.estimate_s(rates) for u in missing) / 60
        if missing:
            log(f"missing: {len(missing)} of the {len(chosen)} {what}, about {total:.0f} min "
                f"here; run them with `sslmem plan --profile {profile} --run"
                f"{' --units ' + ','.join(u.name for u in missing) if names else ''}`")
        elif names:
            log(f"every unit asked for is stored ({len(chosen)} of the profile's {len(units)}; "
                f"`sslmem plan --profile {profile}` lists them all)")
        else:
            log("every unit is stored: `make book` renders the book from them")
        return 0
    budget = None if budget_minutes is None else budget_minutes * 60
    spent = 0.0
    left = []
    if jobs > 1 or executor is not None:
        from sslmem.pipeline.executors import run_units

        spent, queued = run_units(profile, missing, runtime, jobs=jobs, settings=executor,
                                  log=log, running=_RUNNING, budget_s=budget,
                                  estimate=lambda u: u.estimate_s(rates), left=left)
        if queued:  # SLURM array tasks not waited for: the store tells when they are done
            return 0
    for u in missing if jobs <= 1 and executor is None else []:
        estimate = u.estimate_s(rates)
        if budget is not None and (left or spent + estimate > budget):
            left.append(u)
            continue
        log(f"running {u.name} (estimate {estimate / 60:.1f} min) ...")
        _RUNNING[:] = [u.name]
        seconds = u.run()
        _RUNNING.clear()
        spent += seconds
        log(f"  {u.name} stored in {seconds / 60:.1f} min")
    if left:
        log(f"budget reached after {spent / 60:.1f} min; left: "
            + ", ".join(u.name for u in left))
    else:
        log(f"all {len(chosen)} {what} stored ({spent / 60:.1f} min this run)")
        if fresh and names is None:
            _swap_in(profile, root, Path(runtime["results_root"]), log)
    return 0


def main(argv=None) -> int:
    from sslmem.pipeline import executors
    from sslmem.pipeline.config import FIELDS, PROFILES
    from sslmem.pipeline.validate import (
        OneLineParser,
        check_fields,
        name_list,
        positive_float,
        positive_int,
    )

    parser = OneLineParser(
        prog="sslmem plan", description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Results go to the store ($SSLMEM_RESULTS, default <repo>/results); encoders to "
        "$SSLMEM_RUNS.")
    parser.add_argument("--profile", required=True, choices=PROFILES)
    parser.add_argument("--run", action="store_true", help="execute the missing units in order")
    parser.add_argument("--budget-minutes", type=positive_float, default=None,
                        help="with --run: stop before the first unit that would not fit")
    parser.add_argument("--units", type=name_list, default=None,
                        help="comma-separated unit names (default: all)")
    parser.add_argument("--emit-commands", action="store_true",
                        help="print one independent command per missing unit (for a scheduler)")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="with --run: units run in this many processes at once (submitit's "
                        "local executor; each with cores/jobs threads; on a CPU, --jobs 2 uses "
                        "two cores best)")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every unit into a fresh store, swapped in when complete")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-root", default=None)
    parser.add_argument("--results-root", default=None)
    executors.add_arguments(parser)
    args = parser.parse_args(argv)
    runtime = {k: v for k, v in dict(device=args.device, data_root=args.data_root,
                                     runs_root=args.runs_root,
                                     results_root=args.results_root).items() if v is not None}
    try:
        runtime = check_fields(runtime, FIELDS)  # one line for a bad --device, before any data
        return run_plan(args.profile, run=args.run, budget_minutes=args.budget_minutes,
                        names=args.units, emit=args.emit_commands, fresh=args.fresh,
                        jobs=args.jobs, executor=executors.settings_from(args), **runtime)
    except SSLMemError as err:
        print(f"sslmem plan: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the operating system refused a file or a command
        print(f"sslmem plan: error: {type(err).__name__}: {one_line(err)}; fix the path or its "
              "permissions, then rerun the same command (finished units are stored)",
              file=sys.stderr)
        return 2
    except Exception as err:  # a bug: one line, the traceback on request
        if os.environ.get("SSLMEM_DEBUG"):
            raise
        print(f"sslmem plan: error: unexpected {type(err).__name__}: {one_line(err)} (a bug in "
              "sslmem: rerun with SSLMEM_DEBUG=1 for the traceback and report it)",
              file=sys.stderr)
        return 1
    # Ctrl-C and signals: ``sslmem.errors.command_line`` prints one line with ``resume_text``
