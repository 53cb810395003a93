"""Chapter 7's design question: is another all-facet design cheaper per unit of reliability?

Why a module: the regime table projects each design's cost of a reliable ranking from its own
reliability, but two projections with wide intervals do not say which design is cheaper. This
compares the ranking's all-facet design with each alternative the profile names
(``ranking.alternatives``, e.g. weaker augmentation) on the encoders both have, on the same
points and (where planned so) the same halves and inits, as a ratio of costs with a bootstrap
interval (:mod:`sslmem.score.design_cost`), and says whether the interval separates them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from sslmem.book.precision import TARGET, encoder_minutes
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble
from sslmem.score.design_cost import compare_designs
from sslmem.score.reliability import CENTER

# configuration fields a design may change without changing what one encoder costs
COST_NEUTRAL = {"augment_strength"}


def alternatives(profile: str) -> tuple[str | None, list[str]]:
    """The ranking's all-facet design and the alternatives the profile compares it with."""
    ranking = chapters.settings(profile).get("ranking") or {}
    return ranking.get("facets"), list(ranking.get("alternatives") or [])


def _common(base: Ensemble, alt: Ensemble) -> list[int]:
    """Members both designs have as complete complementary pairs (matched by index)."""
    have = set(base.complete_members())
    return [j for j in alt.complete_members() if j in have]


def _inputs(ens: Ensemble, members: list[int]):
    L, inside, got, positions = ens.matrices("pool", members=members, center=CENTER)
    return (L, inside, ens.pair_groups(got)), np.asarray(positions)


def cost_ratio(base: Ensemble, alt: Ensemble, members: list[int]) -> tuple[float, str]:
    """The alternative's cost per encoder over the base's, and where it comes from: 1 when the
    two configurations differ only in :data:`COST_NEUTRAL` fields (the same training and
    scoring), else the ratio of their measured median minutes on these members."""
    a, b = (dataclasses.asdict(e.exp.cfg) for e in (base, alt))
    if {k for k in a if a[k] != b.get(k)} <= COST_NEUTRAL:
        return 1.0, "at the same cost per encoder: only the views differ"
    minutes = [float(np.median([encoder_minutes(e, [j]) for j in members]))
               for e in (base, alt)]
    return minutes[1] / minutes[0], "from the measured median minutes per encoder"


def rows(profile: str, ssl: dict[str, Ensemble], described: dict | None = None,
         n_boot: int = 2000) -> list[dict]:
    """One comparison per alternative with 3 complete pairs in common with the base design
    (fewer, or another pool: a row that says so)."""
    base_name, alts = alternatives(profile)
    if base_name not in ssl:
        return []
    base, name = ssl[base_name], (described or {}).get
    out = []
    for alt_name in alts:
        alt = ssl.get(alt_name)
        members = _common(base, alt) if alt is not None else []
        if len(members) < 6:
            out.append({"design": name(alt_name, alt_name), "members": len(members)})
            continue
        (a, pa), (b, pb) = _inputs(base, members), _inputs(alt, members)
        if not np.array_equal(pa, pb):
            out.append({"design": name(alt_name, alt_name), "members": len(members),
                        "why": "it scores another pool, so the two cannot be compared point "
                               "for point"})
            continue
        ratio, why = cost_ratio(base, alt, members)
        r = compare_designs(a, b, target=TARGET, cost_ratio=ratio, n_boot=n_boot)
        out.append({"name": alt_name, "design": name(alt_name, alt_name),
                    "base": name(base_name, base_name),
                    "members": len(members), "cost_per_encoder": ratio, "cost_source": why,
                    **r})
    return out


def table(found: list[dict]) -> pd.DataFrame:
    """The page's table: per design, one pair's reliability, encoders for the target, and the
    cost ratio with its interval."""
    lines = []
    for r in found:
        if "rho" not in r:
            continue
        for k, who in enumerate(("base", "design")):
            lines.append({
                "design": r[who], "encoders (both)": r["members"],
                "one pair's reliability": f"{r['rho'][k]:.2f} [{r['rho_low'][k]:.2f}, "
                                          f"{r['rho_high'][k]:.2f}]",
                f"reliability at {r['members']}": f"{r['reliability'][k]:.2f}",
                f"encoders for {TARGET}": _encoders(r["pairs_needed"][k]),
                "cost vs the ranking's": "1" if k == 0 else (
                    _ratio(r) if (r["rho"] > 0).all() else "–")})
    return pd.DataFrame(lines)


