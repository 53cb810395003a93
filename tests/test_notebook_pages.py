"""What papermill and git see of the chapters (issue 21): parameters cells that papermill's own
parser reads whole, and pages that a re-execution with unchanged outputs leaves byte-identical.
"""

from __future__ import annotations

import logging
import textwrap

import jupytext
import nbformat
import pytest

from sslmem.book import pages
from sslmem.book import parameters as bp
from sslmem.book import reproduce as rp

# ---- papermill reads every parameter of every chapter ------------------------------------------


@pytest.mark.parametrize("name", rp.NOTEBOOKS)
def test_papermill_reads_every_parameter_with_its_type_and_help(name, tmp_path, caplog):
    import papermill
    from click.testing import CliRunner
    from papermill.cli import papermill as papermill_cli

    notebook = jupytext.read(rp.NOTEBOOK_DIR / f"{name}.py")
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, path)
    declared = bp.declared_parameters(notebook)
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = papermill.inspect_notebook(str(path))
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # "Unable to parse"
    assert list(found) == declared  # so `-p dataset ...` is no "unknown parameter"
    for param in found.values():
        assert param["inferred_type_name"] not in ("None", ""), param
        assert param["help"], param
    shown = CliRunner().invoke(papermill_cli, ["--help-notebook", str(path)])
    assert shown.exit_code == 0, shown.output
    for key, param in found.items():
        assert f"  {key}: {param['inferred_type_name']} (default " in shown.output
        assert param["help"][:40] in shown.output
    assert "Unknown type" not in shown.output


def test_papermill_passes_a_declared_parameter_without_warning(tmp_path, caplog):
    """What ``papermill -p dataset X`` checks before it runs anything."""
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    path = tmp_path / "page.ipynb"
    nbformat.write(jupytext.read(rp.NOTEBOOK_DIR / f"{rp.NOTEBOOKS[0]}.py"), path)
    notebook = load_notebook_node(str(path))
    with caplog.at_level(logging.WARNING, logger="papermill"):
        known = {p.name for p in _infer_parameters(notebook)}
        parameterize_notebook(notebook, {"dataset": "fashionmnist"}, kernel_name="python3",
                              language="python")
    assert "dataset" in known and not caplog.records


# ---- a page re-executed with the same outputs is left byte-identical ---------------------------

def _toy(folder):
    folder.mkdir()
    (folder / "01_toy.py").write_text(textwrap.dedent('''\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3
        #     language: python
        #     name: python3
        # ---

        # %% [markdown]
        # A page rendered in {glue:text}`seconds:.0f` s.

        # %% tags=["parameters"]
        profile: str = "paper"  # the profile
        shown: int = 1  # the number the page shows

        # %%
        import time

        from sslmem.book.notebook import glue_number

        glue_number("shown", shown)
        glue_number("seconds", time.perf_counter(), volatile=True)  # differs at every run
        print("shown", shown)
        '''))
    return folder


@pytest.fixture
def toy_book(tmp_path, monkeypatch):
    monkeypatch.setattr(rp, "NOTEBOOK_DIR", _toy(tmp_path / "notebooks"))
    monkeypatch.setattr(rp, "NOTEBOOKS", ("01_toy",))
    return tmp_path / "book"


def test_reexecuting_an_unchanged_page_leaves_it_byte_identical(toy_book):
    page = toy_book / "01_toy.ipynb"
    logs = []
    rp.reproduce("tiny", out=toy_book, log=logs.append)
    first = page.read_bytes()
    nb = nbformat.reads(first.decode(), as_version=4)
    assert "papermill" not in str([c.metadata for c in nb.cells])  # no per-cell timings
    assert "start_time" not in nb.metadata.get("papermill", {})
    rp.reproduce("tiny", out=toy_book, log=logs.append)
    assert page.read_bytes() == first
    assert "unchanged" in logs[-1]
    rp.reproduce("tiny", out=toy_book, params={"01": {"shown": 2}}, log=logs.append)
    again = page.read_bytes()
    assert again != first and "shown 2" in again.decode()
    ids = [c.id for c in nbformat.reads(again.decode(), as_version=4).cells]
    assert ids[0] == nb.cells[0].id  # a cell whose source is unchanged keeps its id


def test_write_page_ignores_only_volatile_values(tmp_path):
    def page(value, seconds, cell_id):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("x", id=cell_id)
        cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": value}),
                        nbformat.v4.new_output("display_data", data={"text/plain": seconds},
                                               metadata={"sslmem": {"volatile": True}})]
        cell.metadata["papermill"] = {"duration": seconds}
        cell.metadata["execution"] = {"iopub.status.idle": seconds}
        nb.cells.append(cell)
        nb.metadata["papermill"] = {"start_time": seconds, "parameters": {"a": 1}}
        return nb

    target = tmp_path / "page.ipynb"
    assert pages.write_page(page("1", "3.2", "aaa"), target)
    before = target.read_bytes()
    assert not pages.write_page(page("1", "4.7", "bbb"), target)
    assert target.read_bytes() == before
    assert pages.write_page(page("2", "4.7", "ccc"), target)
    assert b'"2"' in target.read_bytes()
