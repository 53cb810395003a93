"""Results at a glance: every chapter's verdicts, collected from the executed pages.

Why from the pages: each chapter decides its verdicts from its own analysis (:mod:`verdicts`)
and glues them as JSON (``verdicts_json``). Reading them back, rather than recomputing, means
the landing page can never say something else than the chapter's box says, and rendering it
costs nothing. A chapter page that is missing, or that glues no verdicts, stops the page with
one line that says which chapter to execute.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sslmem.book.verdicts import WORDS, Verdict, _finite, from_json
from sslmem.errors import SSLMemError

GLUE_NAME = "verdicts_json"


def page_verdicts(page: Path) -> list[Verdict]:
    """The verdicts an executed chapter page glued (its ``verdicts_json``)."""
    try:
        nb = json.loads(Path(page).read_text())
    except FileNotFoundError:
        raise SSLMemError(f"chapter page {page} is not there: execute the chapters first "
                          "(`make book`, or python -m sslmem.book.reproduce)") from None
    except (OSError, ValueError) as err:
        raise SSLMemError(f"chapter page {page} cannot be read ({err})") from None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            if record.get("name") == GLUE_NAME:
                text = out["data"][record["mime_prefix"] + "text/plain"]
                text = "".join(text) if isinstance(text, list) else text
                return from_json(_unquote(text))
    raise SSLMemError(f"chapter page {page} glues no verdicts ({GLUE_NAME}): execute it again "
                      "with this version of sslmem")


def _unquote(text: str) -> str:
    """A glued string's text/plain is its repr: strip the quotes it adds."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        import ast

        return ast.literal_eval(text)
    return text


def collect(pages: Path, chapters) -> list[Verdict]:
    """Every chapter's verdicts, in chapter order."""
    return [v for name in chapters for v in page_verdicts(Path(pages) / f"{name}.ipynb")]


def _cell(text: str) -> str:
    return (text or "–").replace("|", "\\|").replace("\n", " ")


def _num(value: float, fmt: str) -> str:
    return format(value, fmt).replace("-", "−") if _finite(value) else "–"


def effect(v: Verdict) -> str:
    """The effect and its 95 % interval, compactly: ``measure +0.10 [−1.60, +1.81] points``."""
    if not _finite(v.effect):
        return "–"
    unit = f" {v.unit}" if v.unit else ""
    span = f" [{_num(v.low, v.fmt)}, {_num(v.high, v.fmt)}]" if _finite(v.low, v.high) else ""
    return f"{v.measure + ': ' if v.measure else ''}{_num(v.effect, v.fmt)}{span}{unit}"


def table(verdicts) -> str:
    """The glance table as MyST markdown: one row per claim, linked to its chapter."""
    head = ("| claim (the paper's words) | verdict | effect [95 % interval] | smallest detectable "
            "| test | this run |\n|---|---|---|---|---|---|")
    rows = []
    for v in verdicts:
        run = f"{v.scale}; computed on {v.hardware}" if v.hardware else v.scale
        detectable = (_num(abs(v.detectable), v.fmt.lstrip("+")) + (f" {v.unit}" if v.unit
                                                                    else "")
                      if _finite(v.detectable) else "–")
        rows.append(f"| **{_cell(v.short)}**: {_cell(v.claim)} ({_cell(v.source)}) "
                    f"| **{v.word}** ({{doc}}`{v.chapter}`) | {_cell(effect(v))} "
                    f"| {detectable} | {_cell(v.test)} | {_cell(run)} |")
    return "\n".join([head, *rows])


def counts(verdicts) -> dict[str, int]:
    """How many claims got each word (every word of the vocabulary, zeros included)."""
    found = Counter(v.word for v in verdicts)
    return {word: found.get(word, 0) for word in WORDS}
