"""How precise is a per-point score? Split-half reliability, its curve, and what it needs.

Why this module: a per-point claim (a ranking, a correlation between two scores, a top-k set)
is only as good as the precision of the score it ranks. Classical test theory gives the tools
(Spearman 1910, Brown 1910): split the M encoders of an ensemble into two halves, score every
point with each half, correlate the two halves over points and correct the correlation to the
full M with the Spearman–Brown formula. The result estimates the share of the observed
between-point variance that is true (reproducible) variance; a correlation between two noisy
scores is attenuated by sqrt(rel_a · rel_b) and can be disattenuated by that factor.

All functions are pure NumPy over an (M, N) matrix of per-encoder values ``L`` and a boolean
(M, N) membership matrix ``inside`` (True: encoder j trained on point x), so the known-answer
tests can feed synthetic ensembles whose true per-point memorization is known.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.errors import SSLMemError

# Alignment losses are centred per encoder on its placebo mean (Ensemble.matrices): measured on
# the laptop store's first pairs, this removed 2-25 % of the placebo's variance (most with shared
# initialization) and none of the contrast; chapter 7 shows both SDs for every design.
CENTER = True

def ensemble_estimate(L: np.ndarray, inside: np.ndarray, groups=None) -> pd.DataFrame:
    """Per point: m = mean L over encoders without x − mean L over encoders with x, and its s.e.

    ``se`` is the between-encoder error, the one that matters for a per-point claim. With
    ``groups`` (the complementary pair of each encoder) it is computed over the **pairs**, the
    independent units: each pair's own in/out difference d_g(x), se = sd_g(d_g) / sqrt(G).
    Why: the two members of a pair share the composition of their halves (which of x's
    neighbours is trained on, with opposite signs) and, by design, their init and views, so
    they are not independent draws; treating M encoders as independent made the s.e. 15-24 %
    too small on the laptop store. ``se_members`` keeps that member-wise value for comparison:
    sqrt(var_out / n_out + var_in / n_in) (NaN where either side has fewer than 2 encoders).
    """
    L, inside = _check(L, inside)
    out = ~inside
    n_in, n_out = inside.sum(0), out.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        L_in = np.where(inside, L, 0).sum(0) / n_in
        L_out = np.where(out, L, 0).sum(0) / n_out
        var_in = np.where(inside, (L - L_in) ** 2, 0).sum(0) / (n_in - 1)
        var_out = np.where(out, (L - L_out) ** 2, 0).sum(0) / (n_out - 1)
        se_members = np.sqrt(var_in / n_in + var_out / n_out)
    se_members = np.where((n_in >= 2) & (n_out >= 2), se_members, np.nan)
    m = np.where((n_in >= 1) & (n_out >= 1), L_out - L_in, np.nan)
    se = se_members if groups is None else pair_se(pair_differences(L, inside, groups))
    return pd.DataFrame({"m": m, "se": se, "L_in": L_in, "L_out": L_out,
                         "n_in": n_in, "n_out": n_out, "se_members": se_members})


def pair_differences(L, inside, groups) -> np.ndarray:
    """(G, N): each encoder group's own estimate of m, mean L of its encoders without x − mean
    L of its encoders with x (NaN where the group has no encoder on one side: at fraction 1/2
    a complementary pair always has one of each). The independent units of the ensemble."""
    L, inside = _check(L, inside)
    groups = np.asarray(groups)
    if groups.shape != (len(L),):
        raise SSLMemError(f"groups must label each of the {len(L)} encoders, got shape "
                          f"{groups.shape}")
    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for g in np.unique(groups):
            Lg, ing = L[groups == g], inside[groups == g]
            n_in, n_out = ing.sum(0), (~ing).sum(0)
            rows.append(np.where(~ing, Lg, 0).sum(0) / n_out - np.where(ing, Lg, 0).sum(0) / n_in)
    return np.where(np.isfinite(d := np.stack(rows)), d, np.nan)


def pair_se(d: np.ndarray) -> np.ndarray:
    """Per point, the standard error of the mean of the groups' differences ``d`` (G, N):
    sd / sqrt(G) over the groups that define it (NaN with fewer than 2)."""
    d = np.asarray(d, float)
    count = np.isfinite(d).sum(0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.nanstd(d, axis=0, ddof=1) / np.sqrt(count)
    return np.where(count >= 2, se, np.nan)


def one_sample_t(x, level: float = 0.95) -> dict:
    """Mean, s.e., t, two-sided p and t-interval of the one-sample t-test over ``x`` (``n``
    observations; NaN where fewer than 2): the test every contrast over pairs uses."""
    x = np.asarray(x, float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "se": math.nan, "t": math.nan, "p": math.nan, "low": math.nan,
                "high": math.nan, "n": n}
    se = float(x.std(ddof=1) / math.sqrt(n))
    t = mean / se if se > 0 else math.copysign(math.inf, mean)
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    return {"mean": mean, "se": se, "t": float(t), "p": float(2 * stats.t.sf(abs(t), n - 1)),
            "low": mean - half, "high": mean + half, "n": n}


def pair_contrast(L, inside, groups, level: float = 0.95) -> dict:
    """The average in/out contrast tested over the encoder groups, not over points.

    Why: every point is scored by the same encoders, so points are not independent evidence
    of an average effect (an alignment-regularized design gave p = 2e-15 over 128 points and
    p = 0.07 over its 2 pairs). Each group's mean of d_g over the points is one observation;
    the one-sample t-test and its interval run over the G groups."""
    per_group = np.nanmean(pair_differences(L, inside, groups), axis=1)
    out = one_sample_t(per_group[np.isfinite(per_group)], level)
    out["groups"] = out.pop("n")
    return out


def spearman_brown(r, factor):
    """Reliability of a score averaged over ``factor`` times as many encoders as one of
    reliability ``r`` (r may be an array; negative r is kept, not clipped)."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1 + (factor - 1) * r)


