"""Chapter 3's question on reliable scores: do SSL methods memorize the same points, and
supervised learning other ones?

Why a module: the paper's claim compares two agreements (SSL with SSL, SSL with supervised),
and both are attenuated by the noise of the per-point scores, each by its own amount; compared
raw, the less reliable score looks less similar. Here every method's score comes from an
ensemble on the same pool and the same membership matrix, every agreement is disattenuated on
split halves (:mod:`sslmem.agreement`), and the claim is tested as the paired bootstrap
difference of true-score agreements, drawn on the same resampled points. Nothing here trains.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from sslmem.agreement import agreements, difference, from_ensemble, label_scores, top_overlap
from sslmem.ensemble import Ensemble
from sslmem.errors import SSLMemError

SUP_SSLMEM = "supervised (SSLMem)"
SUP_LABEL = "supervised (label mem.)"


def ready(ens: Ensemble) -> bool:
    """Enough stored encoders to split: two complete pairs or more."""
    return len(ens.complete_members()) >= 4


def scores(ssl: dict[str, Ensemble], supervised: Ensemble | None) -> dict:
    """Per-point scores by name: each SSL ensemble's SSLMem, and the supervised ensemble's
    SSLMem (its encoder's alignment loss, scored alike) and Feldman–Zhang label memorization."""
    out = {name: from_ensemble(name, ens) for name, ens in ssl.items() if ready(ens)}
    if supervised is not None and ready(supervised):
        out[SUP_SSLMEM] = from_ensemble(SUP_SSLMEM, supervised)
        out[SUP_LABEL] = label_scores(supervised)["label memorization"]
    return out


def compare(found: dict, *, k: int, how: str = "spearman", n_splits: int = 100,
            n_boot: int = 1000) -> dict:
    """Every pair's agreement, the top-``k`` overlaps, and the claim's paired differences.

    Returns ``table`` (one row per pair: observed and true-score ρ with intervals, both
    reliabilities, top-k overlap with its chance level and p), ``tests`` (for every SSL–SSL
    pair and every supervised score: true ρ(SSL, SSL) − true ρ(SSL, supervised), paired over
    the same bootstrap draws) and ``replicates``.
    """
    names = list(found)
    ssl = [n for n in names if n not in (SUP_SSLMEM, SUP_LABEL)]
    sup = [n for n in names if n in (SUP_SSLMEM, SUP_LABEL)]
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        raise SSLMemError("agreement needs at least two scores with two stored pairs each")
    table, reps = agreements(found, pairs, how=how, n_splits=n_splits, n_boot=n_boot)
    full = {n: found[n].estimate() for n in names}
    positions = {n: pd.Index(found[n].positions) for n in names}
    overlaps = []
    for a, b in pairs:
        common = positions[a].intersection(positions[b], sort=False)
        xa = full[a][positions[a].get_indexer(common)]
        xb = full[b][positions[b].get_indexer(common)]
        overlaps.append(top_overlap(xa, xb, min(k, len(common) - 1)))
    table["top_k"] = [o["k"] for o in overlaps]
    table["overlap"] = [o["overlap"] for o in overlaps]
    table["chance"] = [o["chance"] for o in overlaps]
    table["overlap_p"] = [o["p"] for o in overlaps]
    kind = {n: "SSL" for n in ssl} | {n: "supervised" for n in sup}
    table.insert(0, "kind", [f"{kind[a]}–{kind[b]}" for a, b in pairs])
    tests = []
    for a, b in itertools.combinations(ssl, 2):
        for s in sup:
            for x in (a, b):
                d = difference(reps, f"{a} | {b}", f"{x} | {s}" if f"{x} | {s}" in reps
                               else f"{s} | {x}")
                tests.append({"SSL–SSL": f"{a} | {b}", "SSL–supervised": f"{x} | {s}", **d})
    return {"table": table, "tests": pd.DataFrame(tests), "replicates": reps}


def verdict(tests: pd.DataFrame, table: pd.DataFrame) -> str:
    """Plain words for the claim (SSL–SSL agreement exceeds SSL–supervised agreement)."""
    if not len(table[table.kind == "SSL–SSL"]):
        return ("not testable yet: fewer than two SSL ensembles have two stored pairs each")
    if not len(tests):
        return ("half testable: no supervised ensemble with two stored pairs, so only the "
                "SSL–SSL agreement is measured")
    defined = tests[np.isfinite(tests["difference"])]
    if not len(defined):
        return ("undecidable: the true-score agreements have no interval (a score's "
                "reliability is too low for the data to bound them)")
    above = defined[defined["low"] > 0]
    below = defined[defined["high"] < 0]
    if len(above) == len(tests):
        return (f"held: every SSL–SSL agreement exceeds every SSL–supervised one, the "
                f"smallest difference {above['difference'].min():+.2f} "
                f"(95 % interval from {above['low'].min():+.2f})")
    if len(below):
        return (f"reversed in {len(below)} of {len(tests)} comparisons: an SSL–supervised "
                "agreement exceeds the SSL–SSL one beyond its interval")
    return (f"not shown: {len(above)} of {len(tests)} comparisons exceed zero beyond their "
            "interval; the others include zero")


def overlap_matrix(table: pd.DataFrame, value: str = "r_true") -> pd.DataFrame:
    """A symmetric score-by-score matrix of ``value`` (1 on the diagonal) for a heatmap."""
    names = list(dict.fromkeys([*table.a, *table.b]))
    m = pd.DataFrame(np.eye(len(names)), index=names, columns=names, dtype=float)
    for r in table.itertuples():
        v = getattr(r, value)
        m.loc[r.a, r.b] = m.loc[r.b, r.a] = v if v == v else math.nan
    return m
