"""The glance page (sslmem.book.glance, notebooks/00_glance.py): every verdict on it is computed.

It collects the verdicts each chapter glued; nothing on it may be typed. The tests check the
collection on synthetic pages, its one-line failures, and that the committed landing page says
exactly what the committed chapters say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sslmem.book import glance, verdicts
from sslmem.book.parameters import CHAPTERS, NOTEBOOKS
from sslmem.errors import SSLMemError

REPO = Path(__file__).resolve().parents[1]


def _page(path: Path, found) -> Path:
    """A minimal executed page that glues ``found`` as the chapters do."""
    text = verdicts.as_json(found)
    out = {"output_type": "display_data", "metadata": {"scrapbook": {
        "name": "verdicts_json", "mime_prefix": "application/papermill.record/"}},
        "data": {"application/papermill.record/text/plain": text}}
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": [out]}]}))
    return path


def _verdict(word_low, word_high, chapter="01_definition", **kw):
    return verdicts.from_interval(claim="c", short="s", source="Sec. 1", chapter=chapter,
                                  effect=(word_low + word_high) / 2, low=word_low,
                                  high=word_high, detectable=0.5, scale="128 images at 16 px",
                                  hardware="a CPU", **kw)


def test_collect_reads_each_chapters_glued_verdicts_in_order(tmp_path):
    _page(tmp_path / "a.ipynb", [_verdict(0.1, 0.3, "a")])
    _page(tmp_path / "b.ipynb", [_verdict(-0.2, 0.3, "b"), _verdict(-0.4, -0.1, "b")])
    found = glance.collect(tmp_path, ["a", "b"])
    assert [v.word for v in found] == ["holds", "not detected at this power", "contradicted"]
    assert glance.counts(found) == {"holds": 1, "not detected at this power": 1,
                                    "contradicted": 1, "not run here": 0}
    table = glance.table(found)
    assert table.count("\n") == 1 + len(found)  # head, rule, one row per claim
    assert "{doc}`b`" in table and "[−0.40, −0.10]" in table and "128 images at 16 px" in table


def test_a_missing_or_mute_chapter_page_stops_with_one_line(tmp_path):
    with pytest.raises(SSLMemError, match="execute the chapters first") as err:
        glance.collect(tmp_path, ["01_definition"])
    assert "\n" not in str(err.value)
    (tmp_path / "01_definition.ipynb").write_text(json.dumps({"cells": []}))
    with pytest.raises(SSLMemError, match="glues no verdicts"):
        glance.collect(tmp_path, ["01_definition"])


def test_the_glance_notebook_types_no_verdict_number_or_scale():
    """Its markdown holds only prose and glue references: no verdict word in bold, no decimal
    number, no count; the table comes from code."""
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / "00_glance.py")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    prose = re.sub(r"\{glue:text\}`[^`]+`", "", markdown)
    assert not re.search(r"\d+\.\d+|\b\d+ (claims|hold)", prose), prose
    assert NOTEBOOKS[-1] == "00_glance" and set(CHAPTERS) < set(NOTEBOOKS)


def test_the_committed_landing_page_says_what_the_chapters_say():
    """Every row of the committed glance page is the verdict its chapter page glued."""
    book = REPO / "book"
    expected = glance.collect(book, CHAPTERS)
    nb = json.loads((book / "00_glance.ipynb").read_text())
    shown = ["".join(o.get("data", {}).get("text/markdown", []))
             for c in nb["cells"] for o in c.get("outputs", [])]
    tables = [s for s in shown if s.startswith("| claim")]
    assert [t.strip() for t in tables] == [glance.table(expected).strip()]
    assert len(expected) >= 8
    assert all(v.word in verdicts.WORDS for v in expected)
