"""Chapter 4's alignment regularizer measured on ensembles, paired member by member.

Why a module: with one f/g pair, λ = 0.5 appeared to *raise* memorization (chapter 4's first
version: 0.0030 → 0.0112). But the regularizer doubles every alignment loss, and one pair
cannot separate what f and g do to *every* image (an encoder-level shift, visible on the
never-trained extra set) from what they do to their own training points. An ensemble can: each
member scores the whole pool, so its own in/out contrast (mean loss of the pool points it did
not train on − mean loss of those it did) is free of encoder-level shifts. Member j of the
regularized design trains on the same half with the same seed as member j of the plain design,
so the λ effect is a paired difference over members, for the contrast and for probe accuracy.
Because λ rescales the losses, the contrast is also reported relative to the member's mean loss.
"""

from __future__ import annotations

import math

import pandas as pd

from sslmem.pipeline.removal import differences


def member_contrasts(ens, members=None) -> pd.DataFrame:
    """Per member: the in/out contrast on the pool (raw and relative to its mean pool loss) and
    the same contrast on the placebo's fake membership (a control that must be ~0)."""
    whole = ens.table(members)
    column = f"L{ens.exp.cfg.n_pairs}"
    rows = []
    for j, t in whole.groupby("member"):
        pool, placebo = t[t.subset == "pool"], t[t.subset == "placebo"]
        gap = (pool[column][~pool.inside].mean() - pool[column][pool.inside].mean())
        fake = (placebo[column][~placebo.inside].mean()
                - placebo[column][placebo.inside].mean())
        level = pool[column].mean()
        rows.append(dict(member=int(j), contrast=float(gap), relative=float(gap / level),
                         placebo=float(fake), loss=float(level)))
    return pd.DataFrame(rows)


def paired_members(a: pd.DataFrame, b: pd.DataFrame, column: str, *, scale: float = 1.0,
                   level: float = 0.95, pairs: bool = True) -> dict:
    """b − a over the members both hold (paired by member): mean, SD, t interval, p, n.

    ``pairs``: the differences of a complementary pair's two members (2i, 2i + 1) are
    averaged first and the test runs over the pairs, the independent units (the two members
    share the composition of their halves; tested over members, 2 pairs looked like 4)."""
    both = a.merge(b, on="member", suffixes=("_a", "_b"))
    d = (both[f"{column}_b"] - both[f"{column}_a"]) * scale
    if pairs:
        d = d.groupby(both.member.to_numpy() // 2).mean()
    return differences(d.to_numpy(float), level)


def single_pair_sides(table: pd.DataFrame) -> dict:
    """One f/g pair's memorization seen from each side: f's own points (S_C: L_g − L_f),
    g's own points (S_I: L_f − L_g), each minus the encoder-level shift L_g − L_f on the
    never-trained S_E; with standard errors. Two estimates of the same quantity: how far they
    disagree is what one pair cannot tell."""
    def part(subset):
        t = table[table.subset == subset]
        return (t.L_g - t.L_f).to_numpy(float)

    cand, ind, extra = part("candidate"), part("independent"), part("extra")
    shift = extra.mean()

    def se(*xs):
        return math.sqrt(sum(x.var(ddof=1) / len(x) for x in xs))

    return dict(shift=float(shift), shift_se=float(se(extra)),
                f_side=float(cand.mean() - shift), f_side_se=float(se(cand, extra)),
                g_side=float(shift - ind.mean()), g_side_se=float(se(ind, extra)),
                raw=float(cand.mean()))

