"""Chapter 7's page-level analyses of the ensemble designs: which design the book ranks by,
what its reliability costs, the one-pair and multi-seed comparisons, and the verdict texts.

Why a module: the precision page should narrate while this module computes. The per-design
statistics themselves (summaries, curves, the one pair) live in :mod:`sslmem.book.precision`,
shared with later chapters; what is here turns them into the page's tables and sentences, so
that they are tested and the notebook stays short. Everything is read from the results store;
only :func:`ensembles` trains, the planned members that a writable store still lacks.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.book import designcost, precision, verdicts
from sslmem.book.notebook import data_text, describe_design
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble

RELIABILITIES = (0.1, 0.3, 0.5, 0.7, 0.9)  # the grid of the detectable-correlation table
ONE_PAIR_FORMATS = {"pool retest r": "{:+.2f}", "placebo retest r": "{:+.2f}",
                    "SD of m̂ (pool)": "{:.4f}", "SD of m̂ (placebo)": "{:.4f}"}


def ensembles(profile: str, *, designs=None, members: int | None = None, **fields) -> dict:
    """The profile's ensemble designs (all, or ``designs``; ``fields`` as for
    :func:`chapters.ensembles`), computing the planned members (``members`` per design, else
    each design's) and one-pair repeats unless the store is read-only."""
    found = chapters.ensembles(profile, names=designs, **fields)
    for d in found.values():
        if not d.ensemble.exp.results_only:
            for j in range(members or d.members):
                d.ensemble.member(j)
            for r in range(1, d.repeats + 1):
                d.ensemble.member(0, r), d.ensemble.member(1, r)
    return found


def by_kind(found: dict) -> tuple[dict[str, Ensemble], dict[str, Ensemble]]:
    """The designs' ensembles split into (SSL, supervised), each by design name."""
    ssl = {n: d.ensemble for n, d in found.items() if d.ensemble.exp.cfg.method != "supervised"}
    sup = {n: d.ensemble for n, d in found.items() if d.ensemble.exp.cfg.method == "supervised"}
    return ssl, sup


def stored_encoders(found: dict) -> tuple[int, float]:
    """Encoders stored over all designs (members and first retrainings) and the hours they
    took to train and score."""
    total = sum(len(d.ensemble.stored_members()) + len(d.ensemble.stored_members(1))
                for d in found.values())
    hours = sum(precision.encoder_minutes(d.ensemble, d.ensemble.stored_members())
                + precision.encoder_minutes(d.ensemble, d.ensemble.stored_members(1), repeat=1)
                for d in found.values()) / 60
    return total, hours


def overview(profile: str, found: dict) -> dict:
    """The page's opening values, by glue name: ``profile``, ``total_members`` and
    ``encoder_hours`` (all designs), and the first SSL design's ``image_size``, ``dataset`` and
    ``placebo_size`` (where the results were computed is glued from their provenance at the end
    of the page)."""
    first = next(iter(by_kind(found)[0].values()))
    values = {"profile": profile}
    values["total_members"], values["encoder_hours"] = stored_encoders(found)
    return values | {"image_size": f"{first.exp.train.image_size}",
                     "dataset": first.exp.cfg.dataset, "placebo_size": len(first.placebo)}


def regime_tables(table: pd.DataFrame) -> list[tuple[pd.DataFrame, dict]]:
    """The regime search's two tables (contrast and noise; precision and cost), each with
    its number formats."""
    contrast_table, precision_table = precision.tables(table)
    return [(contrast_table, {"min / encoder (median)": "{:.1f}"}),
            (precision_table, {"M for 0.8": "{:.0f}", "hours for 0.8": "{:.1f}"})]


def choose(table: pd.DataFrame, profile: str) -> tuple[pd.Series, pd.Series]:
    """The design the book ranks points by (the profile's ranking design once it has 4
    encoders) and the one with the lowest projected cost of the target reliability."""
    ranking = (chapters.settings(profile).get("ranking") or {}).get("ssl")
    return precision.choose(table, ranking), precision.cheapest(table)


def contrast_text(best) -> str:
    """The chosen design's average in/out contrast, pool beside placebo, in words."""
    if best.members < 2:
        return "not measurable yet"
    return (f"{best.pool_mean:+.4f} over the pool (p = {best.pool_p:.1g}), "
            f"{best.placebo_mean:+.4f} over the placebo (p = {best.placebo_p:.2f})")


def names(found: dict) -> dict[str, str]:
    """Every design's name in words ("SimCLR, 800 epochs, 128-image pool, shared init")."""
    return {n: describe_design(d.ensemble) for n, d in found.items()}


def chosen_values(best, described: dict | None = None) -> dict:
    """The chosen design's values, by glue name: ``chosen`` (in words, from ``described``),
    ``chosen_members``, ``chosen_pool``, ``verdict`` and ``chosen_contrast``."""
    return {"chosen": (described or {}).get(best.design, best.design),
            "chosen_members": int(best.members),
            "chosen_pool": int(best.pool), "verdict": precision.verdict(best),
            "chosen_contrast": contrast_text(best)}


def cost_text(best, cheap, described: dict | None = None, compared=None) -> str:
    """What the target reliability costs with a cheaper-looking design than ``best`` (measured
    on fewer encoders), and why that does not decide; empty where ``best`` is the cheapest.
    ``described``: the designs' names in words (:func:`names`); ``compared``: the paired
    comparisons of :func:`sslmem.book.designcost.rows`, which decide where they exist."""
    if cheap.design == best.design or not cheap.members < best.members:
        return ""
    name = (described or {}).get
    head = (f"Projected from its {int(cheap.members)} encoders, the design "
            f"{name(cheap.design, cheap.design)} "
            f"would reach 0.8 with {cheap.members_for_target:.0f} encoders")
    paired = next((r for r in compared or [] if r.get("name") == cheap.design and "rho" in r),
                  None)
    if paired is not None:
        return (head + "; the projected hours mix hosts and thread counts, so the comparison "
                "that decides is the paired one below (the same points and encoders, "
                f"{paired['cost_source']}): "
                + designcost.verdict_words(paired) + ".")
    return (head + f" ({cheap.hours_for_target_2cores:.1f} h on 2 cores, against "
            f"{best.hours_for_target_2cores:.1f} h in all for the chosen one), but its "
            f"reliability interval {precision._interval(cheap, 'pool_rel')} is too wide to "
            "tell the two costs apart: more of its encoders would decide it.")


def chosen_markdown(best, cheap, described: dict | None = None, compared=None) -> str:
    """The chosen design's numbers as Markdown, followed by :func:`cost_text` if any."""
    text = precision.design_markdown(best)
    cost = cost_text(best, cheap, described, compared)
    return text + "\n\n" + cost if cost else text


def one_pairs(ssl: dict[str, Ensemble]) -> dict[str, dict]:
    """:func:`precision.one_pair` of every design whose one-pair repeat is stored."""
    pairs = {n: precision.one_pair(e) for n, e in ssl.items()}
    return {n: p for n, p in pairs.items() if p is not None}


def one_pair_table(pairs: dict[str, dict]) -> pd.DataFrame:
    """One row per design: the one pair's test-retest r and the SD of its scores."""
    return pd.DataFrame([{"design": n, "pool retest r": p["pool_retest"],
                          "placebo retest r": p["placebo_retest"],
                          "SD of m̂ (pool)": p["pool_sd"], "SD of m̂ (placebo)": p["placebo_sd"]}
                         for n, p in pairs.items()])


def one_pair_text(pairs: dict[str, dict], described: dict | None = None) -> str:
    """What the first design's one pair, trained twice, says (or that none is stored)."""
    if not pairs:
        return ("No design has its one-pair repeat stored yet (`sslmem plan` lists the `-r1` "
                "units).")
    name, p = next(iter(pairs.items()))
    name = (described or {}).get(name, name)
    return (f"One pair of **{name}** trained twice reproduces its per-point scores with "
            f"r = {p['pool_retest']:+.2f} on the pool and r = {p['placebo_retest']:+.2f} on the "
            "placebo. A placebo correlation above zero is the composition effect: which of the "
            "two fixed halves holds a point's look-alikes decides its score, again and again, "
            "although the point itself was never trained on. The ensemble's placebo has no "
            "such reliability when every encoder draws its own half (table above).")


def fixed_partition_of(ssl: dict[str, Ensemble]) -> dict | None:
    """:func:`precision.fixed_partition` of the first design whose members 0 and 1 were
    retrained with further seeds (None if none was)."""
    for ens in ssl.values():
        if (fixed := precision.fixed_partition(ens)) is not None:
            return fixed
    return None


def fixed_partition_table(fixed: dict) -> pd.DataFrame:
    """The multi-seed f/g estimator's reliabilities beside the ensemble's at equal encoders
    (from :func:`precision.fixed_partition`)."""
    rows = [{"design": f"multi-seed f/g ({fixed['seeds']} seeds)", "encoders": fixed["encoders"],
             "pool reliability": precision._interval(fixed, "pool_rel", "{:+.2f}"),
             "placebo reliability": precision._interval(fixed, "placebo_rel", "{:+.2f}")}]
    if "ensemble_pool_rel" in fixed:
        rows.append({"design": f"ensemble (projected from {fixed['ensemble_members']})",
                     "encoders": fixed["encoders"],
                     "pool reliability": f"{fixed['ensemble_pool_rel']:+.2f}",
                     "placebo reliability": f"{fixed['ensemble_placebo_rel']:+.2f}"})
    return pd.DataFrame(rows)


def fixed_partition_text(fixed: dict | None) -> str:
    """The verdict on the multi-seed estimator: does its placebo agree beyond chance?"""
    if fixed is None:
        return ("The fixed partition has not been retrained with further seeds yet "
                "(`sslmem plan` lists the `-r1`, `-r2`, … units of the chosen design).")
    text = (f"With {fixed['encoders']} encoders the fixed partition reaches a reliability of "
            f"{fixed['pool_rel']:+.2f} on the pool and {fixed['placebo_rel']:+.2f} "
            f"[{fixed['placebo_rel_low']:+.2f}, {fixed['placebo_rel_high']:+.2f}] on the "
            "placebo, whose true score is zero. ")
    if fixed["placebo_rel_low"] > 0:
        return text + ("Its seeds agree on the placebo beyond chance: what they reproduce is "
                       "largely the partition's composition, not each point's own memorization, "
                       "so its pool reliability overstates its precision. A reliability counts "
                       "only where the placebo's is near zero, as the ensemble's is.")
    return text + ("Its placebo reliability is not distinguishable from zero with these seeds; "
                   "compare the pool reliabilities of the two rows, encoder for encoder.")


def supervised_table(sup: dict[str, Ensemble]) -> pd.DataFrame:
    """Reliability of label memorization and consistency for every supervised design with 2
    or more members (empty if none)."""
    rows = [{"design": name, **precision.supervised_summary(ens)} for name, ens in sup.items()
            if len(ens.complete_members()) >= 2]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).rename(columns={
        "members": "M", "label_mem_mean": "mean label mem.", "consistency_mean":
        "mean consistency", "label_mem_rel": "reliability (label mem.)", "label_mem_rel_low":
        "low", "label_mem_rel_high": "high", "consistency_rel": "reliability (consistency)"})


