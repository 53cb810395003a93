"""The chapters' verdicts (sslmem.book.verdicts): each rule, the box, the JSON, and the
verdicts chapters 2, 3, 5 and 6 compute, on synthetic numbers (chapters 1, 4 and 7: in
test_definition, test_generalization and test_designs). Nothing trains."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sslmem.book import atypicality, consensus, dejavu, privacy, provenance, verdicts
from sslmem.errors import SSLMemError

HOLDS, NOT_DETECTED, CONTRADICTED, NOT_RUN = verdicts.WORDS
FIELDS = dict(claim="c", short="s", source="Sec. 1", chapter="01_definition")


def test_the_vocabulary_is_fixed():
    assert verdicts.WORDS == ("holds", "not detected at this power", "contradicted",
                              "not run here")
    with pytest.raises(SSLMemError, match="not one of"):
        verdicts.Verdict(word="supported", **FIELDS)


@pytest.mark.parametrize("low, high, direction, word", [
    (0.1, 0.3, 1, HOLDS), (-0.3, -0.1, 1, CONTRADICTED), (-0.1, 0.3, 1, NOT_DETECTED),
    (-0.3, -0.1, -1, HOLDS), (0.1, 0.3, -1, CONTRADICTED), (-0.1, 0.1, -1, NOT_DETECTED),
    (0.0, 0.3, 1, NOT_DETECTED),  # touching zero is not excluding it
    (math.nan, 0.3, 1, NOT_RUN), (0.1, math.inf, 1, NOT_RUN)])
def test_interval_rule(low, high, direction, word):
    assert verdicts.interval_word(low, high, direction) == word
    v = verdicts.from_interval(direction=direction, effect=0.0, low=low, high=high, **FIELDS)
    assert v.word == word


def test_threshold_rule_and_the_weakest_part():
    assert verdicts.threshold_word(0.6, 0.9, 0.5) == HOLDS
    assert verdicts.threshold_word(0.1, 0.4, 0.5) == CONTRADICTED
    assert verdicts.threshold_word(0.4, 0.9, 0.5) == NOT_DETECTED
    assert verdicts.from_threshold(threshold=0.5, low=0.6, high=0.9, **FIELDS).reference == 0.5
    assert verdicts.weakest(HOLDS, HOLDS) == HOLDS
    assert verdicts.weakest(HOLDS, NOT_RUN) == NOT_RUN
    assert verdicts.weakest(NOT_RUN, NOT_DETECTED, HOLDS) == NOT_DETECTED
    assert verdicts.weakest(NOT_DETECTED, CONTRADICTED) == CONTRADICTED


def test_effects_and_what_a_design_detects():
    # a 95 % interval of half width 1.96 (s.e. 1): 80 % power at (1.96 + 0.84) s.e.
    assert verdicts.detectable_from_interval(-1.96, 1.96) == pytest.approx(2.8016, abs=1e-3)
    assert math.isnan(verdicts.detectable_from_interval(math.nan, 1.0))
    two = verdicts.two_sample(1.0, 0.0, 100, 100, t=5.0)  # s.e. 0.2
    assert two["effect"] == 1.0 and two["low"] == pytest.approx(1 - 1.972 * 0.2, abs=1e-3)
    assert two["detectable"] == pytest.approx((1.972 + 0.843) * 0.2, abs=1e-3)
    assert math.isnan(verdicts.two_sample(1.0, 1.0, 10, 10, t=0.0)["low"])
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 400), rng.normal(1, 1, 400)
    d = verdicts.difference_of_means(a, b)
    assert d["low"] < d["effect"] < d["high"] and d["effect"] == pytest.approx(1.0, abs=0.2)


def _agreement(**values) -> pd.Series:
    base = dict(points=128, r=0.14, r_low=-0.02, r_high=0.30, p=0.11, rel_a=0.77, rel_b=0.86,
                r_true=0.16, r_true_low=-0.06, r_true_high=0.36, detectable=0.30)
    return pd.Series({**base, **values})


def test_a_correlation_is_judged_on_its_true_score_interval_else_on_the_observed_one():
    v = verdicts.from_correlation(_agreement(), 0.30, **FIELDS)
    assert (v.word, v.measure, v.effect, v.detectable) == (
        NOT_DETECTED, "true-score Spearman ρ", 0.16, 0.30)
    assert verdicts.from_correlation(_agreement(r_true_low=0.05), 0.3, **FIELDS).word == HOLDS
    observed = verdicts.from_correlation(_agreement(r_true=math.nan), 0.5, **FIELDS)
    assert observed.measure == "observed Spearman ρ" and observed.effect == 0.14
    assert observed.detectable == pytest.approx(0.5 * math.sqrt(0.77 * 0.86))
    assert "true ρ of 0.50" in observed.note


def test_the_box_and_the_json():
    v = verdicts.from_interval(direction=-1, effect=0.1, low=-1.6, high=1.8, detectable=2.28,
                               measure="top − random", unit="points", scale="a pool",
                               hardware="AMD EPYC (AVX2), 2 cores", note="Also this.",
                               test="paired t-test", **FIELDS)
    box = verdicts.markdown([v])
    lines = box.splitlines()
    assert lines[0] == ":::{admonition} s: not detected at this power"
    assert lines[1] == ":class: note" and lines[-1] == ":::"
    assert "- **Effect:** top − random = +0.10 points, 95 % interval −1.60 to +1.80; the " \
           "smallest effect this design detects (80 % power) is 2.28 points." in lines
    assert "computed on AMD EPYC (AVX2), 2 cores." in box and "- Also this." in lines
    assert "{doc}`01_definition`" in verdicts.box(v, link=True)
    assert verdicts.box(verdicts.not_run("no results", **FIELDS)).count("Effect") == 0
    text = verdicts.as_json([v, verdicts.not_run("no results", **FIELDS)])
    rows = json.loads(text)  # strict JSON: NaN is written as null
    assert rows[0]["word"] == NOT_DETECTED and rows[1]["effect"] is None
    assert verdicts.from_json(text)[0] == v
    moved = verdicts.with_provenance([v], "elsewhere")[0]
    assert moved.hardware == "elsewhere" and moved.effect == v.effect


def test_provenance_names_the_model_or_says_it_was_not_recorded():
    def prov(commit, cpu=None, **wall):
        return {"git_commit": commit, "device": "cpu (x86_64, 2 cores)", "cpu": cpu,
                "written_at": "2026-11-24T00:00:00+0000", "wall_s": wall}
    exp = SimpleNamespace(store_dir=SimpleNamespace(name="d"), sources={
        "history-f": prov("a" * 40 + "+dirty", **{"train f": 300.0}),
        "scores-x": prov("b" * 40, "AMD EPYC (AVX2)", score=100.0, total=250.0,
                         **{"train g": 150.0}),
        "data-train": prov("c" * 40)})
    rows = provenance.records(exp)
    assert list(rows.result) == ["history-f", "scores-x"]  # the data card is not a result
    assert set(rows.machine) == {"2-core x86_64 CPU (model not recorded)",
                                 "AMD EPYC (AVX2), 2 cores"}
    assert provenance.commits(rows) == "`aaaaaaaaaaaa+dirty`, `bbbbbbbbbbbb`"
    assert provenance.seconds(rows) == {"train": 450.0, "other": 100.0, "total": 550.0}
    assert "(1 results)" in provenance.hardware(rows)
    many = pd.concat([rows.assign(commit=f"c{i}") for i in range(4)])
    assert provenance.commits(many).startswith("4 commits")


def test_chapter_2_judges_the_pool_and_keeps_a_failed_placebo_from_holding():
    agree = pd.DataFrame([{**_agreement(r_true_low=0.05), "subset": "pool", "b": m}
                          for m in atypicality.MEASURES]
                         + [{**_agreement(r=0.06, p=0.5), "subset": "placebo",
                             "b": atypicality.MEASURES[0]}])
    found = {"main": agree.iloc[0], "agree": agree}
    assert atypicality.claim_verdict(found, "a pool").word == HOLDS
    agree.loc[2, "p"] = 0.001
    failed = atypicality.claim_verdict(found, "a pool")
    assert failed.word == NOT_DETECTED and "FAILED" in failed.note
    assert atypicality.claim_verdict(None, "a pool").word == NOT_RUN


def test_chapter_3_needs_every_comparison_above_zero():
    table = pd.DataFrame({"kind": ["SSL–SSL", "SSL–supervised"]})
    tests = pd.DataFrame({"SSL–SSL": ["simclr | byol"] * 2,
                          "SSL–supervised": ["simclr | sup", "byol | sup"],
                          "difference": [0.56, 0.67], "low": [0.08, -0.05], "high": [1.4, 1.7]})
    v = consensus.claim_verdict({"table": table, "tests": tests, "verdict": "x"}, "pool")
    assert v.word == NOT_DETECTED and v.low == -0.05 and "1 of 2" in v.note
    assert "ρ(byol, sup)" in v.measure
    held = consensus.claim_verdict({"table": table, "tests": tests.assign(low=[0.1, 0.2]),
                                    "verdict": "x"}, "pool")
    assert held.word == HOLDS
    down = tests.assign(difference=[-0.5, 0.6], low=[-0.9, -0.1], high=[-0.1, 1.2])
    assert consensus.claim_verdict({"table": table, "tests": down, "verdict": "x"},
                                   "pool").word == CONTRADICTED
    assert consensus.claim_verdict({"table": pd.DataFrame(), "tests": pd.DataFrame(),
                                    "verdict": None}, "pool").word == NOT_RUN


def test_chapter_5_gap_table_adds_up():
    rng = np.random.default_rng(0)
    rows = [dict(member=j, position=i, inside=(i + j) % 2 == 0, correct=rng.random() < 0.3,
                 confidence=rng.random()) for j in range(8) for i in range(60)]
    gaps = dejavu.gap_table(pd.DataFrame(rows))
    assert list(gaps["crops kept"]) == [0.2, 1.0] and gaps.images.iloc[1] == 60
    assert np.allclose(gaps.gap, gaps["accuracy (trained on it)"] - gaps["accuracy (did not)"])
    assert gaps.images.iloc[0] < 60  # the confident crops: fewer images hold both kinds
    assert dejavu.gap_text(None) == dejavu.NOT_COMPUTED


def _privacy_exp(extra_shift: float, memorized: float, seed: int):
    rng = np.random.default_rng(seed)
    rows = [dict(subset=s, score_raw=extra_shift + (memorized if s == "candidate" else 0.0)
                 + 0.001 * z) for s in ("candidate", "extra") for z in rng.standard_normal(100)]
    cfg = SimpleNamespace(method="mae", backbone="vit_tiny", epochs=30, dataset="cifar10",
                          dp_max_grad_norm=1.0)
    split = SimpleNamespace(shared=range(100), candidate=range(100), independent=range(100),
                            extra=range(100))
    return SimpleNamespace(cfg=cfg, split=split, train=SimpleNamespace(image_size=32)), \
        pd.DataFrame(rows)


def test_chapter_6_judges_memorization_against_the_unseen_points():
    (plain, t0), (private, t8) = _privacy_exp(-0.006, 0.002, 0), _privacy_exp(0.0, 0.0, 1)
    experiments, tables = {None: plain, 8.0: private}, {None: t0, 8.0: t8}
    levels = pd.DataFrame({"ε": ["∞", "8"], "mean m(S_C)": [-0.004, 0.0],
                           "m(S_C) − m(S_E)": [0.002, 0.0], "linear probe": [0.39, 0.41]})
    v = privacy.claim_verdict(experiments, tables, levels)
    assert v.word == HOLDS and v.effect == pytest.approx(-0.002, abs=3e-4)  # the raw mean rose
    assert "against the paper" in v.note and "ViT-Tiny" in v.scale
    tables[8.0] = _privacy_exp(0.0, 0.004, 2)[1]
    assert privacy.claim_verdict(experiments, tables, levels).word == CONTRADICTED
    assert privacy.claim_verdict({8.0: private}, {8.0: t8}, levels.iloc[1:]).word == NOT_RUN
