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
# # 4. Does memorization improve downstream generalization?
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# This section re-tests the paper's central claim: **removing the most memorized points** from pre-training lowers downstream linear-probe
# accuracy more than removing the same number of random points (Sec. 4.4, Figure 3 and Table 3);
# and a **regularizer that limits alignment** (Eq. 3) lowers memorization and accuracy together.
# The paper's numbers for both are UNVERIFIED (not available to us). Here the points are ranked
# by the **ensemble** score of chapter 7 (not by one $f$/$g$ pair, whose per-point ranking is
# unreliable), and the removal is a **paired, three-arm experiment**: every seed pre-trains on
# the pool without its top-$k$, without $k$ random points and without its bottom-$k$, with the
# same initialization and augmentation stream in every arm. The follow-up paper's dose-response
# for memorizing units ({cite}`wang2024localizing`) predicts top < random < bottom.
#
# | | hardware | time | what to expect |
# |---|---|---|---|
# | paper profile | one GPU | not run yet (`sslmem plan --profile paper` lists the `rm-…` and `probe-…` units) | top-$k$ removal below random, random below bottom-$k$ |
# | this page ({glue:text}`profile` profile) | results computed on {glue:text}`device` | {glue:text}`n_encoders` retrained encoders, {glue:text}`encoder_hours:.1f` encoder-hours (plus the ranking ensemble of chapter 7); this page rendered from the store in {glue:text}`seconds:.0f` s | a difference only if it exceeds what {glue:text}`n_seeds` paired seeds can detect (stated below) |

# %% tags=["remove-cell"]
from IPython.display import Markdown, display

from sslmem.book import generalization as gen
from sslmem.book import plots, provenance, verdicts
from sslmem.book.notebook import (
    Timer,
    banner,
    check_parameters,
    glue_all,
    glue_number,
    glue_text,
    show_table,
)
from sslmem.pipeline import chapters, removal

_timer = Timer()

# %% tags=["parameters", "hide-input"]
profile: str = "paper"  # 'paper' (GPU, the paper's setup), 'laptop' (2 CPU cores) or 'tiny' (CPU smoke run)
dataset: "Optional[str]" = None  # None: the profile dataset (paper, laptop: cifar10; tiny: digits)
design: "Optional[str]" = None  # the ensemble design that ranks the pool (chapter 7); None: the profile's
k: "Optional[int]" = None  # points removed per arm; None: the profile's (a quarter of the pool on the laptop)
seeds: "Optional[list]" = None  # paired seeds, the same in every arm; None: the profile's
rank_members: "Optional[int]" = None  # members of the ranking ensemble used to rank; None: the profile's
downstream: "Optional[list]" = None  # datasets probed besides the dataset itself; None: mnist, fashionmnist, cifar100
probe_max_train: "Optional[int]" = None  # cap on probe training images; None: the profile's
probe_max_test: "Optional[int]" = None  # cap on probe test images; None: the profile's
align_lambdas: "Optional[list]" = None  # weights of the single-pair regularizer sweep; None: the profile's
device: str = "auto"  # auto (CUDA if available), cpu or cuda[:N]
data_root: "Optional[str]" = None  # None: $SSLMEM_DATA
runs_root: "Optional[str]" = None  # None: $SSLMEM_RUNS (cache of trained encoders)
results_root: "Optional[str]" = None  # None: $SSLMEM_RESULTS, else the checkout's results/ (the store)
# the names declared above (parenthesized: papermill reads no parameter here)
(_declared) = [k for k in dir() if not k.startswith("_")]

# %% tags=["remove-input"]
parameters = check_parameters(globals(), _declared)
runtime = dict(dataset=dataset, device=device, data_root=data_root, runs_root=runs_root,
               results_root=results_root)
setup = chapters.removal(profile, design=design, k=k, seeds=seeds, rank_members=rank_members,
                         downstream=downstream, probe_max_train=probe_max_train,
                         probe_max_test=probe_max_test, **runtime)
exp = setup.exp
gen.compute(setup)  # unless read-only: the members of both designs (arms and probes: below)
ranking = setup.ranking()
banner(profile, exp, parameters)
glue_all(gen.overview(setup, profile))

