"""The committed book against the committed results store: what `make book` renders, in CI.

Every page in ``book/`` must re-execute from ``results/`` alone (no checkpoint, nothing trained),
pass nbval, and give the numbers it shows; and it must come from the best profile the store
holds completely.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sslmem.book import reproduce as rp

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VOLATILE = {"minutes", "seconds"}  # glued values that measure this execution, not the results


@pytest.fixture(scope="module")
def store_env(tmp_path_factory, shared_data):
    runs = tmp_path_factory.mktemp("no-checkpoints")
    env = {"SSLMEM_RESULTS": str(REPO / "results"), "SSLMEM_RESULTS_ONLY": "1",
           "SSLMEM_RUNS": str(runs), "SSLMEM_DATA": str(shared_data), "TQDM_DISABLE": "1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env, runs


def _pages() -> list[Path]:
    return [REPO / "book" / f"{name}.ipynb" for name in rp.NOTEBOOKS]


def test_committed_pages_come_from_the_best_complete_profile(store_env):
    from sslmem.pipeline.units import complete_profiles

    profiles = {rp.page_profile(page) for page in _pages()}
    assert len(profiles) == 1, profiles
    complete = complete_profiles(results_root=str(REPO / "results"))
    assert complete and profiles.pop() == complete[0], complete


def _glued_sequence(nb) -> list[tuple[str, str]]:
    """(name, text/plain) of every glued value, in output order."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = o.get("metadata", {}).get("scrapbook", {})
            if record.get("name"):
                out.append((record["name"], o["data"][record["mime_prefix"] + "text/plain"]))
    return out


def test_committed_pages_pass_nbval_and_show_the_committed_numbers(store_env, tmp_path):
    """One execution of the committed pages, without any checkpoint: nbval runs every cell,
    and every value they glue (logged by sslmem.book.notebook) equals the committed page's."""
    from sslmem.book.notebook import GLUE_LOG

    env, runs = store_env
    copies = []
    for page in _pages():
        shutil.copy(page, tmp_path / page.name)
        copies.append(str(tmp_path / page.name))
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    log = tmp_path / "glued.jsonl"
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
           "-c", str(ini), "--rootdir", str(tmp_path), *copies]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **env, "MPLBACKEND": rp.INLINE_BACKEND,
                               GLUE_LOG: str(log)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # nbval runs one item per code cell: every cell of every page ran and passed
    cells = sum(c.cell_type == "code" for page in _pages() for c in nbformat.read(page, 4).cells)
    assert re.search(rf"\b{cells} passed", done.stdout), done.stdout[-500:]
    assert not re.search(r"\d+ (failed|errors?)\b", done.stdout), done.stdout[-500:]
    assert not list(runs.rglob("*.pt")), "a checkpoint was written: something trained"
    again = [(r["name"], r["text"]) for r in map(json.loads, log.read_text().splitlines())]
    committed = [item for page in _pages() for item in _glued_sequence(nbformat.read(page, 4))]
    assert [n for n, _ in again] == [n for n, _ in committed]
    differ = [(n, a, b) for (n, a), (_, b) in zip(committed, again)
              if n not in VOLATILE and a != b]
    assert not differ, differ
