"""Agreement between noisy per-point scores: known answers on synthetic ensembles.

Two synthetic ensembles of M encoders on complementary random halves share N points whose
true memorization (mu_a, mu_b) has a known correlation; each encoder adds its own noise, and
optionally a *composition* term that depends only on the membership matrix (which of a point's
neighbours the encoder trained on), shared by both ensembles when they use the same halves.
"""

from __future__ import annotations

import numpy as np
import pytest

from sslmem.errors import SSLMemError
from sslmem.score.agreement import PointScore, agreement, agreements, difference, top_overlap


def _membership(m: int, n: int, rng) -> np.ndarray:
    inside = np.zeros((m, n), bool)
    for i in range(m // 2):
        perm = rng.permutation(n)
        inside[2 * i, perm[: n // 2]] = True
        inside[2 * i + 1, perm[n // 2:]] = True
    return inside


def _ensemble(name, mu, inside, rng, noise, composition=None):
    m, n = inside.shape
    base = rng.normal(0, 0.05, n)  # per-point loss level, the same for every encoder
    L = base + rng.normal(0, noise, (m, n)) - mu * inside
    if composition is not None:
        L = L + composition
    return PointScore(name, np.arange(n), L, inside, np.arange(m) // 2, "m")


def _composition(inside, rng, k=8, scale=0.02):
    """Per (encoder, point): how many of the point's k random neighbours the encoder saw."""
    m, n = inside.shape
    neighbours = np.array([rng.choice(np.delete(np.arange(n), x), k, replace=False)
                           for x in range(n)])
    seen = inside[:, neighbours].sum(2)  # (m, n)
    return scale * (seen - k / 2)


def _true_pair(n, rho, rng, sd=0.01):
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    return 0.01 + sd * z[:, 0], 0.01 + sd * z[:, 1]


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_disattenuated_agreement_recovers_the_true_correlation(rho):
    """Over repeated synthetic experiments the 95 % interval covers the sample's own true
    correlation (at least 8 of 10 times) and the estimate is unbiased; the observed one is
    attenuated by the scores' unreliability."""
    covered, errors = 0, []
    for rep in range(10):
        rng = np.random.default_rng([int(rho * 10), rep])
        n, m = 400, 24
        mu_a, mu_b = _true_pair(n, rho, rng)
        a = _ensemble("a", mu_a, _membership(m, n, rng), rng, noise=0.02)
        b = _ensemble("b", mu_b, _membership(m, n, rng), rng, noise=0.03)
        res = agreement(a, b, how="pearson", n_splits=30, n_boot=200)
        truth = np.corrcoef(mu_a, mu_b)[0, 1]  # the sample's own true correlation
        covered += res["r_true_low"] <= truth <= res["r_true_high"]
        errors.append(res["r_true"] - truth)
        if rho > 0:  # unreliable scores attenuate: the observed correlation is smaller
            assert res["r"] < truth - 0.1
            assert 0 < res["rel_a"] < 1 and 0 < res["rel_b"] < 1
            assert res["r_corrected"] == pytest.approx(truth, abs=0.25)
    assert covered >= 8
    assert abs(np.mean(errors)) < 0.06


def test_shared_membership_does_not_create_agreement():
    """Two methods on the same halves share composition noise: their full-ensemble scores
    correlate although the true scores are independent; what agreement reports as observed
    (cross-fitted: halves of disjoint pairs) and the split-half estimate do not."""
    rng = np.random.default_rng(3)
    n, m = 400, 16
    mu_a, mu_b = _true_pair(n, 0.0, rng)
    inside = _membership(m, n, rng)
    comp = _composition(inside, rng, scale=0.01)
    a = _ensemble("a", mu_a, inside, rng, noise=0.005, composition=comp)
    b = _ensemble("b", mu_b, inside, rng, noise=0.005, composition=comp)
    res = agreement(a, b, how="pearson", n_splits=40, n_boot=300)
    assert res["shared_membership"] and res["observed"] == "cross-fitted"
    assert res["r_full"] > 0.3  # the naive view: strong (and it would test "significant")
    assert abs(res["r"]) < 0.1 and res["p"] > 0.05  # cross-fitted: no agreement
    assert res["r_true_low"] <= 0.0 <= res["r_true_high"]
    assert abs(res["r_true"]) < 0.15


def test_fixed_measure_has_reliability_one_and_the_interval_covers_the_truth():
    rng = np.random.default_rng(5)
    n, m = 300, 20
    mu_a, mu_b = _true_pair(n, 0.5, rng)
    a = _ensemble("a", mu_a, _membership(m, n, rng), rng, noise=0.02)
    fixed = PointScore("kNN", np.arange(n), fixed=mu_b)
    res = agreement(a, fixed, how="spearman", n_splits=30, n_boot=300)
    assert res["rel_b"] == 1.0
    truth = float(__import__("scipy").stats.spearmanr(mu_a, mu_b)[0])
    assert res["r_true_low"] <= truth <= res["r_true_high"]


def test_scores_without_signal_leave_the_true_correlation_undefined():
    """Pure noise has reliability ~0: no disattenuated value is reported, not a wild one."""
    rng = np.random.default_rng(11)
    n, m = 200, 8
    zero = np.zeros(n)
    a = _ensemble("a", zero, _membership(m, n, rng), rng, noise=0.02)
    b = _ensemble("b", zero, _membership(m, n, rng), rng, noise=0.02)
    res = agreement(a, b, how="spearman", n_splits=30, n_boot=200)
    assert np.isnan(res["r_true"]) and np.isnan(res["r_true_low"])
    assert res["undefined_share"] > 0.025 and np.isfinite(res["r"])


def test_paired_difference_of_two_agreements():
    """a agrees with b (true 0.8) more than with c (true 0.0): the paired difference sees it."""
    rng = np.random.default_rng(7)
    n, m = 300, 16
    z = rng.multivariate_normal([0, 0, 0], [[1, .8, 0], [.8, 1, 0], [0, 0, 1]], n) * 0.01
    scores = {name: _ensemble(name, z[:, i], _membership(m, n, rng), rng, noise=0.015)
              for i, name in enumerate("abc")}
    table, reps = agreements(scores, [("a", "b"), ("a", "c")], how="pearson", n_splits=30,
                             n_boot=300)
    d = difference(reps, "a | b", "a | c")
    assert d["low"] > 0.3 and d["p"] < 0.01
    same = difference(reps, "a | b", "a | b")
    assert same["difference"] == 0


def test_scores_are_aligned_by_position():
    rng = np.random.default_rng(9)
    n, m = 200, 12
    mu_a, _ = _true_pair(n, 0.0, rng)
    a = _ensemble("a", mu_a, _membership(m, n, rng), rng, noise=0.005)
    order = rng.permutation(n)
    shuffled = PointScore("same", order, fixed=mu_a[order])  # the truth, listed in another order
    res = agreement(a, shuffled, how="spearman", n_splits=20, n_boot=100)
    assert res["r"] > 0.5
    disjoint = PointScore("other", np.arange(n) + n, fixed=mu_a)
    with pytest.raises(SSLMemError, match="fewer than 4"):
        agreement(a, disjoint)


def test_top_overlap_against_chance():
    x = np.arange(100.0)
    assert top_overlap(x, x, 10) == pytest.approx({"k": 10, "overlap": 1.0, "chance": 0.1,
                                                   "p": top_overlap(x, x, 10)["p"]})
    assert top_overlap(x, x, 10)["p"] < 1e-10
    assert top_overlap(x, -x, 10)["overlap"] == 0.0
    with pytest.raises(SSLMemError):
        top_overlap(x, x, 0)
