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
# # 6. Does differential privacy lower memorization?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section re-tests the paper's **privacy claim**: training the
# encoder with a differentially private algorithm (DP-SGD) reduces SSLMem memorization, and
# downstream utility with it. The paper evaluated one DP algorithm; its ε values and numbers are
# UNVERIFIED. The same authors' follow-up trains ViT-Tiny MAE encoders on CIFAR-10 with
# ε = ∞, 20 and 8 and reports memorization falling as privacy rises, but not to zero
# {cite}`wang2024localizing`. Here: one $(f, g)$ pair per privacy level, same split, same recipe,
# scored and probed as in chapters 1 and 4 (the paper's design); then the test the verdict
# rests on, an ensemble of complementary pairs per ε on the same pairs, once a DP-capable
# recipe is found that memorizes at ε = ∞.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU (H100) | one `sslmem plan` unit per ε (DP-SGD's per-sample gradients cost about 5× a normal step) | $S_C$'s memorization and the probe accuracy fall as ε falls; neither reaches the unseen level at ε = 8 |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`train_minutes:.1f` min to train the encoders and {glue:text}`compute_minutes:.1f` min to score and probe them, as their provenance records; this page rendered from the store in {glue:text}`seconds:.0f` s; the ensemble test's encoders cost {glue:text}`dp_encoder_minutes` min each here (tables below) | the same direction where the profile's encoders memorize at all |

# %% tags=["remove-cell"]
import pandas as pd

from sslmem.book import dplevels, plots, privacy, provenance, verdicts
from sslmem.book.notebook import Timer, banner, check_parameters, glue_all, glue_number, show_table
from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters
from sslmem.pipeline.config import Config

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
method: "Optional[str]" = None  # a method with a per-sample loss (mae, supervised); None: the profile's (mae)
epsilons: "Optional[list]" = None  # privacy levels; None: the profile's (laptop: no DP, 20, 8)
epochs: "Optional[int]" = None  # epochs of every pair; None: the profile's
dp_max_grad_norm: "Optional[float]" = None  # per-sample clipping bound C; None: 1.0
sizes: "Optional[dict]" = None  # split sizes; None: the profile's
seeds: "Optional[list]" = None  # e.g. [0, 1]; None: the profile seeds
n_pairs: "Optional[int]" = None  # augmentation pairs per point; None: the profile value
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
experiments = chapters.privacy(
    profile, epsilons=epsilons, method=method, epochs=epochs, dp_max_grad_norm=dp_max_grad_norm,
    dataset=dataset, sizes=sizes, seeds=seeds, n_pairs=n_pairs, device=device,
    data_root=data_root, runs_root=runs_root, results_root=results_root)
first = next(iter(experiments.values()))
first.scores()
banner(profile, first, parameters)
glue_all({"profile": profile, "method_name": first.cfg.method, "dataset": first.cfg.dataset})

# %% [markdown]
# ## DP-SGD, and why MAE
#
# DP-SGD {cite}`abadi2016deep` clips each training point's gradient to norm $C$ and adds Gaussian
# noise of standard deviation $\sigma C$ to the sum of a batch; an accountant turns $\sigma$, the
# sampling rate $q$ and the number of steps into a guarantee $(\varepsilon, \delta)$: no single
# point changes the distribution of the trained encoder by more than a factor $e^\varepsilon$
# (up to probability $\delta$). That bound holds only if each point's influence on a step is its
# own gradient, i.e. if the loss is a sum of per-sample terms. **MAE**'s reconstruction loss is
# one; the contrastive and joint-embedding losses are not (SimCLR's negatives, VICReg's and
# Barlow Twins' batch statistics, DINO's centre and every BatchNorm let one point move the
# others' terms), so this project refuses DP for them rather than report a meaningless ε:

# %%
try:
    Config.tiny(method="simclr", dp_epsilon=8.0)
except SSLMemError as err:
    print(err)

# %% [markdown]
# Here {glue:text}`method_name` encoders of **{glue:text}`dataset`** are trained with Poisson
# sampling (each point in each batch independently with probability $q$), per-sample gradients,
# clipping and noise, the RDP accountant of Opacus, and $\sigma$ chosen so that the final
# $\varepsilon$ is the target; $\delta$ is the largest power of ten below $1/N$.

# %% tags=["remove-input"]
show_table(privacy.accounting_table(experiments), privacy.ACCOUNTING_FORMATS)

# %% [markdown]
# ## Memorization against ε
#
# The score distributions of the candidates $S_C$ (seen by $f$ only) at each privacy level, and
# the t-tests of chapter 1 for each pair. The dashed lines are each level's threshold for
# "memorized" (the 99th percentile of its unseen points $S_E$).

# %% tags=["hide-input"]
tables = {eps: exp.scores() for eps, exp in experiments.items()}
fig = plots.scores_by_level(
    {f"ε = {chapters.eps_label(eps)}": t for eps, t in tables.items()},
    title=f"SSLMem of the candidates per privacy level ({first.cfg.method})")

# %% tags=["remove-input"]
levels = privacy.levels_table(experiments, tables, profile)
show_table(levels, privacy.LEVEL_FORMATS)
glue_all(privacy.level_numbers(levels))

