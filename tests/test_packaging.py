"""The install story stays consistent: one pinned set, the same in pyproject and environment.yml."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {re.split(r"[=<>]", p)[0].lower(): p for p in lines if "==" in p}


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                      for d in extra]
    env = [line.strip()[2:] for line in (ROOT / "environment.yml").read_text().splitlines()
           if line.strip().startswith("- ") and "==" in line]
    assert _pins(deps) == _pins(env)
    assert "python=3.11" in (ROOT / "environment.yml").read_text()
    assert "jupyter-book==1.0.4.post1" in deps  # 2.x needs myst.yml and Node


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "rc -eq 5" in makefile  # pytest's "no tests collected" fails the run


def test_reading_results_does_not_import_torchvision_or_lightly():
    """They load torch._dynamo (3 of the 8 s `sslmem plan` took to list a plan, and of the 10 s
    every page's import cell took): only building a method or a backbone needs them."""
    import subprocess
    import sys

    code = ("import sys, sslmem.cli, sslmem.pipeline.plan, sslmem.book.reproduce, "
            "sslmem.book.atypicality, sslmem.book.plots, sslmem.book.precision, "
            "sslmem.book.explorer, sslmem.book.notebook, sslmem.book.grids; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'lightly'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_readme_fits_a_first_screen():
    """README: at most 150 lines, none over 200 characters (details live in the book)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, len(lines)
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 200]
    assert not long, long


def test_committed_pages_print_no_warnings():
    """A warning on a page is noise to a reader, and it carries the path of the machine that
    executed it (so the page no longer re-renders identically elsewhere)."""
    import json

    printed = [(page.name, i) for page in sorted((ROOT / "book").glob("*.ipynb"))
               for i, cell in enumerate(json.loads(page.read_text())["cells"])
               for o in cell.get("outputs", [])
               if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert not printed, printed
