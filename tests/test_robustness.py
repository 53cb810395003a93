"""Nothing stale, nothing lost, no tracebacks: the CLI, ``sslmem plan`` and the runner under bad
input and faults, as a user meets them.

Every case checks what a user sees (the exit status and exactly one readable line on stderr,
never a traceback) and what is left behind (nothing half-written, nothing deleted that was not
proven corrupt, no stale result served). Bad input is cheap to check in-process (``main(argv)``
prints what the process would); faults that only a process shows (signals, unreadable files,
full disks) run ``python -m sslmem`` in a subprocess, with ``tests/faults/sitecustomize.py``
making the operating system refuse chosen files (the tests run as root).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sslmem.pipeline.experiment as E
from sslmem.errors import SSLMemError
from sslmem.pipeline import store
from sslmem.pipeline.config import Config
from sslmem.pipeline.experiment import Experiment
from sslmem.train.data import load_dataset

REPO = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).resolve().parent / "faults"
TINY = dict(epochs=1, shared=64, candidate=32, independent=32, extra=32, batch_size=32,
            n_pairs=2, progress=False)
SMALL = ["--profile", "tiny", "--no-progress", "--epochs", "1", "--batch-size", "32",
         "--n-pairs", "2", "--set", "shared=64", "--set", "candidate=32", "--set",
         "independent=32", "--set", "extra=32"]


def tiny(**kw) -> Config:
    return Config.tiny(**{**TINY, **kw})


def files(root: Path) -> list[str]:
    """Every file under ``root`` (relative, sorted); lock files are bookkeeping, not results."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(".lock"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in files(root)}


def one_line(err: str, *words: str, warnings: int = 0) -> str:
    """The single error line of ``err`` (besides ``warnings`` one-line warnings)."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    warned = [line for line in lines if ": warning: " in line]
    errors = [line for line in lines if ": warning: " not in line]
    assert len(warned) == warnings and len(errors) == 1, err[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def cli(argv, capsys) -> tuple[int, str]:
    """``sslmem argv`` in this process: (exit status, stderr)."""
    from sslmem.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def runner(argv, capsys) -> tuple[int, str]:
    """``python -m sslmem.book.reproduce argv`` in this process: (exit status, stderr)."""
    from sslmem.book import reproduce as rp

    try:
        code = rp.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def sslmem(*args, env=None, timeout=300, popen=False, module="sslmem"):
    """``python -m sslmem args`` as a user runs it (with the fault shim on the path)."""
    path = os.pathsep.join([str(FAULTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    full = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **(env or {})}
    cmd = [sys.executable, "-m", module, *args]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny experiment trained and scored once: (runs, results) to copy and damage."""
    base = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSLMEM_RUNS", str(base / "runs"))
        patch.setenv("SSLMEM_RESULTS", str(base / "results"))
        Experiment(tiny()).scores()
    return base / "runs", base / "results"


@pytest.fixture
def copied(trained, tmp_runs, tmp_results):
    """This test's runs and results roots, holding a copy of the trained experiment."""
    shutil.copytree(trained[0], tmp_runs)
    shutil.copytree(trained[1], tmp_results)
    return tmp_runs, tmp_results


# ---- 3. wrong input: one line naming the field, the value and what is allowed -----------------

