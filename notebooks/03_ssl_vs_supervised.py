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
# differ substantially"): SSLMem scores of several SSL frameworks on the **same split**, and
# Feldman's label memorization of a supervised classifier on the same candidates. Agreement is
# measured as the follow-up paper does ({cite}`wang2024localizing` Table 3): top-$k$ overlap and
# Kendall's $\tau$, plus Spearman's $\rho$. Which metric the SSLMem paper itself used is
# UNVERIFIED (`spec.md` §3.3).
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU (H100) | one `sslmem plan` unit (about 8 min, estimate) per framework and for supervised | high overlap and $\tau > 0$ between SSL frameworks; low overlap with supervised label memorization |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`train_minutes:.1f` min to train the encoders; this page rendered from the store in {glue:text}`seconds:.0f` s | agreement above chance; how far above depends on the profile's size |

# %% tags=["remove-cell"]
import numpy as np
import pandas as pd

from sslmem import chapters, plots
from sslmem.memorization import bootstrap_agreement, rank_agreement, topk_overlap
from sslmem.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_number,
    glue_text,
    result_device,
    show_table,
    training_minutes,
)

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
methods: "Optional[list]" = None  # SSL frameworks scored on the same split; None: the profile's list
backbones: "Optional[dict]" = None  # per-method backbone, e.g. {"mae": "vit_tiny"}; None: the profile's
patch_sizes: "Optional[dict]" = None  # per-method ViT patch size, e.g. {"mae": 4}; None: the profile's
method_epochs: "Optional[dict]" = None  # per-method epochs, e.g. {"dino": 2}; None: the profile's
epochs: "Optional[int]" = None  # epochs of every method (overrides method_epochs); None: per method
sizes: "Optional[dict]" = None  # e.g. {"shared": 600, "candidate": 150, ...}; None: the profile split
seeds: "Optional[list]" = None  # e.g. [0, 1, 2]; None: the profile seeds
n_pairs: "Optional[int]" = None  # augmentation pairs per point; None: the profile value
top_k: "Optional[int]" = None  # size of the top sets compared; None: 100 (paper) or a fifth of the candidates
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
experiments, supervised = chapters.frameworks(
    profile, methods=methods, backbones=backbones, patch_sizes=patch_sizes,
    method_epochs=method_epochs, epochs=epochs, dataset=dataset, sizes=sizes, seeds=seeds,
    n_pairs=n_pairs, device=device, data_root=data_root, runs_root=runs_root,
    results_root=results_root)
methods = list(experiments)
first = experiments[methods[0]]
first.scores()
banner(profile, first, parameters)
glue_text("device", result_device(first))
glue_text("profile", profile)
glue_text("dataset", first.cfg.dataset)

# %% [markdown]
# ## The encoders
#
# Every framework trains its own pair $(f, g)$ on the same split of **{glue:text}`dataset`**, so
# the candidates are the same points for all of them; the supervised pair is trained with labels
# on the same two sets.

# %%
rows, scores = [], {}
for name, exp in {**experiments, "supervised": supervised}.items():
    if name == "supervised":
        mem = exp.label_memorization()
        scores["supervised"] = mem.set_index("position").label_mem
        mean_c, p_c = float(mem.label_mem.mean()), np.nan
    else:
        table = exp.scores()
        cand = table[table.subset == "candidate"]
        scores[name] = cand.set_index("position").score_raw
        sig = exp.significance().set_index("hypothesis")
        mean_c, p_c = float(cand.score_raw.mean()), float(sig.loc["S_C > S_S", "p"])
    knn = exp.history("f").dropna(subset=["knn"]).knn.iloc[-1]
    rows.append({"method": name, "backbone": exp.cfg.backbone, "epochs": exp.cfg.epochs,
                 "mean score of S_C": mean_c, "p (S_C > S_S)": p_c, "kNN accuracy of f": knn})
overview = pd.DataFrame(rows)
show_table(overview, {"mean score of S_C": "{:+.4f}", "p (S_C > S_S)": "{:.2g}",
           "kNN accuracy of f": "{:.3f}"})

# %% [markdown]
# The supervised row reports Feldman's label memorization
# $P[f(x) = y] - P[g(x) = y]$ {cite}`feldman2020neural`, estimated with the same
# one-encoder-per-seed design (so with one seed it takes the values $-1$, $0$ and $1$).

# %% [markdown]
# ## Agreement between the rankings
#
# For every pair of scorings: the fraction of the top-{glue:text}`top_k` candidates of one that are
# also in the top-{glue:text}`top_k` of the other (chance level {glue:text}`chance:.2f` with
# {glue:text}`n_candidates` candidates), Kendall's $\tau$ and Spearman's $\rho$.

