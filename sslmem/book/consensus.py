"""Chapter 3's question on reliable scores: do SSL methods memorize the same points, and
supervised learning other ones?

Why a module: the paper's claim compares two agreements (SSL with SSL, SSL with supervised),
and both are attenuated by the noise of the per-point scores, each by its own amount; compared
raw, the less reliable score looks less similar. Here every method's score comes from an
ensemble on the same pool (on its own membership draw, or cross-fitted where two share one),
every agreement is disattenuated on
split halves (:mod:`sslmem.score.agreement`), and the claim is tested as the paired bootstrap
difference of true-score agreements, drawn on the same resampled points. The page's tables
and texts are built here too, so the notebook only narrates. Nothing here trains.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from sslmem.book import precision, verdicts
from sslmem.book.notebook import data_text, describe_design
from sslmem.errors import SSLMemError
from sslmem.pipeline.ensemble import Ensemble
from sslmem.score import reliability
from sslmem.score.agreement import (
    agreements,
    difference,
    from_ensemble,
    label_scores,
    top_overlap,
    top_overlap_cross,
)

SUP_SSLMEM = "supervised (SSLMem)"
SUP_LABEL = "supervised (label mem.)"


def by_method(designs: dict) -> dict[str, Ensemble]:
    """The SSL designs' ensembles by method name (by design name where a method repeats)."""
    methods = [d.ensemble.exp.cfg.method for d in designs.values()]
    return {(m if methods.count(m) == 1 else n): d.ensemble
            for m, (n, d) in zip(methods, designs.items())}


def method_list(ssl: dict, designs: dict, supervised) -> str:
    """The compared ensembles in words (method, epochs, pool), the supervised one last."""
    return "; ".join(describe_design(d.ensemble) for d in [*designs.values(), supervised])


def counts(ssl: dict[str, Ensemble], supervised: Ensemble) -> dict[str, int]:
    """Complete encoders stored per ensemble, the supervised one last."""
    return {name: len(e.complete_members())
            for name, e in [*ssl.items(), ("supervised", supervised)]}


def encoder_hours(ensembles) -> float:
    """Hours the ensembles' complete members took to train and score."""
    return sum(precision.encoder_minutes(e, e.complete_members()) for e in ensembles) / 60


def missing_note(counts: dict[str, int], profile: str) -> str | None:
    """A Markdown warning naming the ensembles with too few encoders to compare (else None)."""
    missing = [n for n, c in counts.items() if c < 4]
    if not missing:
        return None
    return (":::{warning}\nStored so far (complete pairs of encoders): "
            + ", ".join(f"**{n}** {c}" for n, c in counts.items())
            + f". A method needs at least 4 to enter the comparison; missing: {', '.join(missing)}."
            f" Compute more with `sslmem plan --profile {profile} --run` (units `ens-…`); this "
            "page fills in as they are stored.\n:::\n")


def members_for(row: dict, target: float = 0.5) -> float:
    """Encoders for a reliability of ``target`` (0.5: enough to report agreement
    disattenuated), never fewer than stored; NaN where no reliability was measured."""
    rel = row.get("pool_rel", math.nan)
    if not rel == rel:
        return math.nan
    return max(row["members"], reliability.members_needed(rel, row["members"], target))


def count_text(v, digits: int = 0) -> str:
    """A count for a table: ∞ for infinity, – for NaN."""
    return "∞" if v == math.inf else ("–" if v != v else f"{v:,.{digits}f}")


def ensemble_row(row: dict) -> dict:
    """One line of the ensembles table from a :func:`precision.summarize` row."""
    need = members_for(row)
    return {"method": row["method"], "design": row["design"], "M": row["members"],
            "epochs": row["epochs"], "mean m̂ (pool)": row.get("pool_mean"),
            "p": row.get("pool_p"),
            "reliability, Pearson [95 %]": precision._interval(row, "pool_rel", "{:.2f}"),
            "M for 0.5": need,
            "encoder-hours for it": need * row.get("minutes_per_encoder", math.nan) / 60}


def ensembles_table(designs, *, n_splits: int = 100, n_boot: int = 300) -> pd.DataFrame:
    """Every design's encoders, in/out contrast, reliability and the cost of reliability 0.5."""
    return pd.DataFrame([
        ensemble_row(precision.summarize(d.name, d.ensemble, n_splits=n_splits, n_boot=n_boot))
        for d in designs])


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
    for (a, b), shared in zip(pairs, table.shared_membership):
        common = positions[a].intersection(positions[b], sort=False)
        if shared:  # one membership draw: only disjoint halves can test the overlap
            overlaps.append(top_overlap_cross(found[a], found[b], min(k, len(common) - 1)))
            continue
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


