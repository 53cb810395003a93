# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. How precise is one point's score?
#
# The paper ranks points by SSLMem computed from **one** pair of encoders: $f$ trained with the
# candidates, $g$ without them, on a fixed partition of the data (chapter 1 reproduces exactly
# that). Chapter 1 shows that this pair measures the *average* memorization of a subset very
# precisely. This page asks the question every per-point claim of the paper rests on (which
# points are memorized, chapters 2–5): **does one point's score measure that point's own
# memorization, and how precisely?** It is not a figure of the paper; it is the check the paper
# did not report.
#
# SSLMem is defined as an expectation over encoders,
# $m(x) = \mathbb{E}_{g \sim A(S \setminus x)} L(g, x) - \mathbb{E}_{f \sim A(S)} L(f, x)$.
# We estimate it as Feldman and Zhang (2020) estimate label memorization: **an ensemble** of
# $M$ encoders, each trained on its own random half of a pool of images, every pool image scored
# by every encoder on the same augmentation pairs, and
# $\hat m(x)$ = mean loss of the encoders that did not train on $x$ − mean loss of those that
# did. Because each encoder draws its own half, a point's neighbours are in or out
# independently of the point itself, so $\hat m(x)$ isolates the point's own inclusion.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet: the design is chosen on the laptop first | — |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`total_members` encoders, {glue:text}`encoder_hours:.1f` encoder-hours of training and scoring; this page rendered from the store in {glue:text}`seconds:.0f` s | a clear average in/out contrast; per-point reliability growing with $M$ as Spearman–Brown predicts; the placebo centred at zero with reliability near zero |
#
# **How to read precision.** Split the encoders into two random halves, estimate every point's
# score from each half and correlate the two estimates over points; corrected to the full
# ensemble (Spearman–Brown), this **split-half reliability** is the share of the spread of
# scores between points that is reproducible rather than noise: 0 means the ranking is
# noise, 0.8 that it is mostly signal. A **placebo** set of held-out images that no encoder
# trained on, given a fake membership, must come out with mean zero *and* reliability near zero:
# otherwise the estimator measures something other than a point's own inclusion.

# %% tags=["remove-cell"]
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sslmem import chapters, precision
from sslmem.notebook import Timer, banner, check_parameters, glue_number, glue_text, show_table

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile = "paper"  # 'paper' (GPU), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
designs = None  # list of ensemble design names of the profile; None = all
members = None  # members per design when computing; None = the profile value
device = "auto"
data_root = None  # None = $SSLMEM_DATA
runs_root = None  # None = $SSLMEM_RUNS (cache of trained encoders)
results_root = None  # None = $SSLMEM_RESULTS, else the checkout's results/ (the store)
_declared = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
found = chapters.ensembles(profile, names=designs, device=device, data_root=data_root,
                           runs_root=runs_root, results_root=results_root)
for d in found.values():  # computes the planned members unless the store is read-only
    if not d.ensemble.exp.results_only:
        for j in range(members or d.members):
            d.ensemble.member(j)
        for r in range(1, d.repeats + 1):
            d.ensemble.member(0, r), d.ensemble.member(1, r)
ssl = {n: d.ensemble for n, d in found.items() if d.ensemble.exp.cfg.method != "supervised"}
sup = {n: d.ensemble for n, d in found.items() if d.ensemble.exp.cfg.method == "supervised"}
table = precision.summary_table(ssl)
usable = table[table.members >= 4] if "pool_rel" in table else table.iloc[:0]
first = next(iter(ssl.values()))
banner(profile, first.exp, parameters)
glue_text("profile", profile)
glue_text("device", str(first.exp.result_provenance().get("device")))
total = sum(len(d.ensemble.stored_members()) + len(d.ensemble.stored_members(1))
            for d in found.values())
hours = sum(precision.encoder_minutes(d.ensemble, d.ensemble.stored_members())
            + precision.encoder_minutes(d.ensemble, d.ensemble.stored_members(1), repeat=1)
            for d in found.values()) / 60