def _encoders(pairs: float) -> str:
    return "never (no signal)" if not math.isfinite(pairs) else f"{2 * math.ceil(pairs):.0f}"


def _ratio(r: dict) -> str:
    return f"{r['ratio']:.2f} [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]"


def text(found: list[dict], minutes: float | None = None) -> str:
    """The section's conclusion in words, one sentence per alternative."""
    if not found:
        return "This profile compares no other all-facet design with the ranking's."
    said = []
    for r in found:
        if "rho" not in r:
            said.append(f"**{r['design']}**: " + r.get("why", (
                f"{r['members']} encoders in common with the ranking's design so far; the "
                "comparison needs 3 complementary pairs of both.")))
            continue
        cheaper = r["ratio_high"] < 1
        verdict = ("cheaper" if cheaper else "dearer") if r["separated"] else "not separated"
        costs = (f" ({r['cost_source']})")
        head = (f"**{r['design']}** against **{r['base']}**, on the same "
                f"{r['points']} points and {r['members']} encoders each"
                + (", the same halves" if r["shared_halves"] else "") + ": ")
        if not (r["rho"] > 0).all():
            body = (f"one pair's reliability is {r['rho'][0]:.2f} for the ranking's design and "
                    f"{r['rho'][1]:.2f} for this one: a design without positive per-pair "
                    "signal never reaches a reliable ranking at this size, so no cost ratio is "
                    "estimated.")
        elif r["separated"]:
            body = (f"it is **{verdict}** per unit of reliability: a reliable ranking costs "
                    f"{_ratio(r)} times the ranking design's{costs}, p = {r['p']:.2g}.")
        else:
            body = (f"the two do **not separate**: the cost ratio is {_ratio(r)}{costs}, "
                    f"p = {r['p']:.2g}, so at {r['members']} encoders each a ratio anywhere in "
                    "that interval is consistent with the data.")
        hours = ""
        if minutes and all(math.isfinite(p) for p in r["pairs_needed"]):
            enc = [2 * math.ceil(p) for p in r["pairs_needed"]]
            hours = (f" Reaching {TARGET} takes {enc[0]} encoders of the ranking's design "
                     f"({enc[0] * minutes / 60:.1f} h on 2 cores at {minutes:.1f} min each) "
                     f"and {enc[1]} of this one "
                     f"({enc[1] * minutes * r['cost_per_encoder'] / 60:.1f} h).")
        said.append(head + body + hours)
    return "\n\n".join(said)


def verdict_words(r: dict) -> str:
    """One compared row's verdict in a clause ("cheaper: 0.55 [0.36, 0.86] times the cost")."""
    if not (r["rho"] > 0).all():
        return "no cost ratio, as one design shows no positive per-pair signal"
    if not r["separated"]:
        return f"the two do not separate ({_ratio(r)} times the cost, p = {r['p']:.2g})"
    word = "cheaper" if r["ratio_high"] < 1 else "dearer"
    return f"it is {word}: {_ratio(r)} times the cost of a reliable ranking, p = {r['p']:.2g}"


def show(found: list[dict], facets_found: dict | None = None) -> dict:
    """Display the section (its table where a comparison ran, then its text) and return the
    values to glue. ``facets_found``: :func:`sslmem.book.facets.compare`'s result, whose
    measured minutes per encoder turn encoders into hours."""
    from IPython.display import Markdown, display

    from sslmem.book.notebook import show_table

    if len(shown := table(found)):
        show_table(shown)
    minutes = (facets_found or {}).get("values", {}).get("facets_minutes")
    display(Markdown(text(found, minutes)))
    return values(found)


def values(found: list[dict]) -> dict:
    """Glued numbers of the first alternative compared (``alt_ratio``, ``alt_verdict``)."""
    done = [r for r in found if "rho" in r]
    if not done:
        return {"alt_ratio": "–", "alt_verdict": "not compared yet"}
    r = done[0]
    verdict = ("no signal" if not (r["rho"] > 0).all() else
               "not separated" if not r["separated"] else
               "cheaper" if r["ratio_high"] < 1 else "dearer")
    return {"alt_ratio": _ratio(r), "alt_verdict": verdict, "alt_p": r["p"]}
