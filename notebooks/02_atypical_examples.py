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
# # 2. Are atypical points the most memorized?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section re-tests **Figure 1** of the paper ("Examples of data with different levels of
# memorization … outliers and atypical examples experience higher memorization than more standard
# samples"): the most and the least memorized points, overall and per class. The paper judges atypicality by eye from one $f$/$g$ pair. Here the ranking comes from
# the **ensemble estimator** of chapter 7 (many encoders, each on its own random half of a pool),
# whose per-point precision is measured, and atypicality is **measured** with the literature's
# two per-point measures, computed by a supervised ensemble on the same pool and the same
# halves: $1 -$ held-out consistency (the C-score estimator of Jiang et al. 2021) and
# Feldman–Zhang label memorization. Each correlation is reported observed, with its test, and
# corrected for both measures' noise, with an interval.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet (the designs are listed by `sslmem plan --profile paper`) | top images look unusual, bottom ones prototypical; $\rho > 0$ with $p < 0.01$ |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`n_encoders` encoders ({glue:text}`ssl_members` SSL, {glue:text}`sup_members` supervised), {glue:text}`encoder_hours:.1f` encoder-hours; this page rendered from the store in {glue:text}`seconds:.0f` s | the direction of the paper if the SSLMem ranking is reliable enough to see it; the placebo control uncorrelated |

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import atypicality, grids, plots, precision, provenance, verdicts
from sslmem.book.explorer import explore
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_all,
    glue_number,
    glue_text,
    show_table,
)
from sslmem.book.notebook import describe_design as described
from sslmem.pipeline import chapters

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
design: "Optional[str]" = None  # the SSL ensemble design that ranks points; None: the profile's
supervised: "Optional[str]" = None  # the supervised design on the same pool; None: the profile's
method: "Optional[str]" = None  # another SSL framework for the design (e.g. 'byol'); None: the design's
epochs: "Optional[int]" = None  # None: the design's
members: "Optional[int]" = None  # encoders per ensemble when computing; None: the design's
n_show: int = 10  # images per row of the overall grid
per_class: int = 3  # most / least memorized images shown per class
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
ssl_design, sup_design = chapters.ranking(
    profile, design=design, supervised=supervised, members=members, method=method,
    epochs=epochs, dataset=dataset, device=device, data_root=data_root, runs_root=runs_root,
    results_root=results_root)
ssl, sup = ssl_design.ensemble, sup_design.ensemble
for d in (ssl_design, sup_design):  # computes the planned members unless the store is read-only
    if not d.ensemble.exp.results_only:
        for j in range(d.members):
            d.ensemble.member(j)
ssl_members, sup_members = ssl.complete_members(), sup.complete_members()
ready = len(ssl_members) >= 4 and len(sup_members) >= 4
scale = atypicality.scale(ssl, sup, len(ssl_members), len(sup_members))
banner(profile, ssl.exp, parameters, scale=scale)
glue_text("profile", profile)
glue_text("design", described(ssl))
glue_text("sup_design", described(sup))
glue_number("ssl_members", len(ssl_members))
glue_number("sup_members", len(sup_members))
glue_number("n_encoders", len(ssl_members) + len(sup_members))
glue_number("encoder_hours", (precision.encoder_minutes(ssl, ssl_members)
                              + precision.encoder_minutes(sup, sup_members)) / 60)
glue_text("dataset", ssl.exp.cfg.dataset)
glue_number("n_pool", len(ssl.pool))
glue_number("n_placebo", len(ssl.placebo))
if not ready:
    display(Markdown(atypicality.missing_warning(profile, ssl_design.name, sup_design.name,
                                                 len(ssl_members), len(sup_members))))

# %% tags=["remove-cell"]
if ready:
    found = atypicality.page(ssl_design.name, ssl, sup)  # the tables, figures and texts below
    table, pool, agree, main = (found[k] for k in ("table", "pool", "agree", "main"))
    glue_all(found["texts"])
else:
    for name in atypicality.PAGE_TEXTS:
        glue_text(name, atypicality.NOT_COMPUTED)

# %% [markdown]
# ## The ranking and its precision
#
# **{glue:text}`design`**: {glue:text}`ssl_members` encoders so far, each trained on a random half
# of a pool of {glue:text}`n_pool` {glue:text}`dataset` training images; every image scored by
# every encoder, $\hat m(x)$ = mean alignment loss of the encoders without $x$ − mean of those
# with $x$, with its standard error over encoders. The split-half reliability of this ranking
# (chapter 7) is **{glue:text}`reliability`**: {glue:text}`precision_note`.
#
# ## The most and least memorized points (Figure 1)
#
# Top row: highest $\hat m(x)$; bottom row: lowest. Each image is captioned with its class, its
# score and (± below it) its standard error: two points whose scores differ by less than about
# twice their errors are not distinguishable.

