"""Chapter 7's page-level analyses on synthetic designs: no store, no training.

The ensembles are stand-ins that answer what the page asks of them (method, stored members,
pool, placebo); the store-reading statistics of :mod:`sslmem.book.precision` are replaced
where a function only arranges their results.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sslmem.book import designs, precision


class _Ensemble:
    """What the page reads of an ensemble; records the members it is asked to compute."""

    def __init__(self, method: str, members: int = 4, repeats: int = 0, read_only=True):
        cfg = SimpleNamespace(method=method, dataset="cifar10")
        self.exp = SimpleNamespace(cfg=cfg, train=SimpleNamespace(image_size=16),
                                   results_only=read_only)
        self.pool, self.placebo = np.arange(40), np.arange(10)
        self.n, self.repeats, self.computed = members, repeats, []

    def stored_members(self, repeat: int = 0) -> list[int]:
        return list(range(self.n)) if repeat == 0 else [0, 1][:2 * (repeat <= self.repeats)]

    def complete_members(self) -> list[int]:
        return list(range(self.n))

    def member(self, j: int, repeat: int = 0):
        self.computed.append((j, repeat))


def _found(**ensembles) -> dict:
    return {n: SimpleNamespace(name=n, ensemble=e, members=6, repeats=e.repeats)
            for n, e in ensembles.items()}


def _row(**values) -> pd.Series:
    base = {"design": "a", "members": 8, "pool": 40, "pool_mean": 0.0284, "pool_t": 26.4,
            "pool_p": 2e-53, "placebo_mean": -0.0005, "placebo_p": 0.32, "pool_rel": 0.81,
            "pool_rel_low": 0.70, "pool_rel_high": 0.89, "placebo_rel": 0.07,
            "placebo_rel_low": -0.5, "placebo_rel_high": 0.44, "pool_sd": 0.0113,
            "pool_sd_low": 0.0093, "pool_sd_high": 0.0131, "members_for_target": 8.0,
            "hours_for_target_2cores": 1.5, "minutes_per_encoder": 11.3}
    return pd.Series({**base, **values})


def test_designs_split_by_kind_and_count_their_encoders(monkeypatch):
    found = _found(a=_Ensemble("simclr", 4, repeats=1), s=_Ensemble("supervised", 6))
    ssl, sup = designs.by_kind(found)
    assert list(ssl) == ["a"] and list(sup) == ["s"]
    monkeypatch.setattr(precision, "encoder_minutes",
                        lambda ens, members, repeat=0: 60.0 * len(members) * (1 + repeat))
    total, hours = designs.stored_encoders(found)
    assert total == 4 + 2 + 6  # the one-pair repeat of design a counts
    assert hours == pytest.approx(4 + 2 * 2 + 6)
    values = designs.overview("laptop", found)  # the device: glued from the provenance
    assert list(values) == ["profile", "total_members", "encoder_hours", "image_size",
                            "dataset", "placebo_size"]
    assert values["image_size"] == "16" and values["placebo_size"] == 10
    assert values["profile"] == "laptop"


def test_ensembles_compute_planned_members_only_where_the_store_is_writable(monkeypatch):
    made = {"a": _Ensemble("simclr", repeats=2, read_only=False), "b": _Ensemble("byol")}
    seen = {}

    def ensembles(profile, names=None, **fields):
        seen.update(profile=profile, names=names, **fields)
        return _found(**made)

    monkeypatch.setattr(designs.chapters, "ensembles", ensembles)
    found = designs.ensembles("laptop", designs=["a", "b"], members=3, device="cpu")
    assert seen == {"profile": "laptop", "names": ["a", "b"], "device": "cpu"}
    assert found["a"].ensemble.computed == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (0, 2),
                                            (1, 2)]
    assert found["b"].ensemble.computed == []  # read-only: nothing is trained
    designs.ensembles("laptop")
    assert made["a"].computed[7:13] == [(j, 0) for j in range(6)]  # each design's members


def test_regime_tables_come_with_their_formats():
    frames = designs.regime_tables(pd.DataFrame([_row(), _row(design="b", members=2)]))
    assert [list(formats) for _, formats in frames] == [["min / encoder (median)"],
                                                        ["M for 0.8", "hours for 0.8"]]
    contrast, reliability = (frame for frame, _ in frames)
    assert list(contrast.design) == ["a", "b"]
    assert reliability["reliability (pool)"].iloc[0] == "+0.81 [+0.70, +0.89]"


def test_the_ranking_design_is_chosen_and_the_cheapest_compared(monkeypatch):
    table = pd.DataFrame([_row(), _row(design="b", members=4, hours_for_target_2cores=0.5,
                                       members_for_target=12.0, pool_rel=0.5)])
    monkeypatch.setattr(designs.chapters, "settings", lambda profile: {"ranking": {"ssl": "a"}})
    best, cheap = designs.choose(table, "laptop")
    assert (best.design, cheap.design) == ("a", "b")
    text = designs.cost_text(best, cheap, {"b": "BYOL, 800 epochs"})
    assert text.startswith("Projected from its 4 encoders, the design BYOL, 800 epochs would "
                           "reach 0.8 with 12 ")
    assert "(0.5 h on 2 cores, against 1.5 h in all for the chosen one)" in text
    assert designs.cost_text(best, cheap).startswith("Projected from its 4 encoders, the design b ")
    assert designs.chosen_markdown(best, cheap, {"b": "BYOL, 800 epochs"}).endswith("\n\n" + text)
    assert designs.cost_text(best, best) == ""
    assert designs.cost_text(best, _row(design="c", members=16)) == ""  # measured on more
    assert designs.chosen_markdown(best, best) == precision.design_markdown(best)
    values = designs.chosen_values(best)
    assert values["chosen"] == "a" and values["chosen_members"] == 8
    assert designs.chosen_values(best, {"a": "SimCLR, 800 epochs"})["chosen"] == (
        "SimCLR, 800 epochs")
    assert isinstance(values["chosen_pool"], int)
    assert values["verdict"] == "the target of 0.8 is reached"
    assert values["chosen_contrast"] == ("+0.0284 over the pool (p = 2e-53), -0.0005 over the "
                                         "placebo (p = 0.32)")
    assert designs.contrast_text(_row(members=1)) == "not measurable yet"


def test_one_pair_tables_and_text(monkeypatch):
    pair = {"pool_retest": 0.75, "placebo_retest": 0.59, "pool_sd": 0.01, "placebo_sd": 0.008}
    monkeypatch.setattr(precision, "one_pair", lambda ens: pair if ens.repeats else None)
    pairs = designs.one_pairs({"a": _Ensemble("simclr"), "b": _Ensemble("byol", repeats=1)})
    assert list(pairs) == ["b"]
    table = designs.one_pair_table(pairs)
    assert list(table.columns) == ["design", *designs.ONE_PAIR_FORMATS]
    assert table["placebo retest r"].tolist() == [0.59]
    assert "One pair of **b** trained twice" in designs.one_pair_text(pairs)
    assert "r = +0.75 on the pool and r = +0.59 on the placebo" in designs.one_pair_text(pairs)
    assert designs.one_pair_text({}).startswith("No design has its one-pair repeat")


def test_fixed_partition_verdict_turns_on_the_placebo():
    fixed = {"seeds": 4, "encoders": 8, "pool_rel": 0.88, "pool_rel_low": 0.8,
             "pool_rel_high": 0.9, "placebo_rel": 0.83, "placebo_rel_low": 0.75,
             "placebo_rel_high": 0.89}
    assert designs.fixed_partition_table(fixed).to_dict("records") == [{
        "design": "multi-seed f/g (4 seeds)", "encoders": 8,
        "pool reliability": "+0.88 [+0.80, +0.90]",
        "placebo reliability": "+0.83 [+0.75, +0.89]"}]
    assert "beyond chance" in designs.fixed_partition_text(fixed)
    projected = {**fixed, "placebo_rel_low": -0.1, "ensemble_pool_rel": 0.6,
                 "ensemble_placebo_rel": 0.01, "ensemble_members": 32}
    table = designs.fixed_partition_table(projected)
    assert table.design.tolist()[1] == "ensemble (projected from 32)"
    assert table["placebo reliability"].tolist()[1] == "+0.01"
    assert "not distinguishable from zero" in designs.fixed_partition_text(projected)
    assert designs.fixed_partition_text(None).startswith("The fixed partition has not")


def test_supervised_table_needs_two_members(monkeypatch):
    monkeypatch.setattr(precision, "supervised_summary", lambda ens: {
        "members": ens.n, "label_mem_mean": 0.1, "consistency_mean": 0.9,
        "label_mem_rel": 0.4, "label_mem_rel_low": 0.2, "label_mem_rel_high": 0.6,
        "consistency_rel": 0.7})
    table = designs.supervised_table({"s": _Ensemble("supervised", 4),
                                      "t": _Ensemble("supervised", 1)})
    assert table.design.tolist() == ["s"]
    assert list(table.columns) == ["design", "M", "mean label mem.", "mean consistency",
                                   "reliability (label mem.)", "low", "high",
                                   "reliability (consistency)"]
    assert designs.supervised_table({"t": _Ensemble("supervised", 1)}).empty


def test_detectable_correlations_shrink_with_reliability():
    grid = designs.detectable_grid(200)
    assert list(grid.columns) == ["rel_a", *[f"rel_b = {b}" for b in designs.RELIABILITIES]]
    values = grid.drop(columns="rel_a").to_numpy()
    assert (np.diff(values, axis=0) <= 0).all() and (np.diff(values, axis=1) <= 0).all()
    assert values[0, 0] == 1.0 and values[-1, -1] < 0.25  # unreliable: nothing detectable
    assert designs.detectable_now(200, _row(pool_rel=0.9)) == pytest.approx(values[-1, -1])
    assert designs.detectable_now(200, _row(pool_rel=math.nan)) == 1.0
    assert designs.detectable_now(200, _row(pool_rel=-0.2)) == 1.0


def test_paper_table():
    table = designs.paper_table(_row(), None)
    assert table.shape == (3, 3)
    assert table["this run"].iloc[0].startswith("average contrast: mean m̂ = +0.0284")
    assert table["this run"].iloc[2] == "not stored yet"
    pair = {"pool_retest": 0.75, "placebo_retest": 0.59}
    assert designs.paper_table(_row(), pair)["this run"].iloc[2] == (
        "retest r = +0.75 (pool), +0.59 (placebo, true score 0)")



def test_claim_verdict_against_the_least_reliability_a_per_point_claim_needs():
    chosen = _Ensemble("simclr", 8)
    chosen.exp.split = SimpleNamespace(shared=[], independent=[], candidate=range(40),
                                       extra=range(10))
    chosen.exp.cfg.epochs, chosen.shared_init = 800, True
    pair = {"pool_retest": 0.75, "placebo_retest": 0.59}
    v = designs.claim_verdict(_row(), chosen, pair)
    assert v.word == "holds" and (v.low, v.effect, v.high) == (0.70, 0.81, 0.89)
    assert "passes" in v.note and "+0.59 on the placebo" in v.note.replace("−", "-")
    assert "8 encoders of SimCLR, 800 epochs, 40-image pool, shared init" in v.scale
    assert designs.claim_verdict(_row(pool_rel_low=0.3), chosen, None).word == (
        "not detected at this power")
    assert designs.claim_verdict(_row(pool_rel_high=0.4, pool_rel=0.3, pool_rel_low=0.1),
                                 chosen, None).word == "contradicted"
    failed = designs.claim_verdict(_row(placebo_rel_low=0.2), chosen, None)
    assert failed.word == "not detected at this power" and "FAILS" in failed.note
    assert designs.claim_verdict(_row(members=2), chosen, None).word == "not run here"


def test_a_paired_comparison_decides_the_cost_instead_of_the_projection():
    best, cheap = _row(), _row(design="b", members=4, hours_for_target_2cores=0.5,
                              members_for_target=12.0, pool_rel=0.5)
    paired = {"name": "b", "rho": np.array([0.2, 0.4]), "separated": True, "ratio": 0.5,
              "ratio_low": 0.3, "ratio_high": 0.8, "p": 0.01,
              "cost_source": "at the same cost per encoder: only the views differ"}
    text = designs.cost_text(best, cheap, None, [{"name": "other"}, paired])
    assert "too wide" not in text and "0.5 h" not in text  # the projection does not decide
    assert "it is cheaper: 0.50 [0.30, 0.80] times the cost" in text
    assert "the same cost per encoder" in text
    not_yet = designs.cost_text(best, cheap, None, [{"name": "b", "members": 4}])
    assert "too wide" in not_yet  # no paired comparison yet: the projection, with its caveat