def placebo_control(ssl: dict[str, Ensemble], *, k: int, n_splits: int = 100,
                    n_boot: int = 1000) -> pd.DataFrame:
    """The SSL methods' agreement on the placebo, whose true SSLMem is zero for every method:
    the observed ρ (cross-fitted where the methods share a membership draw) and the top-k
    overlap must be centred at 0 and at chance. The full ensembles' ρ is shown beside it, so
    the page shows what a shared draw does. Empty with fewer than two SSL methods."""
    found = {n: from_ensemble(n, e, subset="placebo") for n, e in ssl.items() if ready(e)}
    pairs = list(itertools.combinations(found, 2))
    if not pairs:
        return pd.DataFrame()
    table, _ = agreements(found, pairs, how="spearman", n_splits=n_splits, n_boot=n_boot)
    rows = []
    for r in table.itertuples():
        if r.shared_membership:
            o = top_overlap_cross(found[r.a], found[r.b], k)
        else:
            o = top_overlap(found[r.a].estimate(), found[r.b].estimate(), k)
        rows.append({"pair": f"{r.a} / {r.b}", "membership": (
            "shared draw" if r.shared_membership else "independent draws"),
            "ρ full ensembles": r.r_full, "ρ observed [95 %]": (
                f"{r.r:+.2f} [{r.r_low:+.2f}, {r.r_high:+.2f}]"), "p": r.p,
            f"top-{k} overlap (chance; p)": f"{o['overlap']:.2f} ({o['chance']:.2f}; "
                                             f"p = {o['p']:.2g})",
            "passes": bool(r.p > 0.05 and o["p"] > 0.05)})
    return pd.DataFrame(rows)


def control_text(control: pd.DataFrame) -> str:
    """The placebo control in words: passed (every pair centred at 0 and at chance) or not."""
    if not len(control):
        return "not run: fewer than two SSL methods with two stored pairs each"
    failed = control[~control.passes]
    shared = control[control.membership == "shared draw"]
    text = (f"passed: on the placebo every SSL pair's observed ρ and top-k overlap are "
            f"consistent with zero and chance (smallest p = {control.p.min():.2g})"
            if not len(failed) else
            f"FAILED for {len(failed)} of {len(control)} pairs: on the placebo, whose true "
            f"score is zero, the observed agreement departs from zero")
    if len(shared):
        text += ("; the full ensembles of the shared draw would have given ρ = "
                 + ", ".join(f"{v:+.2f}" for v in shared["ρ full ensembles"])
                 + ", which is why their observed values are cross-fitted")
    return text


def claim(found: dict, *, k: int, **kw) -> dict:
    """:func:`compare` with its ``verdict`` where two or more scores are found; else empty
    tables and a verdict of None."""
    if len(found) < 2:
        return {"table": pd.DataFrame(), "tests": pd.DataFrame(), "verdict": None}
    out = compare(found, k=k, **kw)
    out["verdict"] = verdict(out["tests"], out["table"])
    return out


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


def agreement_columns(table: pd.DataFrame) -> dict:
    """The columns every agreement table shows as text (:mod:`sslmem.score.agreement`):
    observed ρ with its interval (marked ᶜ where cross-fitted: the two scores share a
    membership draw), both reliabilities, the true-score ρ with its interval."""
    rows = list(table.itertuples())
    mark = (lambda r: "ᶜ" if getattr(r, "shared_membership", False) else "")  # noqa: E731
    return dict(
        observed=[f"{r.r:+.2f}{mark(r)} [{r.r_low:+.2f}, {r.r_high:+.2f}]" for r in rows],
        rels=[f"{r.rel_a:.2f} / {r.rel_b:.2f}" for r in rows],
        true=[(f"{r.r_true:+.2f} [{r.r_true_low:+.2f}, {r.r_true_high:+.2f}]"
               if pd.notna(r.r_true) else "–") for r in rows])


