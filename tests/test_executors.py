"""Plan units through submitit (sslmem.pipeline.executors): SLURM settings, and the local executor
at work.

The local executor runs the same code path as a SLURM array task (a pickled ``UnitTask`` in a
process of its own that rebuilds the plan, runs its unit under the unit's lock and writes into
the shared store), so the tests run real units of the tiny profile with it: two at once, one
that fails (a full disk, injected by tests/faults/sitecustomize.py) and is retried, one killed
and resumed from its checkpoint. Without a SLURM cluster, the SLURM side is checked down to the
sbatch file submitit would submit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

import pytest

from sslmem.errors import SSLMemError
from sslmem.pipeline import executors

FAULTS = Path(__file__).resolve().parent / "faults"
REPO = Path(__file__).resolve().parents[1]
SIMCLR, SUPERVISED = "ens-simclr-e6-000", "ens-supervised-e6-000"  # tiny units (~20 s of work)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    executors.add_arguments(parser)
    return parser.parse_args(list(argv))


CLUSTER = """
[slurm]
partition = "gpu"
time_min = 30
cpus_per_unit = 8
gpus_per_unit = 1
mem_gb = 32
array_parallelism = 4
account = "my-lab"
setup = ["module load cuda/12.4", "source /shared/sslmem/.venv/bin/activate"]
[slurm.additional]
mail-type = "END"
"""


def test_slurm_settings_from_a_file_and_options(tmp_path):
    """The config file's values, overridden by options, become the array's sbatch lines."""
    from submitit.slurm.slurm import _make_sbatch_string

    (tmp_path / "cluster.toml").write_text(CLUSTER)
    settings = executors.settings_from(_parse(
        "--executor", "slurm", "--slurm-config", str(tmp_path / "cluster.toml"),
        "--time-min", "20", "--array-parallelism", "6"))
    assert (settings.executor, settings.partition, settings.time_min) == ("slurm", "gpu", 20)
    params = settings.slurm_parameters(10)
    sbatch = _make_sbatch_string(command="python -u -m submitit.core._submit x",
                                 folder=tmp_path / "%j", map_count=10, **params)
    for line in ("--partition=gpu", "--time=20", "--cpus-per-task=8", "--gpus-per-node=1",
                 "--mem=32GB", "--account=my-lab", "--mail-type=END", "--array=0-9%6",
                 "--job-name=sslmem"):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)
    assert "module load cuda/12.4" in sbatch
    assert settings.slurm_parameters(3)["array_parallelism"] == 3  # never more than the units
    # a CPU-only plan asks for no GPU unless told to
    plain = executors.settings_from(_parse("--executor", "slurm"))
    assert "gpus_per_node" not in plain.slurm_parameters(5, cpu_only=True)
    assert plain.slurm_parameters(5)["gpus_per_node"] == 1


def test_settings_errors_are_one_line(tmp_path):
    assert executors.settings_from(_parse()) is None  # units run here, one after another
    with pytest.raises(SSLMemError, match="need --executor"):
        executors.settings_from(_parse("--partition", "gpu"))
    (tmp_path / "bad.toml").write_text("[slurm]\npartitin = 'gpu'\n")
    with pytest.raises(SSLMemError, match="unknown key.*partitin.*known:.*partition"):
        executors.settings_from(_parse("--executor", "slurm", "--slurm-config",
                                       str(tmp_path / "bad.toml")))
    (tmp_path / "broken.toml").write_text("[slurm\n")
    with pytest.raises(SSLMemError, match="not valid TOML"):
        executors.settings_from(_parse("--executor", "local", "--slurm-config",
                                       str(tmp_path / "broken.toml")))


def test_slurm_executor_without_slurm_says_what_to_do(tmp_results, capsys, monkeypatch,
                                                      tmp_path):
    """Where there is no srun (a PATH without SLURM's commands): one line pointing at the
    local executor and --emit-commands."""
    import os
    import sys

    from sslmem.pipeline.plan import main

    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    monkeypatch.setenv("PATH", str(bare))

    assert main(["--profile", "tiny", "--run", "--executor", "slurm",
                 "--units", SIMCLR]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--executor local" in err and "--emit-commands" in err


@pytest.mark.skipif(shutil.which("sinfo") is None or Path("/etc/slurm/slurm.conf").exists(),
                    reason="SLURM's client (sinfo) absent, or a cluster configured here")
def test_slurm_commands_without_a_cluster_say_so_in_one_line(tmp_results, capsys,
                                                              monkeypatch):
    """srun and sinfo installed, no cluster configured: sinfo's own last words, one line."""
    from sslmem.pipeline.plan import main

    monkeypatch.delenv("SLURM_CONF", raising=False)
    assert main(["--profile", "tiny", "--run", "--executor", "slurm", "--units", SIMCLR]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sslmem plan: error: `sinfo "), err
    assert "is the SLURM controller reachable from here" in err


@pytest.mark.parametrize("text, says", [
    ("time_min = 'thirty'", "time_min must be an int >= 1, got 'thirty'"),
    ("cpus_per_unit = -2", "cpus_per_unit must be an int >= 1, got -2"),
    ("cpus_per_unit = 2.5", "cpus_per_unit must be an int >= 1, got 2.5"),
    ("gpus_per_unit = -1", "gpus_per_unit must be an int >= 0, got -1"),
    ("mem_gb = 0", "mem_gb must be a positive finite number, got 0"),
    ("mem_gb = '32G'", "mem_gb must be a positive finite number, got '32G'"),
    ("partition = 3", "partition must be a non-empty string, got 3"),
    ("setup = 'module load cuda'", "setup must be a list of shell lines (strings), got"),
    ("additional = 3", "additional must be a table of sbatch options"),
    ("[slurm.additional]\ncpus_per_task = -2",
     "additional.cpus_per_task = -2 is not allowed: set cpus_per_unit instead"),
    ("[slurm.additional]\ntime = 5", "additional.time = 5 is not allowed: set time_min"),
    ("[slurm.additional]\noutput = 'x'", "submitit sets it for each task"),
    ("slurm = 3", "slurm must be a table ([slurm]), got 3"),
])
def test_config_values_of_the_wrong_type_are_refused_in_one_line(tmp_path, text, says):
    """A ValueError traceback (wrong type) or a negative count reaching sbatch before: one line
    naming the file, the key, the value and what is allowed."""
    path = tmp_path / "cluster.toml"
    path.write_text(text if text.startswith(("[", "slurm =")) else f"[slurm]\n{text}\n")
    with pytest.raises(SSLMemError) as err:
        executors.settings_from(_parse("--executor", "slurm", "--slurm-config", str(path)))
    assert str(err.value).startswith(f"--slurm-config {path}: ") and says in str(err.value)
    assert "\n" not in str(err.value)


def test_options_are_checked_where_they_enter(capsys):
    with pytest.raises(SystemExit):
        _parse("--executor", "slurm", "--gpus-per-unit", "-1")
    assert "expected a whole number >= 0, got '-1'" in capsys.readouterr().err
    with pytest.raises(SSLMemError, match="need --executor"):
        executors.settings_from(_parse("--leave-running"))
    assert executors.settings_from(_parse("--executor", "slurm", "--leave-running")) \
        .leave_running


def test_slurm_parameters_fit_what_the_partition_offers():
    """Defaults fit the partition (no GPU where it has none, no more CPUs or time than it
    offers); an explicit request beyond it is one line naming the value and the limit."""
    from sslmem.pipeline.slurm import Offer

    cpu_node = Offer("debug", cpus=2, mem_mb=4096, gpus=0, time_min=10)
    plain = executors.Settings(executor="slurm")
    params = plain.slurm_parameters(3, offer=cpu_node)
    assert (params["cpus_per_task"], params["time"], params["partition"]) == (2, 10, "debug")
    assert "gpus_per_node" not in params and params["signal_delay_s"] == 90
    gpu_node = Offer("gpu", cpus=32, mem_mb=None, gpus=4, time_min=None)
    assert plain.slurm_parameters(3, offer=gpu_node)["gpus_per_node"] == 1
    assert "gpus_per_node" not in plain.slurm_parameters(3, cpu_only=True, offer=gpu_node)
    assert plain.slurm_parameters(3, offer=gpu_node)["time"] == 60
    short = executors.Settings(executor="slurm", time_min=1)
    assert short.slurm_parameters(1, offer=gpu_node)["signal_delay_s"] == 15  # before the end
    for asked, says in ((dict(cpus_per_unit=4), "cpus_per_unit = 4 asks for more than the 2 "
                         "CPUs per node of partition debug; ask for at most 2"),
                        (dict(gpus_per_unit=1), "gpus_per_unit = 1 asks for more than "
                         "partition debug's no GPU(s)"),
                        (dict(mem_gb=8), "mem_gb = 8 asks for more than the 4.0 GB per node"),
                        (dict(time_min=30), "time_min = 30 asks for more than the time limit "
                         "of partition debug (10 min)")):
        with pytest.raises(SSLMemError, match=re.escape(says)):
            executors.Settings(executor="slurm", **asked).slurm_parameters(1, offer=cpu_node)


def test_what_slurm_prints_is_read():
    from sslmem.pipeline import slurm

    assert [slurm.minutes(t) for t in ("10:00", "00:10:00", "1-00:00:00", "30", "UNLIMITED",
                                       "infinite", "2:30:00")] == [10, 10, 1440, 30, None,
                                                                   None, 150]
    assert [slurm._gpus(g) for g in ("(null)", "gpu:4", "gpu:a100:8(S:0-1)",
                                     "gpu:2,mps:100")] == [0, 4, 8, 2]
    refused = RuntimeError("sbatch: error: Invalid generic resource (gres) specification\n")
    assert slurm.sbatch_refused(refused) == "Invalid generic resource (gres) specification"
    assert slurm.last_error("Traceback ...\n  File x\nsslmem.errors.SSLMemError: the data is "
                            "gone\n") == "the data is gone"


def _run(names: list[str], jobs: int = 2, **kwargs) -> tuple[list[str], Exception | None]:
    from sslmem.pipeline.plan import run_plan

    lines = []
    try:
        run_plan("tiny", run=True, names=names, jobs=jobs, log=lines.append, **kwargs)
    except SSLMemError as err:
        return lines, err
    return lines, None


def _stored(name: str) -> bool:
    from sslmem.pipeline.units import book_units, select

    return select(book_units("tiny"), [name])[0].stored()


@pytest.mark.slow
def test_two_units_at_once_one_fails_and_is_retried(tmp_runs, tmp_results, monkeypatch,
                                                    shared_data):
    """--jobs 2: both units run at once; the one whose result cannot be written (disk full) is
    reported in one line with its log kept, the other is stored; a rerun runs only the first."""
    monkeypatch.setenv("SSLMEM_DATA", str(shared_data))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAULTS), str(REPO),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("SSLMEM_FAULT_NOSPACE", "*/supervised-*/.member-*")
    lines, err = _run([SIMCLR, SUPERVISED])
    text = "\n".join(lines)
    assert "submitit's local executor in 2 processes" in text
    started = [k for k, line in enumerate(lines) if line.startswith("started ")]
    ended = [k for k, line in enumerate(lines) if line.startswith("  ")]
    assert len(started) == 2 and max(started) < min(ended), text  # at once
    assert err is not None and f"unit(s) {SUPERVISED} failed" in str(err), text
    failure = next(line for line in lines if f"{SUPERVISED} failed:" in line)
    assert "No space left on device" in failure and "Traceback" not in failure, failure
    log = Path(failure.rsplit("(log: ", 1)[1].rstrip(")"))
    assert log.exists() and "No space left" in log.read_text()  # kept for the reader
    assert f"{SIMCLR} stored" in text
    assert _stored(SIMCLR) and not _stored(SUPERVISED)
    assert not list(tmp_results.rglob("*.tmp"))  # nothing half-written
    monkeypatch.delenv("SSLMEM_FAULT_NOSPACE")
    lines, err = _run([SIMCLR, SUPERVISED])
    assert err is None, lines
    assert "running 1 unit(s)" in "\n".join(lines) and _stored(SUPERVISED)
    # a stored unit's job folder goes; the failed one's log stays for the reader
    assert list((tmp_runs / "submitit").iterdir()) == [log.parent]


@pytest.mark.slow
def test_a_killed_unit_resumes_from_its_checkpoint(tmp_runs, tmp_results, monkeypatch,
                                                    shared_data):
    """SIGKILL the unit's process once its encoder has a checkpoint: the unit is reported,
    nothing is half-written, and the rerun continues the training from that checkpoint (the
    epochs before it are the killed run's, not trained again)."""
    from sslmem.pipeline.store import read_frame
    from sslmem.train.fit import load_checkpoint

    monkeypatch.setenv("SSLMEM_DATA", str(shared_data))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAULTS), str(REPO),
                                                      os.environ.get("PYTHONPATH", "")]))
    # the unit's process kills itself the moment its first checkpoint is in place: a SIGKILL at
    # a known point, not a race between a poller and a 20-second unit on a loaded machine
    monkeypatch.setenv("SSLMEM_FAULT_KILL_AFTER", str(tmp_runs / "*" / "checkpoint.pt"))
    lines, err = _run([SIMCLR], jobs=1, executor=executors.Settings())
    assert err is not None and SIMCLR in str(err), lines
    assert any("ended without a result" in line for line in lines), lines
    assert not _stored(SIMCLR)
    assert not list(tmp_results.rglob("*.tmp"))
    (checkpoint,) = tmp_runs.glob("*/simclr-*/ens0-seed*/checkpoint.pt")
    monkeypatch.delenv("SSLMEM_FAULT_KILL_AFTER")
    at_kill = load_checkpoint(checkpoint)
    lines, err = _run([SIMCLR], jobs=1, executor=executors.Settings())
    assert err is None, lines
    assert _stored(SIMCLR)
    (history,) = tmp_results.rglob("simclr-*/history-ens0-seed0-*.csv.gz")
    frame = read_frame(history)[0]
    assert len(frame) == 6 and 1 <= at_kill["epoch"] < 6  # killed before the end
    # the epochs up to the checkpoint are the killed run's own (their measured seconds)
    done = [round(r["seconds"], 6) for r in at_kill["history"]]
    assert [round(v, 6) for v in frame["seconds"][:at_kill["epoch"]]] == done


SIGNALS = """
import os, signal, sys, threading, time
from sslmem.errors import Stopped
from sslmem.pipeline import executors
signal.signal(signal.SIGUSR2, lambda *_: (print("requeued", flush=True), os._exit(3)))
late = float(sys.argv[1])
try:
    with executors._time_limit_signals():
        if late >= 0:  # SLURM's USR2 arriving after its SIGTERM
            threading.Timer(late, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
except Stopped:
    print("stopped", flush=True)
    sys.exit(4)
"""


@pytest.mark.parametrize("late, code, said", [(0.3, 3, "requeued"), (-1, 4, "stopped")])
def test_a_sigterm_racing_ahead_of_the_time_limit_signal_still_requeues(late, code, said):
    """At a time limit SLURM sends USR2 and SIGTERM in an order it does not guarantee: a USR2
    that arrives just after the SIGTERM still requeues the task; a SIGTERM alone (scancel)
    stops it, within the grace."""
    import subprocess
    import sys
    import time

    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SIGNALS, str(late)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (code, said), done.stderr[-2000:]
    assert time.monotonic() - start < 4  # the grace is short; nothing waited out the sleep