BAD_CLI = [
    (["--epochs", "-3"], "epochs"),
    (["--epochs", "abc"], "--epochs"),
    (["--batch-size", "0"], "batch_size"),
    (["--seeds", "a,b"], "seeds"),
    (["--seeds", "-1"], "seeds"),
    (["--n-pairs", "0"], "n_pairs"),
    (["--device", "gpu"], "device"),
    (["--method", "moco"], "method"),
    (["--dataset", "folder:"], "folder"),
    (["--set", "lr=abc"], "lr"),
    (["--set", "lr=-0.1"], "lr"),
    (["--set", "lr=1e999"], "lr"),
    (["--set", "n_pairs=2.5"], "n_pairs"),
    (["--set", "align_lambda=x"], "align_lambda"),
    (["--set", "align_lambda=-1"], "align_lambda"),
    (["--set", "align_start_epoch=-2"], "align_start_epoch"),
    (["--set", "checkpoint_every=0"], "checkpoint_every"),
    (["--set", "results_only=yes"], "results_only"),
    (["--set", "epochs=True"], "epochs"),
    (["--set", "shared=-5"], "shared"),
    (["--set", "candidate=1.5"], "candidate"),
    (["--set", "candidate=0"], "candidate"),
    (["--set", "seeds=[]"], "seeds"),
    (["--set", "seeds=[0, 0]"], "seeds"),
    (["--set", "optimizer=adamx"], "optimizer"),
    (["--set", "backbone=resnet7"], "backbone"),
    (["--set", "image_size=0"], "image_size"),
    (["--set", "method='mae'", "--set", "backbone='vit_tiny'", "--set", "patch_size=5"],
     "patch_size"),
    (["--set", "compile=maybe"], "compile"),
    (["--set", "warmup_epochs=-1"], "warmup_epochs"),
    (["--set", "weight_decay=-1e-4"], "weight_decay"),
    (["--set", "split_protocol=paperish"], "split_protocol"),
    (["--set", "results_only=1"], "results_only"),
    (["--set", "runs_root=3"], "runs_root"),
]


