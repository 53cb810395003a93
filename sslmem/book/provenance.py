"""Where, with which commits and in how long a page's results were computed: their provenance.

Why a module: the pages named one machine and one commit (those of the first result they read)
and times from other sources (the training histories' epoch clocks), while the results they show
were computed by several commits, some of them on hosts whose CPU model was not recorded. Every
stored result carries its provenance; this module summarizes the provenance of the results a
page has read (``exp.sources``): the hardware (the CPU model where it is recorded), the commits,
and the wall time they record, training and the rest. Nothing here reads the checkout that
renders the page.
"""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd

from sslmem.io import computed_on

NOT_RESULTS = ("data-",)  # data cards: the data's provenance, not a computed result's


def machine(prov: dict) -> str:
    """Where one result was computed: the CPU model and cores where its provenance names the
    model, else the device it records, with the model marked as not recorded."""
    text = computed_on(prov)
    bare = re.fullmatch(r"cpu \((\S+), (\d+) cores?\)", text)
    if bare and not prov.get("cpu"):
        return f"{bare[2]}-core {bare[1]} CPU (model not recorded)"
    return text


def commit(prov: dict) -> str:
    """A result's commit, 12 characters, with its ``+dirty`` mark if any."""
    full = str(prov.get("git_commit") or "unknown")
    return full[:12] + ("+dirty" if full.endswith("+dirty") else "")


def records(*experiments) -> pd.DataFrame:
    """One row per result the experiments have read (each once): its folder and name, commit,
    machine, time written and wall seconds (``wall``: the dict its provenance records)."""
    rows, seen = [], set()
    for exp in experiments:
        folder = getattr(getattr(exp, "store_dir", None), "name", "")
        for name, prov in getattr(exp, "sources", {}).items():
            if name.startswith(NOT_RESULTS) or (folder, name) in seen or not prov:
                continue
            seen.add((folder, name))
            rows.append({"folder": folder, "result": name, "commit": commit(prov),
                         "machine": machine(prov), "written": str(prov.get("written_at", "")),
                         "wall": dict(prov.get("wall_s") or {})})
    return pd.DataFrame(rows, columns=["folder", "result", "commit", "machine", "written",
                                       "wall"])


def hardware(rows: pd.DataFrame) -> str:
    """The machines the results were computed on, the most frequent first, with their counts
    where there are several."""
    counts = Counter(rows.machine) if len(rows) else Counter()
    if not counts:
        return "–"
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{m} ({n} results)" for m, n in counts.most_common())


def hardware_of(*experiments) -> str:
    """:func:`hardware` of the results the experiments have read."""
    return hardware(records(*experiments))


def commits(rows: pd.DataFrame, most: int = 3) -> str:
    """The commits that computed the results, oldest first; past ``most``, their number."""
    found = list(dict.fromkeys(rows.sort_values("written").commit)) if len(rows) else []
    if not found:
        return "–"
    if len(found) > most:
        return f"{len(found)} commits (listed in the provenance at the end of the page)"
    return ", ".join(f"`{c}`" for c in found)


def seconds(rows: pd.DataFrame) -> dict:
    """Wall seconds the results record: ``train`` (each training once, though the result that
    trained an encoder and its history both record it), ``other`` (scoring, probing, attacks:
    each result's total minus the training inside it) and ``total``."""
    trained, other = {}, 0.0
    for row in rows.itertuples():
        wall = {k: float(v) for k, v in row.wall.items()}
        train = {k: v for k, v in wall.items() if k.startswith("train ")}
        for k, v in train.items():
            trained[(row.folder, k, round(v, 6))] = v
        if "total" in wall:
            other += max(0.0, wall["total"] - sum(train.values()))
        else:
            other += sum(v for k, v in wall.items() if k not in train)
    train_s = sum(trained.values())
    return {"train": train_s, "other": other, "total": train_s + other}


def glued(*experiments) -> dict:
    """The page's provenance values, by glue name: ``device`` (:func:`hardware`), ``commits``,
    ``train_minutes``, ``compute_minutes`` (the rest) and ``total_minutes``."""
    rows = records(*experiments)
    s = seconds(rows)
    return {"device": hardware(rows), "commits": commits(rows),
            "train_minutes": s["train"] / 60, "compute_minutes": s["other"] / 60,
            "total_minutes": s["total"] / 60}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The results by commit and machine: how many, when written, and their wall time."""
    if not len(rows):
        return pd.DataFrame(columns=["commit", "computed on", "results", "written",
                                     "wall time (min)"])
    out = []
    for (c, m), part in rows.groupby(["commit", "machine"], sort=False):
        s = seconds(part)
        out.append({"commit": c, "computed on": m, "results": len(part),
                    "written": f"{part.written.min()[:10]} to {part.written.max()[:10]}",
                    "wall time (min)": round(s["total"] / 60, 1)})
    return pd.DataFrame(out).sort_values("written", kind="stable")


def report(*experiments, parameters: dict | None = None) -> str:
    """What a page's last cell prints: its results by commit and machine, the configuration of
    the first experiment, and the page's parameters."""
    rows = records(*experiments)
    s = seconds(rows)
    lines = ["Provenance of the results on this page, by commit and machine (each result's own "
             "provenance is stored beside it):",
             summary(rows).to_string(index=False),
             f"wall time recorded: {s['train'] / 60:.1f} min training, {s['other'] / 60:.1f} "
             f"min scoring and probing, {s['total'] / 60:.1f} min in all"]
    if experiments:
        config = getattr(experiments[0], "cfg", None)
        if config is not None:
            lines += ["", "Configuration of the first experiment:",
                      pd.Series(config.to_dict()).to_string()]
    if parameters is not None:
        lines.append(f"parameters: {parameters}")
    return "\n".join(lines)
