"""Chapter 7's facets: which reliability the book ranks by, and what a fixed facet flatters.

Why a module: SSLMem is an expectation over encoders and augmentations, so the reliability
that says whether a ranking reproduces must count as error every facet a fresh ensemble draws
anew (membership, seed, views; :mod:`sslmem.score.facets`). This module measures the same pool
under designs that hold different facets fixed, splits the fixed-view design across its views
after the fact, and decomposes the variance, so the page can show the all-facet value the
later chapters rank by beside the optimistic fixed-view one, each labelled.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.book.precision import TARGET, encoder_minutes
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble
from sslmem.score.facets import components, facet_variance, view_blocks
from sslmem.score.reliability import CENTER, ensemble_estimate, members_needed, split_half

HOW = {"pearson": "Pearson", "spearman": "rank (Spearman)"}


def _matrices(ens: Ensemble, subset: str, k: int):
    L, inside, got, _ = ens.matrices(subset, k=k, members=ens.complete_members(), center=CENTER)
    return L, inside, ens.pair_groups(got)


def _reliability(L, inside, groups, *, L_other=None, n_splits, n_boot) -> dict:
    out = {}
    for how in HOW:
        r = split_half(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot, how=how,
                       L_other=L_other)
        out[how] = (r["reliability"], r["low"], r["high"])
    return out


def facet_rows(fixed: Ensemble, drawn: Ensemble, *, n_splits: int = 200,
               n_boot: int = 400) -> pd.DataFrame:
    """One row per way of counting error on the same pool: the fixed-view design split over
    encoders only, then over encoders and views (its first and second half of view pairs),
    and the all-facet design at K = the fixed design's views and at its own K. Each row: the
    pool's and the placebo's split-half reliability (Pearson and rank, 95 % intervals)."""
    k_fixed, k_drawn = fixed.exp.cfg.n_pairs, drawn.exp.cfg.n_pairs
    half = k_fixed // 2
    rows = []
    specs = [(fixed, k_fixed, None, f"fixed views: one init and the same {k_fixed} view pairs "
              "for every encoder", "membership"),
             (fixed, k_fixed, half, f"the same encoders, halves scored on view pairs 1–{half} "
              f"and {half + 1}–{k_fixed}", "membership, views"),
             (drawn, k_fixed, None, f"all facets drawn per pair, first {k_fixed} of its view "
              "pairs", "membership, seeds, views"),
             (drawn, k_drawn, None, f"all facets drawn per pair, all {k_drawn} of its view pairs"
              " (the ranking of chapters 2, 3 and 5)", "membership, seeds, views")]
    for ens, k, split_views, label, facets in specs:
        row = {"design": label, "error counts": facets, "M": len(ens.complete_members()),
               "K": k}
        for subset in ("pool", "placebo"):
            L, inside, groups = _matrices(ens, subset, k)
            other = None
            if split_views:
                L, other = view_blocks(_matrices(ens, subset, split_views)[0], L, split_views, k)
            got = _reliability(L, inside, groups, L_other=other, n_splits=n_splits,
                               n_boot=n_boot)
            for how, (r, lo, hi) in got.items():
                row[f"{subset}_{how}"], row[f"{subset}_{how}_low"], row[f"{subset}_{how}_high"] = (
                    r, lo, hi)
        rows.append(row)
    return pd.DataFrame(rows)


def facet_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`facet_rows` for the page: value [interval] strings, Pearson and rank labelled."""
    def cell(row, key):
        return f"{row[key]:+.2f} [{row[key + '_low']:+.2f}, {row[key + '_high']:+.2f}]"

    return pd.DataFrame([{
        "design and split": r["design"], "error counts": r["error counts"], "M": int(r["M"]),
        "pool, Pearson": cell(r, "pool_pearson"), "pool, rank": cell(r, "pool_spearman"),
        "placebo, Pearson": cell(r, "placebo_pearson")} for _, r in rows.iterrows()])


def component_rows(fixed: Ensemble, drawn: Ensemble) -> pd.DataFrame:
    """Variance components of the pool's score in both designs at the fixed design's K: the
    true SD each design sees, one pair's error SD, the composition part (from the pairs'
    negative within-pair covariance), and the s.e. over pairs against the member-wise one."""
    k = fixed.exp.cfg.n_pairs
    rows = []
    for name, ens in (("fixed views", fixed), ("all facets", drawn)):
        L, inside, groups = _matrices(ens, "pool", k)
        c = components(L, inside, groups)
        est = ensemble_estimate(L, inside, groups=groups)
        rows.append({"design": name, "true SD": c["true_sd"], "true_var": c["true_var"],
                     "pair error SD": math.sqrt(c["pair_error_var"]),
                     # composition shows as a negative covariance of a pair's two members;
                     # where what they share (init, views) outweighs it, it cannot be read off
                     "composition SD": (math.sqrt(-4 * c["within_pair_cov"])
                                        if c["within_pair_cov"] < 0 else math.nan),
                     "s.e. ratio": float(np.nanmean(est.se) / np.nanmean(est.se_members))})
    out = pd.DataFrame(rows)
    out.attrs["facet_sd"] = math.sqrt(max(facet_variance(
        {"true_var": rows[0]["true_var"]}, {"true_var": rows[1]["true_var"]}), 0.0))
    return out


