"""Known answers for the facet-aware statistics: synthetic ensembles with planted view-,
seed- and composition-specific components of known size (sslmem.score.synthetic)."""

import numpy as np
import pytest
from scipy import stats

from sslmem.errors import SSLMemError
from sslmem.score import facets, reliability, synthetic
from sslmem.score.agreement import PointScore, agreement

TRUE_SD, SEED_SD, VIEW_SD, COMP_SD, NOISE_SD = 0.01, 0.006, 0.008, 0.012, 0.015
PLANTED = dict(seed_sd=SEED_SD, view_sd=VIEW_SD, composition_sd=COMP_SD, noise_sd=NOISE_SD)


def _design(w, t, i, **kw):
    return synthetic.planted(w, t, pairs=12, membership_seed=100 + i, seed=200 + i,
                             **{**PLANTED, **kw})


def _m(p, subset="pool"):
    L, inside, _ = p.subset(subset)
    return reliability.ensemble_estimate(L, inside, groups=p.groups)


def test_all_facet_reliability_is_the_correlation_of_two_independent_ensembles():
    """Split-half over pairs of the all-facet design predicts how two ensembles that share
    nothing (membership, seeds, views) correlate; a fixed-view design's split-half does not."""
    split, fixed, independent = [], [], []
    for i in range(6):
        w = synthetic.world(256, 16, seed=i)
        t = synthetic.truth(w, TRUE_SD, seed=i)
        a, b = _design(w, t, 2 * i), _design(w, t, 2 * i + 1)
        L, inside, _ = a.subset("pool")
        split.append(reliability.split_half(L, inside, groups=a.groups, n_boot=20)["reliability"])
        v = _design(w, t, 2 * i, views="shared")
        Lv, iv, _ = v.subset("pool")
        fixed.append(reliability.split_half(Lv, iv, groups=v.groups, n_boot=20)["reliability"])
        independent.append(np.corrcoef(_m(a).m, _m(b).m)[0, 1])
    errors = (SEED_SD ** 2 + VIEW_SD ** 2 + COMP_SD ** 2 + NOISE_SD ** 2) / 12
    planted = TRUE_SD ** 2 / (TRUE_SD ** 2 + errors)
    assert np.mean(split) == pytest.approx(np.mean(independent), abs=0.05)
    assert np.mean(split) == pytest.approx(planted, abs=0.06)
    # holding the views fixed counts their per-point luck as signal: optimistic
    assert np.mean(fixed) - np.mean(independent) > 0.05


def test_components_recover_each_planted_facet():
    """True variance from the all-facet design; the view and the seed variance as what a design
    sharing that facet adds to it; composition from the pairs' negative covariance."""
    got = {k: [] for k in ("true", "view", "seed", "composition")}
    for i in range(6):
        w = synthetic.world(256, 16, seed=10 + i)
        t = synthetic.truth(w, TRUE_SD, seed=10 + i)
        comps = {}
        for name, kw in (("all", {}), ("view", dict(views="shared")),
                         ("seed", dict(seeds="shared"))):
            p = synthetic.planted(w, t, pairs=16, membership_seed=i, seed=i, **PLANTED, **kw)
            L, inside, _ = p.subset("pool")
            comps[name] = facets.components(L, inside, p.groups)
        got["true"].append(comps["all"]["true_var"] / t.var(ddof=1))
        got["view"].append(facets.facet_variance(comps["view"], comps["all"]))
        got["seed"].append(facets.facet_variance(comps["seed"], comps["all"]))
        got["composition"].append(-4 * comps["all"]["within_pair_cov"])
    assert np.mean(got["true"]) == pytest.approx(1.0, abs=0.15)
    assert np.mean(got["view"]) == pytest.approx(VIEW_SD ** 2, rel=0.35)
    assert np.mean(got["seed"]) == pytest.approx(SEED_SD ** 2, rel=0.35)
    assert np.mean(got["composition"]) == pytest.approx(COMP_SD ** 2, rel=0.25)


