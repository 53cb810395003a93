"""The units of work the book needs for a profile: what each computes, reads and depends on.

Why units: GPU time comes in slices (a lent GPU for 10-minute commands that keep nothing but the
files they send back; a cluster's job limit; a preemptible cloud VM). A unit is the smallest
piece whose output is only small files: one f/g pair trained, scored and analysed while both
encoders exist, one ensemble member, or one chapter-4 retrain and its probes. Each unit writes its
results into the store atomically when it completes, so any sequence of machines adds up to the
whole book. Listing them computes nothing; running them is ``sslmem.pipeline.plan``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sslmem.errors import SSLMemError, one_line
from sslmem.io import computed_on
from sslmem.pipeline import chapters
from sslmem.pipeline.costs import (
    INFERENCE_SPEEDUP,
    INT8_SCORING_SPEEDUP,
    _device_kind,
    _pair_cost,
    _rate,
    _trained_seconds,
)
from sslmem.pipeline.encoders import snapshot_epochs
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.store import (
    CorruptResult,
    MissingResult,
    lock,
    results_root,
)


@dataclass
class Unit:
    """One unit of work: runs ``work(results_only=False)``; stored when ``work(True)`` succeeds."""

    name: str
    chapters: list[str]
    kind: str  # "pair" (f and g trained and scored) or "retrain"
    exp: Experiment
    work: Callable[[bool], object]
    depends: list[str] = field(default_factory=list)
    images: int = 0  # training images x epochs x encoders
    scored: int = 0  # views pushed through frozen encoders
    counts: tuple[str, ...] = ()  # result-name prefixes that are this unit's own (() = all)
    optional: bool = False  # an ensemble member: the book renders from however many are stored
    reads: list[Experiment] = field(default_factory=list)  # whose stores it fills (default: exp)

    def stored(self) -> bool:
        """All of the unit's results are in the store and pass their hashes (computes nothing)."""
        return self.state() == "yes"

    def state(self) -> str:
        """'yes' (every result stored), 'no' (some missing) or 'damaged' (one is stored but
        fails its hash or cannot be parsed: ``run`` recomputes it, with a warning)."""
        try:
            return "no" if self._served() is None else "yes"
        except CorruptResult:
            return "damaged"

    def _served(self) -> list[Experiment] | None:
        """The views that served every result of the unit from the store, or None if one is
        missing (``sources`` of each view: what it served). Raises CorruptResult."""
        views = _views_of(self)
        for view in views:
            view.sources.clear()
        try:
            self.work(True)
        except MissingResult:
            return None
        return views

    def measured(self) -> tuple[float, str] | None:
        """(minutes, device) its stored results took to compute, or None if any is missing.

        From the results' own provenance, so it is the real cost on the machine that ran the
        unit, however many runs it took. Training is counted from the encoders' histories (the
        seconds of every epoch, kept with the checkpoint), not from the wall time of the result
        that needed the encoder: that result may have found the encoder in the run cache and
        taken no time for it. Each encoder is counted once, at the larger of the two.

        Raises:
            CorruptResult: a result is stored but damaged.
        """
        views = self._served()
        if views is None:
            return None
        seconds, devices, trained = 0.0, set(), {}
        for view in views:
            for name, prov in view.sources.items():
                if self.counts and not name.startswith(self.counts):
                    continue
                wall = prov.get("wall_s") or {}
                training = {k[len("train "):]: float(v) for k, v in wall.items()
                            if k.startswith("train ") and isinstance(v, (int, float))}
                seconds += max(0.0, float(wall.get("total", 0.0)) - sum(training.values()))
                for encoder, spent in [*training.items(), *_trained_seconds(view, name)]:
                    key = (view.store_dir, encoder)
                    trained[key] = max(trained.get(key, 0.0), spent)
                devices.add(computed_on(prov))
        return (seconds + sum(trained.values())) / 60, ", ".join(sorted(devices))

    def run(self) -> float:
        """Compute and store what is missing; returns the wall seconds."""
        t0 = time.perf_counter()
        with lock(self.exp.store_dir.parent / ".locks" / f"unit-{self.name}.lock"):
            self.work(False)
        return time.perf_counter() - t0

    def estimate_s(self, rates: dict | None = None, kind: str | None = None) -> float:
        """Estimated seconds on this machine's device, or on an H100 with ``kind='cuda'``
        (rates measured in stored histories where available)."""
        rate = _rate(self.exp, rates, kind)
        frozen = _rate(self.exp, rates, kind, dp=False) * INFERENCE_SPEEDUP
        if self.exp.cfg.score_precision == "int8" and (kind or _device_kind(self.exp)) == "cpu":
            frozen *= INT8_SCORING_SPEEDUP
        return self.images / rate + self.scored / frozen + 10.0