# %% tags=["hide-input"]
if ready:
    images = ssl.exp.train.images.cpu()
    classes = list(ssl.exp.train.classes)
    n = min(n_show, len(pool) // 2)
    fig = grids.ranked_grid(pool, images, column="m", error="se", n=n, classes=classes,
                            title=f"{n} most (top) and least (bottom) memorized pool images")

# %% [markdown]
# Per class, the most memorized pool images (red frames) next to the least memorized ones (blue
# frames).

# %% tags=["hide-input"]
if ready:
    fig = grids.per_class_grid(pool, images, classes, column="m", n=per_class)

# %% [markdown]
# ## Measuring atypicality
#
# A point is *atypical* when models that did not see it get it wrong: its **held-out
# consistency** is the accuracy, on the point, of the supervised models of
# **{glue:text}`sup_design`** that did not train on it (the C-score estimator), and
# $1 -$ consistency is its atypicality. Its **label memorization** (Feldman and Zhang 2020) is
# the accuracy of the models that trained on it minus that of those that did not. Both come from
# {glue:text}`sup_members` supervised models trained on exactly the same halves of the pool as
# the SSL encoders, so they describe the same points under the same design.
#
# The table gives Spearman's $\rho$ between SSLMem and each measure: observed over the pool
# (with a 95 % bootstrap interval and its $p$), both measures' reliabilities (SSLMem's first), the **true-score
# correlation** (corrected for both measures' noise from split halves that share no encoder and
# no membership draw, with a 95 % interval over points and splits; "–" where the data cannot
# bound it), and the smallest true correlation this design detects with 80 % power
# (reliabilities here are those of the ranks). Observed values marked ᶜ are cross-fitted (the
# two ensembles share their halves). A third reading of atypical, **kNN distance in pixels**
# (no model; chapter 8 found it tracks $\hat m$), is shown as exploratory: the verdict stays
# on $1 -$ consistency, chosen before the data. The placebo rows are the **control**: on the
# {glue:text}`n_placebo` placebo images, whose true SSLMem is zero, no correlation may appear.

# %% tags=["remove-input"]
if ready:
    show_table(atypicality.agreement_view(agree), atypicality.AGREEMENT_FORMATS)

# %% [markdown]
# - SSLMem against atypicality ($1 -$ consistency): {glue:text}`verdict`.
# - SSLMem against label memorization: {glue:text}`fz_verdict`.
# - Control: {glue:text}`control`.
# - Atypical read as kNN distance in pixels (exploratory): {glue:text}`pixels`.

# %% tags=["hide-input"]
if ready:
    fig = plots.score_vs(pool.atypicality, pool.m,
                         xlabel="atypicality: 1 − held-out consistency (supervised ensemble)",
                         ylabel="SSLMem m̂(x) (SSL ensemble)",
                         title=f"Spearman ρ = {main.r:+.2f} (p = {main.p:.2g})",
                         hue=[classes[int(y)] for y in pool.label])

# %% [markdown]
# Hover over a point to see which image it is, or drag over a group of points to see their
# images; the axes can be switched to label memorization, consistency and the standard errors.
# Red: the pool; blue: the placebo (test images nobody trained on, whose true SSLMem is zero).

# %% tags=["hide-input"]
if ready:
    display(explore(table, ssl.exp.train, ssl.exp.test, x="atypicality", y="m",
            fields=["se", "label_mem", "consistency"],
            labels={"atypicality": "atypicality (1 − held-out consistency)",
                    "m": "SSLMem m̂(x)", "se": "s.e. of m̂", "label_mem": "label memorization"},
            title="pool and placebo: SSLMem against atypicality",
            subset_text={"candidate": "pool (each in half the encoders)",
                         "extra": "placebo (test split, in none)"}))

# %% [markdown]
# The most atypical pool images by held-out consistency, for comparison with the grid above:

# %% tags=["hide-input"]
if ready:
    fig = grids.ranked_grid(pool, images, column="atypicality", n=n, classes=classes,
                            title=f"{n} most (top) and least (bottom) atypical pool images "
                                  "(caption: 1 − consistency)")

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
if ready:
    show_table(atypicality.comparison(found, len(ssl_members)))

# %% [markdown]
# ## Summary
#
# - The ranking comes from {glue:text}`ssl_members` encoders of **{glue:text}`design`**; its
#   per-point reliability is {glue:text}`reliability`.
# - Atypical points are memorized more (the paper's claim): {glue:text}`verdict`.
# - Label memorization: {glue:text}`fz_verdict`.
# - Control on the placebo: {glue:text}`control`.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_all(where := provenance.glued(ssl.exp, sup.exp))  # device, commits, minutes
verdicts.glue([atypicality.claim_verdict(found if ready else None, scale)], where["device"])
print(provenance.report(ssl.exp, sup.exp, parameters=parameters))
