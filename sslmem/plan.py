"""The run plan: every unit of work the book needs for a profile, its cost, whether it is stored.

Why units: GPU time comes in slices (a lent GPU for 10-minute commands that keep nothing but the
files they send back; a cluster's job limit; a preemptible cloud VM). A unit is the smallest
piece whose output is only small files: one f/g pair trained, scored and analysed while both
encoders exist, or one chapter-4 retrain and its probes. Each unit writes its results into the
store atomically when it completes, so any sequence of machines (or a scheduler's array of
processes sharing the store) adds up to the whole book, and ``make book`` renders it anywhere.

    sslmem plan --profile paper                        # list units, cost here, stored or not
    sslmem plan --profile laptop --run --budget-minutes 9   # run what fits, in order
    sslmem plan --profile paper --emit-commands | xargs -P 4 -I{} sh -c {}   # in parallel
    sslmem plan --profile paper --run --executor slurm --partition gpu   # a SLURM job array
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sslmem import chapters
from sslmem.errors import SSLMemError, one_line
from sslmem.experiment import Experiment, snapshot_epochs
from sslmem.io import computed_on, location
from sslmem.store import (
    CorruptResult,
    MissingResult,
    lock,
    read_frame,
    read_record,
    results_root,
)

# Training throughput in images per second (one image = all of its views through the method),
# at 32 px, before anything was measured on this machine. ``cuda``: an H100 (NOTES.md: SimCLR
# ResNet-18 bf16 + channels_last + compile 61k img/s; the other methods scaled by their CPU
# ratios). ``cpu``: per core, measured with one thread per process on an Intel Xeon with native
# bf16 (2026-11-23, ResNet-9, batch 128; MAE on ViT-Tiny with 64 patches); without native bf16
# a CPU step is ~0.55x that (benchmarks/cpu.py). Once a unit has run on a device, the rates
# measured in its stored histories replace these estimates.
REFERENCE_RATES = {
    "cuda": {"simclr": 61000, "byol": 40000, "simsiam": 45000, "dino": 13000, "mae": 20000,
             "vicreg": 23000, "barlowtwins": 29000, "supervised": 80000},
    "cpu": {"simclr": 238, "byol": 162, "simsiam": 181, "dino": 55, "mae": 84, "vicreg": 90,
            "barlowtwins": 115, "supervised": 460},
}
BACKBONE_FACTOR = {  # throughput relative to the reference backbone of each table
    "cuda": {"resnet18": 1.0, "resnet9": 2.0, "resnet34": 0.5, "resnet50": 0.35,
             "vit_tiny": 1.0, "vit_small": 0.4},
    "cpu": {"resnet9": 1.0, "resnet18": 0.35, "resnet34": 0.18, "resnet50": 0.12,
            "vit_tiny": 1.0, "vit_small": 0.4},
}
REFERENCE_TOKENS = {"cuda": 256, "cpu": 64}  # ViT patches of each table's MAE rate
DP_SLOWDOWN = {"cuda": 5.0, "cpu": 2.5}  # DP-SGD's per-sample gradients (tests/test_privacy)
INFERENCE_SPEEDUP = 6.0  # frozen one-view forwards per training step of one image (2 views x 3)
# int8 scoring (sslmem.quantize) over the fp32 scorer, its quantization included: 1,653 against
# 949 views/s on a 2-core AVX2 EPYC (benchmarks/unit.py, 2026-11-29)
INT8_SCORING_SPEEDUP = 1.7


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


_HISTORY = re.compile(r"^history-(?P<encoder>[fg]-seed\d+)$")


def _trained_seconds(view: Experiment, name: str) -> list[tuple[str, float]]:
    """(encoder, training seconds) that stored result ``name`` records: a history's epochs, or
    a chapter-4 retrain's ``train_seconds``; [] for other results."""
    try:
        if match := _HISTORY.match(name):
            found = read_frame(view.store_dir / f"{name}.csv.gz")
            if found is not None and "seconds" in found[0]:
                return [(match["encoder"], float(found[0]["seconds"].sum()))]
        elif name.startswith("retrain-"):
            found = read_record(view.store_dir / f"{name}.json")
            if found is not None and isinstance(found[0], dict):
                record = found[0]
                return [(f"{record.get('tag')}-seed{record.get('seed')}",
                         float(record.get("train_seconds") or 0.0))]
    except (SSLMemError, TypeError, ValueError):
        pass  # the result itself was served: a cost estimate never stops a listing
    return []