def test_pair_standard_error_covers_95_percent_and_the_member_one_does_not():
    """With composition (complementary members anti-correlated), ± t(0.975, G − 1) s.e. over
    the G pairs covers the truth 95 % of the time; treating the members as independent (the
    same multiplier) covers less."""
    crit = stats.t.ppf(0.975, 11)
    pair, member = [], []
    for i in range(8):
        w = synthetic.world(256, 16, seed=20 + i)
        t = synthetic.truth(w, TRUE_SD, seed=20 + i)
        p = synthetic.planted(w, t, pairs=12, membership_seed=i, seed=i, composition_sd=0.03,
                              noise_sd=0.01, seed_sd=0.004, view_sd=0.004)
        est, truth = _m(p), p.truth[:p.pool]
        pair.append(np.mean(np.abs(est.m - truth) < crit * est.se))
        member.append(np.mean(np.abs(est.m - truth) < crit * est.se_members))
    assert np.mean(pair) == pytest.approx(0.95, abs=0.015)
    assert np.mean(member) < 0.90


def test_contrast_over_pairs_holds_its_size_where_points_do_not():
    """No average memorization, but a per-pair shift every point shares: a test over points
    rejects far too often, the test over pairs about 5 % of the time."""
    rng = np.random.default_rng(0)
    over_pairs, over_points = [], []
    for i in range(200):
        pairs, n = 6, 64
        shift = rng.normal(0, 0.01, pairs)  # what one pair does to all its points
        inside = np.zeros((2 * pairs, n), bool)
        inside[0::2, : n // 2] = inside[1::2, n // 2:] = True
        L = rng.normal(0, 0.01, (2 * pairs, n)) - inside * np.repeat(shift, 2)[:, None]
        groups = np.repeat(np.arange(pairs), 2)
        over_pairs.append(reliability.pair_contrast(L, inside, groups)["p"] < 0.05)
        over_points.append(reliability.contrast(
            reliability.ensemble_estimate(L, inside).m)["p"] < 0.05)
    assert np.mean(over_pairs) == pytest.approx(0.05, abs=0.04)
    assert np.mean(over_points) > 0.3


def test_cross_method_placebo_is_centred_at_zero_only_across_membership_draws():
    """Two methods on the same halves share their composition: on the placebo (true score 0)
    their full-ensemble correlation is positive; the cross-fitted one (halves of disjoint
    pairs) is centred at 0, and it is what agreement reports as observed."""
    full, crossed, flagged = [], [], []
    for i in range(6):
        w = synthetic.world(128, 256, seed=30 + i)
        t = synthetic.truth(w, TRUE_SD, seed=30 + i)
        kw = dict(pairs=12, membership_seed=i, composition_sd=0.03, noise_sd=0.01)
        a = synthetic.planted(w, t, seed=1000 + i, **kw)
        b = synthetic.planted(w, t, seed=2000 + i, **kw)
        (La, Ia, _), (Lb, Ib, _) = a.subset("placebo"), b.subset("placebo")
        pos = np.arange(w.placebo)
        sa = PointScore("a", pos, La, Ia, a.groups)
        sb = PointScore("b", pos, Lb, Ib, b.groups)
        row = agreement(sa, sb, how="pearson", n_splits=20, n_boot=50)
        full.append(row["r_full"])
        crossed.append(row["r"])
        flagged.append(row["shared_membership"])
    assert all(flagged)
    assert np.mean(full) > 0.15
    assert abs(np.mean(crossed)) < 0.06


def test_view_blocks_rebuild_the_second_half_of_the_views():
    rng = np.random.default_rng(1)
    per_view = rng.normal(size=(4, 5, 16))
    first, second = facets.view_blocks(per_view[..., :8].mean(-1), per_view.mean(-1), 8, 16)
    assert np.allclose(second, per_view[..., 8:].mean(-1))
    assert np.allclose(first, per_view[..., :8].mean(-1))
    with pytest.raises(SSLMemError):
        facets.view_blocks(first, first, 16, 16)


def test_split_half_across_views_counts_the_views_as_error():
    """A fixed-view design split so that the halves also differ in views measures what the
    all-facet design does, not the optimistic fixed-view value."""
    w = synthetic.world(256, 16, seed=40)
    t = synthetic.truth(w, TRUE_SD, seed=40)
    kw = dict(pairs=16, membership_seed=4, seed=4, seed_sd=0.0, composition_sd=0.0,
              noise_sd=0.01)
    # two view blocks: each pair scored on block 1 (views v1) and block 2 (v2), shared by all
    one = synthetic.planted(w, t, views="shared", view_sd=0.012, **kw)
    two = synthetic.planted(w, t, views="shared", view_sd=0.012, **{**kw, "seed": 5})
    same = reliability.split_half(*one.subset("pool")[:2], groups=one.groups, n_boot=20)
    across = reliability.split_half(*one.subset("pool")[:2], groups=one.groups, n_boot=20,
                                    L_other=two.subset("pool")[0])
    assert same["reliability"] - across["reliability"] > 0.15


def test_cross_fitted_top_overlap_is_at_chance_on_a_shared_placebo():
    """On the placebo of two methods trained on the same halves, the full ensembles' top sets
    overlap far beyond chance; the cross-fitted overlap sits at chance and its test passes."""
    from sslmem.score.agreement import top_overlap, top_overlap_cross

    w = synthetic.world(128, 200, seed=50)
    t = synthetic.truth(w, TRUE_SD, seed=50)
    kw = dict(pairs=8, membership_seed=5, composition_sd=0.03, noise_sd=0.01)
    a, b = (synthetic.planted(w, t, seed=s, **kw) for s in (1, 2))
    (La, Ia, _), (Lb, Ib, _) = a.subset("placebo"), b.subset("placebo")
    pos = np.arange(w.placebo)
    sa, sb = PointScore("a", pos, La, Ia, a.groups), PointScore("b", pos, Lb, Ib, b.groups)
    full = top_overlap(sa.estimate(), sb.estimate(), 40)
    crossed = top_overlap_cross(sa, sb, 40, n_splits=10, n_perm=100)
    assert full["overlap"] > 2 * full["chance"] and full["p"] < 1e-3
    assert crossed["overlap"] == pytest.approx(crossed["chance"], abs=0.07)
    assert crossed["p"] > 0.05


def test_two_methods_compare_without_bias_only_on_independent_draws():
    """Two methods with a planted shared part (true ρ = 0.5) and method-specific parts: on
    independent halves their full-ensemble correlation is the true one attenuated by the two
    reliabilities; on shared halves the shared composition inflates it, agreement says so
    (shared_membership) and reports the cross-fitted value instead, and the true-score ρ
    recovers 0.5 either way."""
    rho, got = 0.5, {"indep": [], "shared": [], "crossed": [], "true": [], "expected": []}
    for i in range(5):
        w = synthetic.world(300, 8, seed=60 + i)
        ta = synthetic.truth(w, TRUE_SD, seed=60 + i)
        tb = synthetic.truth(w, TRUE_SD, seed=160 + i, like=ta, rho=rho)
        kw = dict(pairs=12, composition_sd=0.02, noise_sd=0.012)
        pos = np.arange(w.pool)
        for draw in ("indep", "shared"):
            a = synthetic.planted(w, ta, membership_seed=i, seed=1000 + i, **kw)
            b = synthetic.planted(w, tb, membership_seed=i if draw == "shared" else 50 + i,
                                  seed=2000 + i, **kw)
            (La, Ia, _), (Lb, Ib, _) = a.subset("pool"), b.subset("pool")
            row = agreement(PointScore("a", pos, La, Ia, a.groups),
                            PointScore("b", pos, Lb, Ib, b.groups), how="pearson",
                            n_splits=20, n_boot=40)
            assert row["shared_membership"] == (draw == "shared")
            got[draw].append(row["r_full"])
            got["true"].append(row["r_true"])
            if draw == "shared":
                got["crossed"].append(row["r"])
            else:
                planted = np.corrcoef(ta, tb)[0, 1]
                got["expected"].append(planted * np.sqrt(row["rel_a"] * row["rel_b"]))
    assert np.mean(got["indep"]) == pytest.approx(np.mean(got["expected"]), abs=0.06)
    assert np.mean(got["shared"]) - np.mean(got["indep"]) > 0.1  # composition shared
    assert np.mean(got["true"]) == pytest.approx(rho, abs=0.1)
    assert np.mean(got["crossed"]) < np.mean(got["shared"]) - 0.1
