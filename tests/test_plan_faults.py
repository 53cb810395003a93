"""The run plan on other machines and under faults (issue 21): emitted commands, preemption,
damaged results, what a listing reads, and measured costs.

One tiny unit (``UNIT``) is computed once for the module; each test copies its store or its run
cache (with the encoders in the run cache, a unit only scores: seconds).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sslmem.pipeline import store

REPO = Path(__file__).resolve().parents[1]
UNIT = "04-lambda-0.5"  # a cheap pair unit of the tiny profile, which no unit waits for
OTHER = "06-eps-8"


def sslmem(*args, env=None, cwd=None, popen=False, timeout=600):
    """``python -m sslmem args`` in a fresh process, importing this checkout."""
    full = {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **(env or {})}
    cmd = [sys.executable, "-m", "sslmem", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full, cwd=cwd)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full, cwd=cwd)


def row(listing: str, unit: str) -> list[str]:
    """The row of ``unit`` in a plan listing, split in words."""
    found = [line.split() for line in listing.splitlines() if line.startswith(unit + " ")]
    assert found, listing
    return found[0]


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """(runs, results) holding ``UNIT`` of the tiny profile, computed once."""
    from sslmem.pipeline.plan import run_plan

    base = tmp_path_factory.mktemp("plan")
    runtime = dict(runs_root=str(base / "runs"), results_root=str(base / "results"))
    assert run_plan("tiny", run=True, names=UNIT, log=lambda *_: None, **runtime) == 0
    return base / "runs", base / "results"


def _listing(capsys, *args) -> str:
    from sslmem.pipeline.plan import main

    assert main(["--profile", "tiny", *map(str, args)]) == 0
    return capsys.readouterr().out


# ---- 1. emitted commands run elsewhere with the options they were emitted with -----------------

def test_emitted_commands_carry_every_option_through_xargs(computed, tmp_path):
    runs, _ = computed
    options = {"--results-root": tmp_path / "store", "--runs-root": tmp_path / "runs",
               "--data-root": tmp_path / "data", "--device": "cpu"}
    shutil.copytree(runs, options["--runs-root"])  # the encoders: the command only scores
    options["--data-root"].mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrong = {"SSLMEM_RESULTS": str(tmp_path / "env-results"),
             "SSLMEM_RUNS": str(tmp_path / "env-runs"), "SSLMEM_DATA": str(tmp_path / "env-data")}
    args = [a for pair in options.items() for a in pair]
    emitted = sslmem("plan", "--profile", "tiny", "--emit-commands", "--units", UNIT, *args,
                     env=wrong)
    assert emitted.returncode == 0, emitted.stderr[-2000:]
    commands = [line for line in emitted.stdout.splitlines() if line.startswith("sslmem ")]
    assert len(commands) == 1, emitted.stdout
    for option, value in options.items():
        assert f"{option} {value}" in commands[0], commands[0]
    # a scheduler's way: `sslmem` on the PATH, started from another folder, in parallel
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sslmem").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sslmem "$@"\n')
    (bin_dir / "sslmem").chmod(0o755)
    env = {**os.environ, **wrong, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["xargs", "-P", "2", "-I{}", "sh", "-c", "{}"], input="\n".join(commands),
                          capture_output=True, text=True, cwd=elsewhere, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = sslmem("plan", "--profile", "tiny", "--units", UNIT, *args)
    assert row(listed.stdout, UNIT)[5] == "yes", listed.stdout
    assert list((options["--results-root"] / "tiny").rglob("scores-*.csv.gz"))
    assert not any(Path(p).exists() for p in wrong.values())  # nothing where the env points
    assert not list(elsewhere.iterdir())


def test_parallel_units_run_the_emitted_command(monkeypatch, tmp_path):
    """A unit's command repeats every option that decides where and how it runs."""
    from sslmem.pipeline import plan

    options = dict(device="cpu", results_root=str(tmp_path / "r"), runs_root="runs",
                   data_root=None)
    args = plan.unit_command("tiny", UNIT, options, fresh=True)
    assert args[:6] == ["plan", "--profile", "tiny", "--run", "--units", UNIT]
    assert args[6:] == ["--device", "cpu", "--runs-root", str(Path("runs").absolute()),
                        "--results-root", str(tmp_path / "r"), "--fresh"]


# ---- 2. preemption: stopping the parent stops its unit processes -------------------------------

