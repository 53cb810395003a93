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
# # 3. SSL frameworks agree, supervised learning memorizes other points
#
# This section reproduces the paper's comparison across training paradigms (Sec. 4; the abstract
# and summary: "different SSL methods and encoder architectures exhibit high memorization on a
# similar set of data points, [while] the data points that are memorized in supervised learning
# differ substantially"). Every method's per-point memorization comes from an **ensemble**
# (chapter 7): encoders trained on random halves of one pool, the **same halves for every
# method**, each point's score averaged over the encoders that did and did not see it. The
# supervised side is both SSLMem of the supervised encoders (scored exactly like the SSL ones)
# and Feldman–Zhang label memorization. Agreement is Spearman's $\rho$ and the top-$k$ overlap
# (as the follow-up paper, {cite}`wang2024localizing` Table 3); which metric the SSLMem paper
# used is UNVERIFIED (`spec.md` §3.3). Because each score has its own noise, agreements are
# compared **corrected for both scores' reliabilities**, and the claim is tested as the paired
# difference SSL–SSL minus SSL–supervised.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet (`sslmem plan --profile paper` lists the members) | SSL–SSL agreement clearly above SSL–supervised |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`n_encoders` encoders, {glue:text}`encoder_hours:.1f` encoder-hours; this page rendered from the store in {glue:text}`seconds:.0f` s | the paper's ordering if the scores are reliable enough to show it; intervals say how sure |

# %% tags=["remove-cell"]
import math

import pandas as pd
from IPython.display import Markdown, display

from sslmem import chapters, consensus, plots, precision, reliability
from sslmem.notebook import (Timer, banner, check_parameters, glue_number, glue_text,
                             result_device, show_table)

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
methods_of = [d.ensemble.exp.cfg.method for d in designs.values()]
ssl = {(m if methods_of.count(m) == 1 else n): d.ensemble  # by method; by design if repeated
       for m, (n, d) in zip(methods_of, designs.items())}
sup = sup_design.ensemble
first = next(iter(ssl.values()))
counts = {name: len(e.complete_members()) for name, e in [*ssl.items(), ("supervised", sup)]}
banner(profile, first.exp, parameters)
glue_text("profile", profile)
stored = [e for e in [*ssl.values(), sup] if e.complete_members()]
glue_text("device", result_device(stored[0].exp) if stored else "–")
glue_number("n_encoders", sum(counts.values()))
glue_number("encoder_hours", sum(precision.encoder_minutes(e, e.complete_members())
                                 for e in [*ssl.values(), sup]) / 60)
glue_number("n_pool", len(first.pool))
glue_text("dataset", first.exp.cfg.dataset)
found = consensus.scores(ssl, sup)
missing = [n for n, c in counts.items() if c < 4]
if missing:
    display(Markdown(
        ":::{warning}\nStored so far (complete pairs of encoders): "
        + ", ".join(f"**{n}** {c}" for n, c in counts.items())
        + f". A method needs at least 4 to enter the comparison; missing: {', '.join(missing)}."
        f" Compute more with `sslmem plan --profile {profile} --run` (units `ens-…`); this "
        "page fills in as they are stored.\n:::\n"))

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
glue_text("method_list", ", ".join(f"{n} ({d.name})" for n, d in
                                   zip(ssl, designs.values())) + f", supervised ({sup_design.name})")

# %% [markdown]
# Compared here: {glue:text}`method_list`. Every SSL ensemble costs as many encoders as chapter
# 7's chosen design, so on 2 CPU cores the laptop profile compares one contrastive and one
# non-contrastive method; other methods join by adding a design in `sslmem/chapters.py` (or
# through the `methods` parameter of this page).

# %% tags=["remove-input"]
def _need(row) -> float:
    """Encoders for a reliability of 0.5 (enough to report agreement disattenuated)."""
    rel = row.get("pool_rel", math.nan)
    if not rel == rel:
        return math.nan
    return max(row["members"], reliability.members_needed(rel, row["members"], 0.5))


def _count(v, digits: int = 0) -> str:
    return "∞" if v == math.inf else ("–" if v != v else f"{v:,.{digits}f}")


rows = []
for d in [*designs.values(), sup_design]:
    row = precision.summarize(d.name, d.ensemble, n_splits=100, n_boot=300)
    rows.append({"method": d.ensemble.exp.cfg.method, "design": d.name, "M": row["members"],
                 "epochs": row["epochs"], "mean m̂ (pool)": row.get("pool_mean"),
                 "p": row.get("pool_p"),
                 "reliability [95 %]": precision._interval(row, "pool_rel", "{:.2f}"),
                 "M for 0.5": _need(row), "encoder-hours for it":
                     _need(row) * row.get("minutes_per_encoder", math.nan) / 60})
show_table(pd.DataFrame(rows), {"mean m̂ (pool)": "{:+.4f}", "p": "{:.2g}",
                                "M for 0.5": _count,
                                "encoder-hours for it": lambda v: _count(v, 1)})

