"""Memorization across ordered levels on shared pairs (sslmem.score.levels): known answers from
synthetic ensembles whose levels share membership, seeds and views pair by pair, as chapter 6's
ε = ∞, 20, 8 designs do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sslmem.errors import SSLMemError
from sslmem.score import synthetic
from sslmem.score.levels import detectable, pair_contrasts, paired_levels

W = synthetic.world(pool=64, placebo=64, seed=0)


def _contrasts(means, *, pairs=8, seed=0, pair_sd=0.02, noise_sd=0.02) -> pd.DataFrame:
    """One ensemble per level on the same pairs: the same halves at every level, its own
    training noise per level, and a part shared by a pair across levels (``pair_sd``: a pair
    whose halves and init memorize more at ε = ∞ memorize more under DP too)."""
    t = synthetic.truth(W, 0.005, seed=seed)
    shared = np.random.default_rng([seed, 99]).normal(0.0, pair_sd, pairs)
    cols = {}
    for level, mean in enumerate(means):
        e = synthetic.planted(W, t, pairs=pairs, mean=mean, noise_sd=noise_sd,
                              seed=1000 * seed + level)
        pool = slice(0, W.pool)
        cols[level] = pair_contrasts(e.L[:, pool], e.inside[:, pool], e.groups) + shared
    return pd.DataFrame(cols)


def test_pair_contrasts_recover_the_planted_mean():
    c = _contrasts([0.03], pairs=16, pair_sd=0.0, noise_sd=0.002)
    assert c[0].mean() == pytest.approx(0.03, abs=0.002)


def test_a_planted_decrease_is_found_paired_and_its_interval_covers_it():
    found = paired_levels(_contrasts([0.03, 0.02, 0.005]))
    levels, trend = found["levels"], found["trend"]
    assert levels.pairs.tolist() == [8, 8, 8]
    last = levels.iloc[-1]
    assert last["diff_low"] <= -0.025 <= last["diff_high"] and last["diff_p"] < 0.01
    assert trend["slope_low"] <= -0.0125 <= trend["slope_high"] and trend["slope_p"] < 0.01
    assert trend["page_p"] < 0.01  # all 8 pairs fall in order: Page's L at its maximum
    assert levels.iloc[0]["p"] < 0.01  # the untreated level memorizes beyond its interval


def test_pairing_is_what_makes_the_design_sensitive():
    """The pairs' shared parts cancel in a paired difference and not in a comparison of two
    independent means: the paired interval is several times narrower."""
    c = _contrasts([0.03, 0.025], pair_sd=0.05)
    paired = paired_levels(c)["levels"].iloc[1]
    unpaired = stats.ttest_ind(c[1], c[0]).confidence_interval()
    assert (paired["diff_high"] - paired["diff_low"]) * 3 < unpaired.high - unpaired.low


def test_no_difference_keeps_the_size_of_both_trend_tests():
    slope, page = [], []
    for seed in range(200):
        trend = paired_levels(_contrasts([0.02, 0.02, 0.02], seed=seed, pairs=6))["trend"]
        slope.append(trend["slope_p"] < 0.05)
        page.append(trend["page_p"] < 0.05)
    assert np.mean(slope) < 0.09 and np.mean(page) < 0.09


def test_detectable_matches_the_power_it_promises():
    """A true mean the size of ``detectable`` is found in about 80 % of experiments."""
    rng = np.random.default_rng(0)
    d = detectable(1.0, 8)
    hits = [stats.ttest_1samp(rng.normal(d, 1.0, 8), 0).pvalue < 0.05 for _ in range(2000)]
    assert 0.74 < np.mean(hits) < 0.86


def test_pairs_missing_at_a_level_are_left_out_and_one_level_is_refused():
    c = _contrasts([0.03, 0.02])
    c.iloc[0, 1] = np.nan
    assert paired_levels(c)["levels"].pairs.tolist() == [7, 7]
    with pytest.raises(SSLMemError, match="at least two levels"):
        paired_levels(c[[0]])