def _children(pid: int) -> list[int]:
    """The unit processes (``sslmem plan ... --units``) started by process ``pid``."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for kid in kids:
        try:
            cmd = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--units" in cmd or any(b"submitit" in part for part in cmd):
            out.append(int(kid))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_sigterm_to_parallel_plan_stops_its_children_and_names_the_units(tmp_runs, tmp_results):
    proc = sslmem("plan", "--profile", "tiny", "--run", "--jobs", "2", "--units",
                  f"{UNIT},{OTHER}", popen=True)
    kids: list[int] = []
    try:
        t0 = time.monotonic()
        while len(kids) < 2 and time.monotonic() - t0 < 180 and proc.poll() is None:
            kids = _children(proc.pid)
            time.sleep(0.2)
        assert len(kids) == 2, proc.communicate(timeout=60)
        time.sleep(3)  # the units are under way
        proc.send_signal(signal.SIGTERM)  # what `timeout`, a scheduler or a preemption sends
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, err[-2000:]
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
        for word in (UNIT, OTHER, "SIGTERM", "rerun"):
            assert word in lines[0], lines[0]
        assert not [k for k in kids if _alive(k)], "unit processes outlived the plan"
        before = {p: p.stat().st_mtime_ns for p in tmp_results.rglob("*") if p.is_file()}
        time.sleep(2)
        assert before == {p: p.stat().st_mtime_ns for p in tmp_results.rglob("*")
                          if p.is_file()}  # nobody writes on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for kid in kids:  # never leave orphans behind, even when the test fails
            if _alive(kid):
                os.kill(kid, signal.SIGKILL)


# ---- 3. a damaged stored result: listed as damaged, recomputed by --run -----------------------

def test_damaged_result_is_listed_and_recomputed_with_one_warning(computed, tmp_path, capsys):
    runs, results = computed
    shutil.copytree(runs, tmp_path / "runs")
    shutil.copytree(results, tmp_path / "results")
    (table,) = (tmp_path / "results").rglob("scores-*.csv.gz")
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    table.write_bytes(bytes(data))
    roots = ["--runs-root", tmp_path / "runs", "--results-root", tmp_path / "results"]
    listed = sslmem("plan", "--profile", "tiny", *roots)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert row(listed.stdout, UNIT)[5] == "damaged"
    assert listed.stderr == ""
    done = sslmem("plan", "--profile", "tiny", "--run", "--units", UNIT, *roots)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ": warning: " in lines[0], done.stderr[-2000:]
    assert "recomputing" in lines[0] and table.name in lines[0]
    assert "SSLMEM_RESULTS_ONLY" not in done.stdout + done.stderr
    assert store.read_frame(table) is not None  # whole again: it passes its hash


def test_damaged_result_message_names_results_only_only_when_it_is_set(computed, tmp_path,
                                                                     monkeypatch):
    from sslmem.errors import SSLMemError
    from sslmem.pipeline.chapters import alignment

    _, results = computed
    shutil.copytree(results, tmp_path / "results")
    (table,) = (tmp_path / "results").rglob("scores-*.csv.gz")
    table.write_bytes(table.read_bytes()[:-20] + bytes(20))
    root = str(tmp_path / "results")
    exp = alignment("tiny", results_root=root, results_only=True).lambdas[0.5]
    with pytest.raises(store.CorruptResult) as err:
        exp.scores()
    assert "SSLMEM_RESULTS_ONLY" not in str(err.value) and "sslmem plan" in str(err.value)
    monkeypatch.setenv("SSLMEM_RESULTS_ONLY", "1")
    exp = alignment("tiny", results_root=root).lambdas[0.5]
    with pytest.raises(SSLMemError, match="unset SSLMEM_RESULTS_ONLY"):
        exp.scores()


# ---- 4. the closing sentence speaks of the units asked for ------------------------------------

def test_listing_some_units_speaks_of_those_units(computed, capsys):
    runs, results = computed
    out = _listing(capsys, "--units", UNIT, "--runs-root", runs, "--results-root", results)
    assert "make book" not in out and "every unit is stored" not in out
    assert "every unit asked for is stored" in out
    out = _listing(capsys, "--units", f"{UNIT},{OTHER}", "--runs-root", runs,
                   "--results-root", results)
    assert "missing: 1 of the 2 unit(s) asked for" in out and f"--units {OTHER}" in out


# ---- 5. measured cost: from the work, not from a cache hit ------------------------------------

def test_measured_cost_counts_training_served_from_the_run_cache(computed, tmp_path):
    from sslmem.pipeline.plan import run_plan
    from sslmem.pipeline.units import book_units, select

    runs, results = computed
    shutil.copytree(runs, tmp_path / "runs")  # the encoders exist: nothing is trained
    runtime = dict(runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"))
    run_plan("tiny", run=True, names=UNIT, log=lambda *_: None, **runtime)
    (unit,) = select(book_units("tiny", **runtime), UNIT)
    trained = sum(store.read_frame(p)[0]["seconds"].sum()
                  for p in (tmp_path / "results").rglob("history-*.csv.gz"))
    assert trained > 0
    minutes, _ = unit.measured()
    assert minutes * 60 >= trained  # before: the wall time of the cache hits, about 0
    (first,) = select(book_units("tiny", runs_root=str(runs), results_root=str(results)), UNIT)
    assert minutes <= first.measured()[0] * 1.5  # and no more than the unit took computed


def test_cost_estimates_follow_this_cpus_median_rate(computed, tmp_path):
    """The plan's estimates use the rates measured on this device *and CPU model* (hosts of one
    size differ ~5x), as the median over encoders: one encoder trained beside other work does
    not drag the estimate with it; another CPU's rate is never taken for this one's."""
    from sslmem.io import cpu_model, device_name
    from sslmem.pipeline.costs import DP_SLOWDOWN, _rate, measured_rates
    from sslmem.pipeline.units import book_units, select

    _, results = computed
    shutil.copytree(results, tmp_path / "results")
    (unit,) = select(book_units("tiny", results_root=str(tmp_path / "results")), UNIT)
    histories = sorted(unit.exp.store_dir.glob("history-*.csv.gz"))
    frame, meta = store.read_frame(histories[0])
    for path in histories:
        path.unlink()
    for seed, slowdown in ((90, 1), (91, 1), (92, 20)):  # the last trained beside other work
        slowed = frame.assign(seconds=frame["seconds"] * slowdown)
        store.write_frame(unit.exp.store_dir / f"history-f-seed{seed}.csv.gz", slowed,
                          meta["provenance"])
    rates = measured_rates([unit])
    (key,) = rates
    assert key[:2] == (device_name("cpu"), cpu_model())
    alone = len(unit.exp.split.f_train) * len(frame) / frame["seconds"].sum()
    assert rates[key] == pytest.approx(alone)  # pooled seconds would give 3/22 of it
    exp, (device, cpu, *rest) = unit.exp, key
    assert _rate(exp, {(device, "Another CPU (AMX)", *rest): 1e6}) == _rate(exp, {})
    assert _rate(exp, {(device, None, *rest): 123.0}) == 123.0  # recorded before the CPU was
    assert _rate(exp, {(device, None, *rest): 123.0, (device, cpu, *rest): 7.0}) == 7.0
    # a rate measured under DP-SGD stands for this non-private encoder only through the
    # slowdown, and an exact (non-private) measurement comes first
    assert rest[-1] is False
    private = (device, cpu, *rest[:-1], True)
    assert _rate(exp, {private: 7.0}) == pytest.approx(7.0 * DP_SLOWDOWN["cpu"])
    assert _rate(exp, {private: 7.0, (device, cpu, *rest): 5.0}) == 5.0



def test_int8_scoring_is_cheaper_in_the_cpu_estimate_only():
    """``--score-precision int8`` shortens a unit's CPU estimate (its scoring part), not its
    H100 estimate (the int8 path is CPU-only)."""
    from sslmem.pipeline.units import book_units, select

    fp32 = next(u for u in book_units("tiny") if u.scored)
    (int8,) = select(book_units("tiny", score_precision="int8"), [fp32.name])
    assert int8.estimate_s() < fp32.estimate_s()
    assert int8.estimate_s(kind="cuda") == fp32.estimate_s(kind="cuda")

# ---- 6. listing reads the store, not the data -------------------------------------------------

def test_listing_decompresses_no_dataset(shared_data, tmp_path, monkeypatch, capsys):
    import sslmem.train.datastore as D

    read = []
    original = D._read_npz
    monkeypatch.setattr(D, "_read_npz", lambda path, *a: read.append(path) or original(path, *a))
    out = _listing(capsys, "--data-root", shared_data, "--runs-root", tmp_path / "runs",
                   "--results-root", tmp_path / "results")
    assert "rm-simclr-e6-top-16-s0" in out and "probe-simclr-e6-align-001" in out
    assert read == []  # the tiny profile trains on digits; MNIST & co. are only probed
    assert not (tmp_path / "runs").exists()
