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
# # 5. SSLMem beside Déjà vu
#
# This section reproduces the paper's **comparison with Déjà vu memorization** (Sec. 4.5, claim 8
# in `spec.md` §3.1), the test an SSL researcher already knows {cite}`meehan2023dejavu`: can the
# label of a training image be inferred from a small corner of it (mostly background) by looking
# up the crop's nearest neighbours in a labelled public set, better with the encoder $f$ that
# trained on the image than with a reference $g$ that did not? The gap between the two is Déjà
# vu memorization. Both tests use the *same* encoder pairs, so we can ask where they agree, and
# where they do not. The paper's own numbers for Sec. 4.5 are UNVERIFIED.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU (H100) | seconds per method once chapter 3's encoders exist (computed in the same `sslmem plan` units) | KNN$_f$ above KNN$_g$, most on confident crops; a positive but loose agreement with SSLMem |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`dejavu_minutes:.2f` min for the Déjà vu tests (training is chapter 3's); this page rendered from the store in {glue:text}`seconds:.0f` s | small gaps where the profile's encoders barely memorize |

# %% tags=["remove-cell"]
import numpy as np
import pandas as pd
from scipy import stats

from sslmem import chapters, plots
from sslmem.dejavu import dejavu_summary
from sslmem.memorization import rank_agreement, topk_overlap
from sslmem.notebook import (
    Timer,
    banner,
    check_parameters,
    compute_minutes,
    glue_number,
    glue_text,
    result_device,
    show_table,
)

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
methods: "Optional[list]" = None  # SSL frameworks tested (chapter 3's pairs); None: the profile's list
k: "Optional[int]" = None  # neighbours of the label-inference attack; None: the profile's (paper: 100)
crop_frac: float = 0.3  # side of the corner crop as a fraction of the image side (Déjà vu: 0.3)
top_k: "Optional[int]" = None  # size of the top sets compared; None: chapter 3's
sizes: "Optional[dict]" = None  # split sizes, as in chapter 3; None: the profile's
seeds: "Optional[list]" = None  # e.g. [0, 1]; None: the profile seeds (the test uses the first)
n_pairs: "Optional[int]" = None  # augmentation pairs of the SSLMem scores; None: the profile value
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
experiments, tests = chapters.dejavu(
    profile, methods=methods, k=k, crop_frac=crop_frac, dataset=dataset, sizes=sizes,
    seeds=seeds, n_pairs=n_pairs, device=device, data_root=data_root, runs_root=runs_root,
    results_root=results_root)
methods = list(experiments)
first = experiments[methods[0]]
first.scores()
banner(profile, first, parameters)
glue_text("device", result_device(first))
glue_text("profile", profile)
glue_text("dataset", first.cfg.dataset)

# %% [markdown]
# ## The test in brief
#
# For every candidate $x \in S_C$ (seen by $f$ only), take its lower-left corner, a crop of
# {glue:text}`crop_pct` % of its height and width, resized back to the image size. Embed the crop
# with $f$ and with $g$, and embed every image of a labelled **public set** (the test split minus
# $S_E$, which neither encoder saw) with the same encoder. KNN$_f$ predicts the crop's label by a
# vote of its {glue:text}`k` nearest public images in $f$'s space, KNN$_g$ in $g$'s; the
# confidence of a vote is the negative entropy of its label histogram. $g$'s accuracy is what
# correlation alone allows (a corner of sky suggests a plane or a ship); $f$'s excess over it is
# what $f$ memorized about $x$. Déjà vu reports both accuracies on the most confident 5 %, 20 %
# and 100 % of the crops, and sorts each point into *memorized* (only KNN$_f$ right),
# *correlated* (both), *misrepresented* (only KNN$_g$) and *unassociated* (neither)
# {cite}`meehan2023dejavu`. Embedding: the SSL projector where the method has one (Déjà vu's
# default), the backbone otherwise (MAE); the backbone, which SSLMem scores, is shown too.

# %%
points, summaries, rows = {}, {}, []
for name, exp in experiments.items():
    for embedding, kw in tests[name]:
        pts = exp.dejavu(embedding, **kw)  # from the store; computed only if missing
        points[(name, embedding)] = pts
        at = dejavu_summary(pts, (0.05, 0.2, 1.0)).set_index("fraction")
        rows.append({"method": name, "embedding": embedding,
                     "KNN_f @5%": at.acc_f[0.05], "KNN_g @5%": at.acc_g[0.05],
                     "gap @5%": at.gap[0.05], "gap @20%": at.gap[0.2], "gap @100%": at.gap[1.0],
                     "memorized": float((pts.category == "memorized").mean()),
                     "correlated": float((pts.category == "correlated").mean())})
