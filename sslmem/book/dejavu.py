"""Chapter 5's analyses: Déjà vu on the ranking ensemble, its gap, and its agreement with SSLMem.

Why a module: the page should narrate, not compute. What it shows (the accuracy gap of the
encoders that trained on an image over those that did not, SSLMem against Déjà vu point by
point, the paper-vs-run table and the chapter's verdict) is built here from the stored votes of
:mod:`sslmem.pipeline.dejavu_ensemble`, so it can be tested without executing the notebook.

The gap table is computed here, per image, so that its columns add up: the accuracy of the
encoders that trained on an image and of those that did not are both averaged over the images
that have crops of both kinds among the rows kept (each member's most confident crops, for the
20 % row), and the gap is their difference. Pooling every kept crop instead (as
:func:`sslmem.pipeline.dejavu_ensemble.average_gap` does for its accuracy columns) averages
the two accuracies over different images, and the shown gap was not their difference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.book import precision, verdicts
from sslmem.book.notebook import data_text, describe_design
from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters, dejavu_ensemble
from sslmem.score.agreement import agreements, from_ensemble, top_overlap, top_overlap_cross

GAP_FORMATS = {"accuracy (trained on it)": "{:.3f}", "accuracy (did not)": "{:.3f}",
               "gap": "{:+.3f}", "se": "{:.3f}", "p": "{:.2g}", "crops kept": "{:.0%}"}
NOT_COMPUTED = "not computed: too few encoders attacked"


def ensemble(profile: str, design: str | None, **fields):
    """The attacked design's name and ensemble (the profile's Déjà vu design by default)."""
    chosen = design or (chapters.settings(profile).get("ranking") or {}).get("dejavu", [None])[0]
    found = chapters.ensembles(profile, names=[chosen] if chosen else [], **fields)
    if chosen not in found:
        raise SSLMemError(f"profile {profile!r} has no ensemble design {chosen!r}; choose "
                          f"one of {list(chapters.settings(profile).get('ensembles', {}))}")
    return chosen, found[chosen]


def missing_warning(chosen: str, n: int, profile: str) -> str:
    """The page's warning (MyST markdown) while fewer than two pairs of encoders are attacked."""
    return (f":::{{warning}}\nThis page needs the Déjà vu votes of at least two complete pairs "
            f"of encoders of **{chosen}**; the store holds {n}. Compute them with "
            f"`sslmem plan --profile {profile} --run` (units `dv-{chosen}-…`).\n:::\n")