# %% [markdown]
# Memorization is measured as in chapter 1, against the points neither encoder saw: the mean
# score of $S_C$ minus that of $S_E$. The raw mean of $S_C$ alone also holds whatever separates
# $f$ from $g$ on every image, which the unseen $S_E$ shows. Without DP the candidates' gap to
# $S_E$ is {glue:text}`gap_none:+.4f` (raw mean {glue:text}`mem_none:+.4f`) and a fraction
# {glue:text}`frac_none:.3f` of them is above its threshold; at ε = {glue:text}`eps_low` the
# gap is {glue:text}`gap_low:+.4f` (raw mean {glue:text}`mem_low:+.4f`, fraction
# {glue:text}`frac_low:.3f`; one-sided $S_C > S_E$: $p =$ {glue:text}`p_low:.2g`).
#
# ## The privacy–utility trade-off
#
# Memorization of the candidates (left: their gap to $S_E$, and the fraction above the
# threshold) and the linear-probe accuracy of $f$ on {glue:text}`dataset` (right, from 0) at
# each privacy level.

# %% tags=["hide-input"]
fig = plots.privacy_tradeoff(levels.set_index("ε"))

# %% [markdown]
# The linear probe reaches {glue:text}`acc_none:.3f` without DP and {glue:text}`acc_low:.3f` at
# ε = {glue:text}`eps_low`.
#
# ## The ensemble test: memorization per ε on the same pairs
#
# One pair per ε cannot carry the claim: a pair's average contrast is one draw of its halves,
# init and views. So each DP-capable recipe first runs as an ensemble at ε = ∞ (complementary
# pairs on the {glue:text}`dp_pool` pool images, the design of chapter 7; the average in/out
# contrast tested over the pairs, the placebo as control). Only a recipe that memorizes there
# has anything for DP to lower; it then trains at every ε on the same pairs (the same halves,
# inits and views), so each pair is a paired observation across ε. The chapter's verdict
# comes from this test. The first table below is the regimes tried at ε = ∞; the second, the
# designs the paired test reads at each ε, how many of their encoders are stored and what one
# cost here (DP-SGD computes a gradient per image, so a private encoder is dearer).
#
# A ViT can be read two ways: by its class token (this project's default, what a probe reads)
# or by every token, flattened and L2-normalised, as the authors' code scores MAE (spec §1.5).
# MAE's loss reaches the class token only through attention, so a class-token score could miss
# what an MAE encoder memorized; the `every token` rows rescore the same encoders (scoring
# only, no training) to rule that out.

# %% tags=["remove-input"]
dp = chapters.privacy_ensembles(profile, dataset=dataset, device=device, data_root=data_root,
                                runs_root=runs_root, results_root=results_root)
for design in [*dp.levels.values(), *dp.regimes.values()]:  # unless the store is read-only
    if not design.ensemble.exp.results_only:
        for j in range(design.members):
            design.ensemble.member(j)
regime_rows = dplevels.regimes(dp.regimes)
show_table(dplevels.shown_regimes(regime_rows))
level_rows = dplevels.level_rows(dp.levels)
show_table(dplevels.shown_level_rows(level_rows))
across = dplevels.levels(dp.levels)
if across is not None:
    show_table(dplevels.shown_levels(across))
    fig = dplevels.figure(across)
glue_all({"dp_pool": len(next(iter(dp.levels.values())).ensemble.pool),
          "dp_encoder_minutes": dplevels.minutes_text(pd.concat([regime_rows, level_rows])),
          "dp_text": dplevels.text(across, regime_rows, dp.levels)})

# %% [markdown]
# {glue:text}`dp_text`
#
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(privacy.paper_table(levels))

# %% [markdown]
# ## Summary
#
# - With DP-SGD at ε = {glue:text}`eps_low`, the candidates' memorization (their gap to $S_E$)
#   goes from {glue:text}`gap_none:+.4f` to {glue:text}`gap_low:+.4f`, the fraction above
#   threshold from {glue:text}`frac_none:.3f` to {glue:text}`frac_low:.3f`.
# - The linear probe goes from {glue:text}`acc_none:.3f` to {glue:text}`acc_low:.3f`.
# - DP applies only to losses that are sums of per-sample terms (MAE here); the contrastive
#   methods are refused with the reason.
# - The ensemble test, which the verdict rests on: {glue:text}`dp_text`
#
# The results were computed on {glue:text}`device` (commits {glue:text}`commits`; training
# {glue:text}`train_minutes:.1f` min, as their provenance records); this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
ensemble_exps = {d.name: d.ensemble.exp for d in [*dp.levels.values(), *dp.regimes.values()]}
glue_all(where := provenance.glued(*experiments.values(), *ensemble_exps.values()))
one_pair = privacy.claim_verdict(experiments, tables, levels)  # the paper's design, in the note
verdicts.glue([dplevels.claim_verdict(across, regime_rows, dp.levels, one_pair)], where["device"])
print(provenance.report(*experiments.values(), *ensemble_exps.values(), parameters=parameters))