# %%
frame = pd.DataFrame(scores)
names = list(frame.columns)
k = chapters.top_k(profile, len(frame), top_k)
overlap = pd.DataFrame(index=names, columns=names, dtype=float)
tau = overlap.copy()
rho = overlap.copy()
for a in names:
    for b in names:
        overlap.loc[a, b] = topk_overlap(frame[a], frame[b], k=k)
        agree = rank_agreement(frame[a], frame[b])
        tau.loc[a, b], rho.loc[a, b] = agree["kendall_tau"], agree["spearman_rho"]
fig = plots.heatmaps({f"top-{k} overlap": overlap, "Kendall's τ": tau, "Spearman's ρ": rho},
                     vmin=-1, vmax=1, cmap="RdBu_r")

# %% tags=["remove-cell"]
glue_number("top_k", k)
glue_number("n_candidates", len(frame))
glue_number("chance", k / len(frame))

# %%
ssl_names = [n for n in names if n != "supervised"]
pairs = [(a, b) for i, a in enumerate(ssl_names) for b in ssl_names[i + 1:]]
ssl_overlap = float(np.mean([overlap.loc[a, b] for a, b in pairs])) if pairs else np.nan
ssl_tau = float(np.mean([tau.loc[a, b] for a, b in pairs])) if pairs else np.nan
sup_overlap = float(np.mean([overlap.loc[a, "supervised"] for a in ssl_names]))
sup_tau = float(np.mean([tau.loc[a, "supervised"] for a in ssl_names]))
short = {"kendall_tau": "τ", "kendall_p": "p(τ)", "spearman_rho": "ρ", "spearman_p": "p(ρ)"}
pair_table = pd.DataFrame([
    {"pair": f"{a} / {b}", "overlap": overlap.loc[a, b],
     **{new: rank_agreement(frame[a], frame[b])[old] for old, new in short.items()}}
    for i, a in enumerate(names) for b in names[i + 1:]])
show_table(pair_table, {"overlap": "{:.2f}", "τ": "{:+.3f}", "p(τ)": "{:.2g}", "ρ": "{:+.3f}",
                        "p(ρ)": "{:.2g}"})

# %% tags=["remove-cell"]
glue_number("ssl_overlap", ssl_overlap)
glue_number("ssl_tau", ssl_tau)
glue_number("sup_overlap", sup_overlap)
glue_number("sup_tau", sup_tau)

# %% [markdown]
# ## Is the difference more than noise?
#
# The claim compares two averages over pairs of rankings: SSL with SSL, and SSL with supervised.
# Resampling the candidates with replacement ({glue:text}`n_boot` bootstrap samples) gives each
# average an interval, and the difference too; the chance levels are $k/n$ for the overlap
# and 0 for Kendall's $\tau$.

# %%
boot = bootstrap_agreement(
    frame, {"SSL–SSL": pairs, "SSL–supervised": [(a, "supervised") for a in ssl_names]},
    k=k, n_boot=500)
diff = boot.iloc[-1]
shown = boot.rename(columns={"overlap": f"top-{k} overlap", "tau": "Kendall τ"})
shown["overlap 95 % CI"] = [f"[{a:.2f}, {b:.2f}]" for a, b in zip(boot.overlap_lo,
                                                                    boot.overlap_hi)]
shown["τ 95 % CI"] = [f"[{a:+.3f}, {b:+.3f}]" for a, b in zip(boot.tau_lo, boot.tau_hi)]
show_table(shown[["comparison", f"top-{k} overlap", "overlap 95 % CI", "overlap_chance",
                  "Kendall τ", "τ 95 % CI"]].rename(columns={"overlap_chance": "chance"}),
           {f"top-{k} overlap": "{:.2f}", "chance": "{:.2f}", "Kendall τ": "{:+.3f}"})
fig = plots.agreement_intervals(boot, k=k)

# %% tags=["remove-cell"]
glue_number("n_boot", 500)
for row in boot.itertuples():
    key = {"SSL–SSL": "ssl", "SSL–supervised": "sup"}.get(row.comparison, "diff")
    for metric in ("overlap", "tau"):
        glue_number(f"{key}_{metric}_lo", getattr(row, f"{metric}_lo"))
        glue_number(f"{key}_{metric}_hi", getattr(row, f"{metric}_hi"))
glue_number("diff_overlap", diff.overlap)
glue_number("diff_tau", diff.tau)
above = {"Kendall's τ": bool(diff.tau_lo > 0), f"the top-{k} overlap": bool(diff.overlap_lo > 0)}
if all(above.values()):
    verdict = "above zero in both measures (the paper's claim holds here)"
elif any(above.values()):
    yes = [name for name, v in above.items() if v]
    no = [name for name, v in above.items() if not v]
    verdict = (f"above zero for {yes[0]} but not for {no[0]}, whose interval includes zero "
               "(the claim holds here in rank order, not clearly among the top points)")
