"""Chapter 1's analyses (sslmem.book.definition) on synthetic score tables: no training."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sslmem.book import definition
from sslmem.score.significance import extra_threshold, significance_tests


def test_toy_memorizes_the_outlier_only_and_is_reproducible():
    panels = definition.toy_panels()
    typical, outlier = panels
    assert [p["title"] for p in panels] == ["(a) unseen typical point", "(b) unseen outlier"]
    assert abs(typical["L_g"] - typical["L_f"]) < 1e-6  # g aligns the typical point's views too
    assert outlier["L_f"] < 1e-9 < 0.3 < outlier["L_g"]  # only f, which saw it, collapses them
    assert outlier["views"].shape == outlier["f_views"].shape == (60, 2)
    again = definition.toy_panels()
    assert again[1]["L_g"] == outlier["L_g"]
    assert np.array_equal(again[0]["views"], typical["views"])
    assert definition.toy_panels(seed=1)[1]["L_g"] != outlier["L_g"]


def test_invariant_encoder_collapses_covered_inputs_and_leaves_the_rest():
    anchors = np.array([[0.0, 0.0], [0.8, 0.0], [10.0, 10.0]])  # the first two are chained
    encode = definition.invariant_encoder(anchors, radius=0.5)
    out = encode(np.array([[0.1, 0.1], [0.9, 0.0], [5.0, 5.0], [10.2, 10.0]]))
    np.testing.assert_allclose(out, [[0.4, 0.0], [0.4, 0.0], [5.0, 5.0], [10.0, 10.0]])


def test_split_table_and_run_numbers():
    split = SimpleNamespace(shared=range(6), candidate=range(3), independent=range(2),
                            extra=range(4))
    table = definition.split_table(split)
    assert list(table.points) == [6, 3, 2, 4]
    assert list(table["trained on by"])[1] == "f only"
    exp = SimpleNamespace(split=split, cfg=SimpleNamespace(epochs=7, seeds=(0, 1), n_pairs=5))
    assert definition.run_numbers(exp) == {"epochs": 7, "n_seeds": 2, "n_pairs": 5,
                                           "n_candidates": 3}


def test_hypothesis_keys_are_glue_names():
    keys = [definition.hypothesis_key(h) for h in ("S_C > S_S", "S_I < S_E", "S_S != S_E")]
    assert keys == ["S_CgtS_S", "S_IltS_E", "S_SneS_E"]


def _table(shift: float, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Scores per subset: candidates ``shift`` above shared and extra, independent below."""
    rng = np.random.default_rng(seed)
    mean = {"candidate": shift, "shared": 0.0, "independent": -shift, "extra": 0.0}
    return pd.DataFrame([{"subset": s, "score_raw": mean[s] + rng.normal(0, 1)}
                         for s in definition.SUBSETS for _ in range(n)])


def _epochs() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"epoch": e, "subset": s, "score_raw": v}
            for e, gap in ((2, 0.01), (5, 0.03), (9, 0.08))
            for s, v in (("candidate", 0.1 + gap), ("extra", 0.1), ("shared", 0.1))]
    history = pd.DataFrame({"epoch": [1, 2, 3], "knn": [0.3, 0.45, np.nan]})
    return pd.DataFrame(rows), history


def test_fractions_count_the_points_above_the_threshold():
    table = pd.DataFrame({"subset": ["candidate"] * 4 + ["extra"] * 2 + ["shared", "independent"],
                          "score_raw": [0.1, 0.5, 0.6, 0.7, 0.0, 0.6, 0.2, 0.9]})
    fracs = definition.fractions(table, threshold=0.55)
    assert fracs == {"candidate": 0.5, "shared": 0.0, "independent": 1.0, "extra": 0.5}
    shown = definition.fraction_table(fracs)
    assert list(shown.columns) == ["subset", "fraction above threshold"]
    assert definition.fraction_numbers(0.55, fracs)["frac_candidate"] == 0.5