glue_number("total_members", total)
glue_number("encoder_hours", hours)
glue_text("image_size", f"{first.exp.train.image_size}")
glue_text("dataset", first.exp.cfg.dataset)
glue_number("pool_size", len(first.pool))
glue_number("placebo_size", len(first.placebo))

# %% [markdown]
# ## The regime search
#
# Each row is one ensemble design on a pool of {glue:text}`pool_size` {glue:text}`dataset`
# images at {glue:text}`image_size` px (each encoder trains on half of it) and a placebo of
# {glue:text}`placebo_size` test images. The designs differ in one knob at a time: training
# length, and whether every encoder starts from the same weights and draws the same
# augmentations (*shared init*, common random numbers in training). Per design: the encoders
# stored so far ($M$), the average in/out contrast (mean $\hat m$ over the pool with its $t$ and
# $p$; the placebo's beside it), the **true between-point SD** of self-memorization (the spread of
# $\hat m$ left after removing its estimation noise, with a bootstrap interval), the split-half
# reliability with its 95 % interval (bootstrap over points and splits), and what a reliability
# of 0.8 would take by Spearman–Brown: encoders, and hours on these 2 cores. Each encoder's
# losses are first centred on its mean over the placebo: an encoder that aligns every image a
# little better shifts all its losses, which is noise for $\hat m$; the last two columns show
# the placebo's SD of $\hat m$ without and with that centring (it is pure noise: the lower, the
# better).

# %%
cols = {"design": "design", "members": "M", "epochs": "epochs",
        "minutes_per_encoder": "min / encoder", "pool_mean": "mean m (pool)",
        "pool_p": "p (pool)", "placebo_mean": "mean m (placebo)", "placebo_p": "p (placebo)",
        "pool_sd": "true SD (pool)", "pool_rel": "reliability (pool)",
        "pool_rel_low": "low", "pool_rel_high": "high", "placebo_rel": "reliability (placebo)",
        "members_for_target": "M for 0.8", "hours_for_target_2cores": "hours for 0.8",
        "placebo_sd_uncentred": "placebo SD raw", "placebo_sd_observed": "placebo SD centred"}
shown = table[[c for c in cols if c in table]].rename(columns=cols)
show_table(shown, {"min / encoder": "{:.1f}", "mean m (pool)": "{:+.4f}", "p (pool)": "{:.1g}",
                   "mean m (placebo)": "{:+.4f}", "p (placebo)": "{:.2g}",
                   "true SD (pool)": "{:.4f}", "reliability (pool)": "{:+.2f}", "low": "{:+.2f}",
                   "high": "{:+.2f}", "reliability (placebo)": "{:+.2f}", "M for 0.8": "{:.0f}",
                   "hours for 0.8": "{:.0f}", "placebo SD raw": "{:.4f}",
                   "placebo SD centred": "{:.4f}"})

# %% tags=["remove-cell"]
if len(usable):
    finite = usable[np.isfinite(usable.hours_for_target_2cores)]
    best = (finite.sort_values("hours_for_target_2cores").iloc[0] if len(finite)
            else usable.sort_values("members", ascending=False).iloc[0])
else:
    best = table.sort_values("members", ascending=False).iloc[0]
chosen = ssl[best.design]
glue_text("chosen", best.design)
glue_number("chosen_members", int(best.members))
for key in ("pool_mean", "pool_t", "pool_p", "placebo_mean", "placebo_p", "pool_sd",
            "pool_sd_low", "pool_sd_high", "pool_rel", "pool_rel_low", "pool_rel_high",
            "placebo_rel", "placebo_rel_low", "placebo_rel_high", "members_for_target",
            "hours_for_target_2cores", "minutes_per_encoder"):
    value = best.get(key, math.nan)
    glue_number(f"chosen_{key}", float(value) if value is not None else math.nan)
need = float(best.get("members_for_target", math.inf))
glue_number("hours_8cores", float(best.get("hours_for_target_2cores", math.inf)) / 4)
if not len(usable):
    verdict = ("too few encoders are stored yet (fewer than 4 in every design) to measure "
               "reliability: run more units with `sslmem plan --run`")
