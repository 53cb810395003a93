"""The results store: byte-reproducible, hash-checked, never deleted, read without encoders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sslmem.pipeline.experiment as E
from sslmem.errors import SSLMemError
from sslmem.pipeline import encoders, store
from sslmem.pipeline.config import Config
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.store import CorruptResult, MissingResult

TINY = dict(epochs=2, shared=64, candidate=32, independent=32, extra=32, batch_size=32,
            n_pairs=2, progress=False)


def tiny(**kw):
    return Config.tiny(**{**TINY, **kw})


def _frame(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"subset": ["candidate"] * n, "position": np.arange(n),
                         "L_f": rng.random(n).astype(np.float32),
                         "L_g": rng.random(n).astype(np.float32)})


# ---- files -------------------------------------------------------------------------------------

def test_table_round_trip_is_byte_reproducible(tmp_path):
    frame = _frame()
    back = store.write_frame(tmp_path / "a.csv.gz", frame, {"who": "test"})
    first = (tmp_path / "a.csv.gz").read_bytes()
    store.write_frame(tmp_path / "a.csv.gz", frame, {"who": "again"})
    assert (tmp_path / "a.csv.gz").read_bytes() == first  # gzip mtime 0, fixed float format
    read, meta = store.read_frame(tmp_path / "a.csv.gz")
    assert read.equals(back) and meta["rows"] == 5 and meta["provenance"] == {"who": "again"}
    assert np.allclose(read.L_f, frame.L_f, rtol=0, atol=1e-7)  # float32 round-trips


def test_tampered_table_is_corrupt_and_absent_sidecar_is_missing(tmp_path):
    path = tmp_path / "a.csv.gz"
    store.write_frame(path, _frame(), {})
    good = path.read_bytes()
    edited = _frame(seed=1)  # same shape, other values: only the hash can tell
    path.write_bytes(store.frame_bytes(edited))
    with pytest.raises(CorruptResult, match="fails its SHA-256"):
        store.read_frame(path)
    assert path.exists()  # reading never deletes
    path.write_bytes(good)
    assert store.read_frame(path) is not None
    (tmp_path / "a.json").unlink()  # a write that stopped before its commit marker
    assert store.read_frame(path) is None


def test_unreadable_result_stops_and_touches_nothing(tmp_path, monkeypatch):
    path = tmp_path / "a.csv.gz"
    store.write_frame(path, _frame(), {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(SSLMemError, match="cannot read stored result.*Permission denied.*nothing"):
        store.read_frame(path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_record_round_trip_and_tamper(tmp_path):
    path = tmp_path / "r.json"
    assert store.write_record(path, {"acc": 0.5, "n": np.int64(3).item()}, {"p": 1}) == {
        "acc": 0.5, "n": 3}
    assert store.read_record(path) == ({"acc": 0.5, "n": 3}, {"p": 1})
    record = json.loads(path.read_text())
    record["result"]["acc"] = 0.9
    path.write_text(json.dumps(record))
    with pytest.raises(CorruptResult):
        store.read_record(path)
    path.write_text('{"result": ')
    with pytest.raises(CorruptResult):
        store.read_record(path)


def test_lock_is_reentrant_within_a_process(tmp_path):
    with store.lock(tmp_path / "x.lock"):
        with store.lock(tmp_path / "x.lock"):  # would deadlock with a plain flock
            pass
    assert store.lock  # released: a new lock can be taken
    with store.lock(tmp_path / "x.lock"):
        pass


# ---- experiments read the store first ----------------------------------------------------------

def test_results_only_serves_the_store_without_any_checkpoint(tmp_runs, tmp_results):
    computed = Experiment(tiny()).scores()
    history = Experiment(tiny()).history("f")
    shutil.rmtree(tmp_runs)  # encoders gone, as on a machine that never trained
    reader = Experiment(tiny(results_only=True))
    assert reader.scores().equals(computed) and reader.history("f").equals(history)
    assert "atypicality" in computed and (computed.atypicality > 0).all()
    assert not tmp_runs.exists() or not list(tmp_runs.rglob("*.pt"))
    with pytest.raises(MissingResult, match="not in the results store.*sslmem plan"):
        Experiment(tiny(results_only=True, n_pairs=3)).scores()
    with pytest.raises(MissingResult):
        reader.encoder("f")


def test_results_only_refuses_a_corrupt_result(tmp_runs, tmp_results):
    exp = Experiment(tiny())
    exp.scores()
    path = next(exp.store_dir.glob("scores-*.csv.gz"))
    path.write_bytes(store.frame_bytes(_frame()))
    with pytest.raises(SSLMemError, match="fails its SHA-256.*git checkout"):
        Experiment(tiny(results_only=True)).scores()
    assert path.read_bytes() == store.frame_bytes(_frame())  # left as it was


def test_keys_cover_the_data(tmp_path, tmp_runs, tmp_results, shared_data):
    """A dataset edited in place gets new keys: no stale encoders or scores are served."""
    root = tmp_path / "data"
    shutil.copytree(shared_data / "cifar10-mini", root / "cifar10-mini")
    cfg = tiny(dataset="cifar10-mini", data_root=str(root), epochs=1)
    before = Experiment(cfg)
    key = before.key()
    with np.load(root / "cifar10-mini" / "train.npz") as z:
        arrays = dict(z)
    arrays["images"][0] = 255 - arrays["images"][0]  # one image edited
    with open(root / "cifar10-mini" / "train.npz", "wb") as fh:
        np.savez(fh, **arrays)
    after = Experiment(cfg)
    assert after.key() != key and after.store_dir != before.store_dir


def test_experiment_writes_nothing_into_a_read_only_store(tmp_runs, tmp_results):
    Experiment(tiny()).scores()
    before = sorted(p for p in tmp_results.rglob("*") if ".locks" not in p.parts)
    with pytest.raises(MissingResult):
        Experiment(tiny(results_only=True, n_pairs=3)).scores()
    assert sorted(p for p in tmp_results.rglob("*") if ".locks" not in p.parts) == before


# ---- the plan: units across processes ----------------------------------------------------------

def _stored(listing: str, unit: str) -> str:
    """The 'stored' column of ``unit`` in a plan listing."""
    row = [line.split() for line in listing.splitlines() if line.startswith(unit + " ")]
    assert row, listing
    return row[0][5]


def _sslmem(*args, env=None, timeout=900):
    cmd = [sys.executable, "-m", "sslmem", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow
def test_a_unit_run_in_one_process_serves_a_notebook_in_another(tmp_path, tmp_runs,
                                                                  tmp_results, shared_data):
    from sslmem.book import reproduce as rp
    from sslmem.io import computed_on, cpu_model, device_name

    done = _sslmem("plan", "--profile", "tiny", "--run", "--units", "01-simclr")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "01-simclr stored" in done.stdout
    shutil.rmtree(tmp_runs)  # no checkpoint anywhere
    listed = _sslmem("plan", "--profile", "tiny", "--units", "01-simclr")
    assert listed.returncode == 0 and _stored(listed.stdout, "01-simclr") == "yes"
    # the unit's measured wall time is kept, with the CPU model that took it
    assert f"min on {computed_on({'device': device_name('cpu'), 'cpu': cpu_model()})}" in \
        listed.stdout
    out = tmp_path / "book"
    rp.reproduce("tiny", only="01", out=out, results_only=True, log=lambda *_: None)
    assert (out / "01_definition.ipynb").exists()
    assert not list(tmp_runs.rglob("*.pt")) if tmp_runs.exists() else True


@pytest.mark.slow
def test_concurrent_units_leave_a_consistent_store(tmp_runs, tmp_results):
    """`--jobs 2` (two unit processes) and, at the same time, a third process on one of them."""
    cmd = [sys.executable, "-m", "sslmem", "plan", "--profile", "tiny", "--run", "--units"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
             for args in ([*cmd, "04-lambda-0.5,04-score", "--jobs", "2"],
                          [*cmd, "04-lambda-0.5"])]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    assert "in 2 processes" in outs[0][0]
    for path in tmp_results.rglob("*.csv.gz"):
        assert store.read_frame(path) is not None, path  # every table passes its hash
    for path in tmp_results.rglob("*.json"):
        if path.name.startswith(("probe-", "retrain-")):
            assert store.read_record(path) is not None
    assert not list(tmp_results.rglob("*.tmp"))
    listed = _sslmem("plan", "--profile", "tiny", "--units", "04-lambda-0.5,04-score")
    assert _stored(listed.stdout, "04-lambda-0.5") == _stored(listed.stdout, "04-score") == "yes"
    # one history per experiment: the duplicate process read the store, it did not fork a copy
    histories = list(tmp_results.rglob("history-f-seed0.json"))
    assert len(histories) == 2


def test_plan_lists_the_paper_units_with_costs(shared_data, monkeypatch, capsys):
    from sslmem.pipeline.plan import main

    monkeypatch.setenv("SSLMEM_DATA", str(shared_data))
    assert main(["--profile", "paper"]) == 0
    out = capsys.readouterr().out
    for unit in ("01-simclr", "06-eps-inf", "04-score", "04-lambda-0.1",
                 "rm-simclr-e800-n1000-facets-top-250-s0", "probe-simclr-e800-n1000-facets-000",
                 "ens-byol-e800-n1000-facets-m1-000"):
        assert unit in out
    rows = [line.split() for line in out.splitlines() if line[:3] in ("01-", "04-", "06-")]
    h100 = {r[0]: float(r[4]) for r in rows}  # estimated minutes on an H100
    assert all(minutes <= 10 for minutes in h100.values()), h100  # one 10-minute command each
    assert "missing:" in out


def test_plan_emits_one_command_per_missing_unit(capsys, monkeypatch, tmp_results):
    from sslmem.pipeline.plan import main

    assert main(["--profile", "tiny", "--emit-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if line.startswith("sslmem plan")]
    assert lines[0].startswith("# stage 1") and any(line.startswith("# stage 2") for line in lines)
    assert "sslmem plan --profile tiny --run --units 01-simclr" in commands
    assert any("04-lambda-0.5" in c for c in commands)
    assert len(commands) == len(set(commands)) >= 8


def test_plan_budget_stops_before_a_unit_that_does_not_fit(capsys, tmp_results):
    from sslmem.pipeline.plan import main

    assert main(["--profile", "tiny", "--run", "--budget-minutes", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "left: 01-simclr" in out and "running" not in out


def test_plan_budget_holds_for_parallel_units(capsys, tmp_results):
    """`--jobs 2` runs through submitit: the budget still keeps a unit from starting late."""
    from sslmem.pipeline.plan import main

    assert main(["--profile", "tiny", "--run", "--jobs", "2", "--budget-minutes", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "budget reached" in out and "01-simclr" in out.split("left:")[1]
    assert "started" not in out


def test_plan_bad_input_is_one_line(capsys):
    from sslmem.pipeline.plan import main

    assert main(["--profile", "tiny", "--units", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown unit(s) nope" in err and "01-simclr" in err


def test_store_stays_within_its_size_budget():
    """The committed store is small, and a full paper profile would stay under 30 MB."""
    repo = Path(__file__).resolve().parents[1]
    assert store.store_size(repo / "results") < 30e6
    # a paper-profile score table: 55,000 points (S_S 40k + S_C, S_I, S_E 5k each)
    n = 55_000
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"subset": np.repeat(["shared", "candidate", "independent", "extra"],
                                              [40000, 5000, 5000, 5000]),
                          "position": rng.permutation(50000).tolist() + list(range(5000)),
                          "index": rng.permutation(50000).tolist() + list(range(5000)),
                          "label": rng.integers(0, 10, n),
                          "L_f": rng.random(n).astype(np.float32),
                          "L_g": rng.random(n).astype(np.float32),
                          "score_se": rng.random(n).astype(np.float32) / 100,
                          "atypicality": rng.random(n).astype(np.float32)})
    per_table = len(store.frame_bytes(table))
    # chapters 1-3: 7 SSL pairs; chapter 4: the scored halves (55k rows) and 2 lambda pairs;
    # a margin of 6 more tables for later chapters (Deja vu, privacy)
    assert per_table * (7 + 3 + 6) < 30e6, per_table


def test_lesser_profile_never_replaces_a_page(tmp_path):
    import nbformat

    from sslmem.book import reproduce as rp

    page = nbformat.v4.new_notebook()
    page.metadata["sslmem"] = {"profile": "paper"}
    nbformat.write(page, tmp_path / "01_definition.ipynb")
    before = (tmp_path / "01_definition.ipynb").read_bytes()
    logs = []
    assert rp.reproduce("tiny", only="01", out=tmp_path, log=logs.append) == []
    assert (tmp_path / "01_definition.ipynb").read_bytes() == before
    assert any("kept the paper-profile page" in line for line in logs)
    assert rp.lesser("tiny", "paper") and not rp.lesser("paper", "tiny")
    assert not rp.lesser("tiny", None)


def test_cache_hit_reads_the_store(tmp_runs, tmp_results, monkeypatch):
    Experiment(tiny()).scores()

    def no_work(*a, **k):
        raise AssertionError("computed although the result was stored")

    monkeypatch.setattr(encoders, "fit", no_work)
    monkeypatch.setattr(E, "memorization_table", no_work)
    shutil.rmtree(tmp_runs)
    assert len(Experiment(tiny()).scores()) == 160


def test_a_units_store_view_follows_its_own_store(tmp_path):
    """The read-only view of a unit is its own experiment's, whatever store an earlier, freed
    experiment read: a view table keyed by ``id(exp)`` served a freed experiment's view to a new
    one that reused its id (CI: a killed unit was seen as stored, in another test's store)."""
    import gc

    from sslmem.pipeline.units import _view

    for k in range(30):  # freed objects' ids are reused at once in CPython
        root = tmp_path / f"store-{k}"
        exp = Experiment(tiny(results_root=str(root)))
        view = _view(exp, True)
        assert view.results_only and Path(view.cfg.results_root) == root, k
        assert _view(exp, True) is view  # kept, not rebuilt
        del exp, view
        gc.collect()
