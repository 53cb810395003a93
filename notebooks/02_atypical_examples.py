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
# # 2. Which points are memorized: atypical ones
#
# This section reproduces **Figure 1** of the paper ("Examples of data with different levels of
# memorization … outliers and atypical examples experience higher memorization than more standard
# samples", claim 3 in `spec.md` §3.1): the most and the least memorized candidates, overall and
# per class. The paper judges atypicality by eye (how exactly is UNVERIFIED); here it is also
# **measured**: the distance of each candidate to its nearest training images in the representation
# of encoder $g$, which never saw the candidates, against its memorization score, with Spearman's
# rank correlation (target T5 of `spec.md` §6).
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU (H100) | nothing beyond chapter 1's unit: atypicality is computed when the scores are | top images look unusual, bottom ones prototypical; $\rho > 0$ with $p < 0.01$ |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | chapter 1's encoders ({glue:text}`train_minutes:.1f` min of training); this page rendered from the store in {glue:text}`seconds:.0f` s | the same direction; noisier where the profile is small |

# %% tags=["remove-cell"]
import pandas as pd
from scipy import stats

from sslmem import chapters, plots
from sslmem.explorer import explore
from sslmem.experiment import ATYPICALITY_K
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
method: str = "simclr"  # the SSL framework of encoders f and g (the paper's Fig. 1 uses MAE)
backbone: "Optional[str]" = None  # None: the profile or method default
epochs: "Optional[int]" = None  # None: the method default (paper) or the profile value (tiny)
sizes: "Optional[dict]" = None  # e.g. {"shared": 600, "candidate": 150, ...}; None: the profile split
seeds: "Optional[list]" = None  # e.g. [0, 1, 2]; None: the profile seeds
n_pairs: "Optional[int]" = None  # augmentation pairs per point; None: the profile value
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
exp, _ = chapters.definition(
    profile, method=method, dataset=dataset, backbone=backbone, epochs=epochs, sizes=sizes,
    seeds=seeds, n_pairs=n_pairs, device=device, data_root=data_root, runs_root=runs_root,
    results_root=results_root)
table = exp.scores()  # chapter 1's scores (with each point's atypicality), from the store
banner(profile, exp, parameters)
glue_text("device", result_device(exp))
glue_text("profile", profile)
glue_text("method_name", exp.cfg.method)
glue_text("dataset", exp.cfg.dataset)

# %% [markdown]
# ## The most and least memorized candidates (Figure 1)
#
# Candidates $S_C$ of **{glue:text}`dataset`**, scored with {glue:text}`method_name` encoders (the
# same encoders as chapter 1 when the parameters match: they are cached). Top row: highest
# $m(x)$; bottom row: lowest. Each image is captioned with its class and score.

# %%
cands = table[table.subset == "candidate"].reset_index(drop=True)
images = exp.train.images.cpu()
classes = list(exp.train.classes)
fig = plots.ranked_grid(cands, images, n=n_show, classes=classes,
                        title=f"{n_show} most (top) and least (bottom) memorized candidates")

# %% tags=["remove-cell"]
glue_number("n_candidates", len(cands))

# %% [markdown]
# Per class, the most memorized candidates (red frames) next to the least memorized ones (blue
# frames): within one class, memorization picks the unusual writing styles, poses or crops.

# %%
fig = plots.per_class_grid(cands, images, classes, n=per_class)

# %% [markdown]
# ## Measuring atypicality
#
# A candidate is *typical* when the data contains many images like it. We measure this in the
# representation of $g$, which was trained on $S_S \cup S_I$ and never saw the candidates, so
# the measure does not already contain their memorization: the mean Euclidean distance between
# the candidate's L2-normalized feature and those of its {glue:text}`k_neighbors` nearest
# training images of $g$ (any class). Larger means more atypical. It was computed when the
# scores were, while $g$ existed, and stored with them (column `atypicality`).

# %%
cands["knn_distance"] = cands.atypicality