# %% tags=["remove-cell"]
comparable = len(found) >= 2
if comparable:
    k = top_k or max(2, len(first.pool) // 5)
    result = consensus.compare(found, k=k)
    table, tests = result["table"], result["tests"]
    glue_text("verdict", consensus.verdict(tests, table))
    glue_number("top_k", k)
else:
    table = tests = pd.DataFrame()
    glue_text("verdict", "not testable yet: too few encoders stored")
    glue_number("top_k", top_k or max(2, len(first.pool) // 5))

# %% [markdown]
# ## Agreement between the methods
#
# For every pair of scores: Spearman's $\rho$ over the pool, observed (with a 95 % bootstrap
# interval and its $p$) and **true-score** (corrected for both scores' reliabilities, from split
# halves that share no encoder and no membership draw, so the shared halves cannot create
# agreement; "–" where the data cannot bound it), and the share of one score's
# top-{glue:text}`top_k` points that are also in the other's, beside its chance level.
#
# Read the observed column with care: two methods trained on the same halves share the noise
# that the halves put into every score (which of a point's look-alikes each encoder saw), so
# their observed correlation can be high even where each ranking alone is mostly noise. The
# true-score column is free of that shared noise; where it is "–", the rankings are too
# unreliable to say how much the methods agree.

# %% tags=["remove-input"]
if comparable:
    shown = table.assign(
        pair=table.a + " / " + table.b + " (" + table.kind + ")",
        observed=[f"{r.r:+.2f} [{r.r_low:+.2f}, {r.r_high:+.2f}]" for r in table.itertuples()],
        rels=[f"{r.rel_a:.2f} / {r.rel_b:.2f}" for r in table.itertuples()],
        true=[(f"{r.r_true:+.2f} [{r.r_true_low:+.2f}, {r.r_true_high:+.2f}]"
               if pd.notna(r.r_true) else "–") for r in table.itertuples()],
        top=[f"{r.overlap:.2f} ({r.chance:.2f}; p = {r.overlap_p:.2g})"
             for r in table.itertuples()])
    show_table(shown[["pair", "observed", "p", "rels", "true", "top"]].rename(columns={
        "observed": "ρ observed [95 %]", "rels": "reliabilities", "true": "ρ true-score [95 %]",
        "top": f"top-{k} overlap (chance; p)"}), {"p": "{:.2g}"})
    fig = plots.heatmaps({"Spearman ρ (observed)": consensus.overlap_matrix(table, "r"),
                          "Spearman ρ (true-score)": consensus.overlap_matrix(table, "r_true")},
                         vmin=-1, vmax=1, cmap="RdBu_r")
    fig = plots.forest([f"{r.a} / {r.b}" for r in table.itertuples()], table.r, table.r_low,
                       table.r_high, xlabel="Spearman ρ observed, 95 % interval",
                       title="agreement between the methods' per-point scores")
else:
    print("fewer than two methods with enough encoders: nothing to compare yet")

# %% [markdown]
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
display(Markdown(f"**Verdict:** the paper's claim is {consensus.verdict(tests, table)}."
                 if comparable else "**Verdict:** not testable yet."))

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
ssl_rows = table[table.kind == "SSL–SSL"] if comparable else pd.DataFrame()
sup_rows = table[table.kind == "SSL–supervised"] if comparable else pd.DataFrame()


def _rows(rows):
    return "; ".join(f"{r.a}/{r.b}: ρ {r.r:+.2f}, true {r.r_true:+.2f}" if pd.notna(r.r_true)
                     else f"{r.a}/{r.b}: ρ {r.r:+.2f}" for r in rows.itertuples()) or "–"


compare = pd.DataFrame([
    ("SSL frameworks memorize a similar set of points",
     "stated (Sec. 4; summary); metric and values UNVERIFIED", _rows(ssl_rows),
     "one SSL pair of methods at small scale"),
    ("supervised learning memorizes different points", "stated; values UNVERIFIED",
     _rows(sup_rows), "supervised side: SSLMem of its encoders and label memorization"),
    ("SSL–SSL exceeds SSL–supervised", "implied",
     consensus.verdict(tests, table) if comparable else "not testable yet",
     "paired bootstrap of true-score agreements"),
    ("reference scale for the metrics",
     "[LM] Table 3 (ResNet9 layers): 94 % overlap, τ = 0.837 (adjacent); 16 %, τ = 0.104 (far)",
     "top-k overlaps in the table above", "different comparison"),
], columns=["claim", "paper", "this run", "why they may differ"])
show_table(compare)

# %% [markdown]
# ## Summary
#
# - Each method's ranking comes from its own ensemble on the same {glue:text}`n_pool` images and
#   the same halves ({glue:text}`n_encoders` encoders in all); the first table gives each
#   ranking's reliability.
# - SSL–SSL against SSL–supervised agreement: the paper's claim is {glue:text}`verdict`.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
print("Provenance of the ensembles (config, versions; each member's result has its own):")
for e in stored:
    info = e.exp.result_provenance()
    print(f"\n== {e.exp.cfg.method}")
    print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print("\nparameters:", parameters)
