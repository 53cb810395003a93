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
# ```{glue:md} verdicts
# :format: myst
# ```
#
# The paper ranks points by SSLMem from **one** $f$/$g$ pair, which chapter 1 shows measures a
# subset's *average* memorization precisely. Every per-point claim (chapters 2–5) rests on a
# question it did not report: does one point's score measure its own memorization, how well?
#
# SSLMem is defined as an expectation over encoders and augmentations,
# $m(x) = \mathbb{E}_{g \sim A(S \setminus x)} L(g, x) - \mathbb{E}_{f \sim A(S)} L(f, x)$.
# We estimate it as Feldman and Zhang (2020) estimate label memorization: **an ensemble** of
# $M$ encoders in complementary pairs, each pair splitting a pool into two random halves, and
# $\hat m(x)$ = mean loss of the encoders without $x$ − mean loss of those with it. The ranking
# of chapters 2, 3 and 5 draws **every facet anew per pair**: halves, initialization and
# augmentation stream, and the view pairs its points are scored on. **Estimand, in one
# sentence: a point's expected drop in alignment loss from being trained on, over random
# halves, seeds and augmentations.** Its reliability is the correlation one would see with a
# fresh ensemble of new encoders *and* new views.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet: the design is chosen on the laptop first | — |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`total_members` encoders, {glue:text}`encoder_hours:.1f` encoder-hours of training and scoring; this page rendered from the store in {glue:text}`seconds:.0f` s | a clear average in/out contrast; per-point reliability growing with $M$ as Spearman–Brown predicts; the placebo centred at zero with reliability near zero |
#
# How to read precision: split the complementary pairs into two random halves, estimate every
# point's score from each, correlate the two over points and correct to the full ensemble
# (Spearman–Brown): this **split-half reliability** is the reproducible share of the spread
# between points (0: noise; 0.8: mostly signal), counting as error only what differs between
# the halves (the *facets*). A **placebo** of held-out images no encoder trained on, given a
# fake membership, must show mean zero *and* reliability near zero. Standard errors and tests
# of an average run over the pairs, the independent units, never over points.

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import designs as page  # this page's analyses ('designs' is a parameter)
from sslmem.book import designcost, facets, precision, provenance, verdicts
from sslmem.book.notebook import Timer, banner, check_parameters, glue_all, glue_number, show_table

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (laptop: cifar10; tiny: digits)
designs: "Optional[list]" = None  # ensemble design names of the profile; None: all
members: "Optional[int]" = None  # members per design when computing; None: the profile value
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
found = page.ensembles(**parameters)  # computes the planned members unless the store is read-only
ssl, sup = page.by_kind(found)  # by design name
table, first = precision.summary_table(ssl), next(iter(ssl.values()))
banner(profile, first.exp, parameters)
glue_all(page.overview(profile, found))  # profile, total_members, …
described = page.names(found)  # every design in words

# %% [markdown]
# ## The regime search
#
# Each row is one design on a pool of {glue:text}`dataset` training images at
# {glue:text}`image_size` px (a 32-px step costs 4× as much here) and a placebo of
# {glue:text}`placebo_size` test images; each encoder trains on half of the pool. One knob
# differs at a time: training length, *shared init*, pool size, *weak* augmentation (half the
# colour jitter, crops ≥ 54 %), the facets drawn per pair; and chapter 3's methods. First table: encoders ($M$), median minutes
# per encoder, mean $\hat m$ over pool and placebo ($p$: $t$-test over the pairs), the
# placebo's SD (pure noise) before and after centring each encoder on its placebo mean. Second:
# what a split counts as error, the **true between-point SD** (spread left after estimation
# noise), split-half reliability (Pearson, 95 %) of pool and placebo, and what 0.8 would take
# by Spearman–Brown: encoders and hours here.

# %% tags=["remove-input"]
for frame, formats in page.regime_tables(table):  # contrast and noise; precision and cost
    show_table(frame, formats)
best, cheap = page.choose(table, profile)
chosen = ssl[best.design]
glue_all(page.chosen_values(best, described))  # chosen, chosen_members, …, verdict

# %% [markdown]
# Chapters 2, 3 and 5 rank by **{glue:text}`chosen`**, $M$ = {glue:text}`chosen_members:.0f` encoders:

# %% tags=["remove-input"]
compared_designs = designcost.rows(profile, ssl, described)  # shown below, decides the costs
display(Markdown(page.chosen_markdown(best, cheap, described, compared_designs)))

# %% [markdown]
# ## What counts as error: facets
#
# One pool, four ways, from optimistic to honest: the fixed-view design (one init, the same
# view pairs for every encoder) split over encoders; the same encoders with halves scored on
# different view pairs; the all-facet design at as many view pairs and at all of its own (fixed
# at 24 encoders and 128 view pairs in commit 5364258, before any encoder trained). Intervals:
# 95 %, bootstrap over points and splits; *Pearson* correlates scores, *rank* their orders
# (what a top-k list uses). Second table, at the fixed design's view pairs: the true SD each
# design sees, one pair's error SD, composition (the part a pair's two members see with
# opposite signs; "–" where what they share outweighs it), and s.e. over pairs ÷ over encoders.