elif best.get("pool_rel", math.nan) >= 0.8:
    verdict = "the target of 0.8 is reached"
elif best.get("pool_rel", math.nan) >= 0.7:
    verdict = "the minimum of 0.7 is reached, the target of 0.8 not yet"
elif best.get("pool_rel", math.nan) >= 0.5:
    verdict = ("enough to re-test per-point claims with disattenuated statistics (≥ 0.5), "
               "not yet the target of 0.8")
else:
    verdict = ("not yet enough for any per-point claim: the ranking is mostly noise at this "
               "ensemble size")
glue_text("verdict", verdict)
placebo_ok = (best.get("placebo_rel_low", -1) <= 0 <= best.get("placebo_rel_high", 1)
              and best.get("placebo_p", 0) > 0.01)
glue_text("placebo_verdict", "passes: centred at zero and unreliable, as it must be"
          if placebo_ok else "does not pass: see the table")

# %% [markdown]
# The design with the lowest projected cost of a reliable ranking (or, while no design has
# enough encoders, the largest one) is **{glue:text}`chosen`**, with
# $M =$ {glue:text}`chosen_members:.0f` encoders so far:
#
# - average contrast: mean $\hat m$ = {glue:text}`chosen_pool_mean:+.4f` over the pool
#   ($t$ = {glue:text}`chosen_pool_t:.1f`, $p$ = {glue:text}`chosen_pool_p:.1g`);
#   placebo {glue:text}`chosen_placebo_mean:+.4f` ($p$ = {glue:text}`chosen_placebo_p:.2f`);
# - true between-point SD of self-memorization {glue:text}`chosen_pool_sd:.4f`
#   [{glue:text}`chosen_pool_sd_low:.4f`, {glue:text}`chosen_pool_sd_high:.4f`];
# - split-half reliability {glue:text}`chosen_pool_rel:.2f`
#   [{glue:text}`chosen_pool_rel_low:.2f`, {glue:text}`chosen_pool_rel_high:.2f`]:
#   {glue:text}`verdict`; the placebo's is {glue:text}`chosen_placebo_rel:.2f`
#   [{glue:text}`chosen_placebo_rel_low:.2f`, {glue:text}`chosen_placebo_rel_high:.2f`], so the
#   placebo check {glue:text}`placebo_verdict`;
# - a reliability of 0.8 would take about {glue:text}`chosen_members_for_target:.0f` encoders
#   of this design: {glue:text}`chosen_hours_for_target_2cores:.0f` hours on 2 cores
#   ({glue:text}`chosen_minutes_per_encoder:.1f` min each), about
#   {glue:text}`hours_8cores:.0f` hours on 8.

# %% [markdown]
# ## Reliability grows with the number of encoders
#
# Measured split-half reliability for random subsets of $m$ encoders (points, with the spread
# over subsets and bootstrap as a band), the pool in colour, the placebo in grey; the dashed
# line extrapolates the full ensemble's value with Spearman–Brown. The placebo must stay on
# zero whatever $M$.

# %%
fig, axes = plt.subplots(1, len(ssl), figsize=(min(7.2, 2.6 * len(ssl)), 2.8), sharey=True,
                         squeeze=False)
