"""What a reliability counts as error: the facets an ensemble's encoders differ in.

Why this module: SSLMem is an expectation over encoders *and* augmentations, so a reliability
that says how well a ranking reproduces must count as error everything a fresh ensemble would
draw anew: which half each encoder trains on (membership, and with it the composition of x's
neighbours), its initialization and augmentation stream (seed), and the view pairs a point is
scored on (views). A design that holds a facet fixed for every encoder (one shared seed, the
same K view pairs for all) turns that facet's per-point luck into apparent signal: its split
halves share it. Generalizability theory (Cronbach et al. 1972) names this: a reliability holds
over the facets it was measured across.

The estimators work on the independent units of an ensemble, its complementary pairs
(:func:`~sslmem.score.reliability.pair_differences`), so a design that draws a facet anew per
pair counts it as error and one that shares it counts it as signal. Comparing two designs on the
same points separates the facet's variance (:func:`facet_variance`).
"""

from __future__ import annotations

import math

import numpy as np

from sslmem.errors import SSLMemError
from sslmem.score.reliability import _check, pair_differences


def components(L, inside, groups) -> dict:
    """Variance components of the per-point score from its pairs' differences d_g(x).

    ``true_var``: between-point variance of the score's expectation over what varies between
    pairs (var of the mean over pairs − mean error variance / G); ``pair_error_var``: the
    variance of one pair's d_g around that expectation (all facets that vary between pairs, plus
    residual noise); ``reliability``: true / (true + error / G), the reliability of the mean of G
    pairs (it agrees with split-half by construction of Spearman–Brown);
    ``within_pair_cov``: for pairs of one encoder with and one without x, the covariance over
    pairs of the two encoders' values; composition (x's neighbours trained on by one member,
    not the other) makes it negative, a shared init or shared views positive.
    """
    L, inside = _check(L, inside)
    groups = np.asarray(groups)
    d = pair_differences(L, inside, groups)
    ok = np.isfinite(d).sum(0) >= 2
    out = difference_components(d)
    out["within_pair_cov"] = _within_pair_cov(L[:, ok], inside[:, ok], groups)
    return out


def difference_components(d) -> dict:
    """:func:`components` from the pairs' differences ``d`` (G, N) alone (no within-pair
    covariance): what a bootstrap over pairs and points recomputes."""
    d = np.asarray(d, float)
    count = np.isfinite(d).sum(0)
    ok = count >= 2
    if ok.sum() < 3:
        raise SSLMemError("variance components need at least 3 points scored by 2 or more pairs")
    d, count = d[:, ok], count[ok]
    mean = np.nanmean(d, axis=0)
    error = np.nanvar(d, axis=0, ddof=1)
    true_var = float(mean.var(ddof=1) - np.mean(error / count))
    g = float(np.mean(count))
    pair_error = float(error.mean())
    rel = true_var / (true_var + pair_error / g) if true_var + pair_error / g > 0 else math.nan
    return {"true_var": true_var, "true_sd": math.sqrt(max(true_var, 0.0)),
            "pair_error_var": pair_error, "reliability": float(rel), "groups": int(round(g)),
            "points": int(ok.sum())}


def _within_pair_cov(L, inside, groups) -> float:
    """Mean over points of cov over pairs (value of the member with x, of the member without);
    NaN unless every group is one encoder with x and one without."""
    labels = np.unique(groups)
    ins, outs = [], []
    for g in labels:
        rows = np.flatnonzero(groups == g)
        if len(rows) != 2 or not np.all(inside[rows[0]] != inside[rows[1]]):
            return math.nan
        a, b = L[rows[0]], L[rows[1]]
        ins.append(np.where(inside[rows[0]], a, b))
        outs.append(np.where(inside[rows[0]], b, a))
    if len(labels) < 3:
        return math.nan
    ins, outs = np.stack(ins), np.stack(outs)
    cov = ((ins - ins.mean(0)) * (outs - outs.mean(0))).sum(0) / (len(labels) - 1)
    return float(cov.mean())


def facet_variance(shared: dict, drawn: dict) -> float:
    """Variance of a facet's per-point effect: the true variance of a design that shares the
    facet across its pairs (it counts as signal there) minus that of a design that draws it
    per pair (error there), both :func:`components` of the same points."""
    return float(shared["true_var"] - drawn["true_var"])


def view_blocks(L_half, L_full, k_half: int, k_full: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint blocks of view pairs from stored prefix means: the first ``k_half`` pairs
    (``L_half``) and the remaining ``k_full − k_half`` (from the mean over all ``k_full``).

    Why: a design whose encoders all score on the same K pairs can still be split across views
    after the fact, so that two halves differ in encoders *and* views."""
    if not 0 < k_half < k_full:
        raise SSLMemError(f"need 0 < k_half < k_full, got {k_half} and {k_full}")
    L_half, L_full = np.asarray(L_half, float), np.asarray(L_full, float)
    return L_half, (k_full * L_full - k_half * L_half) / (k_full - k_half)