def detectable_grid(n_points: int, rels=RELIABILITIES) -> pd.DataFrame:
    """The smallest detectable true correlation on ``n_points`` for pairs of reliabilities."""
    rels = list(rels)
    grid = pd.DataFrame({f"rel_b = {b}": [precision.detectable_correlation(n_points, a, b)
                                          for a in rels] for b in rels})
    grid.insert(0, "rel_a", rels)
    return grid


def detectable_now(n_points: int, best) -> float:
    """The smallest true correlation with a score of reliability 0.9 detectable at the
    chosen design's reliability (1.0: none)."""
    reached = float(best.get("pool_rel", float("nan")))
    return precision.detectable_correlation(n_points, reached, 0.9) if reached > 0 else 1.0


def paper_table(best, pair: dict | None) -> pd.DataFrame:
    """The paper's claims beside this run's numbers (``pair``: the first one-pair retest)."""
    return pd.DataFrame([
        ("SSLMem separates seen from unseen points on average (S_C > S_E, Sec. 3)",
         "p < 0.01 for one f/g pair (direction from the abstract; values UNVERIFIED)",
         precision.design_markdown(best).splitlines()[0][2:]),
        ("one point's score measures that point's memorization (assumed by Fig. 1, Sec. 4)",
         "not measured: one pair per method, no reliability reported",
         f"split-half reliability: {precision.verdict(best)}"),
        ("the paper's one-pair estimator, trained twice",
         "not reported",
         "not stored yet" if pair is None else
         f"retest r = {pair['pool_retest']:+.2f} (pool), {pair['placebo_retest']:+.2f} "
         "(placebo, true score 0)"),
    ], columns=["claim", "paper", "this run"])