for ax, (name, ens) in zip(axes[0], ssl.items()):
    curve = precision.curves(ens)
    row = table.set_index("design").loc[name]
    if not len(curve):
        ax.text(0.5, 0.5, f"{int(row.members)} encoder(s) stored:\nnot enough for a curve",
                ha="center", va="center", transform=ax.transAxes, fontsize=8)
    for subset, color in (("pool", "C0"), ("placebo", "0.5")):
        part = curve[curve.subset == subset] if len(curve) else curve
        if len(part):
            ax.fill_between(part.members, part.low, part.high, color=color, alpha=0.2, lw=0)
            ax.plot(part.members, part.reliability, "o-", color=color, ms=3, label=subset)
    if np.isfinite(row.get("pool_rel", np.nan)) and row.members >= 4:
        grid = np.geomspace(row.members, max(4 * row.members, 64), 30)
        r1 = row.pool_rel / (row.members - (row.members - 1) * row.pool_rel)
        ax.plot(grid, grid * r1 / (1 + (grid - 1) * r1), "--", color="C0", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.axhline(0.8, color="C3", lw=0.5, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("encoders M")
axes[0][0].set_ylabel("split-half reliability")
axes[0][0].legend(fontsize=7, loc="upper left")
axes[0][0].set_ylim(-0.6, 1.0)
fig.tight_layout()

# %% [markdown]
# ## Each point's interval
#
# Every pool point of **{glue:text}`chosen`** with its estimate $\hat m(x)$ and ±1.96 s.e.
# over encoders, sorted by the estimate, beside the placebo's points. Where the intervals of
# most points overlap zero and each other, ranking points is premature; where they separate,
# the ranking means something.

# %%
fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6), sharey=True)
for ax, subset in zip(axes, ("pool", "placebo") if len(chosen.stored_members()) >= 2 else ()):
    est = chosen.scores(subset).sort_values("m").reset_index(drop=True)
    ax.errorbar(est.index, est.m, yerr=1.96 * est.se, fmt=".", ms=2, lw=0.4,
                color="C0" if subset == "pool" else "0.4")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"{subset} ({len(est)} points)", fontsize=9)
    ax.set_xlabel("points, sorted by estimate")
axes[0].set_ylabel("m̂(x) ± 1.96 s.e.")
fig.tight_layout()

# %% [markdown]
# ## How many augmentation pairs?
#
# The reliability of the full ensemble of **{glue:text}`chosen`** when each encoder scores a
# point with only the first $K$ augmentation pairs (the stored prefixes). Pairs are cheap next
# to encoders; this shows where more of them stop helping.

