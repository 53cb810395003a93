"""Chapter 4's removal design: the arms, the paired analysis, the power calculation, the halves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sslmem.errors import SSLMemError
from sslmem.pipeline import removal
from sslmem.train import downstream


def _design(k=8, seeds=(0, 1, 2, 3)):
    return removal.Removal(design=None, k=k, seeds=list(seeds), rank_members=4,
                           probe_sets=["cifar10"])


def _ranking(n=40, seed=0):
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(1000, n, replace=False))
    m = rng.normal(size=n)
    frame = pd.DataFrame({"position": positions, "m": m, "se": 0.1})
    return frame.sort_values(["m", "position"], ascending=[False, True], ignore_index=True)


def test_arms_remove_k_points_top_random_and_bottom():
    r, ranking = _design(), _ranking()
    pool = set(ranking.position)
    top, bottom = r.keep("top", 0, ranking), r.keep("bottom", 0, ranking)
    for keep in (top, bottom, r.keep("random", 0, ranking)):
        assert len(keep) == len(pool) - r.k and set(keep) <= pool
        assert np.all(np.diff(keep) > 0)  # sorted: the same set is the same key
    assert set(pool - set(top)) == set(ranking.position[: r.k])
    assert set(pool - set(bottom)) == set(ranking.position[-r.k:])
    # the random arm draws another set per seed, the same one for the same seed
    assert not np.array_equal(r.keep("random", 0, ranking), r.keep("random", 1, ranking))
    assert np.array_equal(r.keep("random", 2, ranking), r.keep("random", 2, ranking))
    # top and bottom are paired across seeds: the seed changes the training, not the set
    assert np.array_equal(r.keep("top", 3, ranking), top)
    with pytest.raises(SSLMemError, match="arm must be one of"):
        r.keep("middle", 0, ranking)


def test_paired_difference_recovers_a_planted_effect():
    rng = np.random.default_rng(1)
    seeds = np.arange(12)
    seed_effect = rng.normal(0, 0.05, len(seeds))  # shared by every arm: cancels when paired
    rows = []
    for s, e in zip(seeds, seed_effect):
        for arm, shift in (("top", -0.02), ("random", 0.0), ("bottom", 0.0)):
            noise = rng.normal(0, 0.003)
            rows.append(dict(arm=arm, seed=s, probe="cifar10", n_pretrain=1,
                             linear=0.4 + e + shift + noise, knn=0.3))
    table = pd.DataFrame(rows)
    top = removal.paired(table, "top", "random").iloc[0]
    assert top.n == 12 and top.lo < -2.0 < top.hi and top.p < 1e-6
    null = removal.paired(table, "random", "bottom").iloc[0]
    assert null.lo < 0 < null.hi and null.p > 0.01
    # unpaired, the seed effect (SD 5 points) would swamp a 2-point difference
    assert top.sd < 1.0


def test_paired_keeps_only_seeds_in_both_arms():
    table = pd.DataFrame([dict(arm="top", seed=0, probe="p", n_pretrain=1, linear=0.5, knn=0.5),
                          dict(arm="random", seed=0, probe="p", n_pretrain=1, linear=0.6,
                               knn=0.5),
                          dict(arm="random", seed=1, probe="p", n_pretrain=1, linear=0.9,
                               knn=0.5)])
    row = removal.paired(table, "top", "random").iloc[0]
    assert row.n == 1 and row["mean"] == pytest.approx(-10.0) and math.isnan(row.p)


def test_power_matches_simulation_and_detectable_inverts_it():
    rng = np.random.default_rng(2)
    from scipy import stats

    effect, sd, n = 1.0, 1.2, 8
    d = rng.normal(effect, sd, size=(20_000, n))
    simulated = np.mean(stats.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05)
    assert removal.power(effect, sd, n) == pytest.approx(simulated, abs=0.015)
    assert removal.power(0.0, sd, n) == pytest.approx(0.05, abs=1e-9)
    e80 = removal.detectable(sd, n)
    assert removal.power(e80, sd, n) == pytest.approx(0.8, abs=1e-6)
    assert removal.detectable(sd, 4 * n) < e80  # more seeds see smaller differences
    need = removal.pairs_needed(effect, sd)
    assert removal.power(effect, sd, need) >= 0.8 > removal.power(effect, sd, need - 1)


def test_pilot_sd_is_the_spread_of_members():
    pilot = pd.DataFrame({"member": range(4), "probe": "p", "n_pretrain": 64,
                          "linear": [0.40, 0.42, 0.44, 0.46], "knn": 0.3})
    row = removal.pilot_sd(pilot).iloc[0]
    assert row.sd == pytest.approx(np.std([40, 42, 44, 46], ddof=1))
    assert row.sd_diff == pytest.approx(row.sd * math.sqrt(2))


def test_test_halves_are_disjoint_stratified_and_seeded():
    labels = np.repeat(np.arange(5), 11)
    a, b = downstream.test_halves(labels)
    assert not set(a) & set(b) and len(a) + len(b) == len(labels)
    assert all(np.sum(labels[a] == c) == 5 for c in range(5))
    again = downstream.test_halves(labels)
    assert np.array_equal(a, again[0]) and np.array_equal(b, again[1])
    with pytest.raises(SSLMemError, match="at least two images"):
        downstream.test_halves(np.array([0, 1, 1]))


def test_a_set_without_its_train_split_is_probed_on_test_halves(tmp_path):
    from test_data import fake_arrays, write_npz

    write_npz(tmp_path / "cifar100" / "test.npz", **fake_arrays())
    assert downstream.protocol("cifar100", tmp_path) == downstream.TEST_HALVES
    assert downstream.missing("cifar100", tmp_path) is None
    assert "no train split" in downstream.missing("cifar100", tmp_path, halves=False)
    write_npz(tmp_path / "cifar100" / "train.npz", **fake_arrays())
    assert downstream.protocol("cifar100", tmp_path) == downstream.TRAIN_TEST
    assert "not found" in downstream.missing("mnist", tmp_path)


def test_removal_settings_are_checked():
    from sslmem.pipeline import chapters

    with pytest.raises(SSLMemError, match="half the pool"):
        chapters.removal("tiny", k=40)
    with pytest.raises(SSLMemError, match="at least two different"):
        chapters.removal("tiny", seeds=[0])
    r = chapters.removal("laptop")
    assert r.k == 32 and len(r.seeds) >= 4 and r.rank_members == 16


@pytest.mark.slow
def test_a_probe_of_the_regularized_twin_reports_its_own_cost(shared_data, tmp_path):
    """Its results live in the twin design's store: the plan read the ranking design's and
    listed the unit as measured "0.0 min on " (no device)."""
    from sslmem.io import computed_on, cpu_model, device_name
    from sslmem.pipeline.plan import run_plan
    from sslmem.pipeline.units import removal_units, select

    runtime = dict(runs_root=str(tmp_path / "runs"), results_root=str(tmp_path / "results"),
                   data_root=str(shared_data))
    names = "ens-simclr-e6-align-000,probe-simclr-e6-align-000"
    run_plan("tiny", run=True, names=names, log=lambda *_: None, **runtime)
    (unit,) = select(removal_units("tiny", **runtime), "probe-simclr-e6-align-000")
    assert unit.stored()
    minutes, device = unit.measured()
    assert minutes > 0
    assert device == computed_on({"device": device_name("cpu"), "cpu": cpu_model()})