@pytest.mark.parametrize("args,field", BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_cli_bad_value_is_one_line_and_writes_nothing(args, field, capsys, tmp_runs, tmp_results):
    code, err = cli(["train", *SMALL, *args], capsys)
    assert code == 2
    one_line(err, field)
    assert files(tmp_runs) == [] and files(tmp_results) == []  # no run folder left behind


def test_cli_bad_downstream_dataset_is_refused_before_training(capsys, tmp_runs, tmp_results):
    code, err = cli(["probe", *SMALL, "--downstream", "cifar11"], capsys)
    assert code == 2
    one_line(err, "cifar11")
    assert files(tmp_runs) == [] and files(tmp_results) == []


def test_cli_bad_value_in_a_process(tmp_runs, tmp_results):
    """The same at process level: the type error used to surface from the training loop."""
    done = sslmem("score", *SMALL, "--set", "lr='fast'")
    assert done.returncode == 2
    one_line(done.stderr, "lr", "'fast'")
    assert files(tmp_runs) == [] and files(tmp_results) == []


def test_config_fields_are_checked_at_construction():
    for bad in (dict(epochs=2.5), dict(lr="1e-3"), dict(progress="yes"), dict(seeds=(0, -1)),
                dict(n_pairs=True), dict(score_seed=-1), dict(extra=0.0)):
        with pytest.raises(SSLMemError, match=next(iter(bad))):
            Config.tiny(**bad)
    ok = Config.tiny(lr=1, align_lambda=0, seeds=[1, 2], shared=0, candidate=0.5)
    assert isinstance(ok.lr, float) and isinstance(ok.align_lambda, float)
    assert ok.seeds == (1, 2) and ok.key() == Config.tiny(lr=1.0, align_lambda=0.0, seeds=(1, 2),
                                                          shared=0, candidate=0.5).key()


BAD_PLAN = [
    (["--budget-minutes", "-1"], "--budget-minutes"),
    (["--budget-minutes", "soon"], "--budget-minutes"),
    (["--units", ","], "--units"),
    (["--units", "nope"], "nope"),
    (["--device", "gpu"], "device"),
]


@pytest.mark.parametrize("args,word", BAD_PLAN, ids=[" ".join(a) for a, _ in BAD_PLAN])
def test_plan_bad_option_is_one_line(args, word, capsys, tmp_runs, tmp_results):
    code, err = cli(["plan", "--profile", "tiny", *args], capsys)
    assert code == 2
    one_line(err, word)
    assert files(tmp_results) == []


def test_plan_unknown_profile_is_one_line(capsys):
    code, err = cli(["plan", "--profile", "huge"], capsys)
    assert code == 2
    one_line(err, "huge")


def _params(tmp_path, text: str) -> str:
    path = tmp_path / "p.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


BAD_RUNNER = [
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-5"], "--timeout"),
    (["--timeout", "soon"], "--timeout"),
    (["--only", ","], "--only"),
    (["--only", "09"], "09"),
    (["--methods", "moco"], "moco"),
    (["--dataset", "cifar11"], "cifar11"),
    (["--params", "{missing}"], "not found"),
    (["--params", "{yml}", "a: [1,"], "cannot parse"),
    (["--params", "{yml}", "01:\n  epochs: abc\n"], "epochs"),  # 01 unquoted: the int 1
    (["--params", "{yml}", "'01':\n  epochs: -1\n"], "epochs"),
    (["--params", "{yml}", "'01':\n  seeds: [a]\n"], "seeds"),
    (["--params", "{yml}", "'01':\n  sizes: {candidate: 2.0}\n"], "candidate"),
    (["--params", "{yml}", "'01':\n  n_pairz: 3\n"], "n_pairz"),
    (["--params", "{yml}", "09:\n  epochs: 1\n"], "09"),
    (["--params", "{yml}", "device: 7\n"], "device"),
    (["--out", "{file}"], "not a folder"),
]


@pytest.mark.parametrize("args,word", BAD_RUNNER, ids=[" ".join(a[:2]) + (" " + a[2].split(
    "\n")[0] if len(a) > 2 else "") for a, _ in BAD_RUNNER])
def test_runner_bad_option_is_one_line_and_keeps_the_book(args, word, capsys, tmp_path):
    out = tmp_path / "book"
    out.mkdir()
    (out / "01_definition.ipynb").write_text('{"sentinel": "last good page"}')
    (tmp_path / "a-file").write_text("x")
    argv = list(args)
    if argv[0] == "--params":
        argv[1] = (str(tmp_path / "missing.yml") if argv[1] == "{missing}"
                   else _params(tmp_path, argv.pop(2)))
    if argv[0] == "--out":
        argv[1] = str(tmp_path / "a-file")
    else:
        argv += ["--out", str(out)]
    t0 = time.perf_counter()
    code, err = runner(["--profile", "tiny", "--only", "01", *argv]
                       if "--only" not in argv else ["--profile", "tiny", *argv], capsys)
    assert code == (2 if argv[0] in ("--timeout", "--only") and argv[1] != "09" else 1)
    one_line(err, word)
    assert (out / "01_definition.ipynb").read_text() == '{"sentinel": "last good page"}'
    assert sorted(p.name for p in out.iterdir()) == ["01_definition.ipynb"]
    assert time.perf_counter() - t0 < 30  # refused before any kernel starts


# ---- 2. unreadable is not corrupt, corrupt is not gone -----------------------------------------

def test_unreadable_store_stops_and_deletes_nothing(copied):
    runs, results = copied
    before = snapshot(results)
    done = sslmem("score", *SMALL, env={"SSLMEM_FAULT_UNREADABLE": str(results)})
    assert done.returncode == 2
    one_line(done.stderr, "cannot read", "Permission denied")
    assert snapshot(results) == before


def test_unreadable_checkpoint_is_not_called_corrupt(copied):
    runs, results = copied
    for path in results.rglob("scores-*"):
        path.unlink()  # the scores must be recomputed: the encoders are needed
    before = snapshot(runs)
    done = sslmem("score", *SMALL, env={"SSLMEM_FAULT_UNREADABLE": "*/checkpoint.pt"})
    assert done.returncode == 2
    line = one_line(done.stderr, "cannot read", "Permission denied")
    assert "corrupt" not in line and "delete" not in line
    assert snapshot(runs) == before


def test_unreadable_data_cache_is_kept(tmp_path, tmp_runs, monkeypatch):
    root = _fake_dataset(tmp_path / "data")
    first = load_dataset("cifar10", data_root=root)
    (cache,) = (tmp_runs / "_data").rglob("*.npy")
    before = snapshot(tmp_runs)
    done = subprocess.run(
        [sys.executable, "-c", "from sslmem.train.data import load_dataset; import sys; "
         f"load_dataset('cifar10', data_root={str(root)!r})"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{FAULTS}{os.pathsep}{REPO}",
             "SSLMEM_FAULT_UNREADABLE": str(cache)})
    assert done.returncode != 0 and "cannot read" in done.stderr
    assert snapshot(tmp_runs) == before  # not deleted as "damaged"
    assert torch.equal(load_dataset("cifar10", data_root=root).images, first.images)


def test_unreadable_dataset_is_not_called_corrupt(tmp_path, tmp_runs):
    root = _fake_dataset(tmp_path / "data")
    done = sslmem("score", *SMALL, "--dataset", "cifar10", "--data-root", str(root),
                  env={"SSLMEM_FAULT_UNREADABLE": str(root / "cifar10")})
    assert done.returncode == 2
    line = one_line(done.stderr, "cannot read", "Permission denied")
    assert "corrupt" not in line and "delete" not in line
    assert files(tmp_runs) == []


def test_read_only_runs_root_is_one_line(tmp_runs, tmp_results):
    tmp_runs.mkdir()
    with _immutable(tmp_runs):
        done = sslmem("train", *SMALL)
    assert done.returncode == 2
    one_line(done.stderr, "cannot", str(tmp_runs))
    assert files(tmp_runs) == [] and files(tmp_results) == []


def test_read_only_results_root_is_one_line(copied):
    runs, results = copied
    before = snapshot(results)
    with _immutable(results):
        done = sslmem("score", *[a if a != "2" else "3" for a in SMALL])  # n_pairs=3: rescore
    assert done.returncode == 2
    one_line(done.stderr, "cannot", str(results))
    assert snapshot(results) == before


def test_full_disk_during_a_checkpoint_is_one_line(tmp_runs, tmp_results):
    done = sslmem("train", *SMALL, env={"SSLMEM_FAULT_NOSPACE": "*/f-seed0/.checkpoint.pt.*"})
    assert done.returncode == 2
    one_line(done.stderr, "No space left")
    assert not [f for f in files(tmp_runs) if f.endswith(".tmp")]


def test_real_write_failure_inside_torch_save_is_one_line(tmp_runs, tmp_results):
    """Not the shim: the operating system refuses the write (the file-size limit, EFBIG, the way
    a full disk gives ENOSPC) inside ``torch.save``, which reports it as a RuntimeError of its
    zip writer."""
    import resource

    limit = 256 * 1024  # run.json fits, the first snapshot (a ResNet-9) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "sslmem", "train", *SMALL], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert done.returncode == 2, done.stderr[-3000:]
    line = one_line(done.stderr, "cannot write", ".pt", "File too large", "free on its disk")
    assert "inline_container" not in line
    left = files(tmp_runs)
    assert not [f for f in left if f.endswith((".tmp", ".pt"))], left  # nothing half-written


def test_truncated_run_json_is_rewritten_not_called_incompatible(copied):
    runs, results = copied
    (info,) = results.rglob("run.json")
    good = info.read_text()
    info.write_text(good[: len(good) // 2])
    done = sslmem("score", *[a if a != "2" else "3" for a in SMALL])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "incompatible" not in done.stderr
    assert json.loads(info.read_text())["version"] == json.loads(good)["version"]


def test_unreadable_run_json_stops(copied):
    runs, results = copied
    (info,) = results.rglob("run.json")
    before = snapshot(results)
    done = sslmem("score", *[a if a != "2" else "3" for a in SMALL],
                  env={"SSLMEM_FAULT_UNREADABLE": str(info)})
    assert done.returncode == 2
    one_line(done.stderr, "cannot read", "run.json")
    assert snapshot(results) == before


# ---- 4. silent corruption: checkpoints, data caches, stored results ----------------------------

def test_bit_flipped_checkpoint_is_retrained_not_loaded(copied):
    runs, _ = copied
    (ckpt,) = runs.rglob("f-seed0/checkpoint.pt")
    good = Experiment(tiny()).encoder("f").state_dict()
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the tensors: torch.load reads it without complaint
    ckpt.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt.*from scratch"):
        again = Experiment(tiny()).encoder("f").state_dict()
    assert all(torch.equal(good[k], again[k]) for k in good)  # retrained: the same weights


def test_bit_flipped_snapshot_is_refused(copied):
    runs, results = copied
    (snap,) = runs.rglob("f-seed0/snapshots/epoch-0001.pt")
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0x10
    snap.write_bytes(bytes(data))
    with pytest.raises(SSLMemError, match="corrupt"):
        Experiment(tiny()).scores_over_epochs()


def _fake_dataset(root: Path, n=300, seed=0, compresslevel=None) -> Path:
    """A small 'cifar10' in the shared format, LZMA-compressed like ../shared/data."""
    rng = np.random.default_rng(seed)
    arrays = {"images": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
              "labels": np.arange(n, dtype=np.int64) % 3,
              "classes": np.array(["a", "b", "c"])}
    _write_npz(root / "cifar10" / "train.npz", arrays, compresslevel)
    _write_npz(root / "cifar10" / "test.npz", {**arrays, "images": arrays["images"][:100],
                                               "labels": arrays["labels"][:100]}, compresslevel)
    return root


def _write_npz(path: Path, arrays: dict, compresslevel=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = zipfile.ZIP_LZMA if compresslevel is None else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression=kind, compresslevel=compresslevel) as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def test_data_cache_with_zeroed_pixels_is_rebuilt(tmp_path, tmp_runs):
    root = _fake_dataset(tmp_path / "data")
    first = load_dataset("cifar10", data_root=root)
    (cache,) = (tmp_runs / "_data").rglob("*.npy")
    data = bytearray(cache.read_bytes())
    data[-1000:] = bytes(1000)  # same shape and size, zeroed pixels
    cache.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="rebuilding"):
        again = load_dataset("cifar10", data_root=root)
    assert torch.equal(again.images, first.images)


def test_corrupt_stored_result_is_recomputed_by_the_cli(copied):
    runs, results = copied
    (table,) = results.rglob("scores-*.csv.gz")
    good = table.read_bytes()
    table.write_bytes(good[:-20] + bytes(20))
    done = sslmem("score", *SMALL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "recomputing" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
    rebuilt, _ = store.read_frame(table)  # whole again: it passes its hash
    original = pd.read_csv(io.BytesIO(gzip.decompress(good)))
    assert rebuilt.shape == original.shape  # (equal up to this process's thread count)
    assert np.allclose(rebuilt.L_f, original.L_f, atol=1e-3)


def test_corrupt_stored_result_stops_a_results_only_run(copied):
    runs, results = copied
    (table,) = results.rglob("scores-*.csv.gz")
    table.write_bytes(table.read_bytes()[:-20] + bytes(20))
    before = snapshot(results)
    done = sslmem("score", *SMALL, env={"SSLMEM_RESULTS_ONLY": "1"})
    assert done.returncode == 2
    one_line(done.stderr, "SHA-256")
    assert snapshot(results) == before


# ---- 1. edited data: new keys, never a stale result ---------------------------------------------

def _image_tree(root: Path, n_per_class=100, classes=("a", "b"), seed=0) -> Path:
    """An ImageFolder tree of 8x8 BMPs (uncompressed: an edit keeps the file size)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                root / name / f"{i:03d}.bmp")
    return root


def test_folder_edited_in_place_gets_new_keys(tmp_path, tmp_runs, tmp_results):
    """Every stored result and checkpoint is found by the key: a new key is a recomputation."""
    from PIL import Image

    tree = _image_tree(tmp_path / "tree")
    cfg = tiny(dataset=f"folder:{tree}", image_size=8)
    first = Experiment(cfg)
    first.split  # converts the tree (the cache a stale run would be served from)
    # edit a few images in place: same size, and the modification time put back
    for path in sorted(tree.rglob("*.bmp"))[:5]:
        st = path.stat()
        Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size
    edited = Experiment(cfg)
    assert not torch.equal(edited.train.images, first.train.images)
    assert edited.key() != first.key()
    assert edited.store_dir != first.store_dir and edited.run_dir != first.run_dir
    # a few images added
    _image_tree(tmp_path / "more", n_per_class=3, seed=1)
    for path in (tmp_path / "more").rglob("*.bmp"):
        shutil.copy2(path, tree / path.parent.name / f"new-{path.name}")
    added = Experiment(cfg)
    assert len(added.train) + len(added.test) == 206
    assert len({first.key(), edited.key(), added.key()}) == 3


def test_another_copy_of_a_dataset_gets_other_keys(tmp_path, tmp_runs, tmp_results):
    """Two copies with equal file sizes and times but other pixels never share a cache entry."""
    one = _fake_dataset(tmp_path / "one", compresslevel=0)
    two = _fake_dataset(tmp_path / "two", seed=1, compresslevel=0)
    same = tmp_path / "same"
    shutil.copytree(one, same)  # copy2: same bytes, same times
    for split in ("train", "test"):
        a, b = one / "cifar10" / f"{split}.npz", two / "cifar10" / f"{split}.npz"
        assert a.stat().st_size == b.stat().st_size  # deflate level 0: size depends on shape
        st = a.stat()
        os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    keys = {}
    for name, root in (("one", one), ("two", two), ("same", same)):
        E._DATA_CACHE.clear()
        exp = Experiment(tiny(dataset="cifar10", data_root=str(root), image_size=8))
        keys[name] = (exp.key(), exp.train.images.clone())
    assert keys["one"][0] != keys["two"][0]
    assert not torch.equal(keys["one"][1], keys["two"][1])
    assert keys["one"][0] == keys["same"][0]  # the same data: the same results


def test_sslmem_data_elsewhere_gives_other_results(tmp_path, tmp_runs, tmp_results):
    one = _fake_dataset(tmp_path / "one")
    two = _fake_dataset(tmp_path / "two", seed=1)
    paths = []
    for root in (one, two):
        done = sslmem("score", *SMALL, "--dataset", "cifar10", "--set", "image_size=8",
                      env={"SSLMEM_DATA": str(root)})
        assert done.returncode == 0, done.stderr[-2000:]
        paths.append(done.stdout.split("results: ")[-1].strip())
    assert paths[0] != paths[1]


# ---- 5. interruption and the runner's edges ----------------------------------------------------

def _checkpoint(runs: Path) -> dict | None:
    found = list(runs.rglob("f-seed0/checkpoint.pt"))
    if not found:
        return None
    try:
        return torch.load(found[0], map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - being replaced right now
        return None


def _wait_for(predicate, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_sigint_and_sigterm_stop_with_one_line_and_a_rerun_resumes(tmp_runs, tmp_results):
    args = ["train", *SMALL, "--epochs", "6", "--set", "checkpoint_every=1"]
    seen = []
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        proc = sslmem(*args, popen=True)
        done_before = seen[-1]["epoch"] if seen else 0
        state = _wait_for(lambda: (s := _checkpoint(tmp_runs)) and s["epoch"] > done_before
                          and s)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == code, err[-2000:]
        one_line(err, "rerun")
        assert not [f for f in files(tmp_runs) if f.endswith(".tmp")]
        seen.append(_checkpoint(tmp_runs) or state)
    done = sslmem(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _checkpoint(tmp_runs)
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3, 4, 5, 6]
    kept = seen[-1]["history"]
    assert final["history"][: len(kept)] == kept  # resumed: the earlier epochs were not rerun


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_torch_save_waits_for_the_checkpoint(sig, tmp_path, monkeypatch, capsys):
    # CI once sent SIGINT while torch.save was inside its zip writer: the KeyboardInterrupt
    # unwound through the writer, whose cleanup raised a RuntimeError and a traceback
    from sslmem.errors import command_line
    from sslmem.train import fit as F

    real, calls = torch.save, []

    def interrupted_save(obj, f):
        signal.raise_signal(sig)  # arrives mid-write, before any byte is written
        calls.append(sig)
        real(obj, f)

    monkeypatch.setattr(F.torch, "save", interrupted_save)
    path = tmp_path / "checkpoint.pt"
    with command_line("sslmem", "rerun to resume") as status:
        F.save_state(path, {"epoch": 3, "w": torch.ones(4)})
        calls.append("after")  # not reached: the held signal acts as the write ends
    assert calls == [sig] and status.code == 128 + sig
    assert "rerun to resume" in capsys.readouterr().err
    assert F.load_state(path, "cpu", what="checkpoint")["epoch"] == 3  # written whole
    assert not list(tmp_path.glob(".*.tmp"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_killed_writer_leaves_no_orphan_and_a_live_one_is_kept(tmp_path):
    from sslmem.io import atomic_path

    folder = tmp_path / "ckpt"
    code = ("import os, signal, sys, time\nfrom sslmem.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n"
            "    if sys.argv[2] == 'kill':\n        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    print('writing', flush=True)\n    time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", code, str(folder / "a.pt"), "kill"], env=env,
                            timeout=60)
    assert killed.returncode == -signal.SIGKILL
    (orphan,) = folder.glob(".a.pt.*.tmp")
    live = subprocess.Popen([sys.executable, "-c", code, str(folder / "b.pt"), "live"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "writing"
        with atomic_path(folder / "a.pt") as tmp:
            tmp.write_bytes(b"whole")
        assert not orphan.exists() and (folder / "a.pt").read_bytes() == b"whole"
        assert len(list(folder.glob(".b.pt.*.tmp"))) == 1  # a live writer's file is kept
    finally:
        live.kill()
        live.wait()


def _toy_notebooks(folder: Path) -> Path:
    """A notebook folder for the runner: one page whose parameters cell comments use '='."""
    folder.mkdir()
    (folder / "01_toy.py").write_text(textwrap.dedent('''\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3
        #     language: python
        #     name: python3
        # ---

        # %% tags=["parameters"]
        profile = "paper"  # 'paper' = the GPU profile
        dataset = None  # None = the profile dataset
        sleep = 0  # seconds to sleep; 0 = none
        marker = None  # None = no marker file
        _declared = [k for k in dir() if not k.startswith("_")]

        # %%
        import pathlib
        import time

        if marker:
            pathlib.Path(marker).touch()
        time.sleep(sleep)
        print("done", dataset)
        '''))
    return folder


@pytest.fixture
def toy_runner(tmp_path, monkeypatch):
    from sslmem.book import reproduce as rp

    folder = _toy_notebooks(tmp_path / "notebooks")
    monkeypatch.setattr(rp, "NOTEBOOK_DIR", folder)
    monkeypatch.setattr(rp, "NOTEBOOKS", ("01_toy",))
    out = tmp_path / "book"
    out.mkdir()
    (out / "01_toy.ipynb").write_text('{"sentinel": "last good page"}')
    return rp, folder, out


def test_runner_passes_declared_parameters_without_papermill_warnings(toy_runner, caplog):
    rp, _, out = toy_runner
    rp.reproduce("tiny", params={"01": {"dataset": "digits"}}, out=out, log=lambda *_: None)
    assert "Passed unknown parameter" not in caplog.text
    assert "Unable to parse" not in caplog.text
    assert "done digits" in (out / "01_toy.ipynb").read_text()


def test_runner_cell_timeout_is_one_line_and_keeps_the_page(toy_runner, capsys):
    rp, _, out = toy_runner
    params = out.parent / "p.yml"
    params.write_text("'01':\n  sleep: 30\n")
    t0 = time.perf_counter()
    code, err = runner(["--profile", "tiny", "--params", str(params), "--timeout", "2",
                        "--out", str(out)], capsys)
    assert code == 1 and time.perf_counter() - t0 < 25
    one_line(err, "01_toy", "2 s")
    assert (out / "01_toy.ipynb").read_text() == '{"sentinel": "last good page"}'


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_runner_interrupted_keeps_the_page(toy_runner, sig, code):
    _, folder, out = toy_runner
    marker = out.parent / "started"
    params = out.parent / "p.yml"
    params.write_text(f"'01':\n  sleep: 60\n  marker: {str(marker)!r}\n")
    wrapper = ("import sys\nfrom pathlib import Path\nimport sslmem.book.reproduce as rp\n"
               "rp.NOTEBOOK_DIR = Path(sys.argv[1])\nrp.NOTEBOOKS = ('01_toy',)\n"
               "sys.exit(rp.main(sys.argv[2:]))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", wrapper, str(folder), "--profile", "tiny",
                             "--params", str(params), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(marker.exists)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    one_line(err, "01_toy")
    assert (out / "01_toy.ipynb").read_text() == '{"sentinel": "last good page"}'
    assert sorted(p.name for p in out.iterdir()) == ["01_toy.ipynb"]


def test_stored_profile_names_the_missing_dataset_and_where_it_was_looked_for(
        tmp_path, capsys, monkeypatch):
    """`make book` where the store holds the laptop profile but the data root lacks CIFAR-10."""
    results, data = tmp_path / "results", tmp_path / "data"
    (results / "laptop").mkdir(parents=True)
    data.mkdir()
    monkeypatch.setenv("SSLMEM_RESULTS", str(results))
    monkeypatch.setenv("SSLMEM_DATA", str(data))
    code, err = runner(["--profile", "stored", "--out", str(tmp_path / "book")], capsys)
    assert code == 1
    line = one_line(err, "laptop", "'cifar10' not found", str(data / "cifar10"),
                    "from $SSLMEM_DATA")
    assert "no complete profile" not in line


@pytest.mark.parametrize("command", ["train", "score", "run"])
def test_every_profile_is_a_choice_of_the_cli(command):
    from sslmem.cli import _parser
    from sslmem.pipeline.config import PROFILES

    for profile in PROFILES:
        args = _parser().parse_args([command, "--profile", profile])
        assert args.profile == profile
    assert "laptop" in PROFILES


def test_missing_dataset_is_one_line(tmp_path, capsys, tmp_runs):
    code, err = cli(["score", *SMALL, "--dataset", "cifar10-mini", "--data-root",
                     str(tmp_path)], capsys)
    assert code == 2
    one_line(err, "cifar10-mini", "not found")
    assert files(tmp_runs) == []


# ---- helpers -----------------------------------------------------------------------------------

class _immutable:
    """Make a folder tree read-only even for root (``chattr +i``); skip where unsupported."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self):
        done = subprocess.run(["chattr", "-R", "+i", str(self.root)], capture_output=True)
        if done.returncode:
            pytest.skip(f"chattr +i is not available here: {done.stderr.strip()}")
        return self.root

    def __exit__(self, *exc):
        subprocess.run(["chattr", "-R", "-i", str(self.root)], check=True)