def gap_table(long: pd.DataFrame, fractions=(0.2, 1.0)) -> pd.DataFrame:
    """Per fraction of each member's most confident crops: the accuracy of the encoders that
    trained on an image and of those that did not, each averaged over the images that have
    both among the kept crops, their gap (the difference), its standard error and paired
    t-test p over those images, and their number. ``long``: one row per member and image
    (``member``, ``position``, ``inside``, ``correct``, ``confidence``)."""
    rows = []
    for frac in fractions:
        part = long
        if frac < 1:
            ranked = long.groupby("member").confidence.rank(ascending=False, method="first")
            size = long.groupby("member").position.transform("count")
            part = long[ranked <= np.maximum(1, (frac * size).astype(int))]
        acc = part.groupby(["position", "inside"]).correct.mean().unstack()
        both = acc.dropna() if {True, False} <= set(acc.columns) else acc.iloc[:0]
        gap = (both[True] - both[False]) if len(both) else pd.Series(dtype=float)
        n = len(gap)
        rows.append({"crops kept": frac,
                     "accuracy (trained on it)": float(both[True].mean()) if n else math.nan,
                     "accuracy (did not)": float(both[False].mean()) if n else math.nan,
                     "gap": float(gap.mean()) if n else math.nan,
                     "se": float(gap.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                     "p": float(stats.ttest_1samp(gap, 0.0).pvalue) if n > 1 else math.nan,
                     "images": n})
    return pd.DataFrame(rows)


def gap_text(gaps: pd.DataFrame | None) -> str:
    """The gap over every pool image, in words."""
    if gaps is None:
        return NOT_COMPUTED
    whole = gaps[gaps["crops kept"] == 1.0].iloc[0]
    return f"{whole.gap:+.3f} ± {whole.se:.3f} over all pool images (p = {whole.p:.2g})"


def agreement(ens, attacked, k_top: int, **test) -> dict:
    """SSLMem against Déjà vu memorization on the same encoders: ``row`` (the agreement of
    :func:`sslmem.score.agreement.agreements`), ``detectable`` (the smallest true ρ this design
    detects), ``overlap`` (top-``k_top``), ``ssl`` and ``dv`` (the per-image estimates)."""
    scores = {"SSLMem": from_ensemble("SSLMem", ens, members=attacked),
              "Déjà vu": dejavu_ensemble.score(ens, attacked, **test)}
    table, _ = agreements(scores, [("SSLMem", "Déjà vu")])
    row = table.iloc[0]
    ssl = scores["SSLMem"].estimate()
    dv = scores["Déjà vu"].align(scores["SSLMem"].positions).estimate()
    # one ensemble's encoders give both scores: the overlap, like ρ, only from disjoint halves
    overlap = (top_overlap_cross(scores["SSLMem"], scores["Déjà vu"], k_top)
               if row.shared_membership else top_overlap(ssl, dv, k_top))
    return {"row": row, "overlap": overlap, "ssl": ssl, "dv": dv,
            "detectable": precision.detectable_correlation(int(row.points), row.rel_a,
                                                           row.rel_b)}


def agreement_view(found: dict, k_top: int) -> pd.DataFrame:
    """The agreement as the page's one-row table (show with ``{"p": "{:.2g}", ...}``)."""
    row, ov = found["row"], found["overlap"]
    return pd.DataFrame([{
        "points": int(row.points),
        "ρ observed [95 %]": f"{row.r:+.2f}{'ᶜ' if row.shared_membership else ''} "
                             f"[{row.r_low:+.2f}, {row.r_high:+.2f}]", "p": row.p,
        "rank reliabilities": f"{row.rel_a:.2f} / {row.rel_b:.2f}",
        "ρ true-score [95 %]": (f"{row.r_true:+.2f} [{row.r_true_low:+.2f}, "
                                f"{row.r_true_high:+.2f}]" if pd.notna(row.r_true) else "–"),
        f"top-{k_top} overlap (chance)": f"{ov['overlap']:.2f} ({ov['chance']:.2f})",
        "detectable ρ": found["detectable"]}])


def agreement_text(found: dict | None) -> str:
    """The agreement in words: what it shows and, for a null, what the design could see."""
    if found is None:
        return NOT_COMPUTED
    row, detectable = found["row"], found["detectable"]
    if row.r_low > 0 or row.r_high < 0:  # the verdict's rule: the interval excludes zero
        how = " (cross-fitted)" if row.shared_membership else ""
        return (f"ρ = {row.r:+.2f}{how}, 95 % interval {row.r_low:+.2f} to {row.r_high:+.2f} "
                f"(p = {row.p:.2g}): " + ("the two tests rank the pool alike, if weakly at "
                                           "this reliability" if row.r > 0 else
                                           "opposite rankings"))
    if row.rel_b <= 0.1:
        return (f"ρ = {row.r:+.2f} (p = {row.p:.2g}), but Déjà vu's per-point score has a "
                f"reliability of {row.rel_b:.2f}: at this scale it ranks noise, so no agreement "
                "could have been seen")
    if detectable < 1:
        return (f"ρ = {row.r:+.2f} (p = {row.p:.2g}): no agreement detected; this design detects "
                f"a true ρ of {detectable:.2f} or more with 80 % power")
    return (f"ρ = {row.r:+.2f} (p = {row.p:.2g}): undecidable, the scores are too unreliable for "
            "this design to detect even a perfect true correlation")


def paper_table(gap: str, agree: str) -> pd.DataFrame:
    """The paper's claims beside this run's numbers."""
    return pd.DataFrame([
        ("SSL encoders leak training labels through background crops (Déjà vu)",
         "Meehan et al. 2023: large gaps for VICReg/Barlow Twins, smaller for SimCLR/BYOL on "
         "ImageNet (UNVERIFIED)", gap,
         "CIFAR-size images have no bounding boxes: a fixed corner crop, not the background"),
        ("SSLMem and Déjà vu compared (Sec. 4.5)", "comparison exists; values UNVERIFIED",
         agree, "the tests measure different things: invariance of views vs label leakage"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


def attack_minutes(ens, attacked, **test) -> float:
    """Minutes the attacks took, from their results' provenance."""
    return sum(float((ens.exp.sources.get(dejavu_ensemble.result_name(ens, j, **test), {})
                      .get("wall_s") or {}).get("score dejavu", 0.0)) for j in attacked) / 60


CLAIM = dict(claim="the points SSLMem finds memorized agree with those Déjà vu finds memorized",
             short="SSLMem agrees with Déjà vu",
             source="Sec. 4.5; its numbers are not available to us", chapter="05_dejavu")


def claim_verdict(found: dict | None, ens, n_attacked: int) -> verdicts.Verdict:
    """The chapter's verdict: a positive correlation of SSLMem with Déjà vu memorization over
    the pool (:func:`verdicts.from_correlation`)."""
    scale = (f"{data_text(ens.exp)}; {n_attacked} encoders ({describe_design(ens)}), each "
             "attacking every pool image")
    if found is None:
        return verdicts.not_run("too few encoders attacked", scale=scale, **CLAIM)
    row = found["row"]
    test = (f"Spearman's ρ between the two per-image scores over {int(row.points)} pool images, "
            "with a 95 % bootstrap interval")
    return verdicts.from_correlation(row, found["detectable"], test=test, scale=scale, **CLAIM)