# %% [markdown]
# ## The ranking
#
# The pool is chapter 7's: {glue:text}`n_pool` {glue:text}`dataset` training images, each
# scored by the ensemble **{glue:text}`design`** (its first {glue:text}`rank_members` members, so
# the removed sets stay fixed as more members are stored). The top-{glue:text}`k` and
# bottom-{glue:text}`k` points are the ones the two ranked arms remove; the random arm removes
# {glue:text}`k` points drawn per seed.

# %% tags=["remove-input"]
rel = setup.reliability()
fig = plots.removal_ranking(ranking, setup.k)
glue_all(gen.ranking_summary(ranking, setup.k, rel))

# %% [markdown]
# The ranking's split-half reliability over its encoders is {glue:text}`rank_rel:.2f` (95 %
# interval {glue:text}`rank_rel_lo:.2f` to {glue:text}`rank_rel_hi:.2f`); counting its views as
# error too, as chapter 7's all-facet design does, it is {glue:text}`rank_rel_views`. These sets
# were fixed before the all-facet design existed and stay as they were drawn. The removed top-{glue:text}`k` points
# score {glue:text}`top_m:+.4f` on average, the bottom-{glue:text}`k` {glue:text}`bottom_m:+.4f`
# (the pool: {glue:text}`pool_m:+.4f`); these arm means are selected on noisy scores, so their
# true gap is smaller by about the reliability.
#
# ## Power, before the experiment
#
# How far apart can two encoders of this recipe land by chance? The ranking ensemble's own
# members answer it before any arm is trained: they share the recipe and one initialization and
# seed, and differ only in their half of the pool. Their accuracy spread (SD across members, in
# points) gives the SD of a difference between two such encoders (√2 × SD, for independent
# halves; two arms share three quarters of their data, so their differences should vary less,
# unless the seed and the data interact). With that SD, the table gives the smallest difference
# {glue:text}`n_seeds` paired seeds detect with 80 % power (two-sided paired $t$-test,
# α = 0.05) and the seeds a 1-point difference would need. Part of every spread is the probe's
# own noise: a linear probe tested on 5,000 images has a binomial standard error of about 0.7
# points at 42 % accuracy, shared by the arms of a seed (same test images).

# %% tags=["remove-input"]
for name, why in setup.skipped:
    print(f"skipped downstream dataset {name}: {why}")
pilot_rows = gen.power_table(setup.member_table(), len(setup.seeds))
if len(pilot_rows):
    show_table(*gen.power_view(pilot_rows, len(setup.seeds)))
glue_text("pilot_text", gen.pilot_text(pilot_rows, exp.cfg.dataset, len(setup.seeds),
                                       setup.design.name))

# %% [markdown]
# {glue:text}`pilot_text` The paired SD measured below
# replaces this expectation.
#
# ## Removing the top, random and bottom $k$
#
# Each stored seed pre-trained three encoders on the pool minus {glue:text}`k` points; each is
# probed (linear probe and kNN on frozen features) on {glue:text}`dataset` and the downstream
# sets available offline; CIFAR-100, whose train split is not offline, is probed on two
# class-stratified halves of its test split.

# %% tags=["remove-input"]
arms, complete = gen.complete_arms(setup)
testable = len(complete) >= 2
glue_all({"n_complete": len(complete), "n_encoders": len(complete) * len(removal.ARMS),
       "encoder_hours": gen.encoder_hours(setup, complete, ranking)})
if not testable:
    display(Markdown(gen.missing_seeds_note(len(complete), len(setup.seeds), profile)))
else:
    fig = plots.paired_arms(arms, "linear")

# %% tags=["remove-input"]
tests = gen.arm_tests(arms, pilot_rows, "linear", testable)
if len(tests):
    show_table(*gen.tests_view(tests))
glue_all(gen.arm_verdicts(tests, exp.cfg.dataset, gen.pilot_sd(pilot_rows, exp.cfg.dataset)))