# %% tags=["remove-input"]
if (compared := facets.compare(profile, ssl)) is not None:
    show_table(compared["table"])
    show_table(compared["components"], facets.COMPONENT_FORMATS)
    glue_all(compared["values"])  # facets_rel, fixed_rel, …
    display(Markdown(compared["text"]))
else:
    print("this profile has no all-facet and fixed-view designs with 2 complete pairs each")

# %% [markdown]
# ## Is another design cheaper per unit of reliability?
#
# A knob can raise a point's signal and its noise together; what decides is the reliability
# $\rho$ of **one complementary pair**: $G = T(1-\rho)/(\rho(1-T))$ pairs reach $T$ = 0.8.
# Compared on the encoders and points both designs have (95 % interval: bootstrap over points).

# %% tags=["remove-input"]
glue_all(designcost.show(compared_designs, compared))  # table, text; alt_ratio, alt_verdict

# %% [markdown]
# ## Reliability grows with the number of encoders
#
# Split-half reliability of random subsets of $m$ encoders (band: subsets and bootstrap);
# dashed: Spearman–Brown from all. The placebo must stay on zero whatever $M$.

# %% tags=["hide-input"]
fig = precision.reliability_figure(ssl, table, described)

# %% [markdown]
# ## Each point's interval
#
# Every point of **{glue:text}`chosen`**, sorted by $\hat m(x)$, with its 95 % interval (± t
# s.e. over the complementary pairs): where intervals separate, the ranking means something.

# %% tags=["hide-input"]
if len(chosen.complete_members()) >= 4:
    fig = precision.interval_figure(chosen)
else:
    print("fewer than 4 encoders stored: no standard errors yet")

# %% [markdown]
# ## How many augmentation pairs?
#
# The reliability of **{glue:text}`chosen`** when each encoder scores a point with only its
# first $K$ view pairs (stored prefixes): pairs are cheap next to encoders; do more still help?

# %% tags=["hide-input"]
if len(kc := precision.k_curve(chosen)):
    fig = precision.k_figure(kc)
else:
    print("fewer than 4 encoders stored: no K curve yet")

# %% [markdown]
# ## The paper's estimator beside it
#
# Members 0 and 1 *are* the paper's estimator (one $f$/$g$ pair); retrained with other seeds
# on the same halves, their test-retest correlation is its reliability, pool and placebo.

# %% tags=["remove-input"]
pairs = page.one_pairs(ssl)  # the designs whose one-pair repeat is stored
if pairs:
    show_table(page.one_pair_table(pairs), page.ONE_PAIR_FORMATS)
display(Markdown(page.one_pair_text(pairs, described)))

# %% [markdown]
# ## Multi-seed $f$/$g$ against the ensemble, encoder for encoder
#
# The alternative to random halves: the paper's pair retrained with several seeds on its fixed
# partition and averaged (chapter 1's `seeds`). At an equal number of encoders $2S$: its
# split-half reliability (halves of its seeds) beside the fixed-view ensemble's at $2S$.

# %% tags=["remove-input"]
fixed = page.fixed_partition_of(ssl)  # the first design whose members 0 and 1 were retrained
if fixed is not None:
    show_table(page.fixed_partition_table(fixed))
display(Markdown(page.fixed_partition_text(fixed)))

# %% [markdown]
# ## The supervised counterpart
#
# Supervised classifiers on the same halves give chapter 2's per-point measures: Feldman–Zhang
# **label memorization** (accuracy with the point − without) and **held-out consistency**
# (accuracy without it: the C-score of Jiang et al. 2021; atypicality = 1 − consistency).

# %% tags=["remove-input"]
sup_table = page.supervised_table(sup)  # the designs with 2 or more members
if len(sup_table):
    show_table(sup_table, {c: "{:+.2f}" for c in sup_table.columns if c not in ("design", "M")})
else:
    print("no supervised ensemble with 2 or more members stored yet")

# %% [markdown]
# ## What the later chapters need
#
# An observed correlation is the true one times $\sqrt{\text{rel}_a \cdot \text{rel}_b}$. The
# smallest *true* correlation a two-sided test detects on {glue:text}`chosen_pool:.0f` points
# (80 % power, $\alpha$ = 0.05), for pairs of reliabilities:

# %% tags=["remove-input"]
grid = page.detectable_grid(len(chosen.pool))
show_table(grid, {c: "{:.2f}" for c in grid.columns})
glue_number("detectable_now", page.detectable_now(len(chosen.pool), best))

# %% [markdown]
# At the reliability reached, a correlation with a score of reliability 0.9 is detectable only
# if at least {glue:text}`detectable_now:.2f` in truth (1.00: not at all); below 0.5, per-point
# nulls are not evidence.
#
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(page.paper_table(best, pair := next(iter(pairs.values()), None)))

# %% [markdown]
# ## Summary
#
# - The ensemble estimator isolates a point's own inclusion on average: mean $\hat m$ =
#   {glue:text}`chosen_contrast`.
# - Per-point reliability with {glue:text}`chosen_members:.0f` encoders of
#   {glue:text}`chosen`: {glue:text}`verdict`.
#
# Computed on {glue:text}`device`; rendered from the store in {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
read = [d.ensemble.exp for d in found.values()]
glue_all(where := provenance.glued(*read))  # device, commits, minutes
verdicts.glue([page.claim_verdict(best, chosen, pair)], provenance.hardware_of(chosen.exp))
print(provenance.report(*read, parameters=parameters))
