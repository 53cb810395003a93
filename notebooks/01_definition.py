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
# # 1. What SSLMem measures
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section reproduces the paper's **definition of memorization in self-supervised learning**
# (SSLMem, Section 3) and its first sanity checks: candidates seen only by encoder *f* score
# higher than shared and unseen points, and the mirror set seen only by *g* scores lower, with the
# one-sided t-tests the authors ran; the "fraction memorized" column of Table 1; and, as an extra,
# the score over training epochs. The two-dimensional toy mirrors the intuition figure of the
# appendix (Figure 10).
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU (H100) | one unit of `sslmem plan`: two ResNet-18 encoders, about 8 min (estimate, not yet measured) | $S_C \gg S_S \approx S_E \gg S_I$, all four t-tests at $p < 0.01$ |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`train_minutes:.1f` min of training and {glue:text}`compute_minutes:.1f` min of scoring, as their provenance records; this page rendered from the store in {glue:text}`seconds:.0f` s | the same ordering; weaker where the profile is small |

# %% tags=["remove-cell"]
from sslmem.book import definition, grids, plots, provenance, verdicts
from sslmem.book.explorer import explore
from sslmem.book.notebook import Timer, banner, check_parameters, glue_all, glue_number, show_table
from sslmem.pipeline import chapters
from sslmem.score.significance import extra_threshold

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
method: str = "simclr"  # the SSL framework of encoders f and g
backbone: "Optional[str]" = None  # None: the profile or method default
epochs: "Optional[int]" = None  # None: the method default (paper) or the profile value (tiny)
sizes: "Optional[dict]" = None  # e.g. {"shared": 600, "candidate": 150, ...}; None: the profile split
seeds: "Optional[list]" = None  # e.g. [0, 1, 2]; None: the profile seeds
n_pairs: "Optional[int]" = None  # augmentation pairs per point; None: the profile value
epoch_points: "Optional[int]" = None  # points per subset scored at each snapshot; None: the profile's
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
exp, chapter = chapters.definition(**parameters)  # every parameter is a field of the chapter
table = exp.scores()  # from the store; trains and scores f and g only if they are missing
banner(profile, exp, parameters)
glue_all(definition.run_texts(exp, profile))  # profile, dataset, method, backbone

# %% [markdown]
# ## The definition
#
# An SSL encoder is trained so that two random augmentations $x', x'' \sim \mathrm{Aug}(x)$ of a
# training point land close together: its **alignment loss** on $x$ is
#
# $$
# \mathcal{L}_{\mathrm{align}}(f, x) = \mathbb{E}_{x', x'' \sim \mathrm{Aug}(x)}\,
#     d\big(f(x'), f(x'')\big),
# $$
#
# with $d$ the Euclidean distance between L2-normalized representations. SSLMem compares this loss
# under an encoder $f$ trained **with** $x$ and an encoder $g$ trained **without** it:
#
# $$
# m(x) = \mathrm{SSLMem}_{f,g}(x) =
#   \mathbb{E}_{g \sim \mathcal{M}(D \setminus \{x\})} \mathcal{L}_{\mathrm{align}}(g, x)
#   - \mathbb{E}_{f \sim \mathcal{M}(D)} \mathcal{L}_{\mathrm{align}}(f, x).
# $$
#
# $m(x) > 0$ means that seeing $x$ made its views agree more than they would from generalization
# alone; it is the SSL analogue of Feldman's leave-one-out label memorization, with "predicts the
# right label" replaced by "aligns the views" {cite}`wang2024memorization,feldman2020neural`.
# In practice (as in the authors' code) leave-one-out becomes leave-a-set-out: $f$ trains on
# $S_S \cup S_C$, $g$ on $S_S \cup S_I$, and both are scored on the four subsets below, plus a set
# $S_E$ that neither saw. The expectations are estimated with one encoder per seed and
# {glue:text}`n_pairs` shared augmentation pairs per point.