main = {name: tests[name][0][0] for name in methods}  # the projector when there is one
gaps = pd.DataFrame(rows)
show_table(gaps, {c: "{:.3f}" for c in gaps.columns if c not in ("method", "embedding")})

# %% tags=["remove-cell"]
glue_number("k", tests[methods[0]][0][1]["k"])
glue_number("crop_pct", round(100 * crop_frac))
glue_number("n_candidates", len(points[(methods[0], main[methods[0]])]))

# %% [markdown]
# ## Accuracy against confidence
#
# Each model ranks the crops by its own confidence (as Déjà vu does); the shaded band is the Déjà
# vu gap at each fraction. A curve that falls from left to right means confident votes are
# more often right, as they should be.

# %%
fractions = np.linspace(0.05, 1.0, 20)
curves = {f"{name} ({main[name]})": dejavu_summary(points[(name, main[name])], fractions)
          for name in methods}
fig = plots.dejavu_curves(curves)
best = max(methods, key=lambda n: gaps[(gaps.method == n) & (gaps.embedding == main[n])]
           ["gap @5%"].iloc[0])

# %% tags=["remove-cell"]
for name in methods:
    s = dejavu_summary(points[(name, main[name])], (0.05, 0.2, 1.0)).set_index("fraction")
    glue_number(f"gap5_{name}", s.gap[0.05])
    glue_number(f"gap100_{name}", s.gap[1.0])
glue_text("best_method", best)
glue_number("best_gap5", gaps[(gaps.method == best) & (gaps.embedding == main[best])]
            ["gap @5%"].iloc[0])

# %% [markdown]
# The largest gap on the 5 % most confident crops is {glue:text}`best_method`'s,
# {glue:text}`best_gap5:+.3f` (KNN$_f$ minus KNN$_g$ accuracy).
#
# ## Do the two tests memorize the same points?
#
# Per candidate, SSLMem gives $m(x)$ (chapter 1) and Déjà vu a graded vote: the share of $x$'s
# {glue:text}`k` neighbours carrying its true label under $f$ minus that under $g$. We compare
# the two rankings with Kendall's $\tau$ (and its p-value), the overlap of their top-$k$ sets
# (chance = $k/n$), and the mean SSLMem percentile of the points Déjà vu calls memorized
# (50 % if unrelated).

# %%
agree_rows = []
for name, exp in experiments.items():
    table = exp.scores()
    cand = table[table.subset == "candidate"].set_index("position")
    pts = points[(name, main[name])].set_index("position")
    margin = (pts.p_true_f - pts.p_true_g).rename("dejavu_margin")
    joined = cand.join(margin, how="inner")
    kk = chapters.top_k(profile, len(joined), top_k)
    agree = rank_agreement(joined.score_raw, joined.dejavu_margin)
    pct = joined.score_raw.rank(pct=True)
    memorized = pts.category.reindex(joined.index) == "memorized"
    agree_rows.append({"method": name, "n": len(joined), "Kendall τ": agree["kendall_tau"],
                       "p(τ)": agree["kendall_p"],
                       f"top-k overlap (k={kk})": topk_overlap(joined.score_raw,
                                                               joined.dejavu_margin, k=kk),
                       "chance": kk / len(joined),
                       "SSLMem pct. of DV-memorized": float(pct[memorized].mean())
                       if memorized.any() else np.nan,
                       "DV-memorized": int(memorized.sum())})
    glue_number(f"tau_{name}", agree["kendall_tau"])
    glue_number(f"tau_p_{name}", agree["kendall_p"])
agreement = pd.DataFrame(agree_rows)
show_table(agreement, {"Kendall τ": "{:+.3f}", "p(τ)": "{:.2g}", "chance": "{:.2f}",
                       "SSLMem pct. of DV-memorized": "{:.2f}",
                       **{c: "{:.2f}" for c in agreement.columns if c.startswith("top-k")}})
taus = agreement["Kendall τ"].to_numpy()
fig = plots.paired_bars(agreement.set_index("method"),
                        {"Kendall τ": "Kendall's τ (SSLMem vs Déjà vu margin)"},
                        "agreement between the two tests, per method")

# %% tags=["remove-cell"]
glue_number("tau_mean", float(np.nanmean(taus)))
glue_number("n_tau_positive", int((taus > 0).sum()))
glue_number("n_methods", len(methods))
glue_number("n_tau_significant",
            int(((agreement["p(τ)"] < 0.05) & (agreement["Kendall τ"] > 0)).sum()))