def values(rows: pd.DataFrame, comps: pd.DataFrame, drawn: Ensemble) -> dict:
    """The glued numbers: the all-facet reliability (the book's), the fixed-view one, the view
    split of the fixed design, the facet share of its apparent true variance, and what the
    target costs with the all-facet design."""
    ranked, fixed, across = rows.iloc[-1], rows.iloc[0], rows.iloc[1]
    members = int(ranked["M"])
    need = members_needed(ranked["pool_pearson"], members, TARGET)
    minutes = float(np.median([encoder_minutes(drawn, [j]) for j in drawn.complete_members()]))
    true = comps.set_index("design")["true_var"]
    share = 1 - max(true["all facets"], 0) / true["fixed views"] if true["fixed views"] > 0 else (
        math.nan)

    def iv(row, key):
        return f"{row[key]:.2f} [{row[key + '_low']:.2f}, {row[key + '_high']:.2f}]"

    return {"facets_rel": iv(ranked, "pool_pearson"),
            "facets_rank_rel": iv(ranked, "pool_spearman"),
            "facets_rel_value": float(ranked["pool_pearson"]),
            "facets_placebo_rel": iv(ranked, "placebo_pearson"),
            "fixed_rel": iv(fixed, "pool_pearson"), "across_views_rel": iv(across, "pool_pearson"),
            "facets_members": members,
            "facet_share": "–" if math.isnan(share) else f"{100 * share:.0f}",
            "facets_for_target": need, "facets_minutes": minutes,
            "facets_hours_target": need * minutes / 60,
            "se_ratio": float(comps.set_index("design").loc["all facets", "s.e. ratio"])}


def compare(profile: str, ssl: dict[str, Ensemble]) -> dict | None:
    """The page's facets section for the profile's two designs (``ranking``: ``facets`` and
    ``fixed_views``): the reliability table, the components, the glued values and the text;
    None where the profile names no such pair or either has fewer than 2 complete pairs."""
    chosen = chapters.settings(profile).get("ranking") or {}
    names = chosen.get("fixed_views"), chosen.get("facets")
    if not all(n in ssl for n in names):
        return None
    fixed, drawn = (ssl[n] for n in names)
    if min(len(e.complete_members()) for e in (fixed, drawn)) < 4:
        return None
    rows = facet_rows(fixed, drawn)
    comps = component_rows(fixed, drawn)
    found = values(rows, comps, drawn)
    return {"table": facet_table(rows), "components": comps.drop(columns="true_var"),
            "values": found, "text": text(found)}


COMPONENT_FORMATS = {"true SD": "{:.4f}", "pair error SD": "{:.4f}",
                     "composition SD": "{:.4f}",  # NaN shows as "–"
                     "s.e. ratio": "{:.2f}"}


def text(v: dict) -> str:
    """The section's conclusion in words, from :func:`values`."""
    reached = v["facets_rel_value"] >= TARGET
    return (
        f"Counting every facet as error, the ranking's reliability is **{v['facets_rel']}** "
        f"(Pearson; rank {v['facets_rank_rel']}) with {v['facets_members']} encoders, and its "
        f"placebo's {v['facets_placebo_rel']}. Holding the views fixed gave {v['fixed_rel']}; "
        f"splitting those same encoders across their view pairs gives {v['across_views_rel']}: "
        + (f"about {v['facet_share']} % of the fixed-view design's apparent true variance was "
           "its seed's and views' per-point luck. " if v["facet_share"] != "–" else
           "the fixed-view design shows no true variance to apportion between the point and its "
           "seed's and views' luck. ")
        + (f"The target of {TARGET} is reached. " if reached else
           f"The target of {TARGET} would take about {v['facets_for_target']:.0f} encoders of "
           f"this design ({v['facets_hours_target']:.1f} h on 2 cores at "
           f"{v['facets_minutes']:.1f} min each, the measured median). ")
        + f"Its per-point s.e. over pairs is {v['se_ratio']:.2f} times the member-wise one: the "
        "two members of a pair share their init and views, which their in/out difference "
        "cancels.")
