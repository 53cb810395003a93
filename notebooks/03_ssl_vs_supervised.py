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
# # 3. Do SSL methods memorize the same points, and supervised learning other ones?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section re-tests the paper's comparison across training paradigms (Sec. 4; the abstract
# and summary: "different SSL methods and encoder architectures exhibit high memorization on a
# similar set of data points, [while] the data points that are memorized in supervised learning
# differ substantially"). Every method's per-point memorization comes from an **ensemble**
# (chapter 7): encoders trained on random halves of one pool, each point's score averaged over
# the encoders that did and did not see it. Where the profile gives a method **its own draw of
# halves, seeds and views** (the laptop's BYOL), nothing but the true scores can make two
# methods agree; where two share a draw, their agreement is cross-fitted (below). The
# supervised side is both SSLMem of the supervised encoders (scored exactly like the SSL ones)
# and Feldman–Zhang label memorization. Agreement is Spearman's $\rho$ and the top-$k$ overlap
# (as the follow-up paper, {cite}`wang2024localizing` Table 3); which metric the SSLMem paper
# used is not stated in the text available to us. Because each score has its own noise, agreements are
# compared **corrected for both scores' reliabilities**, and the claim is tested as the paired
# difference SSL–SSL minus SSL–supervised.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet (`sslmem plan --profile paper` lists the members) | SSL–SSL agreement clearly above SSL–supervised |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`n_encoders` encoders, {glue:text}`encoder_hours:.1f` encoder-hours; this page rendered from the store in {glue:text}`seconds:.0f` s | the paper's ordering if the scores are reliable enough to show it; intervals say how sure |

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import consensus, plots, provenance, verdicts
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_all,
    glue_number,
    glue_text,
    show_table,
)
from sslmem.pipeline import chapters

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
methods: "Optional[list]" = None  # SSL ensemble designs compared (same pool); None: the profile's
supervised: "Optional[str]" = None  # the supervised design on the same pool; None: the profile's
members: "Optional[int]" = None  # encoders per ensemble when computing; None: each design's
top_k: "Optional[int]" = None  # size of the top sets compared; None: a fifth of the pool
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
designs, sup_design = chapters.consensus(
    profile, methods=methods, supervised=supervised, members=members, dataset=dataset,
    device=device, data_root=data_root, runs_root=runs_root, results_root=results_root)
for d in [*designs.values(), sup_design]:  # computes the planned members unless read-only
    if not d.ensemble.exp.results_only:
        for j in range(d.members):
            d.ensemble.member(j)
ssl, sup = consensus.by_method(designs), sup_design.ensemble  # by design if a method repeats
first = next(iter(ssl.values()))
counts = consensus.counts(ssl, sup)
scale = consensus.scale({**ssl, "supervised": sup}, counts)
banner(profile, first.exp, parameters, scale=scale)
glue_text("profile", profile)
glue_number("n_encoders", sum(counts.values()))
glue_number("encoder_hours", consensus.encoder_hours([*ssl.values(), sup]))
glue_number("n_pool", len(first.pool))
glue_text("dataset", first.exp.cfg.dataset)
found = consensus.scores(ssl, sup)
note = consensus.missing_note(counts, profile)  # None once every method has 4 encoders
if note:
    display(Markdown(note))

# %% [markdown]
# ## The ensembles
#
# One row per ensemble on the same pool of {glue:text}`n_pool` {glue:text}`dataset` training
# images: the encoders stored, the average in/out contrast of SSLMem, and the split-half
# reliability of its per-point ranking (chapter 7's measure, with a 95 % interval), and the
# members (and encoder-hours on this host) that would bring it to 0.5, enough to report the
# agreement corrected for reliability, projected by Spearman–Brown from the measured
# reliability (∞ where no positive signal was measured).

# %% tags=["remove-cell"]
glue_text("method_list", consensus.method_list(ssl, designs, sup_design))

# %% [markdown]
# Compared here: {glue:text}`method_list`. Every SSL ensemble costs as many encoders as chapter
# 7's chosen design, so on 2 CPU cores the laptop profile compares one contrastive and one
# non-contrastive method; other methods join by adding a design in `sslmem/pipeline/chapters.py` (or
# through the `methods` parameter of this page).