def _pair_unit(name: str, chapter: str, exp: Experiment, products: list[Callable],
               epoch_points: int | None = None) -> Unit:
    def work(results_only: bool):
        view = _view(exp, results_only)
        for product in products:
            product(view)

    images, scored = _pair_cost(exp, epoch_points)
    return Unit(name=name, chapters=[chapter], kind="pair", exp=exp, work=work, images=images,
                scored=scored)


def _views_of(unit: Unit) -> list[Experiment]:
    return [_view(e, True) for e in (unit.reads or [unit.exp])]


def _view(exp: Experiment, results_only: bool) -> Experiment:
    """The same experiment reading only the store (``results_only``) or computing.

    The view is kept on ``exp`` itself, not in a table keyed by ``id(exp)``: an id is reused once
    its object is freed, and a later experiment (another store) was then served a stale view.
    """
    if exp.results_only == results_only:
        return exp
    views = exp.__dict__.setdefault("_views", {})
    if results_only not in views:
        views[results_only] = Experiment(exp.cfg.replace(results_only=results_only))
    return views[results_only]


def _ensemble_view(ens, results_only: bool):
    """The same ensemble on ``_view(ens.exp, results_only)``."""
    from sslmem.pipeline.ensemble import Ensemble

    return Ensemble(_view(ens.exp, results_only), **ens.options())


def _history(exp: Experiment) -> None:
    for seed in exp.cfg.seeds:
        exp.history("f", seed), exp.history("g", seed)


def book_units(profile: str, **runtime) -> list[Unit]:
    """Every unit the book's chapters need for ``profile``, in a sensible order.

    ``runtime``: Config runtime fields for every experiment (device, data_root, runs_root,
    results_root). Units shared by chapters (e.g. chapter 1's SimCLR pair is chapter 3's)
    appear once, with all their products.
    """
    units: dict[str, Unit] = {}
    by_key: dict[str, Unit] = {}

    def add(unit: Unit, products: list[Callable]) -> None:
        key = f"{unit.exp.store_dir}"
        if key in by_key:  # the same experiment: merge the products into the first unit
            first = by_key[key]
            first.chapters = sorted(set(first.chapters) | set(unit.chapters))
            old = first.work

            def merged(results_only: bool, old=old, products=products, exp=unit.exp):
                old(results_only)
                view = _view(exp, results_only)
                for product in products:
                    product(view)

            first.work = merged
            return
        units[unit.name] = by_key[key] = unit

    # chapters 1-2
    exp, s = chapters.definition(profile, **runtime)
    products = [lambda e: e.scores(), _history,
                lambda e, n=s["epoch_points"]: e.scores_over_epochs(max_points=n)]
    add(_pair_unit(f"01-{exp.cfg.method}", "01", exp, products, s["epoch_points"]), products)
    # chapters 2 and 3 rank points by ensembles: their members are listed below
    # chapter 5 attacks the ranking ensemble's members: its `dv-…` units are listed below
    # chapter 6: one pair per privacy level (the no-DP one may be chapter 3's)
    caps = chapters.probe_caps(profile)
    for eps, e in chapters.privacy(profile, **runtime).items():
        products = [lambda e: e.scores(), _history, lambda e: e.probe("f", **caps)]
        add(_pair_unit(f"06-eps-{chapters.eps_label(eps).replace('∞', 'inf')}", "06", e,
                       products), products)
    # chapter 4: the single-pair lambda sweep (the removal experiment is listed below)
    g = chapters.alignment(profile, **runtime)
    for lam, e in g.lambdas.items():
        products = [lambda e: e.scores(), _history, lambda e: e.probe("f", **caps)]
        add(_pair_unit("04-score" if lam == g.scored.cfg.align_lambda else f"04-lambda-{lam:g}",
                       "04", e, products), products)
    # the precision chapter: one unit per ensemble member (anytime: none is required)
    for unit in ensemble_units(profile, **runtime):
        units[unit.name] = unit
    # chapter 4 on the ensemble ranking: the pilot probes, then three arms per seed
    for unit in removal_units(profile, **runtime):
        units[unit.name] = unit
    data = _data_unit(profile, list(units.values()), runtime)
    return [*([data] if data else []), *units.values()]


