"""Chapter 8's validation of one-run proxies (sslmem.book.onerun) on synthetic scores whose
true agreement with the ground truth is known."""

import math

import numpy as np
import pandas as pd
import pytest

from sslmem.book import onerun


def _case(rho: float, proxy_noise: float, seed: int = 0, n: int = 400, pairs: int = 10):
    """A proxy run twice (independent noise) and a ground truth from ``pairs`` noisy pairs,
    their true scores correlated at ``rho``."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(n)
    u = rho * t + math.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    x, y = (u + proxy_noise * rng.standard_normal(n) for _ in range(2))
    d = t + 2.0 * rng.standard_normal((pairs, n))  # each pair's own estimate
    splits = [rng.permutation(pairs) for _ in range(30)]
    one = np.stack([d[s[: pairs // 2]].mean(0) for s in splits])
    two = np.stack([d[s[pairs // 2:]].mean(0) for s in splits])
    boot = rng.integers(0, n, (300, n))
    return x, y, d.mean(0), (one, two), boot, rng.integers(0, 30, 300)


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_the_true_score_correlation_is_recovered_through_both_noises(rho):
    row = onerun._agreement(*_case(rho, proxy_noise=1.0))
    assert 0.3 < row["rel_proxy"] < 0.7 and 0.5 < row["rel_m"] < 0.9
    assert abs(row["r"]) < abs(rho) + 0.05  # attenuated
    assert row["r_true_low"] <= rho <= row["r_true_high"]
    assert row["r_true"] == pytest.approx(rho, abs=0.15)


def test_a_deterministic_proxy_has_reliability_one():
    x, _, m, halves, boot, split = _case(0.6, proxy_noise=0.5)
    row = onerun._agreement(x, x, m, halves, boot, split)
    assert row["rel_proxy"] == 1.0 and row["rel_low"] == row["rel_high"] == 1.0


def test_words_costs_and_control():
    table = pd.DataFrame([
        dict(proxy=p, subset=s, points=100, truth_pairs=10, r=r, r_low=r - 0.2, r_high=r + 0.2,
             rel_proxy=rel, rel_low=rel - 0.1, rel_high=rel + 0.1, rel_m=0.7, r_true=t,
             r_true_low=t - 0.15, r_true_high=t + 0.15)
        for p, s, r, rel, t in [("pair_estimate", "pool", 0.2, 0.1, math.nan),
                                ("knn_distance", "pool", 0.5, 1.0, 0.7),
                                ("heldout_contrast", "pool", 0.2, 0.8, 0.3),
                                ("pair_estimate", "placebo", 0.0, -0.1, math.nan),
                                ("knn_distance", "placebo", 0.3, 1.0, math.nan),
                                ("heldout_contrast", "placebo", 0.0, 0.8, math.nan)]])
    table["r_true_low"] = table.r_true_low.where(table.r_true.notna())
    table["verdict"] = [onerun.word(r) if r.subset == "pool" else "" for r in table.itertuples()]
    assert list(table.verdict[:3]) == [onerun.DOES_NOT, onerun.TRACKS, onerun.PARTLY]
    ok = onerun.control_passes(table)
    assert not ok["knn_distance"] and ok["pair_estimate"]  # knn's placebo ρ excludes 0
    assert "placebo control fails" in onerun.summary(table)
    verdict = onerun.claim_verdict(table, _Ens())
    assert verdict.word == "contradicted" and "kNN distance" in verdict.note


class _Ens:
    def __init__(self):
        from types import SimpleNamespace

        cfg = SimpleNamespace(method="simclr", epochs=8, dataset="cifar10", n_pairs=4)
        self.exp = SimpleNamespace(cfg=cfg, train=SimpleNamespace(image_size=16),
                                   split=SimpleNamespace(shared=[], independent=[],
                                                         candidate=range(100), extra=range(20)))
        self.pool, self.shared_init = np.arange(100), False
