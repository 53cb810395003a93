"""Chapter 4 on reliable scores: does removing the most memorized points hurt more than random?

The paper's title claim (Sec. 4.4, Fig. 3, Tab. 3): pre-training without the points SSLMem
ranks most memorized lowers downstream accuracy more than removing as many random points. Why
this design:

- **The ranking is the ensemble's** (chapter 7's chosen design on its pool), from a fixed set
  of members (``rank_members``), so the removed sets never move when more members are stored.
- **Three arms, paired seeds.** Each seed pre-trains on the pool without its top-k, without k
  random points (drawn per seed) and without its bottom-k, with the same recipe and the same
  seed (initialization and augmentation stream) in every arm; the follow-up paper's
  dose-response for units is top < random < bottom. The paired differences top − random and
  random − bottom cancel what a seed does to every arm alike.
- **Power from measured variance.** The SD of accuracy across the ranking ensemble's own
  members (same recipe and initialization, other data) is measured before the experiment (the
  pilot), and the SD of the paired differences after it; both give the smallest difference the
  design could detect (paired t, α = 0.05, power 0.8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from sslmem.errors import SSLMemError
from sslmem.pipeline.store import MissingResult

ARMS = ("top", "random", "bottom")
METRICS = ("linear", "knn")


@dataclass
class Removal:
    """The removal experiment on one ensemble design's pool (``design``: an EnsembleDesign)."""

    design: object
    k: int
    seeds: list[int]
    rank_members: int
    probe_sets: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    max_train: int | None = None
    max_test: int | None = None
    regularized: object = None  # the same design with the alignment regularizer (or None)

    @property
    def exp(self):
        return self.design.ensemble.exp

    # ---- the ranking and the arms --------------------------------------------------------------
    def ranking(self) -> pd.DataFrame:
        """The pool's ensemble scores (position, m, se), most memorized first, from members
        0 … rank_members − 1 (all must be stored: the removed sets depend on them)."""
        ens = self.design.ensemble
        members = list(range(self.rank_members))
        have = set(ens.stored_members())
        absent = [j for j in members if j not in have]
        if absent:
            raise MissingResult(
                f"the removal ranking needs members 0-{self.rank_members - 1} of ensemble "
                f"{self.design.name!r}; {len(absent)} are not stored (first: {absent[0]}); "
                f"compute them with `sslmem plan --profile {self.exp.cfg.profile} --run`")
        frame = ens.scores("pool", members=members)[["position", "m", "se"]]
        return frame.sort_values(["m", "position"], ascending=[False, True],
                                 ignore_index=True)

    def reliability(self, n_splits: int = 100, n_boot: int = 300) -> dict:
        """Split-half reliability of the ranking (members 0 … rank_members − 1, centred as the
        scores are): how well the removed sets are told apart from the rest.

        ``reliability`` splits the encoders only; where every encoder scored the same view
        pairs, ``across_views`` (with ``across_low``, ``across_high``) also scores the halves
        on different view pairs (first and second half of them), counting the views' per-point
        luck as error as an all-facet design does (NaN with fewer than 2 view pairs)."""
        from sslmem.score.facets import view_blocks
        from sslmem.score.reliability import split_half

        ens = self.design.ensemble
        members = list(range(self.rank_members))
        L, inside, found, _ = ens.matrices("pool", members=members, center=True)
        groups = ens.pair_groups(found)
        out = split_half(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
        k = ens.exp.cfg.n_pairs
        out["across_views"] = out["across_low"] = out["across_high"] = math.nan
        if ens.views == "shared" and k >= 2:
            half = ens.matrices("pool", k=k // 2, members=members, center=True)[0]
            first, second = view_blocks(half, L, k // 2, k)
            across = split_half(first, inside, groups=groups, n_splits=n_splits,
                                n_boot=n_boot, L_other=second)
            out["across_views"], out["across_low"], out["across_high"] = (
                across["reliability"], across["low"], across["high"])
        return out

    def keep(self, arm: str, seed: int, ranking: pd.DataFrame | None = None) -> np.ndarray:
        """Pool positions pre-trained on in ``arm`` for ``seed`` (the pool minus k points)."""
        if arm not in ARMS:
            raise SSLMemError(f"arm must be one of {ARMS}, got {arm!r}")
        order = (self.ranking() if ranking is None else ranking).position.to_numpy()
        if arm == "top":
            removed = order[: self.k]
        elif arm == "bottom":
            removed = order[len(order) - self.k:]
        else:
            removed = np.random.default_rng([self.k, seed, 4]).choice(order, self.k,
                                                                     replace=False)
        return np.setdiff1d(order, removed)

    def tag(self, arm: str) -> str:
        return f"rm-{arm}-{self.k}"

    def run(self, arm: str, seed: int, ranking: pd.DataFrame | None = None) -> dict:
        """The stored (or computed: pre-trained and probed) record of one arm and seed."""
        return self.exp.retrain(self.keep(arm, seed, ranking), seed=seed, tag=self.tag(arm),
                                probe_sets=self.probe_sets, max_train=self.max_train,
                                max_test=self.max_test)

    def probe_member(self, j: int, design=None) -> dict:
        """Member j of ``design`` (default: the ranking ensemble) probed like an arm: its
        encoder from the run cache (the member unit's), the same probe sets and caps.

        On the ranking ensemble these are the pilot of the power calculation (same recipe,
        init and seed as the arms, another part of the pool); on the regularized design,
        member j differs from the ranking's member j only in λ (same half, same seed)."""
        ens = (design or self.design).ensemble
        return ens.exp.retrain(ens.pool[ens.membership(j)], seed=ens.seed(j), tag=f"ens{j}",
                               probe_sets=self.probe_sets, max_train=self.max_train,
                               max_test=self.max_test)

    # ---- what is stored, as tables ------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """One row per stored arm, seed and probe set: linear and kNN accuracy."""
        ranking = self.ranking()
        rows = []
        for seed in self.seeds:
            for arm in ARMS:
                try:
                    record = self.run(arm, seed, ranking)
                except MissingResult:
                    continue
                rows += _rows(record, arm=arm, seed=seed)
        return pd.DataFrame(rows, columns=["arm", "seed", "probe", "n_pretrain", *METRICS])

    def member_table(self, design=None, members=None) -> pd.DataFrame:
        """One row per probed member of ``design`` (default: the ranking's first
        ``rank_members``) and probe set, the stored ones."""
        design = design or self.design
        rows = []
        for j in range(self.rank_members) if members is None else members:
            try:
                rows += _rows(self.probe_member(j, design), member=j)
            except MissingResult:
                continue
        return pd.DataFrame(rows, columns=["member", "probe", "n_pretrain", *METRICS])


def _rows(record: dict, **ids) -> list[dict]:
    return [{**ids, "probe": name, "n_pretrain": record["n_pretrain"],
             **{m: float(p[m]) for m in METRICS}} for name, p in record["probes"].items()]


# ---- the analysis ------------------------------------------------------------------------------
def paired(table: pd.DataFrame, a: str, b: str, metric: str = "linear",
           level: float = 0.95) -> pd.DataFrame:
    """Per probe set: the paired difference a − b over the seeds both arms hold (mean, SD,
    t interval, paired t-test p, n), in accuracy points (×100)."""
    rows = []
    for probe, t in table.groupby("probe", sort=False):
        wide = t.pivot(index="seed", columns="arm", values=metric)
        if a not in wide or b not in wide:
            continue
        d = (wide[a] - wide[b]).dropna().to_numpy() * 100
        row = dict(probe=probe, contrast=f"{a} − {b}", **differences(d, level))
        rows.append(row)
    return pd.DataFrame(rows)


def differences(d, level: float = 0.95) -> dict:
    """Paired differences ``d``: n, mean, SD, t interval and one-sample t-test p (NaN where
    fewer than two, or all equal)."""
    d = np.asarray(d, float)
    n = len(d)
    out = dict(n=n, mean=float(d.mean()) if n else math.nan, sd=math.nan, lo=math.nan,
               hi=math.nan, p=math.nan)
    if n >= 2:
        sd = float(np.round(d, 9).std(ddof=1))  # equal differences: exactly 0, no test
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, lo=out["mean"] - half, hi=out["mean"] + half,
                   p=float(stats.ttest_1samp(d, 0.0).pvalue) if sd > 0 else math.nan)
    return out


def power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test with n pairs to see a true mean difference
    ``effect`` when the differences have SD ``sd`` (non-central t)."""
    if n < 2 or not sd > 0:
        return math.nan
    df, nc = n - 1, effect / (sd / math.sqrt(n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    with np.errstate(all="ignore"):
        p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    return p if math.isfinite(p) else 1.0  # scipy's nct gives NaN far out in the tail


def detectable(sd: float, n: int, target: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true difference a paired t-test with n pairs detects with power
    ``target`` (same units as ``sd``)."""
    if n < 2 or not sd > 0:
        return math.nan
    hi = sd
    while power(hi, sd, n, alpha) < target:
        hi *= 2
    return float(optimize.brentq(lambda e: power(e, sd, n, alpha) - target, 0.0, hi))


def pairs_needed(effect: float, sd: float, target: float = 0.8, alpha: float = 0.05,
                 most: int = 10_000) -> int:
    """Seeds (pairs) a paired t-test needs to detect ``effect`` with power ``target``."""
    for n in range(2, most + 1):
        if power(effect, sd, n, alpha) >= target:
            return n
    return most


def pilot_sd(pilot: pd.DataFrame, metric: str = "linear") -> pd.DataFrame:
    """Per probe set: the SD of accuracy (points) across members and the SD of a difference
    of two independent such encoders (√2 ×): the pilot's upper bound for the paired SD."""
    rows = []
    for probe, t in pilot.groupby("probe", sort=False):
        sd = float(t[metric].std(ddof=1) * 100) if len(t) > 1 else math.nan
        rows.append(dict(probe=probe, members=len(t), mean=float(t[metric].mean() * 100),
                         sd=sd, sd_diff=sd * math.sqrt(2)))
    return pd.DataFrame(rows)
