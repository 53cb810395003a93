# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
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
# | paper profile | one GPU (H100) | minutes once chapter 1's encoders are cached (estimate) | top images look unusual, bottom ones prototypical; $\rho > 0$ with $p < 0.01$ |
# | this run | {glue:text}`device` | {glue:text}`minutes:.1f` min for this page; {glue:text}`train_minutes:.1f` min to train its encoders (cached ones are reused) | the same direction, noisier |

# %% tags=["remove-cell"]
import pandas as pd
import torch
from scipy import stats

from sslmem import plots
from sslmem.config import Config
from sslmem.evaluate import extract_features
from sslmem.experiment import Experiment
from sslmem.notebook import (
                             Timer,
                             banner,
                             check_parameters,
                             glue_number,
                             glue_text,
                             overrides,
                             show_table,
                             training_minutes,
)

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile = "paper"  # 'paper' (GPU, the paper's CIFAR-10 setup) or 'tiny' (CPU smoke run)
dataset = None  # None = the profile dataset (paper: cifar10, tiny: digits)
method = "simclr"  # the SSL framework of encoders f and g (the paper's Fig. 1 uses MAE)
backbone = None  # None = the profile or method default
epochs = None  # None = the method default (paper) or the profile value (tiny)
sizes = None  # e.g. {"shared": 600, "candidate": 150, ...}; None = the profile split
seeds = None  # e.g. [0, 1, 2]; None = the profile seeds
n_pairs = None  # augmentation pairs per point; None = the profile value
n_show = 10  # images per row of the overall grid
per_class = 3  # most / least memorized images shown per class
k_neighbors = 10  # neighbours for the typicality measure
device = "auto"
data_root = None  # None = $SSLMEM_DATA
runs_root = None  # None = $SSLMEM_RUNS (cache of trained encoders)
_declared = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
cfg = Config.profile(profile, **overrides(
    dataset=dataset, method=method, backbone=backbone, epochs=epochs, seeds=seeds,
    n_pairs=n_pairs, device=device, data_root=data_root, runs_root=runs_root,
    **(sizes or {})), progress=False)
exp = Experiment(cfg)
banner(profile, exp.cfg, exp.provenance()["device"], parameters)
glue_text("device", exp.provenance()["device"])
glue_text("method_name", exp.cfg.method)
glue_text("dataset", exp.cfg.dataset)

# %% [markdown]
# ## The most and least memorized candidates (Figure 1)
#
# Candidates $S_C$ of **{glue:text}`dataset`**, scored with {glue:text}`method_name` encoders (the
# same encoders as chapter 1 when the parameters match: they are cached). Top row: highest
# $m(x)$; bottom row: lowest. Each image is captioned with its class and score.

# %%
table = exp.scores()
cands = table[table.subset == "candidate"].reset_index(drop=True)
images = exp.train.images.cpu()
classes = list(exp.train.classes)
glue_number("n_candidates", len(cands))
fig = plots.ranked_grid(cands, images, n=n_show, classes=classes,
                        title=f"{n_show} most (top) and least (bottom) memorized candidates")

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
# training images of $g$ (any class). Larger means more atypical.

# %%
g = exp.encoder("g").encoder
g_train = exp.train.images[torch.as_tensor(exp.split.g_train)]
feats_train = torch.nn.functional.normalize(extract_features(g, g_train).float(), dim=1)
feats_cand = torch.nn.functional.normalize(
    extract_features(g, exp.train.images[torch.as_tensor(cands.position.to_numpy())]).float(),
    dim=1)
dist = torch.cdist(feats_cand, feats_train)
knn_dist = dist.topk(k_neighbors, largest=False).values.mean(1).cpu().numpy()
cands["knn_distance"] = knn_dist
glue_number("k_neighbors", k_neighbors)

rho = stats.spearmanr(cands.score_raw, cands.knn_distance)
glue_number("rho", rho.statistic)
glue_number("rho_p", rho.pvalue)
decile = max(1, len(cands) // 10)
ranked = cands.sort_values("score_raw", ascending=False)
glue_number("dist_top", ranked.knn_distance.head(decile).mean())
glue_number("dist_bottom", ranked.knn_distance.tail(decile).mean())
glue_number("decile", decile)
fig = plots.score_vs(cands.knn_distance, cands.score_raw,
                     xlabel=f"atypicality: mean distance to {k_neighbors} nearest training "
                            "images (g's features)",
                     ylabel="memorization score m(x)",
                     title=f"Spearman ρ = {rho.statistic:.2f} (p = {rho.pvalue:.2g})",
                     hue=[classes[int(y)] for y in cands.label])

# %% [markdown]
# Spearman's $\rho$ between the score and the atypicality is {glue:text}`rho:.3f`
# ($p =$ {glue:text}`rho_p:.2g`, {glue:text}`n_candidates` candidates). The
# {glue:text}`decile` most memorized candidates are at mean distance
# {glue:text}`dist_top:.3f` from their neighbours, the {glue:text}`decile` least memorized at
# {glue:text}`dist_bottom:.3f`.
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
# - The score is rank-correlated with atypicality measured by an encoder that never saw the
#   candidates: Spearman $\rho =$ {glue:text}`rho:.3f`, $p =$ {glue:text}`rho_p:.2g`.
# - The most memorized tenth lies at distance {glue:text}`dist_top:.3f` from its nearest
#   training images, the least memorized tenth at {glue:text}`dist_bottom:.3f`.
#
# This page ran in {glue:text}`minutes:.1f` min on {glue:text}`device`; training its encoders
# took {glue:text}`train_minutes:.1f` min.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes())
glue_number("train_minutes", training_minutes(exp))
info = exp.provenance()
info["parameters"] = parameters
print("Provenance of this page (config, commit, versions, device, wall times):")
print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
print(pd.Series(info["config"]).to_string())
