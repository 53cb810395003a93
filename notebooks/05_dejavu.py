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
# up the crop's nearest neighbours in a labelled public set, better by a model that trained on
# the image than by one that did not? Both tests are run here on the **same ensemble** of
# encoders (chapter 7), each encoder trained on a random half of one pool: every encoder
# attacks every pool image, and a point's Déjà vu memorization is the label-inference vote of the
# encoders that trained on it minus that of those that did not, the same estimator as SSLMem's.
# So both per-point scores have a measured reliability, and their agreement is reported
# corrected for it. The paper's own numbers for Sec. 4.5 are UNVERIFIED.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet (`sslmem plan --profile paper` lists the `dv-` units) | label inference above the reference's on confident crops; a positive but loose agreement with SSLMem |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`dv_members` encoders of chapter 7's ensemble (their training is counted there); the attacks took {glue:text}`dv_minutes:.1f` min; this page rendered from the store in {glue:text}`seconds:.0f` s | small gaps: at {glue:text}`image_size` px a 30 % corner holds few pixels |

# %% tags=["remove-cell"]
import pandas as pd
from IPython.display import Markdown, display

from sslmem.book import plots, precision
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_number,
    glue_text,
    result_device,
    show_table,
)
from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters, dejavu_ensemble
from sslmem.score.agreement import agreements, from_ensemble, top_overlap

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
design: "Optional[str]" = None  # the ensemble design attacked; None: the profile's
k: int = 100  # neighbours of the label-inference attack (Déjà vu: 100)
crop_frac: float = 0.3  # side of the corner crop as a fraction of the image side (Déjà vu: 0.3)
members: "Optional[int]" = None  # encoders attacked when computing; None: the design's
top_k: "Optional[int]" = None  # size of the top sets compared; None: a fifth of the pool
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
chosen = design or (chapters.settings(profile).get("ranking") or {}).get("dejavu", [None])[0]
found = chapters.ensembles(profile, names=[chosen] if chosen else [], dataset=dataset,
                           device=device, data_root=data_root, runs_root=runs_root,
                           results_root=results_root)
if chosen not in found:
    raise SSLMemError(f"profile {profile!r} has no ensemble design {chosen!r}; choose "
                               f"one of {list(chapters.settings(profile).get('ensembles', {}))}")
ens = found[chosen].ensemble
test = dict(k=k, frac=crop_frac)
if not ens.exp.results_only:  # computes the planned members' votes unless read-only
    for j in range(members or found[chosen].members):
        dejavu_ensemble.member_votes(ens, j, **test)
attacked = dejavu_ensemble.stored_members(ens, **test)
ready = len(attacked) >= 4
banner(profile, ens.exp, parameters)
glue_text("profile", profile)
glue_text("design", chosen)
glue_text("device", result_device(ens.exp) if attacked else "–")
glue_number("dv_members", len(attacked))
glue_number("image_size", ens.exp.train.image_size)
glue_number("crop_pct", round(100 * crop_frac))
glue_number("k", k)
glue_number("n_pool", len(ens.pool))
glue_number("n_public", len(dejavu_ensemble.public_positions(ens)))
if not ready:
    display(Markdown(
        f":::{{warning}}\nThis page needs the Déjà vu votes of at least two complete pairs of "
        f"encoders of **{chosen}**; the store holds {len(attacked)}. Compute them with "
        f"`sslmem plan --profile {profile} --run` (units `dv-{chosen}-…`).\n:::\n"))

# %% [markdown]
# ## The test in brief
#
# For every pool image (of {glue:text}`n_pool`), take its lower-left corner, a crop of
# {glue:text}`crop_pct` % of its height and width, resized back to the image size. Every encoder
# of **{glue:text}`design`** embeds the crop and every image of a labelled **public set**
# ({glue:text}`n_public` test images that no encoder trained on; the placebo is left out) and
# predicts the crop's label by a vote of its {glue:text}`k` nearest public images; the vote's
# confidence is the negative entropy of its label histogram {cite}`meehan2023dejavu`. An encoder
# that did not train on the image is Déjà vu's reference (what correlation alone allows: a corner
# of sky suggests a plane or a ship); one that did is its target. Embedding: the SSL projector
# (Déjà vu's default).
#
# ## Label inference by the encoders that saw each image, and by those that did not
#
# Accuracy of the vote of the encoders that trained on an image and of those that did not,
# over all pool images and over each encoder's 20 % most confident crops; the gap is the
# ensemble's Déjà vu memorization, with its standard error and $p$ over images (paired: each
# image's in-accuracy minus its out-accuracy).

# %% tags=["remove-input"]
if ready:
    gaps = dejavu_ensemble.average_gap(ens, **test)
    show_table(gaps.rename(columns={"acc_in": "accuracy (trained on it)",
                                    "acc_out": "accuracy (did not)"}),
               {"accuracy (trained on it)": "{:.3f}", "accuracy (did not)": "{:.3f}",
                "gap": "{:+.3f}", "se": "{:.3f}", "p": "{:.2g}", "fraction": "{:.0%}"})
    fig = plots.forest([f"{f:.0%} most confident" for f in gaps.fraction], gaps.gap,
                       gaps.gap - 1.96 * gaps.se, gaps.gap + 1.96 * gaps.se,
                       xlabel="accuracy gap: trained on the image − not (±1.96 s.e.)",
                       title="Déjà vu memorization on the ensemble")
    whole = gaps[gaps.fraction == 1.0].iloc[0]
    gap_text = (f"{whole.gap:+.3f} ± {whole.se:.3f} over all pool images (p = {whole.p:.2g})")