# %% tags=["remove-input"]
show_table(consensus.ensembles_table([*designs.values(), sup_design]),
           {"mean m̂ (pool)": "{:+.4f}", "p": "{:.2g}", "M for 0.5": consensus.count_text,
            "encoder-hours for it": lambda v: consensus.count_text(v, 1)})

# %% tags=["remove-cell"]
k = top_k or max(2, len(first.pool) // 5)
result = consensus.claim(found, k=k)  # empty tables while fewer than two scores are stored
table, tests, comparable = result["table"], result["tests"], len(found) >= 2
glue_text("verdict", result["verdict"] or "not testable yet: too few encoders stored")
glue_number("top_k", k)

# %% [markdown]
# ## Agreement between the methods
#
# For every pair of scores: Spearman's $\rho$ over the pool, observed (95 % bootstrap interval,
# $p$) and **true-score** (corrected for both reliabilities; "–" where the data cannot bound
# it), and the share of one score's top-{glue:text}`top_k` points also in the other's, beside
# chance. Two scores trained on the same membership draw share the noise the halves put into
# every score (which of a point's look-alikes each encoder saw), so their full ensembles
# correlate even where the true scores do not. For them (marked ᶜ) the observed $\rho$ and the
# overlap are **cross-fitted**: one score from half of the complementary pairs, the other from
# the other half, which share no encoder and no draw. The true-score column is always so.

# %% tags=["remove-input"]
if comparable:
    show_table(consensus.agreement_table(table, k), {"p": "{:.2g}"})
    fig = plots.heatmaps({"Spearman ρ (observed)": consensus.overlap_matrix(table, "r"),
                          "Spearman ρ (true-score)": consensus.overlap_matrix(table, "r_true")},
                         vmin=-1, vmax=1, cmap="RdBu_r")
    fig = plots.forest([f"{r.a} / {r.b}" for r in table.itertuples()], table.r, table.r_low,
                       table.r_high, xlabel="Spearman ρ observed, 95 % interval",
                       title="agreement between the methods' per-point scores")
else:
    print("fewer than two methods with enough encoders: nothing to compare yet")

# %% [markdown]
# ## The placebo control
#
# On the placebo (test images no encoder trained on) every method's true SSLMem is zero, so
# two methods can agree there only through shared noise. Their observed agreement must be
# centred at zero and their top-{glue:text}`top_k` overlap at chance; the full ensembles' $\rho$
# is shown beside it.

# %% tags=["remove-input"]
control = consensus.placebo_control(ssl, k=k)
if len(control):
    show_table(control, {"ρ full ensembles": "{:+.2f}", "p": "{:.2g}"})
glue_text("control", consensus.control_text(control))

# %% [markdown]
# Placebo control: {glue:text}`control`.
#
# ## Is SSL–SSL agreement higher than SSL–supervised?
#
# The claim compares agreements, so it is tested on their difference: for each SSL–SSL pair
# and each SSL–supervised pair sharing a method, the true-score $\rho$ of the first minus that
# of the second, on the same bootstrap draws of points and encoder splits (a paired design),
# with a 95 % interval and a two-sided bootstrap $p$.

# %% tags=["remove-input"]
if len(tests):
    show_table(tests, {"difference": "{:+.2f}", "low": "{:+.2f}", "high": "{:+.2f}",
                       "p": "{:.2g}"})
display(Markdown(consensus.verdict_markdown(result)))

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(consensus.paper_table(result))

# %% [markdown]
# ## Summary
#
# - Each method's ranking comes from its own ensemble on the same {glue:text}`n_pool` images
#   ({glue:text}`n_encoders` encoders in all); the first table gives each ranking's reliability.
# - SSL–SSL against SSL–supervised agreement: the paper's claim is {glue:text}`verdict`.
# - Placebo control: {glue:text}`control`.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_all(where := provenance.glued(*[e.exp for e in [*ssl.values(), sup]]))  # device, commits
verdicts.glue([consensus.claim_verdict(result, scale, control)], where["device"])
print(provenance.report(*[e.exp for e in [*ssl.values(), sup]], parameters=parameters))