# ---- the chapter's verdict --------------------------------------------------------------------

CLAIM = dict(claim="one point's SSLMem score measures that point's own memorization precisely "
                   "(the paper ranks points by it)", short="One point's score is precise",
             source="Sec. 3, Fig. 1", chapter="07_precision")
ENOUGH = 0.5  # the split-half reliability a per-point claim needs at the least (chapters 2-5)


def claim_verdict(best, chosen: Ensemble, pair: dict | None) -> verdicts.Verdict:
    """The chapter's verdict: the chosen design's split-half reliability against
    :data:`ENOUGH`, with its 95 % interval; a placebo whose reliability or mean is not zero
    keeps it from holding. The paper's own estimator (one pair, trained twice) in the note."""
    scale = f"{data_text(chosen.exp)}; {int(best.members)} encoders of {describe_design(chosen)}"
    rel = (best.get(k, math.nan) for k in ("pool_rel", "pool_rel_low", "pool_rel_high"))
    rel, low, high = rel
    if best.get("members", 0) < 4 or not np.isfinite(rel):
        return verdicts.not_run("fewer than 4 encoders stored", scale=scale, **CLAIM)
    placebo_ok = (best.get("placebo_rel_low", -1) <= 0 <= best.get("placebo_rel_high", 1)
                  and best.get("placebo_p", 0) > 0.01)
    note = ("Placebo (true score 0): reliability "
            f"{precision._interval(best, 'placebo_rel')}, mean {best.placebo_mean:+.4f} "
            f"(p = {best.placebo_p:.2f}): " + ("passes." if placebo_ok else "FAILS."))
    if pair is not None:
        note += (f" This is the ensemble's estimator. The paper's, one f/g pair trained twice: "
                 "retest r = "
                 f"{pair['pool_retest']:+.2f} on the pool but {pair['placebo_retest']:+.2f} on "
                 "the placebo, whose true score is 0: its repeatable part is largely the "
                 "split's composition.")
    v = verdicts.from_threshold(
        threshold=ENOUGH, test=f"split-half reliability of the ensemble's per-point scores "
        f"({int(best.members)} encoders; halves of the complementary pairs, which count "
        f"{best.get('facets', 'membership')} as error; Pearson, Spearman–Brown corrected; "
        "95 % interval over points and splits) against "
        f"{ENOUGH}, the least a per-point claim needs", measure="split-half reliability",
        fmt=".2f", effect=rel, low=low, high=high, scale=scale, note=note.replace("-", "−"),
        **CLAIM)
    if v.word == verdicts.HOLDS and not placebo_ok:
        return verdicts.Verdict(**{**v.__dict__, "word": verdicts.NOT_DETECTED})
    return v
