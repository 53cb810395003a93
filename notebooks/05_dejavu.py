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
# # 5. Does SSLMem agree with Déjà vu?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section re-tests the paper's **comparison with Déjà vu memorization** (Sec. 4.5), the
# test an SSL researcher already knows {cite}`meehan2023dejavu`: can the label of a training image be inferred from a small corner of it (mostly background) by looking
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
from IPython.display import Markdown, display

from sslmem.book import dejavu, plots, provenance, verdicts
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    describe_design,
    glue_all,
    glue_number,
    glue_text,
    show_table,
)
from sslmem.pipeline import dejavu_ensemble

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
chosen, found = dejavu.ensemble(profile, design, dataset=dataset, device=device,
                                data_root=data_root, runs_root=runs_root,
                                results_root=results_root)
ens, test = found.ensemble, dict(k=k, frac=crop_frac)
if not ens.exp.results_only:  # computes the planned members' votes unless read-only
    for j in range(members or found.members):
        dejavu_ensemble.member_votes(ens, j, **test)
attacked = dejavu_ensemble.stored_members(ens, **test)
ready = len(attacked) >= 4
banner(profile, ens.exp, parameters)
glue_all({"profile": profile, "design": describe_design(ens), "dv_members": len(attacked),
          "image_size": ens.exp.train.image_size, "crop_pct": round(100 * crop_frac), "k": k,
          "n_pool": len(ens.pool), "n_public": len(dejavu_ensemble.public_positions(ens))})
if not ready:
    display(Markdown(dejavu.missing_warning(chosen, len(attacked), profile)))

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
# over all pool images and over each encoder's 20 % most confident crops. Both accuracies are
# averaged per image, over the images that keep crops of both kinds (the last column), so the
# gap is their difference: the ensemble's Déjà vu memorization, with its standard error and $p$
# over images (paired: each image's in-accuracy minus its out-accuracy).

# %% tags=["remove-input"]
gaps = dejavu.gap_table(dejavu_ensemble.votes_table(ens, attacked, **test)) if ready else None
if ready:
    show_table(gaps, dejavu.GAP_FORMATS)
    fig = plots.forest([f"{f:.0%} most confident" for f in gaps["crops kept"]], gaps.gap,
                       gaps.gap - 1.96 * gaps.se, gaps.gap + 1.96 * gaps.se,
                       xlabel="accuracy gap: trained on the image − not (±1.96 s.e.)",
                       title="Déjà vu memorization on the ensemble")
glue_text("gap_text", dejavu.gap_text(gaps))

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
agree = dejavu.agreement(ens, attacked, k_top, **test) if ready else None
if ready:
    show_table(dejavu.agreement_view(agree, k_top), {"p": "{:.2g}", "detectable ρ": "{:.2f}"})
    fig = plots.score_vs(agree["dv"], agree["ssl"], xlabel="Déjà vu memorization (share of "
                         "true-label neighbours, in − out)", ylabel="SSLMem m̂(x)",
                         title=f"Spearman ρ = {agree['row'].r:+.2f} (p = {agree['row'].p:.2g})")
glue_text("agree_text", dejavu.agreement_text(agree))

# %% [markdown]
# Agreement between SSLMem and Déjà vu: {glue:text}`agree_text`.
#
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(dejavu.paper_table(dejavu.gap_text(gaps), dejavu.agreement_text(agree)))

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
glue_number("dv_minutes", dejavu.attack_minutes(ens, attacked, **test))
glue_all(where := provenance.glued(ens.exp))  # device, commits, minutes
verdicts.glue([dejavu.claim_verdict(agree, ens, len(attacked))], where["device"])
print(provenance.report(ens.exp, parameters=parameters))