# %%
kc = precision.k_curve(chosen)
if len(kc):
    fig, ax = plt.subplots(figsize=(3.6, 2.4))
    ax.fill_between(kc.K, kc.low, kc.high, alpha=0.2, lw=0)
    ax.plot(kc.K, kc.reliability, "o-", ms=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("augmentation pairs K")
    ax.set_ylabel("reliability")
    ax.axhline(0, color="k", lw=0.5)
    fig.tight_layout()
else:
    print("fewer than two encoder pairs stored: no K curve yet")

# %% [markdown]
# ## The paper's estimator beside it
#
# Members 0 and 1 of a design are complementary halves: together they *are* the paper's
# estimator, one $f$/$g$ pair on a fixed partition. Retrained with other seeds (same halves),
# they give a second, independent measurement of the same one-pair score. Its test-retest
# correlation over points is its reliability, on the pool and on the placebo, whose true score
# is zero by design.

# %%
pairs = {n: precision.one_pair(e) for n, e in ssl.items()}
pairs = {n: p for n, p in pairs.items() if p is not None}
if pairs:
    rows = [{"design": n, "pool retest r": p["pool_retest"],
             "placebo retest r": p["placebo_retest"], "SD of m (pool)": p["pool_sd"],
             "SD of m (placebo)": p["placebo_sd"]} for n, p in pairs.items()]
    show_table(pd.DataFrame(rows), {"pool retest r": "{:+.2f}", "placebo retest r": "{:+.2f}",
                                    "SD of m (pool)": "{:.4f}", "SD of m (placebo)": "{:.4f}"})
    name, p = next(iter(pairs.items()))
    glue_number("pair_pool_r", p["pool_retest"])
    glue_number("pair_placebo_r", p["placebo_retest"])
    glue_text("pair_design", name)
else:
    glue_number("pair_pool_r", math.nan)
    glue_number("pair_placebo_r", math.nan)
    glue_text("pair_design", "none stored yet")
    print("no design has its one-pair repeat stored yet")

# %% [markdown]
# One pair trained twice ({glue:text}`pair_design`) reproduces its per-point scores with
# $r$ = {glue:text}`pair_pool_r:.2f` on the pool and $r$ = {glue:text}`pair_placebo_r:.2f` on
# the placebo. A placebo correlation above zero is the composition effect: which of the two fixed
# halves holds a point's look-alikes decides its score, again and again, although the point
# itself was never trained on. The ensemble's placebo (table above) has no such reliability,
# because every encoder draws its own half.

# %% [markdown]
# ## The supervised counterpart
#
# The same membership design with supervised classifiers gives, for every pool point, the
# literature's per-point measures: Feldman–Zhang **label memorization** (accuracy of the
# models that trained on the point minus that of the models that did not) and **held-out
# consistency** (accuracy of the models that did not: the C-score estimator of Jiang et al.
# 2021; atypicality = 1 − consistency). They are what chapter 2 correlates SSLMem with, so
# their reliability is measured the same way.

# %%
rows = []
for name, ens in sup.items():
    if len(ens.stored_members()) >= 2:
        rows.append({"design": name, **precision.supervised_summary(ens)})
if rows:
    sup_table = pd.DataFrame(rows)
    show_table(sup_table, {c: "{:+.3f}" for c in sup_table.columns
                           if c not in ("design", "members")})
    glue_number("sup_consistency_rel", float(sup_table.get("consistency_rel", [math.nan])[0]))
    glue_number("sup_label_rel", float(sup_table.get("label_mem_rel", [math.nan])[0]))
else:
    glue_number("sup_consistency_rel", math.nan)
    glue_number("sup_label_rel", math.nan)
    print("no supervised ensemble stored yet")

# %% [markdown]
# ## What the later chapters need
#
# An observed correlation between two per-point scores is the true correlation times
# $\sqrt{\text{rel}_a \cdot \text{rel}_b}$. With the pool of {glue:text}`pool_size` points,
# the smallest *true* correlation a test detects with 80 % power at $\alpha$ = 0.05:

# %%
rels = [0.1, 0.3, 0.5, 0.7, 0.9]
n_pool = len(chosen.pool)
grid = pd.DataFrame({f"rel_b = {b}": [precision.detectable_correlation(n_pool, a, b)
                                      for a in rels] for b in rels})
grid.insert(0, "rel_a", rels)
show_table(grid, {c: "{:.2f}" for c in grid.columns})
glue_number("detectable_now", precision.detectable_correlation(
    n_pool, max(float(best.get("pool_rel", 0) or 0), 1e-9), 0.9))

# %% [markdown]
# With the reliability reached so far, a correlation of SSLMem with a nearly perfectly
# measured second score (reliability 0.9) is detectable only if it is at least
# {glue:text}`detectable_now:.2f` in truth. Chapters 2–5 rank points; until their scores reach a
# reliability of 0.5 or more, their per-point nulls are not evidence against the paper.
#
# ## Summary
#
# - The ensemble estimator isolates a point's own inclusion: average contrast
#   {glue:text}`chosen_pool_mean:+.4f` ($p$ = {glue:text}`chosen_pool_p:.1g`), placebo
#   {glue:text}`chosen_placebo_mean:+.4f`.
# - Per-point reliability with {glue:text}`chosen_members:.0f` encoders of
#   {glue:text}`chosen`: {glue:text}`chosen_pool_rel:.2f`
#   [{glue:text}`chosen_pool_rel_low:.2f`, {glue:text}`chosen_pool_rel_high:.2f`]
#   ({glue:text}`verdict`).
# - The paper's one-pair estimator reproduces its scores even on the placebo
#   ($r$ = {glue:text}`pair_placebo_r:.2f`): what it ranks per point is partly the partition.
# - The ensemble grows without recomputation: every added encoder (`sslmem plan --run`, another
#   machine, a job array) sharpens every number on this page.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes())
glue_number("seconds", 60 * _timer.minutes())
info = first.exp.provenance()
print("Provenance of the ensemble (config, versions; each member's result has its own):")
print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print(pd.Series(info["config"]).to_string())
print("parameters:", parameters)