def agreement_table(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The pairs' agreements as shown: observed and true-score ρ with intervals, both
    reliabilities, and the top-``k`` overlap beside its chance level."""
    rows = list(table.itertuples())
    shown = table.assign(
        pair=table.a + " / " + table.b + " (" + table.kind + ")", **agreement_columns(table),
        top=[f"{r.overlap:.2f} ({r.chance:.2f}; p = {r.overlap_p:.2g})" for r in rows])
    return shown[["pair", "observed", "p", "rels", "true", "top"]].rename(columns={
        "observed": "ρ observed [95 %]", "rels": "rank reliabilities",
        "true": "ρ true-score [95 %]",
        "top": f"top-{k} overlap (chance; p)"})


def verdict_markdown(result: dict) -> str:
    """The verdict line under the paired tests."""
    if result["verdict"] is None:
        return "**Verdict:** not testable yet."
    return f"**Verdict:** the paper's claim is {result['verdict']}."


def _pairs_text(rows: pd.DataFrame) -> str:
    return "; ".join(f"{r.a}/{r.b}: ρ {r.r:+.2f}, true {r.r_true:+.2f}" if pd.notna(r.r_true)
                     else f"{r.a}/{r.b}: ρ {r.r:+.2f}" for r in rows.itertuples()) or "–"


def paper_table(result: dict) -> pd.DataFrame:
    """The paper's claims beside this run's numbers (from :func:`claim`)."""
    table = result["table"]
    ssl_rows = table[table.kind == "SSL–SSL"] if len(table) else pd.DataFrame()
    sup_rows = table[table.kind == "SSL–supervised"] if len(table) else pd.DataFrame()
    return pd.DataFrame([
        ("SSL frameworks memorize a similar set of points",
         "stated (Sec. 4; summary); metric and values UNVERIFIED", _pairs_text(ssl_rows),
         "one SSL pair of methods at small scale"),
        ("supervised learning memorizes different points", "stated; values UNVERIFIED",
         _pairs_text(sup_rows), "supervised side: SSLMem of its encoders and label memorization"),
        ("SSL–SSL exceeds SSL–supervised", "implied", result["verdict"] or "not testable yet",
         "paired bootstrap of true-score agreements"),
        ("reference scale for the metrics",
         "the follow-up paper (UnitMem), Table 3 (ResNet-9 layers): 94 % overlap, τ = 0.837 "
         "(adjacent); 16 %, τ = 0.104 (far)", "top-k overlaps in the table above",
         "different comparison"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


# ---- the chapter's verdict --------------------------------------------------------------------

CLAIM = dict(claim="“different SSL methods and encoder architectures exhibit high memorization on "
                   "a similar set of data points, [while] the data points that are memorized in "
                   "supervised learning differ substantially”",
             short="SSL methods agree, supervised learning differs", source="Sec. 4, summary",
             chapter="03_ssl_vs_supervised")


def scale(ensembles: dict[str, Ensemble], count: dict[str, int]) -> str:
    """The run's scale: the shared pool, and each ensemble's encoders."""
    first = next(iter(ensembles.values()))
    return data_text(first.exp) + "; " + "; ".join(
        f"{count[n]} encoders of {describe_design(e)}" for n, e in ensembles.items())


def claim_verdict(result: dict, scale_: str, control: pd.DataFrame | None = None
                  ) -> verdicts.Verdict:
    """The chapter's verdict from :func:`claim`: every paired difference (true-score ρ of an
    SSL–SSL pair minus that of an SSL–supervised pair) must exceed zero; the comparison with
    the lowest interval decides, and is the one shown. A failed placebo ``control``
    (:func:`placebo_control`) keeps it from holding."""
    tests, table = result["tests"], result["table"]
    if not len(table) or not len(table[table.kind == "SSL–SSL"]) or not len(tests):
        return verdicts.not_run(result["verdict"] or "too few encoders stored", scale=scale_,
                                **CLAIM)
    test = ("paired bootstrap of true-score Spearman ρ: each SSL–SSL agreement minus each "
            f"SSL–supervised one sharing a method ({len(tests)} comparisons)")
    defined = tests[np.isfinite(tests["low"]) & np.isfinite(tests["high"])]
    if not len(defined):
        ssl_rows = table[table.kind == "SSL–SSL"]
        seen = "; ".join(f"{r.a}/{r.b} observed ρ = {r.r:+.2f} [{r.r_low:+.2f}, {r.r_high:+.2f}]"
                         f" ({r.observed}), top-{r.top_k} overlap {r.overlap:.2f} against "
                         f"{r.chance:.2f} by chance (p = {r.overlap_p:.2g})"
                         for r in ssl_rows.itertuples() if hasattr(r, "overlap"))
        note = ("The scores are too unreliable for the data to bound the true-score "
                "agreements" + (f". Observed: {seen}" if seen else "") + ".")
        if control is not None:
            note += " Placebo control " + control_text(control) + "."
        return verdicts.Verdict(word=verdicts.NOT_DETECTED, test=test, scale=scale_,
                                note=note, **CLAIM)
    words = [verdicts.interval_word(r.low, r.high) for r in defined.itertuples()]
    weakest = defined.sort_values("low").iloc[0]
    held = sum(w == verdicts.HOLDS for w in words)
    word = verdicts.weakest(*words)
    failed = control is not None and len(control) and not control.passes.all()
    if failed and word == verdicts.HOLDS:
        word = verdicts.NOT_DETECTED
    note = f"{held} of {len(tests)} comparisons lie above zero beyond their 95 % interval."
    if control is not None:
        note += " Placebo control " + control_text(control) + "."
    return verdicts.Verdict(
        word=word, test=test, effect=weakest["difference"],
        low=weakest["low"], high=weakest["high"],
        detectable=verdicts.detectable_from_interval(weakest["low"], weakest["high"]),
        measure=f"ρ({weakest['SSL–SSL'].replace(' | ', ', ')}) − "
                f"ρ({weakest['SSL–supervised'].replace(' | ', ', ')}), the weakest comparison",
        scale=scale_, note=note, **CLAIM)
