"""The section notebooks: they execute (tiny profile), rerun on another dataset, and fail loudly.

The four notebooks are executed once per module into a temporary book folder with their own
runs root (so encoders are trained once and shared between the notebooks, as in a real run), then
re-executed by nbval. The bad-input tests stop in the parameter cell, so they only cost a kernel
start each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sslmem.book import parameters as bp
from sslmem.book import reproduce as rp
from sslmem.book.notebook import check_parameters
from sslmem.errors import SSLMemError

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared_data):
    """A runs root and the offline data root for every notebook of this module."""
    runs = tmp_path_factory.mktemp("notebook-runs")
    patch = pytest.MonkeyPatch()
    patch.setenv("SSLMEM_RUNS", str(runs))
    patch.setenv("SSLMEM_DATA", str(shared_data))
    patch.setenv("TQDM_DISABLE", "1")
    patch.delenv("MPLBACKEND", raising=False)
    yield runs
    patch.undo()


@pytest.fixture(scope="module")
def book(env, tmp_path_factory) -> Path:
    """All four notebooks executed with the tiny profile."""
    out = tmp_path_factory.mktemp("book")
    rp.reproduce("tiny", out=out, **QUIET)
    return out


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == kind]


def _glued(nb) -> dict:
    """Glue keys -> text/plain values of a myst-nb executed notebook."""
    out = {}
    for o in _outputs(nb, "display_data"):
        record = o.get("metadata", {}).get("scrapbook", {})
        if record.get("name"):
            out[record["name"]] = o["data"][record["mime_prefix"] + "text/plain"]
    return out


def test_every_notebook_executes_with_figures_and_glued_numbers(book):
    for name in rp.NOTEBOOKS:
        nb = nbformat.read(book / f"{name}.ipynb", as_version=4)
        assert not _outputs(nb, "error"), name
        # a warning printed on a page is noise to a reader and carries this machine's paths
        assert not [o for o in _outputs(nb, "stream") if "Warning" in "".join(o["text"])], name
        glued = _glued(nb)
        if name == "00_glance":  # the landing page: a table of every chapter's verdicts
            assert int(glued["n_claims"]) >= 8 and "seconds" in glued, glued
            assert any("| claim (the paper's words) |" in o.get("data", {}).get(
                "text/markdown", "") for o in _outputs(nb, "display_data"))
        else:
            images = [o for o in _outputs(nb, "display_data")
                      if "image/png" in o.get("data", {})]
            assert images, f"{name} has no figure"
            assert {"minutes", "device"} <= set(glued), name
            float(glued["minutes"])
        assert not [k for k, v in glued.items() if v in ("nan", "None") or "np." in v], name
        smoke = [o for o in _outputs(nb, "display_data")
                 if "Smoke run on CPU" in o.get("data", {}).get("text/markdown", "")]
        assert smoke, f"{name} lacks the smoke-run note"
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "remove-cell" in injected[0].metadata.tags
    assert sorted(p.name for p in book.iterdir()) == sorted(f"{n}.ipynb" for n in rp.NOTEBOOKS)


# Two pages re-executed from the store they computed: every page is re-executed under nbval by
# tests/test_committed_book.py (the laptop store); here the tiny results just computed must
# serve the same pages, for the chapters that read ensembles (2.5 min for all seven, on CI's
# critical path, for the same property).
REEXECUTED = ("02_atypical_examples", "07_precision")


def test_executed_notebooks_pass_nbval(book, env, tmp_path):
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
           "-c", str(ini), "--rootdir", str(tmp_path),
           *(str(book / f"{name}.ipynb") for name in REEXECUTED)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "MPLBACKEND": rp.INLINE_BACKEND})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_rerun_on_a_second_dataset(env, tmp_path):
    small = {"01": {"epochs": 2, "sizes": {"shared": 150, "candidate": 50, "independent": 50,
                                           "extra": 50}}}
    rp.reproduce("tiny", dataset="fashionmnist", params=small, only="01", out=tmp_path, **QUIET)
    nb = nbformat.read(tmp_path / "01_definition.ipynb", as_version=4)
    glued = _glued(nb)
    assert glued["dataset"] == "fashionmnist"
    assert glued["epochs"] == "2" and glued["n_candidates"] == "50"
    assert float(glued["threshold"]) == float(glued["threshold"])  # a number, not nan


def test_unknown_parameter_fails_naming_valid_ones_and_keeps_the_book(env, tmp_path):
    previous = tmp_path / "01_definition.ipynb"
    previous.write_text('{"sentinel": "last good page"}')
    with pytest.raises(SSLMemError) as err:
        rp.reproduce("tiny", params={"01": {"n_pairz": 3}}, only="01", out=tmp_path, **QUIET)
    message = str(err.value)
    assert "01_definition" in message and "n_pairz" in message
    assert "valid parameters" in message and "n_pairs" in message and "runs_root" in message
    assert previous.read_text() == '{"sentinel": "last good page"}'
    assert [p.name for p in tmp_path.iterdir()] == ["01_definition.ipynb"]


def test_missing_dataset_fails_with_the_data_layer_message(env, tmp_path):
    empty = tmp_path / "empty-root"
    empty.mkdir()
    empty.chmod(0o555)  # read-only: nothing may be downloaded into it
    try:
        with pytest.raises(SSLMemError) as err:
            rp.reproduce("tiny", params={"01": {"dataset": "svhn", "data_root": str(empty)}},
                         only="01", out=tmp_path / "book", **QUIET)
    finally:
        empty.chmod(0o755)
    message = str(err.value)
    assert "01_definition" in message and "dataset 'svhn' not found" in message
    assert not (tmp_path / "book" / "01_definition.ipynb").exists()


# ---- the runner's plumbing (no kernel) -------------------------------------------------------

def test_select_and_profiles():
    assert rp.select("01,03") == ["01_definition", "03_ssl_vs_supervised"]
    assert rp.select(None) == list(rp.NOTEBOOKS)
    with pytest.raises(SSLMemError, match="choose from"):
        rp.select("09")
    assert rp.resolve_profile("tiny") == "tiny"
    assert rp.resolve_profile("auto") in ("paper", "tiny")
    with pytest.raises(SSLMemError, match="auto, paper, laptop, tiny"):
        rp.resolve_profile("huge")


def test_parameters_routing(tmp_path):
    params_file = tmp_path / "p.yml"
    params_file.write_text("seeds: [0, 1]\n'03':\n  top_k: 7\n")
    params = bp.load_params(params_file)
    p1 = bp.parameters_for("01_definition", ["profile", "dataset", "method", "seeds"], params,
                           profile="tiny", dataset="mnist", methods=["byol", "dino"])
    assert p1 == {"profile": "tiny", "seeds": [0, 1], "dataset": "mnist", "method": "byol"}
    p3 = bp.parameters_for("03_ssl_vs_supervised", ["profile", "methods", "top_k"], params,
                           profile="tiny", dataset=None, methods=["byol", "dino"])
    assert p3 == {"profile": "tiny", "methods": ["byol", "dino"], "top_k": 7}
    with pytest.raises(SSLMemError, match="notebooks declare"):
        bp._check_global_keys({"sedes": 1}, {"01_definition": ["seeds"]})


def test_declared_parameters_match_the_sources():
    import jupytext

    for name in bp.CHAPTERS:
        declared = bp.declared_parameters(jupytext.read(rp.NOTEBOOK_DIR / f"{name}.py"))
        assert {"profile", "dataset", "device", "data_root", "runs_root"} <= set(declared), name
    glance = bp.declared_parameters(jupytext.read(rp.NOTEBOOK_DIR / "00_glance.py"))
    assert set(glance) == {"profile", "pages"}  # it reads the executed chapter pages


def test_check_parameters_ignores_imports_and_rejects_extras():
    import math

    ns = {"math": math, "alpha": 1, "beta": None, "In": [], "_declared": None}
    declared = ["math", "alpha", "beta", "In"]
    assert check_parameters(ns, declared) == {"alpha": 1, "beta": None}
    ns["gamma"] = 3
    with pytest.raises(SSLMemError, match="gamma.*valid parameters: alpha, beta"):
        check_parameters(ns, declared)


def test_main_reports_errors_without_traceback(capsys):
    assert rp.main(["--only", "09"]) == 1
    assert "unknown notebook" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_stray_build(request):
    """Nothing in this module writes into the checkout's book/ folder."""
    book_dir = Path(__file__).resolve().parents[1] / "book"
    before = {p.name: p.stat().st_mtime_ns for p in book_dir.glob("*.ipynb")}
    yield
    after = {p.name: p.stat().st_mtime_ns for p in book_dir.glob("*.ipynb")}
    assert before == after


def test_no_leftover_temp_files(book):
    assert not list(book.glob(".*.tmp"))
