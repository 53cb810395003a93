"""Shared fixtures: the shared data root, private runs and results roots per test, a book build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Under pytest-xdist (`make test` runs 2 workers on CI's 2 cores) each worker and every process
# it starts (notebook kernels, the CLI, plan units) computes on one thread: two workers of two
# threads each would oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
# ../shared/data beside the checkout, else $SSLMEM_DATA (e.g. a git worktree kept elsewhere)
SHARED_DATA = next((p for p in (REPO.parent / "shared" / "data",
                                Path(os.environ.get("SSLMEM_DATA") or "/nonexistent"))
                    if (p / "cifar10-mini" / "train.npz").exists()),
                   REPO.parent / "shared" / "data")

# The longest files first (measured 2026-11-29 with --durations). xdist hands whole files
# (--dist loadfile) to whichever worker is free, in collection order (--no-loadscope-reorder
# keeps it), so a long file collected last (test_notebooks.py, the tiny book from scratch) ran
# alone at the end. Each worker starts with two files: the 1st and 3rd, the 2nd and 4th.
LONGEST_FIRST = ("test_notebooks.py", "test_slurm.py", "test_store.py", "test_plan_faults.py",
                 "test_train.py", "test_committed_book.py", "test_executors.py",
                 "test_experiment.py", "test_robustness.py", "test_browser.py")


def pytest_collection_modifyitems(items):
    """Collection order = scheduling order: the longest files first (a stable sort, the same
    on every worker, as xdist requires)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline data root ``../shared/data`` beside the checkout (present in CI)."""
    if not (SHARED_DATA / "cifar10-mini" / "train.npz").exists():
        pytest.skip(f"shared data root absent: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_runs(tmp_path_factory):
    """No test writes into the checkout's runs/ or results/: one folder each per test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSLMEM_RUNS", str(tmp_path_factory.mktemp("session-runs")))
        patch.setenv("SSLMEM_RESULTS", str(tmp_path_factory.mktemp("session-results")))
        patch.delenv("SSLMEM_RESULTS_ONLY", raising=False)
        # the training settings measured on this host (sslmem.train.calibrate): once per session
        patch.setenv("SSLMEM_CALIBRATION", str(tmp_path_factory.mktemp("calibration") / "c.json"))
        yield


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch) -> Path:
    """Fresh $SSLMEM_RUNS and $SSLMEM_RESULTS folders of this test (to inspect or corrupt)."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("SSLMEM_RUNS", str(runs))
    monkeypatch.setenv("SSLMEM_RESULTS", str(tmp_path / "results"))
    return runs


@pytest.fixture
def tmp_results(tmp_runs) -> Path:
    """The results store of this test (beside ``tmp_runs``)."""
    return tmp_runs.parent / "results"


@pytest.fixture(scope="session")
def build_book(tmp_path_factory, request):
    """Build a temporary copy of the book; returns ``build(extra=None) -> path of its html``.

    The copy is the checkout's ``_config.yml``, ``_toc.yml``, ``_static/`` and ``book/`` (so the
    checkout's ``_build`` is never touched), rendered with warnings as errors. The executed
    notebooks are the checkout's ``book/*.ipynb`` (what a commit ships); where those are missing,
    they are executed here with the tiny profile (which needs the shared data). ``extra`` maps a
    page name to a notebook (nbformat) added to the copy and to the end of its table of contents.
    """
    import shutil
    import subprocess
    import sys

    import nbformat
    import yaml

    from sslmem.book import reproduce as rp

    def build(extra: dict | None = None) -> Path:
        src = tmp_path_factory.mktemp("book-src")
        shutil.copy(REPO / "_config.yml", src)
        if (REPO / "_static").is_dir():
            shutil.copytree(REPO / "_static", src / "_static")
        shutil.copytree(REPO / "book", src / "book",
                        ignore=shutil.ignore_patterns("_build", ".*.tmp"))
        toc = yaml.safe_load((REPO / "_toc.yml").read_text())
        for name, notebook in (extra or {}).items():
            nbformat.write(notebook, src / "book" / f"{name}.ipynb")
            chapters = toc["parts"][-1]["chapters"] if "parts" in toc else toc["chapters"]
            chapters.append({"file": f"book/{name}"})
        (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
        missing = [n for n in rp.NOTEBOOKS if not (src / "book" / f"{n}.ipynb").exists()]
        if missing:
            data = request.getfixturevalue("shared_data")
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("SSLMEM_DATA", str(data))
                patch.setenv("SSLMEM_RUNS", str(tmp_path_factory.mktemp("book-runs")))
                rp.reproduce("tiny", only=",".join(missing), out=src / "book",
                             log=lambda *_: None)
        out = tmp_path_factory.mktemp("book-out")
        jb = Path(sys.executable).with_name("jupyter-book")
        done = subprocess.run([str(jb), "build", str(src), "-W", "-n", "--keep-going",
                               "--path-output", str(out)], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return out / "_build" / "html"

    return build