def _data_unit(profile: str, units: list[Unit], runtime: dict) -> Unit | None:
    """The data cards of every (dataset, image size) the units use, holding the images that
    chapters 1 and 2 show (:mod:`sslmem.pipeline.datacard`): what renders the book where the
    data is absent. Computing it loads each dataset once; it trains nothing. None where no
    dataset of the profile can be absent (``digits`` ships with scikit-learn)."""
    from sslmem.pipeline import datacard

    groups: dict[tuple, Experiment] = {}
    for unit in units:
        for e in unit.reads or [unit.exp]:
            if datacard.can_be_absent(e.cfg.dataset):
                groups.setdefault((e.cfg.dataset, e.cfg.image_size), e)
    if not groups:
        return None
    first = next(iter(groups.values()))

    def work(results_only: bool):
        if results_only:
            for e in groups.values():
                datacard.require(_view(e, True))
            return
        shown: dict[tuple, dict] = {}
        ch1, _ = chapters.definition(profile, **runtime)
        ssl, _ = chapters.ranking(profile, **runtime)
        for e, train, test in ((ch1, ("shared", "candidate", "independent"), ("extra",)),
                               (ssl.ensemble.exp, ("candidate",), ("extra",))):
            got = shown.setdefault((e.cfg.dataset, e.cfg.image_size), {"train": [], "test": []})
            got["train"] += [p for s in train for p in getattr(e.split, s)]
            got["test"] += [p for s in test for p in getattr(e.split, s)]
        for key, e in groups.items():
            datacard.ensure(_view(e, False), shown.get(key, {}))
        if chapters.settings(profile).get("removal"):
            setup = chapters.removal(profile, **runtime)
            for name in setup.probe_sets:
                if name != setup.exp.cfg.dataset:
                    datacard.mark_available(first.cfg.results_root, profile, name,
                                            "probed", first.provenance(wall={}))

    return Unit(name=f"data-{first.cfg.dataset}", chapters=["01", "02"], kind="data",
                exp=first, work=work, reads=list(groups.values()))