def _device_kind(exp: Experiment) -> str:
    return "cuda" if exp.device.type == "cuda" else "cpu"


def _rate(exp: Experiment, measured: dict | None, kind: str | None = None,
          dp: bool = True) -> float:
    """Training images/s of ``exp`` here (or on ``kind``); ``dp=False``: as if without DP-SGD
    (the speed of its frozen forward passes). Measured rates of this device and CPU model come
    first; a rate recorded before provenance named the CPU model serves when none does."""
    c = exp.cfg
    here = kind is None or kind == _device_kind(exp)
    matches = {(device, cpu): rate
               for (device, cpu, method, backbone, size), rate in (measured or {}).items()
               if (method, backbone, size) == (c.method, c.backbone, exp.train.image_size)}
    if here:
        where = location(exp.device)
        device, cpu = where["device"], where["cpu"]
        for wanted in ((device, cpu), (device, None)):
            if wanted in matches:
                return matches[wanted]
    else:
        for (device, _), rate in matches.items():
            if "H100" in str(device):
                return rate
    kind = kind or _device_kind(exp)
    rate = REFERENCE_RATES[kind].get(c.method, 50.0)
    rate *= BACKBONE_FACTOR[kind].get(c.backbone, 1.0)
    if c.backbone.startswith("vit"):
        from sslmem.backbones import default_patch_size

        size = exp.train.image_size
        tokens = (size // (c.patch_size or default_patch_size(size))) ** 2
        rate *= REFERENCE_TOKENS[kind] / tokens
    else:
        rate *= (32 / exp.train.image_size) ** 2
    if dp and c.dp_epsilon is not None:
        rate /= DP_SLOWDOWN[kind]
    if kind == "cpu":  # the CPU references were measured in bf16 on a host where it is native
        from sslmem.calibrate import cpu_has_native_bf16

        rate *= 1.0 if c.precision == "bf16" and cpu_has_native_bf16() else 0.55
    return rate


def measured_rates(units: list[Unit]) -> dict:
    """Training images/s per (device, CPU model, method, backbone, size): the median over the
    stored histories, each one encoder's rate. Why the median of rates, not pooled seconds: a
    few members trained beside other work (4 BYOL members at 22-31 min where 10 later ones
    took 10.5) pulled a pooled estimate 45 % above what a unit takes on the idle host."""
    rates: dict = {}
    seen = set()
    for unit in units:
        exp = unit.exp
        if exp.store_dir in seen or not exp.store_dir.exists():
            continue
        seen.add(exp.store_dir)
        for path in exp.store_dir.glob("history-*.csv.gz"):
            try:
                found = read_frame(path)
            except SSLMemError:
                continue
            if found is None or found[0].empty:
                continue
            frame, meta = found
            prov = meta.get("provenance", {})
            cfg = prov.get("config") or {}
            seconds = float(frame["seconds"].sum())
            if seconds <= 0:
                continue
            key = (prov.get("device"), prov.get("cpu"), cfg.get("method"), cfg.get("backbone"),
                   exp.train.image_size)
            rates.setdefault(key, []).append(_train_size(exp, path.name) * len(frame) / seconds)
    return {k: statistics.median(v) for k, v in rates.items()}


def _train_size(exp: Experiment, name: str) -> int:
    if name.startswith("history-f-"):
        return len(exp.split.f_train)
    if name.startswith("history-g-"):
        return len(exp.split.g_train)
    if name.startswith("history-ens"):  # an ensemble member: its half of the pool
        return (len(exp.split.candidate) + 1) // 2
    return len(exp.split.candidate)  # a retrain of chapter 4 (about the scored half)


def _pair_cost(exp: Experiment, epoch_points: int | None = None) -> tuple[int, int]:
    c, split = exp.cfg, exp.split
    seeds = len(c.seeds)
    images = c.epochs * seeds * (len(split.f_train) + len(split.g_train))
    n_scored = sum(len(getattr(split, s)) for s in ("shared", "candidate", "independent",
                                                     "extra"))
    scored = n_scored * c.n_pairs * 2 * 2 * seeds
    monitor = (min(len(split.f_train), 10_000) + len(exp.test)) * 2
    snaps = len(snapshot_epochs(c.epochs))
    scored += snaps * monitor
    if epoch_points:
        scored += snaps * 4 * min(epoch_points, n_scored) * c.n_pairs * 2 * 2
    return images, scored


def _pair_unit(name: str, chapter: str, exp: Experiment, products: list[Callable],
               epoch_points: int | None = None) -> Unit:
    def work(results_only: bool):
        view = _view(exp, results_only)
        for product in products:
            product(view)

    images, scored = _pair_cost(exp, epoch_points)
    return Unit(name=name, chapters=[chapter], kind="pair", exp=exp, work=work, images=images,
                scored=scored)


_VIEWS: dict[tuple, Experiment] = {}


def _views_of(unit: Unit) -> list[Experiment]:
    return [_view(e, True) for e in (unit.reads or [unit.exp])]


def _view(exp: Experiment, results_only: bool) -> Experiment:
    """The same experiment reading only the store (``results_only``) or computing."""
    if exp.results_only == results_only:
        return exp
    key = (id(exp), results_only)
    if key not in _VIEWS:
        _VIEWS[key] = Experiment(exp.cfg.replace(results_only=results_only))
    return _VIEWS[key]


def _ensemble_view(ens, results_only: bool):
    """The same ensemble on ``_view(ens.exp, results_only)``."""
    from sslmem.ensemble import Ensemble

    return Ensemble(_view(ens.exp, results_only), fraction=ens.fraction,
                    shared_init=ens.shared_init, membership_seed=ens.membership_seed)


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
    return list(units.values())


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
    designs = chapters.ensembles(profile, **runtime)
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
        from sslmem.dejavu_ensemble import member_votes

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
    from sslmem.config import PROFILES, Config

    done = []
    why = {} if why is None else why
    root = results_root(runtime.get("results_root"))
    for profile in PROFILES:
        if not (root / profile).is_dir():
            continue  # nothing stored: no need to load its datasets to know
        dataset = Config.for_profile(profile).dataset
        missing = chapters.available(dataset, runtime.get("data_root"))
        if missing:  # checked first: the keys of its results hash the data itself
            why[profile] = (f"its results are keyed by the {dataset} data, which is not here: "
                            f"{missing}")
            continue
        try:
            units = book_units(profile, **runtime)
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

def _table(units: list[Unit], state: dict, rates: dict) -> str:
    wn = max([28, *(len(u.name) for u in units)])  # columns as wide as their longest entry
    wc = max([9, *(len(",".join(u.chapters)) for u in units)])
    lines = [f"{'unit':{wn}} {'chapters':{wc}} {'kind':8} {'est. min':>8} {'on H100':>8}  "
             "stored   measured"]
    for u in units:
        last = u.measured() if state[u.name] == "yes" else None
        when = f"{last[0]:.1f} min on {last[1]}" if last else ""
        lines.append(f"{u.name:{wn}} {','.join(u.chapters):{wc}} {u.kind:8} "
                     f"{u.estimate_s(rates) / 60:8.1f} {u.estimate_s(rates, 'cuda') / 60:8.1f}"
                     f"  {state[u.name]:7}  {when}")
    return "\n".join(lines)


def unit_command(profile: str, name: str, options: dict, *, fresh: bool = False) -> list[str]:
    """The ``sslmem`` arguments that run unit ``name`` as this plan would run it.

    The one place that decides them, for ``--emit-commands`` and for ``--jobs``: every option
    that chooses where the unit reads and writes (data, run cache, results store, a fresh
    store's staging folder via ``--fresh``) or what it runs on (device). Paths are absolute, so
    a scheduler may start the command in another folder.
    """
    args = ["plan", "--profile", profile, "--run", "--units", name]
    if options.get("device") not in (None, "auto"):
        args += ["--device", str(options["device"])]
    for key in ("data_root", "runs_root", "results_root"):
        if options.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(Path(options[key]).expanduser().absolute())]
    return args + (["--fresh"] if fresh else [])


