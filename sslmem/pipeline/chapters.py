"""What each chapter of the book computes, per profile: one definition for notebooks and plan.

Why here and not in the notebooks: the run plan (``sslmem.pipeline.plan``) must list exactly the
results a chapter will ask for, so both build their experiments with these functions. A notebook's
parameters are this module's keyword arguments; ``None`` means "the profile's value".

Profiles (best first): ``paper`` (the authors' CIFAR-10 setup on a GPU, with epochs cut so that
one f/g pair trains and scores inside one 10-minute command of an H100), ``laptop`` (real
CIFAR-10 photographs, sized from measurements to show every effect on 2 CPU cores) and ``tiny``
(a CPU smoke run of the plumbing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslmem.errors import SSLMemError
from sslmem.pipeline import datacard
from sslmem.pipeline.config import PROFILES, Config
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.profiles import PAPER_BOOK_EPOCHS, SETTINGS

DOWNSTREAM = ("mnist", "fashionmnist", "cifar100")
# the fields a companion design shares with the one it is paired with (data, device, stores)
DATA_FIELDS = ("dataset", "device", "data_root", "runs_root", "results_root", "results_only")


def settings(profile: str) -> dict:
    """The chapter settings of ``profile`` (a copy)."""
    if profile not in SETTINGS:
        raise SSLMemError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    return {k: (v.copy() if isinstance(v, (dict, list)) else v)
            for k, v in SETTINGS[profile].items()}


def probe_caps(profile: str) -> dict:
    """The profile's caps on probe images (``Experiment.probe`` keywords)."""
    s = settings(profile)
    return {"max_train": s["probe_max_train"], "max_test": s["probe_max_test"]}


def config(profile: str, *, sizes: dict | None = None, **fields) -> Config:
    """The profile's config with the non-None ``fields`` and split ``sizes`` as overrides."""
    values = {k: v for k, v in fields.items() if v is not None}
    if "seeds" in values and not isinstance(values["seeds"], int):
        values["seeds"] = tuple(values["seeds"])
    if profile == "paper" and "epochs" not in values and "method" in values:
        values["epochs"] = PAPER_BOOK_EPOCHS.get(values["method"])
    return Config.for_profile(profile, **{**values, **(sizes or {})}, progress=False)


# ---- chapters 1 and 2: one f/g pair ------------------------------------------------------------

def definition(profile: str, *, method: str = "simclr", epoch_points: int | None = None,
               **fields) -> tuple[Experiment, dict]:
    """Chapters 1–2: the scored f/g pair and the points per subset scored at each snapshot."""
    s = settings(profile)
    exp = Experiment(config(profile, method=method, **fields))
    return exp, {"epoch_points": epoch_points or s["epoch_points"]}


# ---- chapter 3: every framework on the same split ----------------------------------------------

def frameworks(profile: str, *, methods=None, backbones=None, patch_sizes=None,
               method_epochs=None, epochs=None, **fields) -> tuple[dict, Experiment]:
    """Chapter 3: one Experiment per SSL method and the supervised pair, on one split."""
    s = settings(profile)
    methods = list(methods or s["methods"])
    backbones = {**s["backbones"], **(backbones or {})}
    patch_sizes = {**s["patch_sizes"], **(patch_sizes or {})}
    method_epochs = {**s["method_epochs"], **(method_epochs or {})}

    def make(name: str) -> Experiment:
        return Experiment(config(profile, method=name, backbone=backbones.get(name),
                                 patch_size=patch_sizes.get(name),
                                 epochs=epochs if epochs is not None
                                 else method_epochs.get(name), **fields))

    return {name: make(name) for name in methods}, make("supervised")