# %% [markdown]
# ## Intuition: why unseen outliers are not aligned (appendix, Figure 10)
#
# A toy in two dimensions, with no training at all. Data augmentation moves a point anywhere in a
# disk of radius $r$. An idealized SSL encoder has learned to be invariant on the augmentation
# sets of its training points: training points whose disks overlap are chained into one
# component, and every input inside a component's disks is mapped to that component's centroid;
# elsewhere it has learned nothing and is the identity. An **unseen typical** point has views
# inside the disks of many training neighbours, so even $g$ aligns them. An **unseen outlier** has
# no neighbour: only the encoder that trained on it ($f$) collapses its views.

# %% tags=["hide-input"]
panels = definition.toy_panels()  # seeded: the same toy on every run
fig = grids.toy_views(panels)

# %% tags=["remove-cell"]
glue_all({"toy_m_typical": panels[0]["L_g"] - panels[0]["L_f"],
          "toy_m_outlier": panels[1]["L_g"] - panels[1]["L_f"]})

# %% [markdown]
# In this toy the typical point scores $m =$ {glue:text}`toy_m_typical:.2f` and the outlier
# $m =$ {glue:text}`toy_m_outlier:.2f`: memorization concentrates on points whose augmentation sets
# do not overlap with the rest of the data. Real encoders are not this clean, which is what the
# rest of the section measures.

# %% [markdown]
# ## The split and the two encoders
#
# The training split of **{glue:text}`dataset`** is divided into a shared set $S_S$ (seen by both
# encoders), candidates $S_C$ (only $f$) and independent points $S_I$ (only $g$); $S_E$ comes from
# the test split and was seen by neither. Encoders: {glue:text}`method_name` with a
# {glue:text}`backbone` backbone, {glue:text}`epochs` epochs, {glue:text}`n_seeds` seed(s).

# %% tags=["hide-input"]
show_table(definition.split_table(exp.split))

# %% tags=["remove-cell"]
glue_all(definition.run_numbers(exp))  # epochs, seeds, pairs, candidates

# %% [markdown]
# ## Score distributions and the paper's t-tests
#
# Mean score: candidates {glue:text}`mean_candidate:.4f`, shared {glue:text}`mean_shared:.4f`,
# extra {glue:text}`mean_extra:.4f`, independent {glue:text}`mean_independent:.4f` (raw units:
# differences of Euclidean distances between unit vectors). The dashed line is the threshold used
# for the "fraction memorized" below.

# %% tags=["hide-input"]
threshold = extra_threshold(table.loc[table.subset == "extra", "score_raw"], 0.99)
title = f"SSLMem scores per subset ({exp.cfg.method}, {exp.cfg.dataset})"
fig = plots.score_histograms(table, threshold=threshold, title=title)

# %% [markdown]
# The authors test with Student's t-test (equal variances, in their published code) that
# candidates score higher than shared and extra points and that independent points score lower;
# the shared-versus-extra test is a two-sided control that should *not* be significant.

# %% tags=["remove-input"]
sig = exp.significance()
show_table(sig[definition.SIGNIFICANCE_COLUMNS], definition.SIGNIFICANCE_FORMATS)

# %% [markdown]
# ## Alignment of f against alignment of g
#
# Each point is one scored example: its alignment loss under $f$ (x-axis) and under $g$ (y-axis).
# Above the diagonal, $f$ aligns the views better, i.e. $m(x) > 0$.

# %% tags=["hide-input"]
fig = plots.alignment_scatter(table)

# %% [markdown]
# **Explore the points.** Hover over a point to see its image, class, subset, $L_f$, $L_g$
# and $m$; drag over points (or click one) to see their images beside the plot; tick subsets
# and classes to filter, zoom and pan with the toolbar, and pick other axes (e.g. the score
# against atypicality, chapter 2).

# %% tags=["hide-input"]
explore(table, exp.train, exp.test, fields=("atypicality",),
        labels={"atypicality": "atypicality (distance to g's training images)"},
        title=f"every scored point of {exp.cfg.dataset}: L_f against L_g")