# %% [markdown]
# On {glue:text}`dataset`, pre-training without the top-{glue:text}`k` instead of {glue:text}`k`
# random points gives a linear-probe accuracy that is {glue:text}`verdict_top`. Random against
# bottom-{glue:text}`k` removal: {glue:text}`verdict_bottom`. {glue:text}`sets_text`
#
# The same test on kNN accuracy:

# %% tags=["remove-input"]
knn = gen.arm_tests(arms, pilot_rows, "knn", testable)
if len(knn):
    show_table(*gen.knn_view(knn))
else:
    print("not testable yet (too few seeds stored)")

# %% [markdown]
# ## Limiting alignment (Eq. 3)
#
# The paper adds a term to the SSL loss that limits how well the views of a training point are
# aligned, with a weight $\lambda$ (its exact form is not stated in the text available to us;
# here `sslmem.train.methods` adds $\lambda$ × the cosine similarity of the two views' backbone
# features).
#
# One pair per $\lambda$ cannot tell. Trained once per $\lambda$, an $f$/$g$ pair shows
# $\lambda = 0.5$ *raising* the candidates' mean score (the table's raw column). But the
# regularizer roughly doubles every alignment loss, and $m = L_g - L_f$ on $f$'s points also
# contains whatever separates $g$ from $f$ on *every* image, which the never-trained extra set
# $S_E$ measures. Subtracting it, the pair gives two estimates of the same memorization: from
# $f$'s points and from $g$'s points.

# %% tags=["remove-input"]
sweep = chapters.alignment(profile, align_lambdas=align_lambdas, **runtime)
pairs = gen.sweep_table(sweep)
f = gen.sweep_forest(pairs)
fig = plots.forest(f["labels"], f["est"], f["lo"], f["hi"], "memorization of the pair's own "
                   "training points (minus the S_E shift)",
                   "one f/g pair per λ, seen from each side")
show_table(pairs, gen.SWEEP_FORMATS)
glue_text("pair_text", gen.pair_text(pairs))

# %% [markdown]
# {glue:text}`pair_text`
#
# The ensemble measures it, paired by member: the regularized design trains member $j$ on the
# same half of the pool, with the same seed, as member $j$ of the ranking design; each member's
# own in/out contrast (mean loss of the pool points it did not train on minus those it did) is
# free of encoder-level shifts, and the difference between the two designs' member $j$ is the
# effect of $\lambda$ alone. The contrast is also shown relative to the member's mean loss,
# because $\lambda$ rescales every loss.

# %% tags=["remove-input"]
reg = gen.regularizer_effects(setup)
if "table" in reg:
    show_table(reg["table"], gen.REG_FORMATS)
glue_text("reg_verdict", reg["verdict"])
glue_text("reg_text", reg["text"])

# %% [markdown]
# {glue:text}`reg_text`
#
# ## Paper vs this run

# %% tags=["remove-input"]
show_table(gen.paper_vs_run(tests, setup, len(complete), reg))

# %% [markdown]
# ## Summary
#
# - The pool of {glue:text}`n_pool` images is ranked by the ensemble {glue:text}`design`
#   (reliability {glue:text}`rank_rel:.2f`); {glue:text}`n_complete` seeds hold all three arms.
# - Top-{glue:text}`k` against random removal, on {glue:text}`dataset`: {glue:text}`verdict_top`.
# - Random against bottom-{glue:text}`k` removal: {glue:text}`verdict_bottom`.
# - The alignment regularizer: {glue:text}`reg_verdict`.
#
# The retrained encoders were computed on {glue:text}`device`; this page rendered them in
# {glue:text}`seconds:.0f` s.

# %% tags=["remove-input", "hide-output"]
glue_number("minutes", _timer.minutes(), volatile=True)
glue_number("seconds", 60 * _timer.minutes(), volatile=True)
read = [exp, *[e for e in sweep.lambdas.values()]]
read += [] if setup.regularized is None else [setup.regularized.ensemble.exp]
glue_all(where := provenance.glued(*read))  # device, commits, minutes
verdicts.glue([gen.removal_verdict(tests, setup, gen.scale(setup, len(complete))),
               gen.regularizer_verdict(reg, setup)])  # each with its results' hardware
print(provenance.report(*read, parameters=parameters))