_RUNNING: list[str] = []  # units in progress (here or in child processes), for an interruption


def resume_text() -> str:
    """How to go on after ``sslmem plan`` was interrupted (names the units it interrupted)."""
    if _RUNNING:
        return (f"interrupted unit(s): {', '.join(_RUNNING)} (stopped, nothing half-written); "
                "rerun the same command to resume them (finished units are stored, training "
                "resumes from its last checkpoint)")
    return "rerun the same command to resume (finished units are stored)"


def _fresh_root(profile: str, root: Path) -> Path:
    return root / f".fresh-{profile}"


def _swap_in(profile: str, root: Path, staging: Path, log) -> None:
    """Replace ``root/profile`` by the fresh store computed in ``staging`` (old one kept aside)."""
    new, target = staging / profile, root / profile
    old = root / f".previous-{profile}"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"fresh store of {profile} swapped in at {target} (the previous one is at {old} until "
        "the next --fresh run)")


def run_plan(profile: str, *, run: bool = False, budget_minutes: float | None = None,
             names=None, emit: bool = False, fresh: bool = False, jobs: int = 1, log=None,
             executor=None, **runtime) -> int:
    """List (and with ``run``, execute) the units of ``profile``; returns an exit code.

    ``jobs > 1`` or ``executor`` (:class:`sslmem.executors.Settings`): the missing units run
    through submitit, as local processes or SLURM array tasks (:mod:`sslmem.executors`).
    """
    log = log or (lambda *a: print(*a, flush=True))
    options = dict(runtime)  # as given: what a unit's own command repeats
    root = results_root(runtime.get("results_root"))
    if fresh:
        runtime["results_root"] = str(_fresh_root(profile, root))
    units = book_units(profile, **runtime)
    chosen = select(units, names)
    rates = measured_rates(units)
    state = {u.name: u.state() for u in chosen}
    stored = {name: value == "yes" for name, value in state.items()}
    missing = [u for u in chosen if not stored[u.name]]
    damaged = [u.name for u in chosen if state[u.name] == "damaged"]
    what = "unit(s) asked for" if names else "unit(s)"
    device = computed_on(location(chosen[0].exp.device)) if chosen else "?"
    if emit:
        for stage, group in ((1, [u for u in missing if not u.depends]),
                             (2, [u for u in missing if u.depends])):
            if group:
                log(f"# stage {stage}: {len(group)} independent unit(s)"
                    + ("" if stage == 1 else " (each waits for its stage-1 dependency)"))
            for u in group:
                log(shlex.join(["sslmem", *unit_command(profile, u.name, options, fresh=fresh)]))
        return 0
    log(f"profile {profile}: {len(chosen)} {what}, {sum(stored.values())} stored; estimates "
        f"for {device}{' (fresh store: ' + runtime['results_root'] + ')' if fresh else ''}")
    log(_table(chosen, state, rates))
    if damaged:
        log(f"damaged: {', '.join(damaged)} (a stored result fails its hash; --run recomputes "
            "it)")
    if not run:
        total = sum(u.estimate_s(rates) for u in missing) / 60
        if missing:
            log(f"missing: {len(missing)} of the {len(chosen)} {what}, about {total:.0f} min "
                f"here; run them with `sslmem plan --profile {profile} --run"
                f"{' --units ' + ','.join(u.name for u in missing) if names else ''}`")
        elif names:
            log(f"every unit asked for is stored ({len(chosen)} of the profile's {len(units)}; "
                f"`sslmem plan --profile {profile}` lists them all)")
        else:
            log("every unit is stored: `make book` renders the book from them")
        return 0
    budget = None if budget_minutes is None else budget_minutes * 60
    spent = 0.0
    left = []
    if jobs > 1 or executor is not None:
        from sslmem.executors import run_units

        spent, queued = run_units(profile, missing, runtime, jobs=jobs, settings=executor,
                                  log=log, running=_RUNNING, budget_s=budget,
                                  estimate=lambda u: u.estimate_s(rates), left=left)
        if queued:  # SLURM array tasks not waited for: the store tells when they are done
            return 0
    for u in missing if jobs <= 1 and executor is None else []:
        estimate = u.estimate_s(rates)
        if budget is not None and (left or spent + estimate > budget):
            left.append(u)
            continue
        log(f"running {u.name} (estimate {estimate / 60:.1f} min) ...")
        _RUNNING[:] = [u.name]
        seconds = u.run()
        _RUNNING.clear()
        spent += seconds
        log(f"  {u.name} stored in {seconds / 60:.1f} min")
    if left:
        log(f"budget reached after {spent / 60:.1f} min; left: "
            + ", ".join(u.name for u in left))
    else:
        log(f"all {len(chosen)} {what} stored ({spent / 60:.1f} min this run)")
        if fresh and names is None:
            _swap_in(profile, root, Path(runtime["results_root"]), log)
    return 0