rho = stats.spearmanr(cands.score_raw, cands.knn_distance)
decile = max(1, len(cands) // 10)
ranked = cands.sort_values("score_raw", ascending=False)
fig = plots.score_vs(cands.knn_distance, cands.score_raw,
                     xlabel=f"atypicality: mean distance to {ATYPICALITY_K} nearest training "
                            "images (g's features)",
                     ylabel="memorization score m(x)",
                     title=f"Spearman ρ = {rho.statistic:.2f} (p = {rho.pvalue:.2g})",
                     hue=[classes[int(y)] for y in cands.label])

# %% tags=["remove-cell"]
glue_number("k_neighbors", ATYPICALITY_K)
glue_number("rho", rho.statistic)
glue_number("rho_p", rho.pvalue)
glue_number("dist_top", ranked.knn_distance.head(decile).mean())
glue_number("dist_bottom", ranked.knn_distance.tail(decile).mean())
glue_number("decile", decile)
if rho.pvalue >= 0.01:
    rho_verdict = ("not significant at the 1 % level: at this scale the score and this "
                   "atypicality measure are not clearly related")
elif rho.statistic > 0:
    rho_verdict = "significant and positive, as the paper claims: atypical candidates are memorized more"
else:
    rho_verdict = ("significant but NEGATIVE, the opposite of the paper's direction: here the "
                   "candidates closest to g's training images are memorized more")
glue_text("rho_verdict", rho_verdict)

# %% [markdown]
# Hover over a candidate to see which image it is, or drag over a group of candidates to see
# their images; the axes can be switched to $L_f$ and $L_g$.

# %%
explore(cands, exp.train, x="knn_distance", y="score_raw",
        labels={"knn_distance": "atypicality (distance to g's training images)",
                "score_raw": "memorization m(x)"},
        title="candidates: memorization against atypicality")

# %% [markdown]
# Spearman's $\rho$ between the score and the atypicality is {glue:text}`rho:.3f`
# ($p =$ {glue:text}`rho_p:.2g`, {glue:text}`n_candidates` candidates). The
# {glue:text}`decile` most memorized candidates are at mean distance
# {glue:text}`dist_top:.3f` from their neighbours, the {glue:text}`decile` least memorized at
# {glue:text}`dist_bottom:.3f`. The correlation is {glue:text}`rho_verdict`.
#
# Look at what this measure calls atypical before reading too much into its sign: a distance in
# $g$'s feature space ranks images by how unusual they look *to that encoder*, which need not be
# what a person calls an outlier (compare the grid below with the most memorized candidates
# above: images on plain backgrounds, whose crops all look alike, can sit far from everything in
# feature space and still be easy to align). The paper judged atypicality by eye; C-scores, the
# standard measure, are not available offline.
#
# The most atypical candidates by this measure, for comparison with the grid above:

# %%
fig = plots.ranked_grid(cands, images, column="knn_distance", n=n_show, classes=classes,
                        title=f"{n_show} most (top) and least (bottom) atypical candidates "
                              "(caption: distance)")

# %% [markdown]
# ## Paper vs this run

# %% tags=["remove-input"]
compare = pd.DataFrame([
    ("Fig. 1: atypical / outlier images are memorized most",
     "qualitative, from image grids (caption verified; ViT-Tiny + MAE)",
     "grids above", "our method and encoder may differ from the figure's"),
    ("rank correlation of m(x) with atypicality (spec T5)",
     "not reported in the paper; target ρ > 0, p < 0.01",
     f"ρ = {rho.statistic:.3f}, p = {rho.pvalue:.2g}",
     "we use a kNN distance in g's features, not C-scores (not available offline)"),
    ("most vs least memorized differ in a second measure",
     "[LM] Table 11: UnitMem 0.507 vs 0.235 (50 most vs 50 least, verified)",
     f"kNN distance {ranked.knn_distance.head(decile).mean():.3f} vs "
     f"{ranked.knn_distance.tail(decile).mean():.3f}", "different measure, different scale"),
], columns=["claim", "paper", "this run", "why they may differ"])
show_table(compare)

# %% [markdown]
# ## Summary
#
# - Memorization ranks the {glue:text}`n_candidates` candidates; the image grids show the
#   extremes overall and per class.
# - The rank correlation of the score with atypicality measured by an encoder that never saw the
#   candidates is Spearman $\rho =$ {glue:text}`rho:.3f`, $p =$ {glue:text}`rho_p:.2g`:
#   {glue:text}`rho_verdict`.
# - The most memorized tenth lies at distance {glue:text}`dist_top:.3f` from its nearest
#   training images, the least memorized tenth at {glue:text}`dist_bottom:.3f`.
#
# The results were computed on {glue:text}`device` (training {glue:text}`train_minutes:.1f` min);
# this page rendered them in {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_number("train_minutes", training_minutes(exp))
info = exp.result_provenance()
print("Provenance of the results on this page (config, commit, versions, device, wall times):")
print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print(pd.Series(info["config"]).to_string())
print("parameters:", parameters)
