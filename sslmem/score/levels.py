"""Memorization across ordered treatment levels trained on the same pairs (chapter 6: ε = ∞, 20, 8).

Why a module: "DP lowers memorization" is a dose–response claim. Its evidence is the average
in/out contrast of an ensemble at each level, and the levels' ensembles share their halves,
inits and views pair by pair (common random numbers), so the contrasts are *paired*: each
complementary pair is one observation per level, and a difference between levels, or a trend
across them, is tested over the pairs (not over points, which the same encoders score). Two
trend tests: the mean of each pair's least-squares slope over the level index (a t-test over
pairs, with an interval), and Page's L test (scipy), which needs no normality.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.errors import SSLMemError
from sslmem.score.reliability import one_sample_t, pair_differences


def pair_contrasts(L, inside, groups) -> pd.Series:
    """Each pair's average in/out contrast: the mean over points of its own estimate of m."""
    d = pair_differences(L, inside, groups)
    return pd.Series(np.nanmean(d, axis=1), index=np.unique(np.asarray(groups)))


def _t(x: np.ndarray, level: float) -> dict:
    """``one_sample_t`` over pairs, its count named ``pairs``."""
    out = one_sample_t(x, level)
    out.pop("t")
    out["pairs"] = out.pop("n")
    return out


def detectable(sd: float, g: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean a two-sided one-sample t-test over ``g`` pairs with this ``sd``
    detects with ``power`` (noncentral-t approximation by the usual two quantiles)."""
    if g < 2 or not np.isfinite(sd):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, g - 1) + stats.t.ppf(power, g - 1))
                 * sd / math.sqrt(g))


def paired_levels(contrasts: pd.DataFrame, level: float = 0.95) -> dict:
    """Test memorization across levels on the pairs every level has.

    ``contrasts``: one row per pair, one column per level, in the order of the treatment
    (first the untreated level, e.g. ε = ∞, then more and more privacy). Returns ``levels``
    (per level: the mean contrast, its interval and p over the pairs, and the paired
    difference from the first level with its interval, p and the difference detectable with
    80 % power) and ``trend`` (the mean per-pair slope per level step with its interval and
    p, and Page's L test of a decrease: its L and one-sided p).
    """
    if contrasts.shape[1] < 2:
        raise SSLMemError("a comparison across levels needs at least two levels")
    common = contrasts.dropna()
    g = len(common)
    rows = []
    first = common.iloc[:, 0].to_numpy(float)
    for name in common.columns:
        x = common[name].to_numpy(float)
        here, diff = _t(x, level), _t(x - first, level)
        rows.append({"level": name, **here,
                     "diff": diff["mean"], "diff_low": diff["low"], "diff_high": diff["high"],
                     "diff_p": diff["p"],
                     "diff_detectable": detectable(float(np.std(x - first, ddof=1))
                                                   if g > 1 else math.nan, g)})
    steps = np.arange(common.shape[1], dtype=float)
    centred = steps - steps.mean()
    slopes = common.to_numpy(float) @ centred / (centred @ centred)
    slope = _t(slopes, level)
    trend = {"slope": slope["mean"], "slope_low": slope["low"], "slope_high": slope["high"],
             "slope_p": slope["p"], "pairs": g,
             "slope_detectable": detectable(float(np.std(slopes, ddof=1)) if g > 1 else
                                            math.nan, g)}
    if g >= 2 and common.shape[1] >= 3:
        # Page's test: the predicted order is increasing across columns, so the columns go
        # from the most private level to none (memorization predicted to rise in that order)
        page = stats.page_trend_test(common.to_numpy(float)[:, ::-1])
        trend |= {"page_L": float(page.statistic), "page_p": float(page.pvalue)}
    else:
        trend |= {"page_L": math.nan, "page_p": math.nan}
    return {"levels": pd.DataFrame(rows), "trend": trend}
