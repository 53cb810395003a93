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
# The paper ranks points by SSLMem computed from **one** pair of encoders: $f$ trained with the
# candidates, $g$ without them, on a fixed partition of the data (chapter 1 reproduces exactly
# that). Chapter 1 shows that this pair measures the *average* memorization of a subset very
# precisely. This page asks the question every per-point claim of the paper rests on (which
# points are memorized, chapters 2–5): does one point's score measure that point's own
# memorization, and how precisely? It is not a figure of the paper; it is the check the paper
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
# How to read precision: split the encoders into two random halves, estimate every point's
# score from each half and correlate the two estimates over points; corrected to the full
# ensemble (Spearman–Brown), this **split-half reliability** is the share of the spread of
# scores between points that is reproducible rather than noise: 0 means the ranking is
# noise, 0.8 that it is mostly signal. A **placebo** set of held-out images that no encoder
# trained on, given a fake membership, must come out with mean zero *and* reliability near zero:
# otherwise the estimator measures something other than a point's own inclusion.

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import designs as page  # this page's analyses ('designs' is a parameter)
from sslmem.book import precision, provenance, verdicts
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
# Each row is one ensemble design on a pool of {glue:text}`dataset` training images (its size
# is in the first table) at {glue:text}`image_size` px (downsampled: a 32-px ResNet-9 step costs
# 4× as much on these cores) and a placebo of {glue:text}`placebo_size` test images; each
# encoder trains on half of the pool. The designs differ in one knob at a time: training
# length, whether every encoder starts from the same weights and draws the same augmentations
# (*shared init*, common random numbers in training), the pool's size, and the augmentation's
# strength (*weak*: half the colour jitter, crops of at least 54 % of the image; memorization is
# known to grow as augmentation weakens). Chapter 3's designs of other methods are listed too.
#
# The first table is the average contrast and the noise: the encoders stored so far ($M$), the
# minutes an encoder took here (training and scoring; the median, since a few trained beside
# other work), the mean $\hat m$ over the pool with its $p$ (one-sample $t$-test against 0) and
# the placebo's beside it, and the SD of the placebo's $\hat m$, which is pure noise, before and
# after each encoder's losses are centred on its mean over the placebo (an encoder that aligns
# every image a little better shifts all its losses, which is noise for $\hat m$). The second is
# precision: the **true between-point SD** of self-memorization (the spread of $\hat m$ left
# after removing its estimation noise), the split-half reliability of the pool and of the
# placebo, each with a 95 % interval (bootstrap over points and splits), and what a reliability
# of 0.8 would take by Spearman–Brown: encoders, and hours on these 2 cores (at that median).

# %% tags=["remove-input"]
for frame, formats in page.regime_tables(table):  # contrast and noise; precision and cost
    show_table(frame, formats)
best, cheap = page.choose(table, profile)
chosen = ssl[best.design]
glue_all(page.chosen_values(best, described))  # chosen, chosen_members, …, verdict

# %% [markdown]
# The design that chapters 2–5 rank points by, picked from this search (until it has 4
# encoders: the one with the lowest projected cost of a reliable ranking), is
# **{glue:text}`chosen`**, with $M =$ {glue:text}`chosen_members:.0f` encoders so far:

# %% tags=["remove-input"]
display(Markdown(page.chosen_markdown(best, cheap, described)))

# %% [markdown]
# ## Reliability grows with the number of encoders
#
# Measured split-half reliability for random subsets of $m$ encoders (points; band: spread over
# subsets and bootstrap); the dashed line extrapolates the full ensemble's value with
# Spearman–Brown. The placebo must stay on zero whatever $M$.

# %% tags=["hide-input"]
fig = precision.reliability_figure(ssl, table, described)

# %% [markdown]
# ## Each point's interval
#
# Every pool point of **{glue:text}`chosen`** with its estimate $\hat m(x)$ and ±1.96 s.e.
# over encoders, sorted by the estimate, beside the placebo's points. Where the intervals of
# most points overlap zero and each other, ranking points is premature; where they separate,
# the ranking means something.

# %% tags=["hide-input"]
if len(chosen.complete_members()) >= 4:
    fig = precision.interval_figure(chosen)
else:
    print("fewer than 4 encoders stored: no standard errors yet")