# %% [markdown]
# ## How many candidates are memorized ("Frac. Mem.")
#
# Table 1 of the paper reports a fraction of memorized points; its threshold is not stated in
# the text available to us. We call a point memorized when its score exceeds the **99th
# percentile of the scores of $S_E$**, the points neither encoder saw: by construction about 1 %
# of unseen points pass it by chance. Threshold: {glue:text}`threshold:.4f`; fraction of
# candidates above it: {glue:text}`frac_candidate:.3f` (shared {glue:text}`frac_shared:.3f`,
# independent {glue:text}`frac_independent:.3f`, extra {glue:text}`frac_extra:.3f`).

# %% tags=["remove-input"]
fractions = definition.fractions(table, threshold)
show_table(definition.fraction_table(fractions), {"fraction above threshold": "{:.3f}"})

# %% [markdown]
# ## Memorization during training
#
# Scores of the encoder snapshots kept during training (same pairs of views, first seed), next to
# the kNN accuracy that monitors $f$'s representation quality. The follow-up paper reports that
# memorization rises over training (UnitMem, {cite}`wang2024localizing` Fig. 4); the SSLMem paper's
# own curve is UNVERIFIED. All four subsets drift together (f and g are different encoders, and
# their losses change over training); memorization is the *gap* between the candidates and the
# points neither encoder saw. Here that gap (mean score of $S_C$ minus $S_E$) goes from
# {glue:text}`epoch_first_gap:+.4f` at epoch {glue:text}`epoch_first` to
# {glue:text}`epoch_last_gap:+.4f` at epoch {glue:text}`epoch_last`, while the kNN accuracy
# of $f$ reaches {glue:text}`knn_last:.3f`.

# %% tags=["hide-input"]
over_epochs = exp.scores_over_epochs(max_points=chapter["epoch_points"])
history = exp.history("f")
fig = plots.scores_over_epochs(over_epochs, history)

# %% tags=["remove-cell"]
means = table.groupby("subset").score_raw.mean()
numbers = definition.score_numbers(means, sig, threshold, fractions, over_epochs, history)
glue_all(numbers)

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(definition.comparison(numbers))

# %% [markdown]
# ## Summary
#
# - Candidates seen only by $f$ score {glue:text}`mean_candidate:.4f` on average, against
#   {glue:text}`mean_shared:.4f` for shared and {glue:text}`mean_extra:.4f` for unseen points;
#   the mirror set scores {glue:text}`mean_independent:.4f`
#   (t-test $S_C > S_S$: $t =$ {glue:text}`t_S_CgtS_S:.2f`, $p =$ {glue:text}`p_S_CgtS_S:.2g`).
# - A fraction {glue:text}`frac_candidate:.3f` of the candidates lies above the 99th percentile of
#   the unseen points' scores (expected by chance: 0.01).
# - The toy shows why: only points whose augmentation sets do not overlap with other data need
#   to be memorized to be aligned.
#
# What one pair can and cannot tell: the paper's protocol, reproduced here, is the smallest
# ensemble: $M = 2$ encoders on one fixed partition. It measures the average memorization of a
# *subset* precisely (the tests above), but one *point's* score also reflects which of the two
# fixed training sets holds the point's look-alikes, and that part is reproduced by every
# retraining of the same partition. {doc}`07_precision` measures how much of a point's score is
# its own memorization, with an ensemble of encoders on random halves; chapters 2–5, which rank
# points, need that precision.
#
# The results were computed on {glue:text}`device` (commits {glue:text}`commits`; training
# {glue:text}`train_minutes:.1f` min, scoring {glue:text}`compute_minutes:.1f` min, as their
# provenance records); this page rendered them in {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_all(found := provenance.glued(exp))  # device, commits, minutes: from the provenance
verdicts.glue([definition.verdict(sig, exp)], found["device"])
print(provenance.report(exp, parameters=parameters))