else:
    gap_text = "not computed: too few encoders attacked"
glue_text("gap_text", gap_text)

# %% [markdown]
# ## Do the two tests memorize the same points?
#
# Per pool image: SSLMem (the alignment-loss estimator of chapter 7) and Déjà vu memorization
# (the share of the {glue:text}`k` neighbours with the true label, encoders that trained on the
# image minus those that did not: a graded version of the vote), both from the same encoders.
# The table gives Spearman's $\rho$ observed, both scores' reliabilities (SSLMem's first), the
# true-score $\rho$
# (from split halves sharing no encoder; "–" where the data cannot bound it) and the
# top-{glue:text}`top_k` overlap against chance.

# %% tags=["remove-input"]
k_top = top_k or max(2, len(ens.pool) // 5)
glue_number("top_k", k_top)
if ready:
    scores = {"SSLMem": from_ensemble("SSLMem", ens, members=attacked),
              "Déjà vu": dejavu_ensemble.score(ens, attacked, **test)}
    table, _ = agreements(scores, [("SSLMem", "Déjà vu")])
    row = table.iloc[0]
    ov = top_overlap(scores["SSLMem"].estimate(), scores["Déjà vu"].align(
        scores["SSLMem"].positions).estimate(), k_top)
    detectable = precision.detectable_correlation(int(row.points), row.rel_a, row.rel_b)
    shown = pd.DataFrame([{
        "points": int(row.points), "ρ observed [95 %]": f"{row.r:+.2f} [{row.r_low:+.2f}, "
        f"{row.r_high:+.2f}]", "p": row.p,
        "reliabilities": f"{row.rel_a:.2f} / {row.rel_b:.2f}",
        "ρ true-score [95 %]": (f"{row.r_true:+.2f} [{row.r_true_low:+.2f}, "
                                f"{row.r_true_high:+.2f}]" if pd.notna(row.r_true) else "–"),
        f"top-{k_top} overlap (chance)": f"{ov['overlap']:.2f} ({ov['chance']:.2f})",
        "detectable ρ": detectable}])
    show_table(shown, {"p": "{:.2g}", "detectable ρ": "{:.2f}"})
    if row.p < 0.01:
        agree_text = (f"ρ = {row.r:+.2f} (p = {row.p:.1g}): the two tests rank the pool alike"
                      if row.r > 0 else f"ρ = {row.r:+.2f} (p = {row.p:.1g}): opposite rankings")
    elif row.rel_b <= 0.1:
        agree_text = (f"ρ = {row.r:+.2f} (p = {row.p:.2g}), but Déjà vu's per-point score has "
                      f"a reliability of {row.rel_b:.2f}: at this scale it ranks noise, so no "
                      "agreement could have been seen")
    elif detectable < 1:
        agree_text = (f"ρ = {row.r:+.2f} (p = {row.p:.2g}): no agreement detected; this design "
                      "detects a true ρ of "
                      f"{detectable:.2f} or more with 80 % power")
    else:
        agree_text = (f"ρ = {row.r:+.2f} (p = {row.p:.2g}): undecidable, the scores are too "
                      "unreliable for this design to detect even a perfect true correlation")
else:
    agree_text = "not computed: too few encoders attacked"
glue_text("agree_text", agree_text)

# %% tags=["hide-input"]
if ready:
    ssl_m, dv_m = scores["SSLMem"].estimate(), scores["Déjà vu"].align(
        scores["SSLMem"].positions).estimate()
    fig = plots.score_vs(dv_m, ssl_m, xlabel="Déjà vu memorization (share of true-label "
                         "neighbours, in − out)", ylabel="SSLMem m̂(x)",
                         title=f"Spearman ρ = {row.r:+.2f} (p = {row.p:.2g})")

# %% [markdown]
# Agreement between SSLMem and Déjà vu: {glue:text}`agree_text`.
#
# ## Paper vs this run

# %% tags=["remove-input"]
compare = pd.DataFrame([
    ("SSL encoders leak training labels through background crops (Déjà vu)",
     "[DV] large gaps for VICReg/Barlow Twins, smaller for SimCLR/BYOL on ImageNet (UNVERIFIED)",
     gap_text, "CIFAR-size images have no bounding boxes: a fixed corner crop, not the background"),
    ("SSLMem and Déjà vu compared (Sec. 4.5)", "comparison exists; values UNVERIFIED",
     agree_text, "the tests measure different things: invariance of views vs label leakage"),
], columns=["claim", "paper", "this run", "why they may differ"])
show_table(compare)

# %% [markdown]
# ## Summary
#
# - Déjà vu on {glue:text}`dv_members` encoders of **{glue:text}`design`**: label inference by the
#   encoders that trained on an image minus those that did not, {glue:text}`gap_text`.
# - SSLMem against Déjà vu, point by point: {glue:text}`agree_text`.
#
# The results were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
glue_number("dv_minutes", sum(  # the attacks' own wall time, from their provenance
    float((ens.exp.sources.get(dejavu_ensemble.result_name(ens, j, **test), {})
           .get("wall_s") or {}).get("score dejavu", 0.0)) for j in attacked) / 60)
if attacked:
    info = ens.exp.result_provenance()
    print("Provenance of the ensemble (config, versions; each result has its own):")
    print(pd.Series({k: v for k, v in info.items() if k != "config"}).to_string())
    print(pd.Series(info["config"]).to_string())
print("parameters:", parameters)