def members_needed(reliability: float, members: int, target: float) -> float:
    """Encoders that reach ``target`` reliability, projected by Spearman–Brown from
    ``reliability`` measured with ``members`` encoders (inf when no positive signal)."""
    if not reliability > 0:
        return math.inf
    r1 = reliability / (members - (members - 1) * reliability)  # one encoder's reliability
    return target * (1 - r1) / (r1 * (1 - target))


def disattenuate(r: float, rel_a: float, rel_b: float) -> float:
    """A correlation corrected for the unreliability of both scores: r / sqrt(rel_a · rel_b)
    (NaN when either reliability is not positive: nothing to correct by)."""
    if not (rel_a > 0 and rel_b > 0):
        return math.nan
    return r / math.sqrt(rel_a * rel_b)


def _check(L, inside) -> tuple[np.ndarray, np.ndarray]:
    L = np.asarray(L, dtype=np.float64)
    inside = np.asarray(inside, dtype=bool)
    if L.ndim != 2 or L.shape != inside.shape:
        raise SSLMemError(f"L and inside must be (encoders, points) matrices of one shape; got "
                          f"{L.shape} and {inside.shape}")
    return L, inside


def _corr(a: np.ndarray, b: np.ndarray, how: str) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    if how == "spearman":
        return float(stats.spearmanr(a[ok], b[ok])[0])
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _corr_rows(a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """:func:`_corr` of every row of two (R, N) arrays at once.

    Why: the bootstrap intervals of chapters 2, 3, 5 and 7 take tens of thousands of rank
    correlations; one ``scipy.stats.spearmanr`` call each took 27 of chapter 3's 43 s. Rows
    with a non-finite value take the scalar path (they drop points); the others are ranked
    together (``rankdata``, average ties, as ``spearmanr``) and correlated in one pass."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    out = np.full(len(a), math.nan)
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    for i in np.flatnonzero(~finite):
        out[i] = _corr(a[i], b[i], how)
    if not finite.any() or a.shape[1] < 3:
        return out
    x, y = a[finite], b[finite]
    flat = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
    if how == "spearman":
        x, y = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    out[finite] = np.where(flat, math.nan, np.clip(r, -1.0, 1.0))
    return out


def _halves(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of the encoder groups, of equal size (booleans over
    encoders); with an odd number of groups one group sits out."""
    labels = rng.permutation(np.unique(groups))
    h = len(labels) // 2
    return np.isin(groups, labels[:h]), np.isin(groups, labels[h:2 * h])


def split_half(L, inside, *, groups=None, n_splits: int = 200, n_boot: int = 400,
               seed: int = 0, how: str = "pearson", level: float = 0.95,
               L_other=None) -> dict:
    """Split-half reliability of the ensemble estimate, Spearman–Brown-corrected to all M.

    The encoders are split into two random halves (whole ``groups`` at a time: e.g. the two
    complementary members of a pair, so each half stays balanced); each half estimates m for
    every point and the two estimates are correlated over points (``how``: pearson or
    spearman). ``reliability`` is the mean over ``n_splits`` random splits, corrected to M.

    The interval is a bootstrap over points and splits together (each replicate resamples the
    points and draws a fresh split), so it covers both sources of uncertainty: which points
    were scored and how the encoders happened to be split. With few encoder groups (2 or 3,
    i.e. one possible split) it cannot see the encoder-sampling part and is too narrow.
    With an odd number of groups each split leaves one out and the correction is to all groups.

    ``L_other`` (same shape as ``L``): the second half reads its values from here instead, e.g.
    the same encoders scored on other view pairs (:func:`sslmem.score.facets.view_blocks`), so
    the halves differ in encoders *and* views and the value counts both as error.
    """
    L, inside = _check(L, inside)
    second = L if L_other is None else _check(L_other, inside)[0]
    groups = np.arange(len(L)) if groups is None else np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise SSLMemError("split-half reliability needs at least two encoder groups")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_splits):
        a, b = _halves(groups, rng)
        pairs.append((ensemble_estimate(L[a], inside[a]).m.to_numpy(),
                      ensemble_estimate(second[b], inside[b]).m.to_numpy()))
    n_groups = len(np.unique(groups))
    factor = n_groups / (n_groups // 2)
    first, second = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
    r_half = float(np.nanmean(_corr_rows(first, second, how)))
    n = L.shape[1]
    drawn, rows = np.empty(n_boot, int), np.empty((n_boot, n), int)
    for i in range(n_boot):  # the draws in the order of the scalar loop this replaced
        drawn[i] = rng.integers(len(pairs))
        rows[i] = rng.integers(0, n, n)
    pick = drawn[:, None]
    boot = spearman_brown(_corr_rows(first[pick, rows], second[pick, rows], how), factor)
    lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"reliability": float(spearman_brown(r_half, factor)), "low": float(lo),
            "high": float(hi), "r_half": r_half, "members": int(len(L)),
            "points": int(n), "how": how}