def main(argv=None) -> int:
    from sslmem import executors
    from sslmem.config import FIELDS, PROFILES
    from sslmem.validate import (
        OneLineParser,
        check_fields,
        name_list,
        positive_float,
        positive_int,
    )

    parser = OneLineParser(
        prog="sslmem plan", description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Results go to the store ($SSLMEM_RESULTS, default <repo>/results); encoders to "
        "$SSLMEM_RUNS.")
    parser.add_argument("--profile", required=True, choices=PROFILES)
    parser.add_argument("--run", action="store_true", help="execute the missing units in order")
    parser.add_argument("--budget-minutes", type=positive_float, default=None,
                        help="with --run: stop before the first unit that would not fit")
    parser.add_argument("--units", type=name_list, default=None,
                        help="comma-separated unit names (default: all)")
    parser.add_argument("--emit-commands", action="store_true",
                        help="print one independent command per missing unit (for a scheduler)")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="with --run: units run in this many processes at once (submitit's "
                        "local executor; each with cores/jobs threads; on a CPU, --jobs 2 uses "
                        "two cores best)")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every unit into a fresh store, swapped in when complete")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-root", default=None)
    parser.add_argument("--results-root", default=None)
    executors.add_arguments(parser)
    args = parser.parse_args(argv)
    runtime = {k: v for k, v in dict(device=args.device, data_root=args.data_root,
                                     runs_root=args.runs_root,
                                     results_root=args.results_root).items() if v is not None}
    try:
        runtime = check_fields(runtime, FIELDS)  # one line for a bad --device, before any data
        return run_plan(args.profile, run=args.run, budget_minutes=args.budget_minutes,
                        names=args.units, emit=args.emit_commands, fresh=args.fresh,
                        jobs=args.jobs, executor=executors.settings_from(args), **runtime)
    except SSLMemError as err:
        print(f"sslmem plan: error: {err}", file=sys.stderr)
        return 2
    # Ctrl-C and signals: ``sslmem.errors.command_line`` prints one line with ``resume_text``
