"""Chapter 4's analyses: the removal arms and the alignment regularizer, as tables and sentences.

Why a module: the chapter's notebook should narrate, not compute. What it shows (the pilot's
power table, the paired arm tests with the effect each could detect, their verdicts, the
single-pair λ sweep, the member-paired regularizer effects and the paper-vs-run table) is built
here from :mod:`sslmem.pipeline.removal` and :mod:`sslmem.pipeline.regularizer`, so it can be
tested on synthetic frames without training anything, and the page only glues and displays.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.book import provenance, verdicts
from sslmem.book.notebook import DATASET_NAMES, data_text, describe_design, scale_text
from sslmem.pipeline import regularizer, removal

CONTRASTS = (("top", "random"), ("random", "bottom"), ("top", "bottom"))
TEST_FORMATS = {"mean (points)": "{:+.2f}", "95 % low": "{:+.2f}", "95 % high": "{:+.2f}",
                "SD of the pairs": "{:.2f}", "p": "{:.2g}", "detectable (80 %)": "{:.2f}"}
KNN_FORMATS = {"mean (points)": "{:+.2f}", "95 % low": "{:+.2f}", "95 % high": "{:+.2f}",
               "p": "{:.2g}"}
SWEEP_FORMATS = {"λ": "{:g}", "raw mean on S_C": "{:+.4f}", "shift (S_E)": "{:+.4f}",
                 "f's points": "{:+.4f}", "± ": "{:.4f}", "g's points": "{:+.4f}",
                 "±": "{:.4f}", "mean loss": "{:.3f}", "linear probe (f)": "{:.3f}"}
REG_FORMATS = {"mean change": "{:+.4f}", "95 % low": "{:+.4f}", "95 % high": "{:+.4f}",
               "p": "{:.2g}"}
_TEST_NAMES = {"probe": "probe set", "mean": "mean (points)", "lo": "95 % low",
               "hi": "95 % high"}
NOT_YET = "not testable yet (too few seeds stored)"


# ---- the ranking -------------------------------------------------------------------------------
def compute(setup) -> None:
    """Compute the ranking members (and the regularized design's) unless the store is
    read-only; the arms and probes are computed when the page reads them."""
    if setup.exp.results_only:
        return
    for j in range(setup.rank_members):
        setup.design.ensemble.member(j)
    if setup.regularized is not None:
        for j in range(setup.regularized.members):
            setup.regularized.ensemble.member(j)


def overview(setup, profile: str) -> dict:
    """The page's header values: texts (profile, dataset, design) and counts."""
    exp = setup.exp
    return {"profile": profile, "dataset": exp.cfg.dataset,
            "design": describe_design(setup.design.ensemble),
            "n_pool": len(setup.design.ensemble.pool),
            "k": setup.k, "rank_members": setup.rank_members, "n_seeds": len(setup.seeds)}


def ranking_summary(ranking: pd.DataFrame, k: int, rel: dict) -> dict:
    """The ranking's reliability (with its interval) and the mean score of each removed arm."""
    return {"rank_rel": rel["reliability"], "rank_rel_lo": rel["low"],
            "rank_rel_hi": rel["high"], "rank_rel_views": _views_text(rel),
            "top_m": ranking.m.iloc[:k].mean(),
            "bottom_m": ranking.m.iloc[-k:].mean(), "pool_m": ranking.m.mean()}


def _views_text(rel: dict) -> str:
    """The ranking's reliability across view pairs too, in words (or why there is none)."""
    if not rel.get("across_views", math.nan) == rel.get("across_views", math.nan):
        return "not separable here: its encoders drew their own view pairs or had one"
    return (f"{rel['across_views']:.2f} (95 % interval {rel['across_low']:.2f} to "
            f"{rel['across_high']:.2f}) when the halves are also scored on different view pairs")


# ---- power, before the experiment --------------------------------------------------------------
def power_table(pilot: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per probe set, the pilot's SDs (:func:`~sslmem.pipeline.removal.pilot_sd`) with the
    difference ``n`` paired seeds detect (80 % power) and the seeds a 1-point one needs;
    empty where no member is probed."""
    rows = removal.pilot_sd(pilot) if len(pilot) else pd.DataFrame()
    if len(rows):
        rows["detectable"] = [removal.detectable(sd, n) for sd in rows.sd_diff]
        rows["seeds for 1 point"] = [removal.pairs_needed(1.0, sd) for sd in rows.sd_diff]
    return rows


def power_view(rows: pd.DataFrame, n: int) -> tuple[pd.DataFrame, dict]:
    """The power table as displayed, and its formats."""
    col = f"detectable with {n} seeds (points)"
    view = rows.rename(columns={"probe": "probe set", "mean": "mean accuracy (%)",
                                "sd": "SD across members", "sd_diff": "SD of a difference",
                                "detectable": col})
    return view, {"mean accuracy (%)": "{:.1f}", "SD across members": "{:.2f}",
                  "SD of a difference": "{:.2f}", col: "{:.2f}"}


def pilot_sd(rows: pd.DataFrame, dataset: str) -> float:
    """The pilot's SD across members on ``dataset`` (NaN without a pilot)."""
    return float(rows[rows.probe == dataset].iloc[0].sd) if len(rows) else math.nan


def pilot_text(rows: pd.DataFrame, dataset: str, n: int, design: str) -> str:
    """What the pilot promises on ``dataset`` before the experiment."""
    if not len(rows):
        return ("No member of the ranking ensemble has been probed yet (units "
                f"`probe-{design}-…`): the power calculation waits for them.")
    own = rows[rows.probe == dataset].iloc[0]
    return (f"On {dataset} ({int(own.members)} members probed) the members' "
            f"linear-probe accuracy has an SD of {own.sd:.2f} points: before the experiment, "
            f"{n} paired seeds could promise to detect a difference of about "
            f"{own.detectable:.1f} points, and a 1-point difference would need about "
            f"{int(own['seeds for 1 point'])} seeds.")


# ---- the arms ----------------------------------------------------------------------------------
def complete_arms(setup) -> tuple[pd.DataFrame, list]:
    """The stored arm table restricted to the seeds that hold all three arms, and those seeds."""
    arms = setup.table()
    complete = sorted(s for s, t in arms.groupby("seed") if t.arm.nunique() == len(removal.ARMS))
    return arms[arms.seed.isin(complete)], complete


def encoder_hours(setup, complete, ranking: pd.DataFrame) -> float:
    """Hours spent pre-training the arms of the complete seeds."""
    hours = 0.0
    for seed in complete:
        for arm in removal.ARMS:
            hours += setup.run(arm, seed, ranking)["train_seconds"] / 3600
    return hours


def missing_seeds_note(n_complete: int, n_seeds: int, profile: str) -> str:
    """The warning (MyST markdown) shown while fewer than two seeds hold all three arms."""
    return (f":::{{warning}}\n{n_complete} of {n_seeds} seeds have all three arms "
            f"stored; the paired test needs at least 2. Compute them with `sslmem plan --profile "
            f"{profile} --run` (units `rm-…`); this page fills in as they are stored.\n:::\n")


def arm_tests(arms: pd.DataFrame, pilot_rows: pd.DataFrame, metric: str = "linear",
              testable: bool = True) -> pd.DataFrame:
    """The paired tests top − random, random − bottom and top − bottom per probe set, with the
    difference each detects with 80 % power (``detectable``): from the paired SD, or below
    4 seeds (too uncertain to size anything) from the pilot's expectation."""
    if not testable:
        return pd.DataFrame()
    out = pd.concat([removal.paired(arms, a, b, metric) for a, b in CONTRASTS],
                    ignore_index=True)
    if len(out):
        expected = (pilot_rows.set_index("probe").sd_diff if len(pilot_rows) else pd.Series())
        sd_power = [sd if n >= 4 or probe not in expected else expected[probe]
                    for sd, n, probe in zip(out.sd, out.n, out.probe)]
        out["detectable"] = [removal.detectable(sd, n) for sd, n in zip(sd_power, out.n)]
    return out


def tests_view(tests: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The linear-probe tests as displayed, and their formats."""
    names = {**_TEST_NAMES, "sd": "SD of the pairs", "detectable": "detectable (80 %)"}
    return tests.rename(columns=names), TEST_FORMATS


def knn_view(tests: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The kNN tests as displayed (no SD or power columns), and their formats."""
    cols = ["probe", "contrast", "n", "mean", "lo", "hi", "p"]
    return tests[cols].rename(columns=_TEST_NAMES), KNN_FORMATS


def verdict(row) -> str:
    """One paired test (a row of :func:`arm_tests`) against the paper's claim that the first
    arm is lower: lower, HIGHER, no measurable difference (and what was detectable), or why
    it is not testable."""
    if not np.isfinite(row.lo):
        return "not testable (fewer than two paired seeds)"
    if not np.isfinite(row.p):
        return (f"not testable: the {row.n} seeds gave the same difference "
                f"({row['mean']:+.2f} points), so there is no spread to test it against")
    span = (f"{row['mean']:+.2f} points, 95 % interval {row.lo:+.2f} to {row.hi:+.2f}, "
            f"p = {row.p:.2g}, {row.n} seeds")
    if row.hi < 0:
        return f"lower, as the paper claims ({span})"
    if row.lo > 0:
        return f"HIGHER, the opposite of the paper's claim ({span})"
    source = "its paired SD" if row.n >= 4 else "the pilot's SD (fewer than 4 seeds)"
    return (f"no measurable difference ({span}); with {source}, {row.n} seeds detect "
            f"{row.detectable:.1f} points with 80 % power")


def arm_verdicts(tests: pd.DataFrame, dataset: str, pilot_sd: float) -> dict:
    """The texts ``verdict_top``, ``verdict_bottom`` and ``sets_text`` of the linear tests."""
    if not len(tests):
        return {"verdict_top": NOT_YET, "verdict_bottom": NOT_YET,
                "sets_text": "The per-set tests wait for more seeds."}
    own = tests[tests.probe == dataset].set_index("contrast")
    tr = tests[tests.contrast == "top − random"]
    bound = (f" (the pilot's expectation above: {pilot_sd * math.sqrt(2):.2f})"
             if np.isfinite(pilot_sd) else "")
    return {"verdict_top": verdict(own.loc["top − random"]),
            "verdict_bottom": verdict(own.loc["random − bottom"]),
            "sets_text": f"Over the {len(tr)} probe sets, top-k removal is significantly below "
                         f"random in {int((tr.hi < 0).sum())} and above it in "
                         f"{int((tr.lo > 0).sum())}. The measured SD of the paired differences "
                         f"on {dataset} is {own.loc['top − random'].sd:.2f} points{bound}."}


# ---- the alignment regularizer -----------------------------------------------------------------
def sweep_table(sweep) -> pd.DataFrame:
    """One row per λ of the single-pair sweep: the raw S_C mean, the S_E shift, the memorization
    seen from f's and from g's points (± 1.96 s.e.), the mean loss and f's linear probe."""
    rows = []
    for lam, e in sweep.lambdas.items():
        t = e.scores()
        sides = regularizer.single_pair_sides(t)
        probe = e.probe("f", max_train=sweep.probe_max_train, max_test=sweep.probe_max_test)
        rows.append({"λ": lam, "raw mean on S_C": sides["raw"], "shift (S_E)": sides["shift"],
                     "f's points": sides["f_side"], "± ": 1.96 * sides["f_side_se"],
                     "g's points": sides["g_side"], "±": 1.96 * sides["g_side_se"],
                     "mean loss": float(t[["L_f", "L_g"]].to_numpy().mean()),
                     "linear probe (f)": probe["linear"]})
    return pd.DataFrame(rows)


def sweep_forest(pairs: pd.DataFrame) -> dict:
    """The sweep's two estimates per λ for :func:`sslmem.book.plots.forest`: labels, est,
    lo, hi."""
    labels, est, half = [], [], []
    for _, r in pairs.iterrows():
        for side, err in (("f's points", "± "), ("g's points", "±")):
            labels.append(f"λ = {r['λ']:g}: {side}")
            est.append(r[side])
            half.append(r[err])
    est, half = np.array(est), np.array(half)
    return {"labels": labels, "est": est, "lo": est - half, "hi": est + half}


def pair_text(pairs: pd.DataFrame) -> str:
    """What the single-pair sweep can and cannot say: whether f's and g's estimates agree."""
    if len(pairs) < 2:
        return "Only one λ is in this sweep."
    first, last = pairs.iloc[0], pairs.iloc[-1]
    df, dg = last["f's points"] - first["f's points"], last["g's points"] - first["g's points"]
    text = (
        f"With λ = {last['λ']:g} the raw mean on S_C moves from {first['raw mean on S_C']:+.4f}"
        f" to {last['raw mean on S_C']:+.4f}, but {last['shift (S_E)']:+.4f} of the latter is "
        f"the shift between the two encoders that the extra set shows (at λ = "
        f"{first['λ']:g}: {first['shift (S_E)']:+.4f}), and the mean loss itself grows from "
        f"{first['mean loss']:.3f} to {last['mean loss']:.3f}. The memorization of the "
        f"pair's own training points changes by {df:+.4f} from f's side and by {dg:+.4f} "
        "from g's side: ")
    return text + ("the two estimates of the same quantity move in opposite directions, so "
                   "this pair cannot say what the regularizer does, and the raw 'raise' was "
                   "mostly an encoder-level shift." if df * dg < 0 else
                   "both move the same way; the table's intervals say whether beyond noise.")


def reg_verdict(effect: dict, acc: dict) -> str:
    """The regularizer's paired effect on the relative contrast (``effect``) and on the
    linear probe (``acc``), both as :func:`~sslmem.pipeline.regularizer.paired_members`."""
    e = effect
    ci = f"{e['mean']:+.4f}, 95 % interval {e['lo']:+.4f} to {e['hi']:+.4f})"
    if not np.isfinite(e["p"]):
        out = "not testable: the members' contrasts changed identically"
    elif e["hi"] < 0:
        out = f"memorization lowered, as the paper claims (relative contrast {ci}"
    elif e["lo"] > 0:
        out = f"memorization RAISED, the opposite of the paper's claim (relative contrast {ci}"
    else:
        out = f"no measurable change in memorization (relative contrast {ci}"
    if acc["n"] >= 2 and np.isfinite(acc["p"]):
        change = (f"{acc['mean']:+.2f} points ({acc['lo']:+.2f} to {acc['hi']:+.2f}, "
                  f"p = {acc['p']:.2g})")
        out += ("; linear-probe accuracy ROSE by " + change + ", against the paper's claim "
                "that it falls" if acc["lo"] > 0 else "; linear-probe accuracy fell by "
                + change + ", as the paper claims" if acc["hi"] < 0 else
                "; linear-probe accuracy changes by " + change)
    elif acc["n"] >= 2:
        out += f"; linear-probe accuracy changes by {acc['mean']:+.2f} points in every pair"
    return out


def regularizer_effects(setup) -> dict:
    """λ = 0 against the regularized design, paired by member: ``verdict`` and ``text``, and
    where two or more pairs are stored the ``table`` of effects (contrast, relative contrast,
    placebo control, linear probe on the dataset)."""
    reg, ens, dataset = setup.regularized, setup.design.ensemble, setup.exp.cfg.dataset
    members = [] if reg is None else [j for j in reg.ensemble.complete_members()
                                      if j in set(ens.stored_members())]
    if len(members) < 2:
        return {"verdict": "not measured in this profile (no regularized design)"
                if reg is None else f"not testable yet: {len(members)} complete pair(s) of "
                f"members of {reg.name} stored, 2 needed (units `ens-{reg.name}-…`)",
                "text": "The regularizer's effect on the ensemble is "
                + ("not measured in this profile." if reg is None else "not testable yet.")}
    plain = regularizer.member_contrasts(ens, members)
    treated = regularizer.member_contrasts(reg.ensemble, members)
    accuracy = [t[t.probe == dataset][["member", "linear"]]
                for t in (setup.member_table(members=members),
                          setup.member_table(design=reg, members=members))]
    acc_name = f"linear probe on {dataset} (points)"
    effects = {
        "in/out contrast": regularizer.paired_members(plain, treated, "contrast"),
        "contrast ÷ mean loss": regularizer.paired_members(plain, treated, "relative"),
        "placebo contrast (control)": regularizer.paired_members(plain, treated, "placebo"),
        acc_name: regularizer.paired_members(*accuracy, "linear", scale=100),
    }
    lam = reg.ensemble.exp.cfg.align_lambda
    table = pd.DataFrame([{"λ = 0 → λ = " + f"{lam:g}": name, "pairs": v["n"],
                           "mean change": v["mean"], "95 % low": v["lo"], "95 % high": v["hi"],
                           "p": v["p"]} for name, v in effects.items()])
    both = plain.merge(treated, on="member", suffixes=(" λ=0", f" λ={lam:g}"))
    c0, c1 = both["contrast λ=0"].mean(), both[f"contrast λ={lam:g}"].mean()
    intro = (f"Over {len(both)} paired members ({len(both) // 2} complementary pairs, the units "
             f"tested), the in/out contrast is {c0:+.4f} without "
             f"the regularizer and {c1:+.4f} with λ = {lam:g}: ")
    verdict_ = reg_verdict(effects["contrast ÷ mean loss"], effects[acc_name])
    return {"table": table, "verdict": verdict_, "text": intro + verdict_ + ".",
            "effect": effects["contrast ÷ mean loss"], "accuracy": effects[acc_name],
            "lambda": lam}


# ---- paper vs this run -------------------------------------------------------------------------
def paper_vs_run(tests: pd.DataFrame, setup, n_complete: int,
                 reg: dict | None = None) -> pd.DataFrame:
    """The chapter's claims: what the paper states, what this run found (``reg``: the
    regularizer's :func:`regularizer_effects`), why they may differ."""
    reg = reg or {}
    exp = setup.exp
    top_sets = tests[tests.contrast == "top − random"] if len(tests) else tests
    own_top = top_sets[top_sets.probe == exp.cfg.dataset] if len(tests) else tests
    return pd.DataFrame([
        ("removing the top-k memorized points hurts more than random removal (Fig. 3, Table 3)",
         "stated; gap 'not so large' (a reviewer); values UNVERIFIED",
         verdict(own_top.iloc[0]) if len(own_top) else "not testable yet",
         f"a pool of {len(setup.design.ensemble.pool)} images at {exp.train.image_size} px, "
         f"k = {setup.k}, {n_complete} paired seeds"),
        ("... also on other downstream datasets",
         "stated ('different downstream tasks'); values UNVERIFIED",
         f"significantly below random on {int((top_sets.hi < 0).sum())} of {len(top_sets)} "
         "probe sets" if len(top_sets) else "not testable yet",
         "SVHN and STL-10 are not offline; CIFAR-100 on halves of its test split"),
        ("limiting alignment lowers memorization (Eq. 3)",
         "stated; values UNVERIFIED", reg.get("verdict", "not measured").split("; ")[0],
         "regularizer form UNVERIFIED; one pair cannot measure it"),
        ("... and downstream accuracy with it", "stated; values UNVERIFIED",
         accuracy_text(reg.get("accuracy")), "a short schedule on a 128-image pool"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


def accuracy_text(acc: dict | None) -> str:
    """The regularizer's paired effect on linear-probe accuracy, against the paper's claim
    that it falls."""
    if not acc or acc["n"] < 2 or not np.isfinite(acc["lo"]):
        return "not measured"
    change = (f"{acc['mean']:+.2f} points, 95 % interval {acc['lo']:+.2f} to "
              f"{acc['hi']:+.2f}, p = {acc['p']:.2g}, {acc['n']} complementary pairs")
    if acc["lo"] > 0:
        return f"ROSE, against the paper ({change})"
    if acc["hi"] < 0:
        return f"fell, as the paper claims ({change})"
    return f"no measurable change ({change})"


# ---- the chapter's verdicts -------------------------------------------------------------------

REMOVAL = dict(claim="removing the most memorized points from pre-training lowers downstream "
                     "accuracy more than removing as many random points",
               short="Removing the most memorized points", source="Sec. 4.4, Fig. 3, Table 3",
               chapter="04_generalization")
REGULARIZER = dict(claim="a regularizer that limits the alignment of a training point's views "
                         "lowers its memorization",
                   short="Limiting alignment", source="Eq. 3", chapter="04_generalization")


def scale(setup, n_complete: int) -> str:
    """The removal experiment's scale in words."""
    return (f"{scale_text(setup.exp)}; ranked by {setup.rank_members} encoders of "
            f"{describe_design(setup.design.ensemble)}; k = {setup.k} points removed per arm, "
            f"{n_complete} paired seeds × 3 arms")


def removal_verdict(tests: pd.DataFrame, setup, scale_: str) -> verdicts.Verdict:
    """Top-k against random removal on the dataset (the paper: top lower), from
    :func:`arm_tests`; the other probe sets in the note."""
    dataset = setup.exp.cfg.dataset
    own = tests[(tests.probe == dataset) & (tests.contrast == "top − random")] if len(
        tests) else tests
    if not len(own) or not np.isfinite(own.iloc[0].lo):
        return verdicts.not_run(NOT_YET, scale=scale_, **REMOVAL)
    row, tr = own.iloc[0], tests[tests.contrast == "top − random"]
    return verdicts.from_interval(
        direction=-1, test=f"paired t-test over {row.n} seeds (same initialization and "
        f"augmentations in every arm), linear probe on {DATASET_NAMES.get(dataset, dataset)}",
        measure=f"accuracy without the top-{setup.k} − without {setup.k} random points",
        unit="points", effect=row["mean"], low=row.lo, high=row.hi, detectable=row.detectable,
        scale=scale_, hardware=provenance.hardware_of(setup.exp),
        note=f"Over the {len(tr)} probe sets, top-k removal is below random "
        f"beyond its interval on {int((tr.hi < 0).sum())} and above it on "
        f"{int((tr.lo > 0).sum())}.", **REMOVAL)


def regularizer_verdict(reg: dict, setup) -> verdicts.Verdict:
    """The regularizer's paired effect on memorization (in/out contrast ÷ mean loss; the
    paper: lower), from :func:`regularizer_effects`; its effect on accuracy in the note."""
    design = setup.regularized
    if "effect" not in reg:
        return verdicts.not_run(reg["verdict"], **REGULARIZER)
    e, acc = reg["effect"], reg["accuracy"]
    return verdicts.from_interval(
        direction=-1, test=f"paired t-test over {e['n']} complementary pairs trained on the "
        "same halves with the same seeds, with and without the regularizer",
        measure=f"relative in/out contrast at λ = {reg['lambda']:g} − at λ = 0",
        fmt="+.4f", effect=e["mean"], low=e["lo"], high=e["hi"],
        detectable=removal.detectable(e["sd"], e["n"]),
        scale=f"{data_text(design.ensemble.exp)}; {e['n']} pairs of encoders of "
              f"{describe_design(setup.design.ensemble)}, without and with the regularizer",
        hardware=provenance.hardware_of(setup.exp, design.ensemble.exp),
        note="Downstream linear-probe accuracy (the paper: it falls with memorization): "
             + accuracy_text(acc) + ".", **REGULARIZER)