# %% [markdown]
# Kendall's $\tau$ between the two per-point measures averages {glue:text}`tau_mean:+.3f` over
# the {glue:text}`n_methods` methods; it is positive for {glue:text}`n_tau_positive` and
# significantly so ($p < 0.05$) for {glue:text}`n_tau_significant`.
#
# ## Memorized by one test, not the other
#
# Top row: candidates among SSLMem's most memorized whose labels Déjà vu cannot infer from a
# corner (KNN$_f$ wrong), for {glue:text}`first_method`. Bottom row: candidates Déjà vu calls
# memorized while SSLMem ranks them in its lower half. The first kind are images whose
# *whole* appearance $f$ learned to keep invariant; the second are images whose background alone
# gives the label away to $f$.

# %%
name = methods[0]
table = experiments[name].scores()
cand = table[table.subset == "candidate"].set_index("position")
pts = points[(name, main[name])].set_index("position").reindex(cand.index)
pct = cand.score_raw.rank(pct=True)
only_sslmem = cand[(pct >= 0.9) & ~pts.correct_f].sort_values("score_raw", ascending=False)
only_dejavu = cand[(pct < 0.5) & (pts.category == "memorized")].sort_values("score_raw")
classes = list(first.train.classes)
n_show = 8
rows = [*only_sslmem.head(n_show).itertuples(), *only_dejavu.head(n_show).itertuples()]
if rows:
    images = first.train.images.cpu()[[r.Index for r in rows]]
    titles = [f"{classes[int(r.label)]}\nm={r.score_raw:+.3f}" for r in rows]
    fig = plots.image_grid(images, titles, ncols=n_show,
                           title=f"{name}: top rows SSLMem only ({len(only_sslmem)}), "
                                 f"then Déjà vu only ({len(only_dejavu)})")
else:
    print("no candidate is memorized by one test and not the other")

# %% tags=["remove-cell"]
glue_text("first_method", name)
glue_number("n_only_sslmem", len(only_sslmem))
glue_number("n_only_dejavu", len(only_dejavu))

# %% [markdown]
# {glue:text}`n_only_sslmem` candidates are in SSLMem's top tenth without Déjà vu inferring
# their label; {glue:text}`n_only_dejavu` are Déjà-vu-memorized in SSLMem's lower half.
#
# ## Paper vs this run

# %% tags=["remove-input"]
mean_gap5 = float(gaps[[main[m] == e for m, e in zip(gaps.method, gaps.embedding)]]
                  ["gap @5%"].mean())
compare = pd.DataFrame([
    ("SSL encoders leak training labels through background crops (Déjà vu)",
     "[DV] large gaps for VICReg/Barlow Twins, smaller for SimCLR/BYOL on ImageNet (UNVERIFIED)",
     f"mean gap on the 5 % most confident crops: {mean_gap5:+.3f}",
     "CIFAR-size images have no bounding boxes: a fixed corner crop, not the background"),
    ("SSLMem and Déjà vu compared (Sec. 4.5)", "comparison exists; values UNVERIFIED",
     f"mean Kendall τ {float(np.nanmean(taus)):+.3f} over {len(methods)} methods",
     "the tests measure different things: invariance of views vs label leakage"),
    ("MAE discussed specially (a reviewer asks whether it memorizes more)",
     "UNVERIFIED",
     "; ".join(f"{m}: gap@5% {gaps[(gaps.method == m) & (gaps.embedding == main[m])]['gap @5%'].iloc[0]:+.3f}"  # noqa: E501
               for m in methods),
     "MAE has no projector: its backbone is tested"),
], columns=["claim", "paper", "this run", "why they may differ"])
show_table(compare)

# %% [markdown]
# ## Summary
#
# - On the 5 % most confident corner crops, KNN$_f$ beats KNN$_g$ by up to
#   {glue:text}`best_gap5:+.3f` ({glue:text}`best_method`): the encoder that trained on a
#   candidate carries label information about it that correlation alone does not give.
# - Per point, SSLMem and the Déjà vu margin agree with mean Kendall's $\tau$
#   {glue:text}`tau_mean:+.3f` (positive for {glue:text}`n_tau_positive` of
#   {glue:text}`n_methods` methods): related, but far from the same ranking.
# - The image grid shows what each test sees that the other does not.
#
# The Déjà vu tests took {glue:text}`dejavu_minutes:.2f` min on {glue:text}`device`; this page
# rendered them in {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_number("dejavu_minutes", compute_minutes(*experiments.values(), results=("dejavu-",)))
print("Provenance of the results on this page (one entry per experiment):")
for name, exp in experiments.items():
    info = exp.result_provenance()
    print(f"\n== {name}")
    print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print("\nparameters:", parameters)
