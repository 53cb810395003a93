"""Known-answer tests of the ensemble estimator and its reliability analysis (synthetic data).

A synthetic ensemble has a known per-point memorization mu(x): encoder j's alignment loss of
point x is a per-point baseline, minus mu(x) when j trained on x, plus encoder-to-encoder noise
(per point, and a shift shared by all points of an encoder). Its true reliability at M encoders
is measured directly: the correlation between the estimates of two independent ensembles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sslmem.errors import SSLMemError
from sslmem.score.reliability import (
    contrast,
    disattenuate,
    ensemble_estimate,
    members_needed,
    reliability_curve,
    retest_correlation,
    spearman_brown,
    split_half,
    true_spread,
)


def membership(m: int, n: int, rng) -> np.ndarray:
    """Complementary random halves per pair of encoders, as sslmem.pipeline.ensemble draws them."""
    inside = np.zeros((m, n), bool)
    for i in range(m // 2):
        perm = rng.permutation(n)
        inside[2 * i, perm[: n // 2]] = True
        inside[2 * i + 1, perm[n // 2:]] = True
    return inside


def synthetic(mu, base, m: int, rng, noise: float = 0.01, shift: float = 0.003):
    inside = membership(m, len(mu), rng)
    L = (base - inside * mu + rng.normal(0, noise, (m, len(mu)))
         + rng.normal(0, shift, (m, 1)))
    return L, inside


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    n = 400
    mu = rng.normal(0.01, 0.006, n)  # true per-point memorization
    base = rng.normal(0.5, 0.05, n)  # L(x) itself differs a lot between points
    return mu, base


def test_estimate_recovers_mu_without_noise(world):
    mu, base = world
    L, inside = synthetic(mu, base, 8, np.random.default_rng(0), noise=0.0, shift=0.0)
    est = ensemble_estimate(L, inside)
    np.testing.assert_allclose(est.m, mu, atol=1e-12)
    assert (est.n_in == 4).all() and (est.n_out == 4).all()
    np.testing.assert_allclose(est.se, 0, atol=1e-12)


def test_se_matches_the_spread_over_repeated_ensembles(world):
    mu, base = world
    ests = [ensemble_estimate(*synthetic(mu, base, 16, np.random.default_rng(s)))
            for s in range(40)]
    empirical = np.std([e.m.to_numpy() for e in ests], axis=0, ddof=1).mean()
    reported = np.mean([e.se.mean() for e in ests])
    assert reported == pytest.approx(empirical, rel=0.15)


@pytest.mark.parametrize("members", [8, 32])
def test_split_half_matches_the_true_reliability(world, members):
    mu, base = world
    rng = np.random.default_rng(members)
    # the truth: two independent ensembles of the same size, correlated over points
    truth = np.mean([np.corrcoef(ensemble_estimate(*synthetic(mu, base, members, rng)).m,
                                 ensemble_estimate(*synthetic(mu, base, members, rng)).m)[0, 1]
                     for _ in range(20)])
    L, inside = synthetic(mu, base, members, rng)
    got = split_half(L, inside, groups=np.arange(members) // 2, n_splits=100, n_boot=300)
    assert got["low"] <= truth <= got["high"]
    assert got["reliability"] == pytest.approx(truth, abs=0.12)
    assert got["members"] == members and got["points"] == len(mu)


def test_placebo_is_centred_and_unreliable(world):
    _, base = world
    rng = np.random.default_rng(3)
    L, inside = synthetic(np.zeros_like(base), base, 16, rng)
    got = split_half(L, inside, groups=np.arange(16) // 2, n_splits=100, n_boot=300)
    assert got["low"] < 0 < got["high"]
    c = contrast(ensemble_estimate(L, inside).m)
    assert c["p"] > 0.001  # centred (a fixed seed: no flakiness)
    spread = true_spread(ensemble_estimate(L, inside).m, ensemble_estimate(L, inside).se)
    assert spread["low"] == 0.0


def test_true_spread_recovers_the_sd_of_mu(world):
    mu, base = world
    est = ensemble_estimate(*synthetic(mu, base, 32, np.random.default_rng(5)))
    got = true_spread(est.m, est.se)
    assert got["low"] <= mu.std(ddof=1) <= got["high"]


def test_the_curve_rises_with_members(world):
    mu, base = world
    L, inside = synthetic(mu, base, 32, np.random.default_rng(11))
    curve = reliability_curve(L, inside, groups=np.arange(32) // 2, n_splits=20, n_boot=40)
    assert list(curve.members) == [4, 8, 16, 32]
    assert curve.reliability.is_monotonic_increasing


def test_spearman_brown_and_projection():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.0, 10) == 0.0
    # 0.5 at 8 encoders -> 0.8 at 32 (factor 4 by Spearman-Brown)
    assert members_needed(0.5, 8, 0.8) == pytest.approx(32)
    assert members_needed(-0.1, 8, 0.8) == math.inf
    assert disattenuate(0.3, 0.5, 0.72) == pytest.approx(0.3 / 0.6)
    assert math.isnan(disattenuate(0.3, 0.0, 0.5))


def test_one_fixed_partition_reproduces_composition(world):
    """The paper's one-pair estimator: a fixed partition, trained twice. What it reproduces per
    point includes the composition effect, so even the placebo comes out reliable."""
    _, base = world
    rng = np.random.default_rng(2)
    n = len(base)
    half = rng.permutation(n)[: n // 2]
    inside_f = np.zeros(n, bool)
    inside_f[half] = True
    composition = rng.normal(0, 0.01, n)  # how much f's training set helps x, minus g's

    def one_pair():
        L_f = base + composition * 0.5 + rng.normal(0, 0.01, n)
        L_g = base - composition * 0.5 + rng.normal(0, 0.01, n)
        return L_g - L_f

    # zero memorization everywhere, yet reliability var(c) / (var(c) + 2 var(noise)) = 1/3
    assert retest_correlation(one_pair(), one_pair()) == pytest.approx(1 / 3, abs=0.12)


def test_bad_shapes_are_refused():
    with pytest.raises(SSLMemError, match="one shape"):
        ensemble_estimate(np.zeros((4, 5)), np.zeros((4, 6), bool))
    with pytest.raises(SSLMemError, match="two encoder groups"):
        split_half(np.zeros((2, 5)), np.zeros((2, 5), bool), groups=[0, 0])


def test_detectable_correlation_grows_as_reliability_falls():
    from sslmem.book.precision import detectable_correlation

    sharp = detectable_correlation(256, 0.9, 0.9)
    noisy = detectable_correlation(256, 0.2, 0.9)
    assert 0.15 < sharp < 0.25 < noisy <= 1.0  # ~0.175 / 0.9 against ~0.175 / 0.42
    assert math.isnan(detectable_correlation(256, 0.0, 0.9))


def test_an_odd_number_of_pairs_is_corrected_to_all_of_them(world):
    mu, base = world
    rng = np.random.default_rng(21)
    L, inside = synthetic(mu, base, 14, rng)  # 7 complementary pairs
    odd = split_half(L, inside, groups=np.arange(14) // 2, n_splits=100, n_boot=100)
    truth = np.mean([np.corrcoef(ensemble_estimate(*synthetic(mu, base, 14, rng)).m,
                                 ensemble_estimate(*synthetic(mu, base, 14, rng)).m)[0, 1]
                     for _ in range(20)])
    assert odd["reliability"] == pytest.approx(truth, abs=0.12)


def test_row_correlations_equal_the_scalar_ones_with_ties_nans_and_constant_rows():
    """The bootstrap intervals now take all replicates' correlations in one pass: each must
    equal the scalar path (scipy's spearmanr / corrcoef), ties and dropped points included."""
    from sslmem.score.reliability import _corr, _corr_rows

    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (40, 30)).astype(float)  # many ties, as bootstrap rows have
    b = a + rng.normal(0, 2, a.shape)
    a[3, 7] = np.nan  # a dropped point: the scalar path
    b[5] = 1.0  # constant: undefined
    for how in ("spearman", "pearson"):
        rows = _corr_rows(a, b, how)
        scalar = np.array([_corr(x, y, how) for x, y in zip(a, b)])
        assert np.isnan(rows[5]) and np.isnan(scalar[5]) and np.isfinite(rows[3])
        np.testing.assert_allclose(rows, scalar, rtol=0, atol=1e-12)
