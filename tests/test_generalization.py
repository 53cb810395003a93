"""Chapter 4's analyses (sslmem.book.generalization) on synthetic frames: nothing trains."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sslmem.book import generalization as gen
from sslmem.pipeline import removal

PROBES = ("cifar10", "mnist")


def _arms(n_seeds: int, gap: float, seed: int = 0, noise: float = 0.002) -> pd.DataFrame:
    """Arm accuracies: top = random − gap, bottom = random + gap, per seed and probe set."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        for probe in PROBES:
            base = 0.5 + 0.05 * rng.standard_normal()
            for arm, shift in (("top", -gap), ("random", 0.0), ("bottom", gap)):
                acc = base + shift + noise * rng.standard_normal()
                rows.append(dict(arm=arm, seed=s, probe=probe, n_pretrain=100, linear=acc,
                                 knn=acc - 0.1))
    return pd.DataFrame(rows)


def _pilot(sd: float = 0.01, members: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([dict(member=j, probe=p, n_pretrain=50, linear=0.4 + sd * z, knn=0.3)
                         for j, z in enumerate(rng.standard_normal(members)) for p in PROBES])


def _row(mean, lo, hi, p, n=5, detectable=1.5):
    return pd.Series(dict(probe="cifar10", contrast="top − random", n=n, mean=mean, sd=1.0,
                          lo=lo, hi=hi, p=p, detectable=detectable), dtype=object)


def test_verdict_says_lower_higher_or_what_was_detectable():
    assert gen.verdict(_row(-2.0, -3.0, -1.0, 0.01)).startswith("lower, as the paper claims")
    assert gen.verdict(_row(2.0, 1.0, 3.0, 0.01)).startswith("HIGHER, the opposite")
    null = gen.verdict(_row(0.1, -1.0, 1.2, 0.8, n=3, detectable=2.25))
    assert null.startswith("no measurable difference")
    assert "the pilot's SD (fewer than 4 seeds), 3 seeds detect 2.2 points" in null
    assert "its paired SD" in gen.verdict(_row(0.1, -1.0, 1.2, 0.8, n=6))
    assert gen.verdict(_row(0.5, math.nan, math.nan, math.nan, n=1)).startswith(
        "not testable (fewer")
    assert "no spread" in gen.verdict(_row(0.5, 0.5, 0.5, math.nan, n=3))


def test_power_table_fills_the_detectable_effect_and_seeds_needed():
    rows = gen.power_table(_pilot(sd=0.01), n=5)
    assert list(rows.probe) == list(PROBES)
    assert rows.sd.iloc[0] == pytest.approx(_pilot().linear[::2].std(ddof=1) * 100)
    assert np.all(np.isfinite(rows.detectable)) and np.all(rows.detectable > rows.sd_diff)
    assert rows.detectable.iloc[0] == pytest.approx(removal.detectable(rows.sd_diff.iloc[0], 5))
    assert rows["seeds for 1 point"].iloc[0] == removal.pairs_needed(1.0, rows.sd_diff.iloc[0])
    view, formats = gen.power_view(rows, 5)
    assert "detectable with 5 seeds (points)" in view.columns and set(formats) <= set(view)
    text = gen.pilot_text(rows, "cifar10", 5, "d")
    assert "(6 members probed)" in text and f"{rows.sd.iloc[0]:.2f} points" in text
    assert gen.pilot_sd(rows, "cifar10") == rows.sd.iloc[0]


def test_power_table_waits_without_a_pilot():
    empty = pd.DataFrame(columns=["member", "probe", "n_pretrain", "linear", "knn"])
    rows = gen.power_table(empty, n=5)
    assert rows.empty and math.isnan(gen.pilot_sd(rows, "cifar10"))
    assert "`probe-ens-…`" in gen.pilot_text(rows, "cifar10", 5, "ens")


def test_arm_tests_find_a_planted_gap_and_size_power():
    arms = _arms(6, gap=0.02)
    tests = gen.arm_tests(arms, gen.power_table(_pilot(), 6))
    assert set(tests.contrast) == {"top − random", "random − bottom", "top − bottom"}
    assert len(tests) == 3 * len(PROBES) and tests.detectable.notna().all()
    own = tests[(tests.probe == "cifar10")].set_index("contrast")
    assert own.loc["top − random", "mean"] == pytest.approx(-2.0, abs=0.5)
    assert own.loc["top − bottom", "mean"] == pytest.approx(-4.0, abs=0.5)
    # 6 seeds: the detectable effect comes from the paired SD itself
    r = own.loc["top − random"]
    assert r.detectable == pytest.approx(removal.detectable(r.sd, 6))
    verdicts = gen.arm_verdicts(tests, "cifar10", pilot_sd=1.0)
    assert verdicts["verdict_top"].startswith("lower")
    assert verdicts["verdict_bottom"].startswith("lower")
    assert "below random in 2 and above it in 0" in verdicts["sets_text"]
    assert "(the pilot's expectation above: 1.41)" in verdicts["sets_text"]
    view, _ = gen.knn_view(gen.arm_tests(arms, pd.DataFrame(), "knn"))
    assert list(view.columns) == ["probe set", "contrast", "n", "mean (points)", "95 % low",
                                  "95 % high", "p"]


def test_arm_tests_below_four_seeds_use_the_pilot_sd():
    pilot = gen.power_table(_pilot(sd=0.02), 3)
    tests = gen.arm_tests(_arms(3, gap=0.0, noise=0.01), pilot)
    expected = pilot.set_index("probe").sd_diff
    for _, r in tests.iterrows():
        assert r.detectable == pytest.approx(removal.detectable(expected[r.probe], 3))
    assert gen.arm_tests(_arms(3, gap=0.0), pilot, testable=False).empty
    verdicts = gen.arm_verdicts(pd.DataFrame(), "cifar10", math.nan)
    assert verdicts["verdict_top"] == gen.NOT_YET
    assert "wait" in verdicts["sets_text"]


def test_complete_arms_keeps_seeds_with_all_three_arms():
    arms = _arms(3, gap=0.01)
    arms = arms[~((arms.seed == 1) & (arms.arm == "bottom"))]
    setup = SimpleNamespace(table=lambda: arms,
                            run=lambda arm, seed, ranking: {"train_seconds": 1800.0})
    kept, complete = gen.complete_arms(setup)
    assert complete == [0, 2] and set(kept.seed) == {0, 2}
    assert gen.encoder_hours(setup, complete, None) == pytest.approx(3.0)
    assert "1 of 4 seeds have all three arms" in gen.missing_seeds_note(1, 4, "laptop")


def _pairs(f_sides, g_sides) -> pd.DataFrame:
    return pd.DataFrame([{"λ": lam, "raw mean on S_C": 0.01 * i, "shift (S_E)": 0.002 * i,
                          "f's points": f, "± ": 0.001, "g's points": g, "±": 0.002,
                          "mean loss": 1.0 + i, "linear probe (f)": 0.4}
                         for i, (lam, f, g) in enumerate(zip((0.0, 0.5), f_sides, g_sides))])


def test_pair_text_flags_sides_that_disagree():
    assert "opposite directions" in gen.pair_text(_pairs((0.01, 0.02), (0.01, 0.0)))
    assert "both move the same way" in gen.pair_text(_pairs((0.01, 0.02), (0.01, 0.03)))
    assert gen.pair_text(_pairs((0.01,), (0.01,))) == "Only one λ is in this sweep."
    f = gen.sweep_forest(_pairs((0.01, 0.02), (0.01, 0.0)))
    assert f["labels"][:2] == ["λ = 0: f's points", "λ = 0: g's points"]
    assert f["lo"][1] == pytest.approx(0.008) and f["hi"][0] == pytest.approx(0.011)


def test_sweep_table_reads_both_sides_of_each_pair():
    rng = np.random.default_rng(2)

    def experiment(shift):
        rows = [dict(subset=s, L_f=1.0 + 0.01 * rng.standard_normal(),
                     L_g=1.0 + shift + (0.05 if s == "candidate" else 0.0)
                     + 0.01 * rng.standard_normal())
                for s in ("candidate", "independent", "extra") for _ in range(50)]
        return SimpleNamespace(scores=lambda: pd.DataFrame(rows),
                               probe=lambda who, max_train, max_test: {"linear": 0.4})

    sweep = SimpleNamespace(lambdas={0.0: experiment(0.0), 0.5: experiment(0.3)},
                            probe_max_train=None, probe_max_test=None)
    pairs = gen.sweep_table(sweep)
    assert list(pairs.columns) == list(gen.SWEEP_FORMATS)
    assert pairs["shift (S_E)"].iloc[1] == pytest.approx(0.3, abs=0.01)
    assert pairs["f's points"].to_numpy() == pytest.approx([0.05, 0.05], abs=0.01)


def _ensemble(contrast: float, lam: float, members=range(4), seed: int = 0):
    """A fake ensemble whose member j has an in/out loss contrast ``contrast`` (+ noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in members:
        gap = contrast + 0.002 * rng.standard_normal()
        for subset, g in (("pool", gap), ("placebo", 0.0)):
            for inside in (True, False):
                rows += [dict(member=j, subset=subset, inside=inside,
                              L3=1.0 + (0.0 if inside else g) + 0.001 * z)
                         for z in rng.standard_normal(20)]
    whole = pd.DataFrame(rows)
    exp = SimpleNamespace(cfg=SimpleNamespace(n_pairs=3, align_lambda=lam))
    return SimpleNamespace(exp=exp, table=lambda m=None: whole[whole.member.isin(m)],
                           complete_members=lambda: list(members),
                           stored_members=lambda: list(members))


def _setup(reg_contrast: float | None, accuracy_drop: float = 0.01):
    plain = _ensemble(0.10, 0.0, seed=3)
    reg = None if reg_contrast is None else SimpleNamespace(
        name="ens-reg", ensemble=_ensemble(reg_contrast, 0.5, seed=4))

    def member_table(design=None, members=None):
        drop = accuracy_drop if design is not None else 0.0
        return pd.DataFrame([dict(member=j, probe="cifar10", n_pretrain=50,
                                  linear=0.4 - drop + 0.001 * j, knn=0.3) for j in members])

    exp = SimpleNamespace(cfg=SimpleNamespace(dataset="cifar10"),
                          train=SimpleNamespace(image_size=32))
    return SimpleNamespace(design=SimpleNamespace(name="ens", ensemble=SimpleNamespace(
        **vars(plain), pool=np.arange(200))), regularized=reg, exp=exp, k=50,
        member_table=member_table)


def test_regularizer_effects_report_a_planted_reduction():
    out = gen.regularizer_effects(_setup(reg_contrast=0.05))
    table = out["table"]
    assert list(table.iloc[:, 0]) == ["in/out contrast", "contrast ÷ mean loss",
                                      "placebo contrast (control)",
                                      "linear probe on cifar10 (points)"]
    assert table.columns[0] == "λ = 0 → λ = 0.5" and (table.pairs == 2).all()  # the units
    assert table["mean change"].iloc[0] == pytest.approx(-0.05, abs=0.005)
    assert table["mean change"].iloc[3] == pytest.approx(-1.0)
    assert out["verdict"].startswith("memorization lowered, as the paper claims")
    assert "linear-probe accuracy changes by -1.00 points in every pair" in out["verdict"]
    assert out["text"].startswith("Over 4 paired members (2 complementary pairs, the units "
                                   "tested), the in/out contrast is +0.10")
    assert gen.regularizer_effects(_setup(0.2))["verdict"].startswith("memorization RAISED")


def test_regularizer_effects_without_a_design_or_pairs():
    none = gen.regularizer_effects(_setup(None))
    assert "table" not in none and none["verdict"].startswith("not measured")
    setup = _setup(0.05)
    setup.regularized.ensemble.complete_members = lambda: [0]
    out = gen.regularizer_effects(setup)
    assert out["verdict"].startswith("not testable yet: 1 complete pair(s) of members of ens-reg")
    assert out["text"].endswith("not testable yet.")


def test_reg_verdict_appends_a_noisy_accuracy_change_with_its_interval():
    effect = dict(n=4, mean=0.001, lo=-0.01, hi=0.012, p=0.6)
    acc = dict(n=4, mean=-0.5, lo=-1.0, hi=0.0, p=0.05)
    text = gen.reg_verdict(effect, acc)
    assert text.startswith("no measurable change in memorization (relative contrast +0.0010")
    assert text.endswith("; linear-probe accuracy changes by -0.50 points (-1.00 to +0.00, "
                         "p = 0.05)")


def test_paper_vs_run_uses_the_dataset_top_random_test():
    setup = _setup(None)
    tests = gen.arm_tests(_arms(6, gap=0.02), pd.DataFrame())
    table = gen.paper_vs_run(tests, setup, 6)
    assert list(table.columns) == ["claim", "paper", "this run", "why they may differ"]
    assert table["this run"].iloc[0].startswith("lower")
    assert table["this run"].iloc[1] == "significantly below random on 2 of 2 probe sets"
    assert "a pool of 200 images at 32 px, k = 50, 6 paired seeds" == table.iloc[0, 3]
    empty = gen.paper_vs_run(pd.DataFrame(), setup, 0)
    assert (empty["this run"].iloc[:2] == "not testable yet").all()


def test_removal_verdict_is_judged_on_the_dataset_top_random_interval():
    setup = _setup(None)
    lower = gen.removal_verdict(gen.arm_tests(_arms(6, gap=0.02), pd.DataFrame()), setup, "s")
    assert lower.word == "holds" and lower.direction == -1 and lower.unit == "points"
    assert lower.high < 0 and "2 and above it on 0" in lower.note
    higher = gen.removal_verdict(gen.arm_tests(_arms(6, gap=-0.02), pd.DataFrame()), setup, "s")
    assert higher.word == "contradicted"
    null = gen.removal_verdict(gen.arm_tests(_arms(6, gap=0.0), pd.DataFrame()), setup, "s")
    assert null.word == "not detected at this power" and null.detectable > 0
    assert gen.removal_verdict(pd.DataFrame(), setup, "s").word == "not run here"


def test_regularizer_verdict_states_an_accuracy_that_rose_against_the_paper():
    setup = _setup(0.05, accuracy_drop=-0.01)  # memorization halved, accuracy one point up
    plain_table = setup.member_table

    def member_table(design=None, members=None):  # a noisy change: one point up on average
        t = plain_table(design, members)
        # varying between complementary pairs (the units tested), not within one
        return t.assign(linear=t.linear + (0.0002 * (t.member // 2 % 2 - 0.5) if design
                                           else 0.0))

    setup.member_table = member_table
    for ens in (setup.design.ensemble, setup.regularized.ensemble):
        ens.exp.cfg.__dict__.update(method="simclr", epochs=800, dataset="cifar10")
        ens.exp.split = SimpleNamespace(shared=[], independent=[], candidate=range(200),
                                        extra=range(50))
        ens.exp.train = SimpleNamespace(image_size=16)
    reg = gen.regularizer_effects(setup)
    assert "linear-probe accuracy ROSE by +1.00 points" in reg["verdict"]
    assert "against the paper's claim that it falls" in reg["verdict"]
    v = gen.regularizer_verdict(reg, setup)
    assert v.word == "holds" and v.high < 0 and v.detectable > 0
    assert "ROSE, against the paper" in v.note
    table = gen.paper_vs_run(pd.DataFrame(), setup, 0, reg)
    assert table["this run"].iloc[2].startswith("memorization lowered")
    assert table["this run"].iloc[3].startswith("ROSE, against the paper (+1.00 points")
    assert gen.regularizer_verdict(gen.regularizer_effects(_setup(None)), setup).word == (
        "not run here")