def top_k(profile: str, n_candidates: int, value: int | None = None) -> int:
    """Size of the top sets compared in chapter 3 (the profile's, else a fifth of S_C)."""
    k = value or settings(profile)["top_k"] or max(5, n_candidates // 5)
    return min(int(k), n_candidates)


# ---- chapter 4: the alignment regularizer on one f/g pair per λ --------------------------------

@dataclass
class Alignment:
    """Chapter 4's single-pair λ sweep: one f/g pair per weight of the alignment regularizer
    (λ = 0 is the pair of the profile's recipe). The removal experiment is ``removal``."""

    scored: Experiment
    lambdas: dict[float, Experiment]
    probe_max_train: int | None = None
    probe_max_test: int | None = None


def available(name: str, data_root=None, *, halves: bool = False) -> str | None:
    """None when dataset ``name`` can be probed offline, else the reason (first sentence).

    Only the files are checked, nothing is read (:mod:`sslmem.train.downstream`). ``halves``: a set
    with only its test split counts (probed on halves of it).
    """
    from sslmem.train.downstream import missing

    return missing(name, data_root, halves=halves)


def alignment(profile: str, *, method: str = "simclr", epochs=None, sizes=None,
              probe_max_train=None, probe_max_test=None, align_lambdas=None,
              **fields) -> Alignment:
    """Chapter 4's λ sweep: f on one random half, g on the other, one pair per λ."""
    s = settings(profile)
    fields = {**fields, "split_protocol": "random"}
    scored = Experiment(config(profile, method=method, epochs=epochs or s["align_epochs"],
                               sizes=sizes or s["align_sizes"], **fields))
    lambdas = {}
    for lam in (align_lambdas if align_lambdas is not None else s["align_lambdas"]):
        lam = float(lam)
        lambdas[lam] = (scored if lam == scored.cfg.align_lambda
                        else Experiment(scored.cfg.replace(align_lambda=lam)))
    return Alignment(scored=scored, lambdas=lambdas,
                     probe_max_train=(probe_max_train if probe_max_train is not None
                                      else s["probe_max_train"]),
                     probe_max_test=(probe_max_test if probe_max_test is not None
                                     else s["probe_max_test"]))


def removal(profile: str, *, k: int | None = None, seeds=None, rank_members=None,
            downstream=None, probe_max_train=None, probe_max_test=None, **fields):
    """Chapter 4's removal experiment (:mod:`sslmem.pipeline.removal`) on the ranking design's pool.

    ``fields`` go to the ranking design (``ranking``): another method or dataset moves the
    whole experiment. Probe sets: the dataset itself and every downstream set available
    offline (CIFAR-100 on halves of its test split).
    """
    from sslmem.pipeline.removal import Removal

    r = dict(settings(profile).get("removal") or {})
    if not r:
        raise SSLMemError(f"profile {profile!r} defines no removal experiment")
    # the removed sets come from the design named in the settings (default: the ranking's)
    design, _ = ranking(profile, design=fields.pop("design", None) or r.get("design"), **fields)
    exp = design.ensemble.exp
    n = len(design.ensemble.pool)
    k = int(k or r["k"])
    if not 1 <= k < n // 2:
        raise SSLMemError(f"k = {k} must lie between 1 and half the pool ({n // 2}): the top "
                          "and bottom arms must remove different points")
    seeds = [int(s) for s in (seeds if seeds is not None else r["seeds"])]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise SSLMemError(f"seeds must be at least two different integers, got {seeds}")
    probe_sets, skipped = [exp.cfg.dataset], []
    if downstream is None:
        downstream = r.get("downstream", DOWNSTREAM)
    for name in downstream:
        if name != exp.cfg.dataset:
            why = available(name, exp.cfg.data_root, halves=True)
            if why and exp.results_only and datacard.was_available(exp.cfg.results_root,
                                                                   profile, name):
                why = None  # its files are absent, but the stored results probed it
            (skipped.append((name, why)) if why else probe_sets.append(name))
    regularized = None
    if r.get("regularized"):
        data = {k: v for k, v in fields.items() if k in DATA_FIELDS}
        regularized = ensembles(profile, names=[r["regularized"]], **data)[r["regularized"]]
    return Removal(design=design, k=k, seeds=seeds, regularized=regularized,
                   rank_members=int(rank_members or r["rank_members"]),
                   probe_sets=probe_sets, skipped=skipped,
                   max_train=probe_max_train if probe_max_train is not None else r["max_train"],
                   max_test=probe_max_test if probe_max_test is not None else r["max_test"])


# ---- the precision chapter: ensemble estimators ------------------------------------------------

@dataclass
class EnsembleDesign:
    """One ensemble of the regime search: the estimator, and how many members the plan runs."""

    name: str
    ensemble: object  # sslmem.pipeline.ensemble.Ensemble
    members: int
    repeats: int = 0  # retrainings of members 0 and 1 (the one-pair estimator measured twice)


def ensembles(profile: str, *, names=None, planned: bool = False,
              **fields) -> dict[str, EnsembleDesign]:
    """The profile's ensemble designs (all, or ``names``), each on its own pool and placebo.

    ``planned``: also the designs whose members are being computed but that no page shows yet
    (``next_ensembles``): the plan lists their units, the chapters do not read them."""
    from sslmem.pipeline.ensemble import Ensemble

    s = settings(profile)
    base = dict(s.get("ensemble_base", {}))
    sizes = base.pop("sizes", None)
    out = {}
    # chapter 6's privacy designs are read by name (or planned), never by chapter 7's "all"
    private = (s.get("privacy_ensembles") or {}).get("designs", {})
    designs = {**s.get("ensembles", {}), **(s.get("next_ensembles", {}) if planned else {}),
               **(private if planned or names is not None else {})}
    for name, d in designs.items():
        if names is not None and name not in names:
            continue
        d = dict(d)
        members, repeats = d.pop("members"), d.pop("repeats", 0)
        knobs = {k: d.pop(k) for k in ("fraction", "shared_init", "pair_init", "views",
                                       "membership_seed",
                                       "dynamics") if k in d}
        values = {**base, **d, **{k: v for k, v in fields.items() if v is not None}}
        cfg = config(profile, sizes=values.pop("sizes", sizes), split_protocol="random",
                     **values)
        out[name] = EnsembleDesign(name, Ensemble(Experiment(cfg), **knobs), members, repeats)
    return out


def ranking(profile: str, *, design: str | None = None, supervised: str | None = None,
            members: int | None = None, **fields) -> tuple[EnsembleDesign, EnsembleDesign]:
    """The ensembles chapters 2-5 rank points by: an SSL design (``design``, default the
    profile's) and the supervised design on the same pool and membership (``supervised``).

    ``fields`` override the SSL design's configuration (e.g. another ``method``); the
    supervised design keeps its own recipe but shares the data options.
    """
    s = settings(profile)
    chosen = dict(s.get("ranking") or {})
    design, supervised = design or chosen.get("ssl"), supervised or chosen.get("supervised")
    known = list(s.get("ensembles", {}))
    for name in (design, supervised):
        if name not in known:
            raise SSLMemError(f"profile {profile!r} has no ensemble design {name!r}; "
                              f"choose one of {known}")
    data = {k: fields[k] for k in DATA_FIELDS if k in fields}
    ssl = ensembles(profile, names=[design], **fields)[design]
    sup = ensembles(profile, names=[supervised], **data)[supervised]
    if not np.array_equal(ssl.ensemble.pool, sup.ensemble.pool):
        raise SSLMemError(f"designs {design!r} and {supervised!r} are not on the same pool: "
                          "give them the same sizes")
    for d in (ssl, sup):
        if members:
            d.members = int(members)
    return ssl, sup


def consensus(profile: str, *, methods=None, supervised: str | None = None,
              members: int | None = None, **fields) -> tuple[dict, EnsembleDesign]:
    """Chapter 3's ensembles: one SSL design per method (``methods``: design names, default
    the profile's) and the supervised design, all on one pool and membership matrix."""
    s = settings(profile)
    chosen = dict(s.get("ranking") or {})
    names = list(methods or chosen.get("methods") or [])
    supervised = supervised or chosen.get("supervised")
    known = list(s.get("ensembles", {}))
    unknown = [n for n in [*names, supervised] if n not in known]
    if unknown:
        raise SSLMemError(f"profile {profile!r} has no ensemble design(s) {unknown}; choose "
                          f"from {known}")
    found = ensembles(profile, names=[*names, supervised], **fields)
    sup = found.pop(supervised)
    designs = {n: found[n] for n in names}
    for d in designs.values():
        if not np.array_equal(d.ensemble.pool, sup.ensemble.pool):
            raise SSLMemError(f"designs {d.name!r} and {supervised!r} are not on the same pool: "
                              "give them the same sizes")
    for d in [*designs.values(), sup]:
        if members:
            d.members = int(members)
    return designs, sup


def design_chapters(profile: str) -> dict[str, list[str]]:
    """Which chapters rank points by each ensemble design (the precision chapter: all)."""
    r = settings(profile).get("ranking") or {}
    uses = {name: {"07"} for name in settings(profile).get("ensembles", {})}
    uses |= {name: {"06"} for name in
             (settings(profile).get("privacy_ensembles") or {}).get("designs", {})}
    for chapter, names in (("02", [r.get("ssl"), r.get("supervised")]),
                           ("03", [*r.get("methods", []), r.get("supervised")]),
                           ("05", r.get("dejavu", [])), ("08", [r.get("facets")]),
                           ("04", [(settings(profile).get("removal") or {}).get("design")
                                   or r.get("ssl"), (settings(profile).get("removal") or {})
                                   .get("regularized")])):
        for name in names:
            if name in uses:
                uses[name].add(chapter)
    return {name: sorted(chs) for name, chs in uses.items()}


# ---- chapter 6: differential privacy ----------------------------------------------------------

def eps_label(epsilon) -> str:
    """'∞' for no DP, else the number."""
    return "∞" if epsilon is None or epsilon == float("inf") else f"{float(epsilon):g}"


def privacy(profile: str, *, epsilons=None, method=None, epochs=None, dp_max_grad_norm=None,
            **fields) -> dict:
    """Chapter 6: one f/g pair per privacy level ε (None = no DP), same split and recipe."""
    s = settings(profile)
    method = method or s["privacy_method"]
    if fields.get("sizes") is None and s["privacy_sizes"]:
        fields = {**fields, "sizes": s["privacy_sizes"]}
    base, _ = frameworks(profile, methods=[method], epochs=epochs or s["privacy_epochs"],
                         **fields)
    exp = base[method]
    out = {}
    for eps in (epsilons if epsilons is not None else s["epsilons"]):
        eps = None if eps is None or float(eps) == float("inf") else float(eps)
        extra = {} if dp_max_grad_norm is None or eps is None else {
            "dp_max_grad_norm": float(dp_max_grad_norm)}
        out[eps] = (exp if eps is None and not extra
                    else Experiment(exp.cfg.replace(dp_epsilon=eps, **extra)))
    return out


@dataclass
class PrivacyEnsembles:
    """Chapter 6's ensemble test: one design per privacy level on the same pairs (``levels``,
    ε → design, no DP first), and the ε = ∞ regimes tried for one that memorizes (``regimes``)."""

    levels: dict
    regimes: dict


def privacy_ensembles(profile: str, **fields) -> PrivacyEnsembles:
    """The profile's ``privacy_ensembles``: its level designs and its regimes tried (designs
    of ``ensembles``). The level designs must share pool, membership and seeds, so that each
    complementary pair is one paired observation across ε; their ``dp_epsilon`` is checked."""
    s = settings(profile)
    p = s.get("privacy_ensembles") or {}
    if not p.get("levels"):
        raise SSLMemError(f"profile {profile!r} names no privacy ensembles (privacy_ensembles)")
    names = [name for _, name in p["levels"]] + list(p.get("regimes", []))
    found = ensembles(profile, names=names, **fields)
    missing = [n for n in names if n not in found]
    if missing:
        raise SSLMemError(f"profile {profile!r}: privacy_ensembles names designs it lacks: "
                          f"{missing}")
    levels = {}
    for eps, name in p["levels"]:
        eps = None if eps is None or float(eps) == float("inf") else float(eps)
        d = found[name]
        if d.ensemble.exp.cfg.dp_epsilon != eps:
            raise SSLMemError(f"design {name!r} trains at ε = {d.ensemble.exp.cfg.dp_epsilon}, "
                              f"not the ε = {eps} it stands for")
        levels[eps] = d
    first = next(iter(levels.values())).ensemble
    for d in levels.values():
        e = d.ensemble
        if not (np.array_equal(e.pool, first.pool) and e.options() == first.options()):
            raise SSLMemError(f"design {d.name!r} does not share the first level's pool, halves "
                              "and seeds: the levels would not be paired")
    return PrivacyEnsembles(levels, {n: found[n] for n in p.get("regimes", [])})