def reliability_curve(L, inside, *, groups=None, sizes=None, n_splits: int = 60,
                      n_boot: int = 200, seed: int = 0, how: str = "pearson") -> pd.DataFrame:
    """Reliability against the number of encoders M: for each size, random subsets of the
    encoder groups, each measured by :func:`split_half` (mean over subsets)."""
    L, inside = _check(L, inside)
    groups = np.arange(len(L)) if groups is None else np.asarray(groups)
    labels = np.unique(groups)
    per_group = len(L) / len(labels)
    sizes = sizes or [g for g in (2, 4, 8, 16, 32, 64, 128, 256) if g <= len(labels)]
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        results = []
        for rep in range(4 if size < len(labels) else 1):
            keep = np.isin(groups, rng.permutation(labels)[:size])
            results.append(split_half(L[keep], inside[keep], groups=groups[keep],
                                      n_splits=max(1, n_splits // 4), n_boot=n_boot // 4,
                                      seed=seed + rep, how=how))
        rows.append({"members": int(round(size * per_group)),
                     "reliability": float(np.mean([r["reliability"] for r in results])),
                     "low": float(np.mean([r["low"] for r in results])),
                     "high": float(np.mean([r["high"] for r in results]))})
    return pd.DataFrame(rows)


def true_spread(m, se, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Between-point SD of the true per-point score: sqrt(var(m) − mean(se²)), with a
    bootstrap interval over points (negative variance components are reported as 0).

    Why: the observed spread of m mixes true differences between points with estimation
    noise; this separates them, and is what a regime search should make large.
    """
    m, se = np.asarray(m, float), np.asarray(se, float)
    ok = np.isfinite(m) & np.isfinite(se)
    m, se = m[ok], se[ok]
    if len(m) < 3:
        return {"sd": math.nan, "low": math.nan, "high": math.nan, "variance": math.nan}
    rng = np.random.default_rng(seed)

    def var(rows):
        return m[rows].var(ddof=1) - (se[rows] ** 2).mean()

    v = var(np.arange(len(m)))
    boot = np.array([var(rng.integers(0, len(m), len(m))) for _ in range(n_boot)])
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    root = lambda x: math.sqrt(max(float(x), 0.0))  # noqa: E731
    return {"sd": root(v), "low": root(lo), "high": root(hi), "variance": float(v)}


def contrast(m) -> dict:
    """Mean of m with its one-sample t-test against 0 (the average in/out contrast)."""
    m = np.asarray(m, float)
    m = m[np.isfinite(m)]
    t, p = stats.ttest_1samp(m, 0.0) if len(m) > 1 else (math.nan, math.nan)
    se = m.std(ddof=1) / math.sqrt(len(m)) if len(m) > 1 else math.nan
    return {"mean": float(m.mean()) if len(m) else math.nan, "se": float(se), "t": float(t),
            "p": float(p), "n": int(len(m))}


def retest_correlation(a, b, how: str = "pearson") -> float:
    """Correlation of two independent repeats of one score over points (e.g. one f/g pair
    trained twice with different seeds): that score's reliability as a single measurement."""
    return _corr(np.asarray(a, float), np.asarray(b, float), how)
