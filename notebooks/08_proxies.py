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
# # 8. Can one run rank points?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# A per-point SSLMem from an ensemble costs tens of encoders (chapter 7); no one studying
# memorization on their own data can pay that per question. In supervised learning, cheap
# proxies track the expensive estimate (learning speed tracks the C-score, Jiang et al. 2021;
# loss curvature tracks Feldman–Zhang memorization, Garg et al. 2023). This page checks four
# proxies for **SSL** memorization, each from one run or none, against the ensemble's $\hat m$,
# the paper's own one-pair estimator among them. It is not a figure of the paper.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet | — |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | chapter 7's encoders (nothing new trained); this page rendered from the store in {glue:text}`seconds:.0f` s | proxies that see typicality reproduce on the placebo too; the one pair reproduces little |
#
# **Design.** The all-facet ensemble's complementary pairs are independent runs (each draws
# its halves, init and views). Pair 0 computes every proxy once, pair 1 again (its retest
# reliability), and the other {glue:text}`truth_pairs` pairs give the ground truth $\hat m$,
# which shares no encoder, view or membership draw with the proxy. The proxies:
#
# - **one f/g pair**: the paper's estimator, $L_g(x) - L_f(x)$ for $f$'s points (and the
#   reverse for $g$'s);
# - **learning speed**: $x$'s alignment loss over the training epochs of the encoder that
#   trained on it (area under the curve, log-epochs): a point learned late stays high;
# - **one encoder vs its held-out neighbours**: the mean loss of $x$'s 8 nearest images (in
#   pixels) that the encoder did not train on, minus $x$'s own loss;
# - **kNN distance in pixels**: no training at all; the mean distance to the 5 nearest images.
#
# A run here is a complementary pair (two encoders cover the pool); on your own data one
# encoder trained on everything is one run.

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import onerun, provenance, verdicts
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_all,
    glue_number,
    glue_text,
    show_table,
)

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
found = onerun.design(profile, dataset=dataset, device=device, data_root=data_root,
                      runs_root=runs_root, results_root=results_root)
ens = found.ensemble
if not ens.exp.results_only:  # computes the planned members unless the store is read-only
    for j in range(found.members):
        ens.member(j)
banner(profile, ens.exp, parameters)
result = onerun.validate(ens)
table = result["table"]
glue_all({"profile": profile, "truth_pairs": int(table.truth_pairs.iloc[0]),
          "n_pool": len(ens.pool)})

# %% [markdown]
# ## Each proxy against the ensemble
#
# Per proxy, on the {glue:text}`n_pool` pool images: Spearman's $\rho$ with $\hat m$ (95 %
# bootstrap interval), its **retest** $\rho$ (pair 0 against pair 1), the **true-score** $\rho$
# (corrected for both reliabilities; the bootstrap redraws the ground truth's split halves;
# "–" where a reliability is too low to bound it), and on the placebo, whose true score is
# zero, its $\rho$ with $\hat m$ (the control: it must include zero). The verdict: *tracks
# m̂* where the true-score interval lies above 0.5, *partly* above 0, else *does not*.

# %% tags=["remove-input"]
show_table(onerun.shown(table))
fig = onerun.figure(result["points"])
glue_text("summary", onerun.summary(table))

# %% [markdown]
# In words: {glue:text}`summary`.
#
# ## What each proxy measures, and what it costs
#
# A proxy that reproduces on the placebo (images no encoder trained on) measures a property
# of the image, typicality, not its memorization. Cost: encoder-minutes of one run here
# (the measured median per encoder); runs: how many averaged runs would reach the ground
# truth's own reliability (Spearman–Brown from the retest). The figure shows the retest on the
# pool and on the placebo side by side (left) and the true-score ρ (right), each with its 95 %
# interval; the dotted line is 0.5, the least a per-point ranking needs.

# %% tags=["remove-input"]
fig = onerun.forest(table)

# %% tags=["remove-input"]
show_table(onerun.costs(ens, table), {"encoder-min per run": "{:.1f}",
                                      "retest ρ (pool)": "{:+.2f}",
                                      "retest ρ (placebo)": "{:+.2f}",
                                      "runs for the ensemble's reliability": "{:.0f}"})

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(onerun.paper_table(table))

# %% [markdown]
# ## Summary
#
# - The paper's one-pair estimator, run twice on independent pairs: see the verdict above.
# - Proxies: {glue:text}`summary`.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_all(where := provenance.glued(ens.exp))  # device, commits, minutes
verdicts.glue([onerun.claim_verdict(table, ens)], where["device"])
print(provenance.report(ens.exp, parameters=parameters))