# %% [markdown]
# ## How many augmentation pairs?
#
# The reliability of the full ensemble of **{glue:text}`chosen`** when each encoder scores a
# point with only its first $K$ augmentation pairs (the stored prefixes). Pairs are cheap next
# to encoders; this shows whether more of them still help.

# %% tags=["hide-input"]
if len(kc := precision.k_curve(chosen)):
    fig = precision.k_figure(kc)
else:
    print("fewer than 4 encoders stored: no K curve yet")

# %% [markdown]
# ## The paper's estimator beside it
#
# Members 0 and 1 of a design are complementary halves: together they *are* the paper's
# estimator, one $f$/$g$ pair on a fixed partition. Retrained with other seeds (same halves),
# they give a second, independent measurement of the same one-pair score. Its test-retest
# correlation over points is its reliability, on the pool and on the placebo, whose true score
# is zero by design.

# %% tags=["remove-input"]
pairs = page.one_pairs(ssl)  # the designs whose one-pair repeat is stored
if pairs:
    show_table(page.one_pair_table(pairs), page.ONE_PAIR_FORMATS)
display(Markdown(page.one_pair_text(pairs, described)))

# %% [markdown]
# ## Multi-seed $f$/$g$ against the ensemble, encoder for encoder
#
# The obvious alternative to random halves is the paper's pair trained with several seeds on
# its fixed partition and averaged (the `seeds` option of chapter 1). Members 0 and 1 of
# **{glue:text}`chosen`**, retrained with further seeds, are exactly that. Both designs cost the
# same per encoder, so the comparison is at an equal number of encoders $2S$: the multi-seed
# estimator's split-half reliability (halves of its seeds) on the pool and on the placebo,
# beside the ensemble's at $2S$ encoders (Spearman–Brown from all of its encoders).

# %% tags=["remove-input"]
fixed = precision.fixed_partition(chosen)
if fixed is not None:
    show_table(page.fixed_partition_table(fixed))
display(Markdown(page.fixed_partition_text(fixed)))

# %% [markdown]
# ## The supervised counterpart
#
# The same membership design with supervised classifiers gives, for every pool point, the
# literature's per-point measures: Feldman–Zhang **label memorization** (accuracy of the
# models that trained on the point minus that of the models that did not) and **held-out
# consistency** (accuracy of the models that did not: the C-score estimator of Jiang et al.
# 2021; atypicality = 1 − consistency). They are what chapter 2 correlates SSLMem with, so
# their reliability is measured the same way.

# %% tags=["remove-input"]
sup_table = page.supervised_table(sup)  # the designs with 2 or more members
if len(sup_table):
    show_table(sup_table, {c: "{:+.2f}" for c in sup_table.columns if c not in ("design", "M")})
else:
    print("no supervised ensemble with 2 or more members stored yet")

# %% [markdown]
# ## What the later chapters need
#
# An observed correlation between two per-point scores is the true correlation times
# $\sqrt{\text{rel}_a \cdot \text{rel}_b}$. With the pool of {glue:text}`chosen_pool:.0f` points
# of {glue:text}`chosen`,
# the smallest *true* correlation a two-sided test detects with 80 % power at $\alpha$ = 0.05,
# for a few pairs of reliabilities:

# %% tags=["remove-input"]
grid = page.detectable_grid(len(chosen.pool))
show_table(grid, {c: "{:.2f}" for c in grid.columns})
glue_number("detectable_now", page.detectable_now(len(chosen.pool), best))

# %% [markdown]
# With the reliability reached so far, a correlation of SSLMem with a nearly perfectly
# measured second score (reliability 0.9) is detectable only if it is at least
# {glue:text}`detectable_now:.2f` in truth (1.00: not detectable at all). Chapters 2–5 rank
# points; until their scores reach a reliability of 0.5 or more, their per-point nulls are not
# evidence against the paper.
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
# - The ensemble grows without recomputation: every added encoder sharpens every number here.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
read = [d.ensemble.exp for d in found.values()]
glue_all(where := provenance.glued(*read))  # device, commits, minutes
verdicts.glue([page.claim_verdict(best, chosen, pair)], provenance.hardware_of(chosen.exp))
print(provenance.report(*read, parameters=parameters))