def test_score_numbers_hold_every_glued_name():
    table = _table(1.0)
    threshold = extra_threshold(table.loc[table.subset == "extra", "score_raw"])
    fracs = definition.fractions(table, threshold)
    means = table.groupby("subset").score_raw.mean()
    over_epochs, history = _epochs()
    numbers = definition.score_numbers(means, significance_tests(table), threshold, fracs,
                                       over_epochs, history)
    assert numbers["mean_candidate"] == pytest.approx(means["candidate"])
    assert numbers["p_S_CgtS_S"] < 1e-10 and numbers["t_S_CgtS_S"] > 5
    assert numbers["p_S_IltS_E"] < 1e-10 and numbers["p_S_SneS_E"] > 1e-4
    assert numbers["threshold"] == threshold and numbers["frac_extra"] <= 0.01
    assert numbers["frac_candidate"] > 3 * numbers["frac_extra"]
    assert (numbers["epoch_first"], numbers["epoch_last"]) == (2, 9)
    assert numbers["epoch_first_gap"] == pytest.approx(0.01)
    assert numbers["epoch_last_gap"] == pytest.approx(0.08)
    assert numbers["knn_last"] == 0.45  # the last epoch that measured it


@pytest.mark.parametrize("shift, expected", [(1.0, "holds here"), (0.0, definition.WEAKER)])
def test_comparison_says_whether_the_tests_hold(shift, expected):
    table = _table(shift, seed=3)
    threshold = extra_threshold(table.loc[table.subset == "extra", "score_raw"])
    fracs = definition.fractions(table, threshold)
    over_epochs, history = _epochs()
    numbers = definition.score_numbers(table.groupby("subset").score_raw.mean(),
                                       significance_tests(table), threshold, fracs,
                                       over_epochs, history)
    compare = definition.comparison(numbers)
    assert list(compare.columns) == ["claim", "paper", "this run", "why they may differ"]
    assert list(compare["why they may differ"][:2]) == [expected, expected]
    assert compare["this run"][3] == f"{fracs['candidate']:.3f} above {threshold:.3g}"
    assert compare["this run"][4] == "S_C − S_E gap +0.0100 → +0.0800"


def _exp(seeds=(0,)):
    """What chapter 1's verdict reads of an experiment: its configuration and split."""
    cfg = SimpleNamespace(method="simclr", backbone="resnet9", epochs=150, dataset="cifar10",
                          seeds=list(seeds))
    split = SimpleNamespace(shared=range(200), candidate=range(200), independent=range(200),
                            extra=range(200))
    return SimpleNamespace(cfg=cfg, split=split, train=SimpleNamespace(image_size=32))


def test_verdict_holds_when_both_intervals_lie_above_zero_and_not_otherwise():
    sig = pd.DataFrame({"hypothesis": ["S_C > S_S", "S_C > S_E"], "mean_a": [0.0025, 0.0025],
                        "mean_b": [-0.0038, -0.0037], "n_a": [200, 200], "n_b": [200, 200],
                        "t": [4.95, 4.72], "p": [5e-7, 2e-6]})
    v = definition.verdict(sig, _exp())
    assert v.word == "holds" and v.chapter == "01_definition"
    assert v.effect == pytest.approx(0.0062) and 0 < v.low < v.effect < v.high
    assert v.detectable == pytest.approx(v.effect / 4.72 * (1.966 + 0.842), rel=0.01)
    assert "S_S" in v.note and "CIFAR-10 at 32 px" in v.scale and "one pair of" in v.scale
    weak = sig.assign(t=[4.95, 1.0])  # S_C > S_E no longer beyond its interval
    assert definition.verdict(weak, _exp()).word == "not detected at this power"
    reversed_ = sig.assign(mean_a=[-0.01, -0.01], t=[-5.0, -5.0])
    assert definition.verdict(reversed_, _exp()).word == "contradicted"
    assert definition.verdict(sig.iloc[:1], _exp()).word == "not run here"
