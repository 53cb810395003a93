"""Comparing two designs' cost of a reliable ranking, on synthetic ensembles of known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sslmem.errors import SSLMemError
from sslmem.score import synthetic
from sslmem.score.design_cost import compare_designs, pair_reliability, pairs_needed
from sslmem.score.reliability import pair_differences

SD, COMP, NOISE, FACET = 0.01, 0.02, 0.012, 0.005


def _design(w, t, scale, seed, membership_seed=0, pairs=8):
    p = synthetic.planted(w, scale * t, pairs=pairs, composition_sd=COMP, noise_sd=NOISE,
                          seed_sd=FACET, view_sd=FACET, membership_seed=membership_seed,
                          seed=seed)
    L, inside, _ = p.subset("pool")
    return L, inside, p.groups


def _planted_rho(scale):
    true = (scale * SD) ** 2
    return true / (true + COMP ** 2 + NOISE ** 2 + 2 * FACET ** 2)


def _noise(rho):
    return (1 - rho) / rho


def test_pairs_needed_is_spearman_brown_inverted():
    assert pairs_needed(0.5, 0.8) == pytest.approx(4.0)
    assert pairs_needed(0.8, 0.8) == pytest.approx(1.0)
    assert pairs_needed(0.0, 0.8) == math.inf and pairs_needed(-0.1, 0.8) == math.inf


def test_one_pair_reliability_recovers_the_planted_one():
    got = []
    for i in range(6):
        w = synthetic.world(200, 8, seed=i)
        L, inside, groups = _design(w, synthetic.truth(w, SD, seed=i), 1.0, 10 + i, pairs=12)
        got.append(pair_reliability(pair_differences(L, inside, groups)))
    assert np.mean(got) == pytest.approx(_planted_rho(1.0), abs=0.04)


def test_more_signal_per_pair_is_cheaper_and_the_interval_covers_the_planted_ratio():
    # design b: the same halves, 1.5x the per-point memorization, the same noise
    planted = _noise(_planted_rho(1.5)) / _noise(_planted_rho(1.0))  # 0.44
    low, high, separated = 0, 0, 0  # planted ratio below / above the interval
    for i in range(30):
        w = synthetic.world(128, 8, seed=100 + i)
        t = synthetic.truth(w, SD, seed=100 + i)
        r = compare_designs(_design(w, t, 1.0, 200 + i), _design(w, t, 1.5, 300 + i),
                            n_boot=300, seed=i)
        assert r["shared_halves"] and r["groups"] == (8, 8)
        low += planted < r["ratio_low"]
        high += planted > r["ratio_high"]
        separated += r["separated"] and r["ratio_high"] < 1
    assert low + high <= 4 and max(low, high) <= 3  # 95 % nominal: ~1.5 misses expected
    assert separated >= 28


def test_equal_designs_are_not_called_different():
    separated = 0
    for i in range(10):
        w = synthetic.world(128, 8, seed=400 + i)
        t = synthetic.truth(w, SD, seed=400 + i)
        r = compare_designs(_design(w, t, 1.0, 500 + i), _design(w, t, 1.0, 600 + i),
                            n_boot=400, seed=i)
        separated += r["separated"]
        assert r["ratio_low"] < 1 < r["ratio_high"] or r["separated"]
    assert separated <= 1


def test_shared_halves_narrow_the_interval():
    # composition (which of x's neighbours a half holds) is the same in both designs on the
    # same halves, and the points bootstrap keeps it in step: the ratio's interval narrows
    w = synthetic.world(128, 8, seed=7)
    t = synthetic.truth(w, SD, seed=7)
    a, b = _design(w, t, 1.0, 11), _design(w, t, 1.5, 12)
    other = _design(w, t, 1.5, 12, membership_seed=9)  # other halves
    shared, apart = (compare_designs(a, x, n_boot=400) for x in (b, other))
    assert shared["shared_halves"] and not apart["shared_halves"]
    width = lambda r: math.log(r["ratio_high"] / r["ratio_low"])  # noqa: E731
    assert width(shared) < 0.8 * width(apart)


def test_a_cost_ratio_per_encoder_scales_the_comparison():
    w = synthetic.world(128, 8, seed=3)
    t = synthetic.truth(w, SD, seed=3)
    a, b = _design(w, t, 1.0, 21), _design(w, t, 1.0, 22)
    one, two = (compare_designs(a, b, cost_ratio=c, n_boot=200) for c in (1.0, 2.0))
    assert two["ratio"] == pytest.approx(2 * one["ratio"])
    assert two["ratio_low"] == pytest.approx(2 * one["ratio_low"])


def test_too_few_pairs_or_other_points_is_one_line():
    w = synthetic.world(64, 8, seed=1)
    t = synthetic.truth(w, SD, seed=1)
    a, small = _design(w, t, 1.0, 1), _design(w, t, 1.0, 2, pairs=2)
    with pytest.raises(SSLMemError, match="at least 3 complementary pairs"):
        compare_designs(a, small, n_boot=10)
    L, inside, groups = a
    with pytest.raises(SSLMemError, match="same points"):
        compare_designs(a, (L[:, :40], inside[:, :40], groups), n_boot=10)