def removal_units(profile: str, **runtime) -> list[Unit]:
    """Chapter 4's removal experiment (optional units: the page reports the seeds stored).

    ``probe-…-jjj`` probes member j of the ranking ensemble or of its regularized twin (the
    encoder from the run cache),
    ``rm-…-<arm>-<k>-s<seed>`` pre-trains the pool minus k points and probes it; seeds come
    round-robin over the arms so that a budget that stops early leaves complete pairs.
    """
    if not chapters.settings(profile).get("removal"):
        return []
    r = chapters.removal(profile, **runtime)
    name, ens = r.design.name, r.design.ensemble
    members = [f"ens-{name}-{j:03d}" for j in range(r.rank_members)]
    probes = sum(2 * (r.max_train or 10_000) for _ in r.probe_sets)
    exp = ens.exp
    steps = max(1, (len(ens.pool) - r.k) // exp.cfg.batch_size)  # fit's steps per epoch
    units = [_removal_unit(f"probe-{name}-{j:03d}", lambda view, j=j: view.probe_member(j),
                           r, [members[j]], 0, probes) for j in range(r.rank_members)]
    if r.regularized is not None:
        reg = r.regularized.name
        units += [_removal_unit(f"probe-{reg}-{j:03d}",
                                lambda view, j=j: view.probe_member(j, view.regularized), r,
                                [f"ens-{reg}-{j:03d}"], 0, probes,
                                reads=[r.regularized.ensemble.exp])
                  for j in range(r.regularized.members)]
    for seed in r.seeds:
        for arm in ("top", "random", "bottom"):
            units.append(_removal_unit(
                f"rm-{name}-{arm}-{r.k}-s{seed}", lambda view, a=arm, s=seed: view.run(a, s), r,
                members, exp.cfg.epochs * steps * exp.cfg.batch_size, probes))
    return units


def _removal_unit(name: str, product: Callable, r, depends: list[str], images: int,
                  scored: int, reads: list[Experiment] | None = None) -> Unit:
    def work(results_only: bool):
        def viewed(design):
            return None if design is None else chapters.EnsembleDesign(
                design.name, _ensemble_view(design.ensemble, results_only), design.members)

        product(dataclasses.replace(r, design=viewed(r.design),
                                    regularized=viewed(r.regularized)))

    return Unit(name=name, chapters=["04"], kind="retrain", exp=r.design.ensemble.exp,
                work=work, depends=depends, optional=True, counts=("retrain-",),
                images=images, scored=scored, reads=reads or [])


def ensemble_units(profile: str, **runtime) -> list[Unit]:
    """One unit per planned ensemble member (and per repeat of members 0 and 1), ordered so
    that every design gets its members round-robin: a budget that stops early still leaves
    each design with a comparable ensemble."""
    designs = chapters.ensembles(profile, planned=True, **runtime)
    uses = chapters.design_chapters(profile)
    jobs = []
    for d in designs.values():
        jobs += [(j, d, j, 0) for j in range(d.members)]
        jobs += [(d.members + r * 2 + j, d, j, r + 1) for r in range(d.repeats) for j in (0, 1)]
    jobs.sort(key=lambda job: job[0])
    units = [_member_unit(d, j, repeat, uses.get(d.name, ["07"])) for _, d, j, repeat in jobs]
    votes = set((chapters.settings(profile).get("ranking") or {}).get("dejavu", []))
    return units + [_dejavu_unit(d, j) for _, d, j, repeat in jobs
                    if d.name in votes and not repeat]


def _dejavu_unit(design: chapters.EnsembleDesign, j: int) -> Unit:
    """Member j's Déjà vu votes on the pool (chapter 5): its encoder from the run cache (the
    member unit's; retrained from its seed on a machine without it)."""
    ens = design.ensemble

    def work(results_only: bool):
        from sslmem.pipeline.dejavu_ensemble import member_votes

        member_votes(_ensemble_view(ens, results_only), j)

    exp = ens.exp
    n_public = len(exp.test) - len(ens.placebo)
    return Unit(name=f"dv-{design.name}-{j:03d}", chapters=["05"], kind="dejavu", exp=exp,
                work=work, depends=[f"ens-{design.name}-{j:03d}"], optional=True,
                counts=("dvmember-",), scored=len(ens.pool) + n_public)


def _member_unit(design: chapters.EnsembleDesign, j: int, repeat: int,
                 chapter_list=("07",)) -> Unit:
    ens = design.ensemble

    def work(results_only: bool):
        _ensemble_view(ens, results_only).member(j, repeat)

    exp = ens.exp
    n_in = int(ens.membership(j).sum())
    n_scored = len(ens.pool) + len(ens.placebo)
    monitor = (min(n_in, exp.cfg.monitor_points) + min(len(exp.test), exp.cfg.monitor_points))
    name = f"ens-{design.name}-{j:03d}" + (f"-r{repeat}" if repeat else "")
    return Unit(name=name, chapters=list(chapter_list), kind="member", exp=exp, work=work,
                images=exp.cfg.epochs * n_in, optional=True, counts=("member-",),
                scored=n_scored * exp.cfg.n_pairs * 2 + len(snapshot_epochs(exp.cfg.epochs))
                * monitor)


def select(units: list[Unit], names) -> list[Unit]:
    """The units named in ``names`` (comma-separated or a list), in plan order."""
    if not names:
        return units
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    known = {u.name: u for u in units}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SSLMemError(f"unknown unit(s) {', '.join(unknown)}; this profile's units: "
                          + ", ".join(known))
    return [u for u in units if u.name in names]


def complete_profiles(why: dict | None = None, **runtime) -> list[str]:
    """The profiles whose every unit is stored, best first.

    ``why``, if given, receives for each profile with a folder in the store that is not
    complete the reason in one line (its dataset is missing here, or units are missing).
    """
    from sslmem.pipeline import datacard
    from sslmem.pipeline.config import PROFILES, Config

    done = []
    why = {} if why is None else why
    root = results_root(runtime.get("results_root"))
    for profile in PROFILES:
        if not (root / profile).is_dir():
            continue  # nothing stored: no need to load its datasets to know
        dataset = Config.for_profile(profile).dataset
        missing = chapters.available(dataset, runtime.get("data_root"))
        cards = root / profile / datacard.slug(dataset) / datacard.FOLDER
        if missing and not cards.is_dir():  # the keys of its results hash the data itself
            why[profile] = (f"its results are keyed by the {dataset} data, which is not here "
                            f"and not described by data cards in the store: {missing}")
            continue
        try:  # reading only: where the data is absent, the data cards stand in for it
            units = book_units(profile, **{**runtime, "results_only": True})
        except SSLMemError as err:
            why[profile] = one_line(err)
            continue
        # ensemble members are optional: the book renders from however many are stored
        absent = [u.name for u in units if not u.optional and not u.stored()]
        if absent:
            why[profile] = (f"{len(absent)} of its {len(units)} units are not stored "
                            f"({', '.join(absent[:4])}{', ...' if len(absent) > 4 else ''})")
        else:
            done.append(profile)
    return done


# ---- the command line --------------------------------------------------------------------------
