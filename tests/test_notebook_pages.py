"""What papermill and git see of the chapters (issue 21): parameters cells that papermill's own
parser reads whole, and pages that a re-execution with unchanged outputs leaves byte-identical.
"""

from __future__ import annotations

import logging

import jupytext
import nbformat
import pytest

from sslmem import reproduce as rp

# ---- papermill reads every parameter of every chapter ------------------------------------------


@pytest.mark.parametrize("name", rp.NOTEBOOKS)
def test_papermill_reads_every_parameter_with_its_type_and_help(name, tmp_path, caplog):
    import papermill
    from click.testing import CliRunner
    from papermill.cli import papermill as papermill_cli

    notebook = jupytext.read(rp.NOTEBOOK_DIR / f"{name}.py")
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, path)
    declared = rp.declared_parameters(notebook)
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
