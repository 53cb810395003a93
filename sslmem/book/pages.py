"""Executed notebooks as stable book pages: volatile metadata dropped, unchanged pages kept.

Why a module: ``make book`` on an unchanged store must leave git clean, so a page's content is
compared without papermill's timings or its own render time before it replaces the old page.
"""

from __future__ import annotations

import json
from pathlib import Path

from sslmem.errors import read_error, unreadable
from sslmem.io import atomic_path

# What changes at every execution of a page although the page does not: papermill's timings
# and the temporary paths it ran from (its "input_path" even holds the whole input notebook)
VOLATILE_PAPERMILL = ("start_time", "end_time", "duration", "input_path", "output_path",
                      "exception", "environment_variables")


def normalize_page(nb) -> None:
    """Make an executed page a function of its content: no timings, stable cell ids.

    Why: ``make book`` in a clean checkout must leave it clean. A cell's id becomes a hash of
    its type and source (numbered when two cells are alike) instead of jupytext's random one;
    papermill's per-cell and per-notebook timings and nbclient's execution timestamps go.
    """
    import hashlib

    papermill = nb.metadata.get("papermill")
    if isinstance(papermill, dict):
        for key in VOLATILE_PAPERMILL:
            papermill.pop(key, None)
    seen: set[str] = set()
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        base = hashlib.sha256(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:12]
        cell_id, n = base, 0
        while cell_id in seen:
            n += 1
            cell_id = f"{base}-{n}"
        seen.add(cell_id)
        cell["id"] = cell_id


def _content(nb) -> str:
    """The page as compared by :func:`write_page`: normalized, and without the values of
    outputs marked volatile (``sslmem.book.notebook.glue_number(..., volatile=True)``)."""
    import copy

    from sslmem.book.notebook import VOLATILE_KEY

    nb = copy.deepcopy(nb)
    normalize_page(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get(VOLATILE_KEY, {}).get("volatile"):
                output["data"] = {}
    return json.dumps(nb, sort_keys=True, default=str)


def write_page(nb, target: Path) -> bool:
    """Write the executed page ``nb`` to ``target`` atomically, normalized; returns False and
    leaves ``target`` untouched (byte for byte) when only volatile values would change."""
    import nbformat

    normalize_page(nb)
    try:
        old = nbformat.read(target, as_version=4)
    except FileNotFoundError:
        old = None
    except Exception as err:  # noqa: BLE001 - a damaged page is replaced, an unreadable one not
        if unreadable(err):
            raise read_error(target, err) from None
        old = None
    if old is not None and _content(old) == _content(nb):
        return False
    with atomic_path(target) as staged:
        nbformat.write(nb, staged)
    return True
