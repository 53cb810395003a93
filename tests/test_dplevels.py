"""Chapter 6's ensemble test (sslmem.book.dplevels) on synthetic ensembles whose levels share
their pairs: a planted decrease is found and called "holds", an ε = ∞ ensemble with nothing to
lower is named as such with the regimes tried, and too few pairs is said, not tested."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sslmem.book import dplevels, verdicts
from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters, profiles, units
from sslmem.score import synthetic

W = synthetic.world(pool=64, placebo=64, seed=0)


class Fake:
    """The parts of an Ensemble the chapter reads, over a synthetic planted ensemble."""

    fraction = 0.5

    def __init__(self, planted, stored=None):
        self.p = planted
        self.stored = list(range(len(planted.L))) if stored is None else stored
        self.pool = np.arange(W.pool)
        cfg = SimpleNamespace(method="mae", backbone="vit_tiny", epochs=200, dataset="cifar10")
        split = SimpleNamespace(candidate=self.pool, extra=np.arange(W.placebo), shared=[],
                                independent=[])
        self.exp = SimpleNamespace(cfg=cfg, split=split, train=SimpleNamespace(image_size=16))

    def complete_members(self):
        return [j for j in self.stored if j ^ 1 in self.stored]

    def matrices(self, subset, members, center):
        cols = slice(0, W.pool) if subset == "pool" else slice(W.pool, None)
        m = np.asarray(members)
        return self.p.L[m, cols], self.p.inside[m, cols], m, None

    def pair_groups(self, members):
        return np.asarray(members) // 2


def _levels(means, pairs=8, stored=None):
    t = synthetic.truth(W, 0.005)
    return {eps: SimpleNamespace(name=f"d{eps}", members=2 * pairs, ensemble=Fake(
        synthetic.planted(W, t, pairs=pairs, mean=mean, noise_sd=0.02, seed=k), stored))
        for k, (eps, mean) in enumerate(zip([None, 20.0, 8.0], means))}


def _run(levels):
    rows = dplevels.regimes({"mae-∞": levels[None]}, minutes=lambda ens, js: 1.0)
    found = dplevels.levels(levels)
    return found, rows, dplevels.claim_verdict(found, rows, levels)


def test_a_planted_decrease_holds_with_its_paired_interval():
    levels = _levels([0.03, 0.015, 0.0])
    found, rows, v = _run(levels)
    assert bool(rows.memorizes.iloc[0]) and v.word == verdicts.HOLDS
    assert v.low <= -0.03 <= v.high and v.high < 0
    assert found["test"]["trend"]["page_p"] < 0.01
    control = found["control"]["levels"]
    assert ((control.low <= 0) & (control.high >= 0)).all()  # the placebo: nothing planted
    assert "Δ from ε = ∞ (paired)" in dplevels.shown_levels(found)
    assert "paired difference" in dplevels.text(found, rows, levels)


def test_nothing_to_lower_at_infinity_names_the_regimes_tried():
    found, rows, v = _run(_levels([0.0, 0.0, 0.0]))
    assert v.word == verdicts.NOT_RUN and "no memorization to lower" in v.test
    assert "mae-∞ (16 encoders)" in v.test
    assert "None shows memorization" in dplevels.text(found, rows, _levels([0.0] * 3))


def test_too_few_pairs_is_said_not_tested():
    levels = _levels([0.03, 0.015, 0.0], stored=[0, 1, 2])  # one complete pair
    found, rows, v = _run(levels)
    assert found is None and v.word == verdicts.NOT_RUN and "fewer than 2" in v.test
    assert "1 of 16" not in dplevels.text(found, rows, levels)  # complete members: 2
    assert "ε = 8: 2 of 16" in dplevels.text(found, rows, levels)


def test_partial_dp_levels_are_tested_on_their_pairs_and_say_how_many_were_planned():
    levels = _levels([0.03, 0.015, 0.0])
    # ε = ∞ memorizes on its 8 pairs, but not on the 2 the DP levels have (planted as ε = 8's)
    levels[None].ensemble.p.L[:4] = levels[8.0].ensemble.p.L[:4]
    for eps in (20.0, 8.0):
        levels[eps].ensemble.stored = [0, 1, 2, 3]
    found, rows, v = _run(levels)
    assert found["test"]["trend"]["pairs"] == 2 and bool(rows.memorizes.iloc[0])
    assert found["test"]["levels"].low.iloc[0] < 0
    assert v.word != verdicts.NOT_RUN
    assert "the 2 complementary pairs every ε has (of 8 planned" in v.test
    stored = dplevels.level_rows(levels, minutes=lambda ens, js: 2.0 * len(ens.stored))
    shown = dplevels.shown_level_rows(stored)
    assert list(shown["encoders (planned)"]) == ["16 (16)", "4 (16)", "4 (16)"]
    assert list(shown["min per encoder"]) == ["32.0", "8.0", "8.0"]
    assert dplevels.minutes_text(stored) == "8.0–32.0"


def test_the_profiles_privacy_designs_are_paired_planned_and_kept_out_of_chapter_7(monkeypatch):

    p = chapters.privacy_ensembles("tiny")
    assert list(p.levels) == [None, 8.0] and list(p.regimes) == ["mae-e2-facets"]
    first, dp = (d.ensemble for d in p.levels.values())
    assert dp.exp.cfg.dp_epsilon == 8.0 and first.options() == dp.options()
    assert [first.seed(j) for j in range(4)] == [dp.seed(j) for j in range(4)]
    assert "mae-e2-facets" not in chapters.ensembles("tiny")  # chapter 7 reads "all" designs
    planned = {u.name: u.chapters for u in units.ensemble_units("tiny")}
    assert planned["ens-mae-e2-facets-dp8-003"] == ["06"]
    tiny = profiles.SETTINGS["tiny"]["privacy_ensembles"]
    monkeypatch.setitem(tiny, "levels", [(None, "mae-e2-facets"), (20.0, "mae-e2-facets-dp8")])
    with pytest.raises(SSLMemError, match="not the ε = 20.0 it stands for"):
        chapters.privacy_ensembles("tiny")


def test_the_opening_table_gives_the_regimes_cost_as_a_range():
    rows = pd.DataFrame({"minutes": [1.3, 5.04, float("nan"), 1.4]})
    assert dplevels.minutes_text(rows) == "1.3–5.0"
    assert dplevels.minutes_text(rows.iloc[:1]) == "1.3"
    assert dplevels.minutes_text(pd.DataFrame({"minutes": [float("nan")]})) == "–"


def test_a_trend_in_order_only_is_explained_beside_an_interval_that_includes_zero():
    def found(page_p, low, high):
        return {"test": {"trend": {"page_p": page_p},
                         "levels": pd.DataFrame({"diff_low": [low], "diff_high": [high]})}}

    # the store's 4 pairs: every pair falls with privacy, the sizes at ε = ∞ vary
    assert "reads only the order" in dplevels._orders_only(found(0.0069, -0.009, 0.0017))
    assert dplevels._orders_only(found(0.2, -0.009, 0.0017)) == ""  # no trend either
    assert dplevels._orders_only(found(0.0069, -0.009, -0.001)) == ""  # the interval agrees
    assert dplevels._orders_only(found(float("nan"), -0.009, 0.0017)) == ""