else:
    verdict = "not clearly above zero in either measure (the claim does not show at this scale)"
glue_text("diff_verdict", verdict)

# %% [markdown]
# Averaged over the pairs of SSL frameworks, the top-{glue:text}`top_k` overlap is
# {glue:text}`ssl_overlap:.2f` (95 % interval {glue:text}`ssl_overlap_lo:.2f`–{glue:text}`ssl_overlap_hi:.2f`)
# and Kendall's $\tau$ {glue:text}`ssl_tau:.3f` ({glue:text}`ssl_tau_lo:.3f`–{glue:text}`ssl_tau_hi:.3f`);
# between the SSL frameworks and supervised label memorization they are
# {glue:text}`sup_overlap:.2f` ({glue:text}`sup_overlap_lo:.2f`–{glue:text}`sup_overlap_hi:.2f`)
# and {glue:text}`sup_tau:.3f` ({glue:text}`sup_tau_lo:.3f`–{glue:text}`sup_tau_hi:.3f`),
# against a chance overlap of {glue:text}`chance:.2f`. The SSL–SSL minus SSL–supervised
# difference ($\tau$: {glue:text}`diff_tau:+.3f`, 95 % interval
# {glue:text}`diff_tau_lo:+.3f`–{glue:text}`diff_tau_hi:+.3f`) is {glue:text}`diff_verdict`.
#
# ## Where SSL and supervised learning disagree
#
# Each candidate's percentile rank under the mean of the SSL frameworks and under label
# memorization. Top row: memorized by the SSL encoders but not by the supervised classifier;
# bottom row: the reverse.

# %%
ssl_rank = frame[ssl_names].rank(pct=True).mean(axis=1)
sup_rank = frame["supervised"].rank(pct=True)
gap = (ssl_rank - sup_rank).rename("ssl_minus_supervised")
view = first.scores()
view = view[view.subset == "candidate"].set_index("position").join(gap).reset_index()
fig = plots.ranked_grid(view, first.train.images.cpu(), column="ssl_minus_supervised", n=10,
                        classes=list(first.train.classes),
                        title="top: memorized in SSL, not supervised; bottom: the reverse "
                              "(caption: rank gap)")

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
compare = pd.DataFrame([
    ("SSL frameworks memorize a similar set of points",
     "stated (Sec. 4; summary); metric and values UNVERIFIED",
     f"mean top-{k} overlap {ssl_overlap:.2f} [{boot.overlap_lo[0]:.2f}, "
     f"{boot.overlap_hi[0]:.2f}], mean τ {ssl_tau:+.3f} [{boot.tau_lo[0]:+.3f}, "
     f"{boot.tau_hi[0]:+.3f}]",
     "short training and few points make ranks noisy"),
    ("supervised learning memorizes different points",
     "stated; values UNVERIFIED",
     f"mean top-{k} overlap {sup_overlap:.2f} [{boot.overlap_lo[1]:.2f}, "
     f"{boot.overlap_hi[1]:.2f}], mean τ {sup_tau:+.3f} [{boot.tau_lo[1]:+.3f}, "
     f"{boot.tau_hi[1]:+.3f}]",
     "label memorization with one seed is coarse (-1/0/1)"),
    ("reference scale for the metrics",
     "[LM] Table 3 (ResNet9 layers): 94 % overlap, τ = 0.837 (adjacent); 16 %, τ = 0.104 (far)",
     f"chance level of the overlap here: {k / len(frame):.2f}", "different comparison"),
], columns=["claim", "paper", "this run", "why they may differ"])
show_table(compare)

# %% [markdown]
# ## Summary
#
# - Between SSL frameworks: mean top-{glue:text}`top_k` overlap {glue:text}`ssl_overlap:.2f`,
#   mean Kendall's $\tau$ {glue:text}`ssl_tau:.3f`.
# - Between SSL and supervised label memorization: overlap {glue:text}`sup_overlap:.2f`,
#   $\tau$ {glue:text}`sup_tau:.3f` (chance overlap {glue:text}`chance:.2f`).
# - The difference in $\tau$, {glue:text}`diff_tau:+.3f` (95 % bootstrap interval
#   {glue:text}`diff_tau_lo:+.3f`–{glue:text}`diff_tau_hi:+.3f`), is {glue:text}`diff_verdict`.
# - The image grid shows the candidates on which the two paradigms disagree most.
#
# The results were computed on {glue:text}`device` (training {glue:text}`train_minutes:.1f` min);
# this page rendered them in {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_number("train_minutes", training_minutes(*experiments.values(), supervised))
print("Provenance of the results on this page (one entry per experiment):")
for name, exp in {**experiments, "supervised": supervised}.items():
    info = exp.result_provenance()
    print(f"\n== {name}")
    print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print("\nparameters:", parameters)
