"""How much do two per-point scores agree, once their noise is accounted for?

Why this module: chapters 2, 3 and 5 compare per-point scores (memorization against
atypicality, one method's memorization against another's, SSLMem against Déjà vu). Each score
is estimated from an ensemble and is noisy, so an observed correlation is attenuated by
sqrt(rel_a · rel_b) and a null from unreliable scores says nothing. Every comparison here is
therefore reported three ways: the observed correlation with its test, the reliabilities of
both scores, and the **disattenuated** correlation (the correlation of the true scores) with a
bootstrap interval over points and encoder splits.

The disattenuated value is estimated from split halves, which also removes noise the two
scores share: the encoders are split into two random halves of whole groups (complementary
pairs), each score is estimated on each half, and

    r_true = mean(corr(a₁, b₂), corr(a₂, b₁)) / sqrt(corr(a₁, a₂) · corr(b₁, b₂)).

The numerator correlates halves that share no encoder and no membership draw, so neither
shared encoders (two measures from one supervised ensemble) nor a shared membership matrix
(two methods trained on the same random halves) can create agreement; the denominator is the
half-ensembles' reliability (Spearman 1904, on split halves).

The *observed* correlation is the full ensembles' only where the two scores share no
membership draw. Where they do (two methods trained on the same halves, two measures of one
ensemble), the full estimates share the composition effect and correlate even where the true
scores do not, so the observed value and its test come from the same disjoint halves as the
numerator above (cross-fitting); ``observed`` says which, and ``r_full`` keeps the other.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.errors import SSLMemError
from sslmem.score.reliability import CENTER, _corr, _corr_rows, ensemble_estimate, spearman_brown

STATISTICS = ("m", "out")  # m: mean without x − mean with x; out: mean without x


@dataclass(frozen=True)
class PointScore:
    """A per-point score: per-encoder values reduced over an ensemble, or a fixed measure.

    ``values`` (M, N) and ``inside`` (M, N): the per-encoder quantity and the membership;
    ``groups`` (M,): encoder groups a split keeps together (the complementary pair of a
    member); ``statistic``: "m" (mean over encoders without x − mean over encoders with x,
    SSLMem and Feldman–Zhang) or "out" (mean over encoders without x: held-out error, i.e.
    1 − consistency); ``sign`` flips the direction. A fixed score (``fixed``, a vector) has
    no encoder noise: both its halves are the score itself, its reliability 1.
    """

    name: str
    positions: np.ndarray
    values: np.ndarray | None = None
    inside: np.ndarray | None = None
    groups: np.ndarray | None = None
    statistic: str = "m"
    sign: float = 1.0
    fixed: np.ndarray | None = None

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise SSLMemError(f"statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.fixed is None and (self.values is None or self.inside is None):
            raise SSLMemError(f"score {self.name!r} needs per-encoder values and membership, "
                              "or a fixed vector")

    @property
    def labels(self) -> np.ndarray:
        """The encoder group labels (empty for a fixed score)."""
        if self.fixed is not None:
            return np.array([], dtype=int)
        groups = np.arange(len(self.values)) if self.groups is None else self.groups
        return np.unique(groups)

    def estimate(self, labels=None) -> np.ndarray:
        """The score per point from the encoders whose group is in ``labels`` (all: None)."""
        if self.fixed is not None:
            return np.asarray(self.fixed, float)
        groups = np.arange(len(self.values)) if self.groups is None else np.asarray(self.groups)
        keep = np.ones(len(groups), bool) if labels is None else np.isin(groups, labels)
        est = ensemble_estimate(self.values[keep], self.inside[keep])
        column = est.m if self.statistic == "m" else est.L_out
        return self.sign * column.to_numpy()

    def align(self, positions) -> PointScore:
        """This score restricted to (and ordered by) ``positions``."""
        index = pd.Index(self.positions).get_indexer(positions)
        if (index < 0).any():
            raise SSLMemError(f"score {self.name!r} lacks {int((index < 0).sum())} of the points")
        pick = lambda a: None if a is None else np.asarray(a)[..., index]  # noqa: E731
        return PointScore(self.name, np.asarray(positions), pick(self.values), pick(self.inside),
                          self.groups, self.statistic, self.sign, pick(self.fixed))


def from_ensemble(name: str, ens, *, column: str | None = None, statistic: str = "m",
                  sign: float = 1.0, center: bool | None = None, subset: str = "pool",
                  members=None) -> PointScore:
    """A :class:`PointScore` from an :class:`~sslmem.pipeline.ensemble.Ensemble`'s complete pairs.

    ``column``: the stored column (default: the alignment loss at all K pairs, centred per
    member on its placebo mean as the precision chapter does, which gives SSLMem). A
    supervised ensemble's label measures come from :func:`label_scores`.
    """
    members = ens.complete_members() if members is None else members
    if len(members) < 2:
        raise SSLMemError(f"{name}: needs at least one complete pair of stored members, "
                          f"found {len(members)}")
    center = (CENTER and column is None) if center is None else center
    values, inside, got, positions = ens.matrices(subset, column=column, members=members,
                                                  center=center)
    return PointScore(name, positions, values, inside, ens.pair_groups(got), statistic, sign)


def label_scores(ens, *, subset: str = "pool", members=None) -> dict[str, PointScore]:
    """A supervised ensemble's literature measures as scores: Feldman–Zhang label
    memorization (accuracy with x − without x) and atypicality = 1 − held-out consistency
    (the C-score estimator's complement: error rate of the models without x)."""
    members = ens.complete_members() if members is None else members
    acc, inside, got, positions = ens.matrices(subset, column="correct", members=members)
    groups = ens.pair_groups(got)
    error = 1.0 - acc
    return {"label memorization": PointScore("label memorization", positions, error, inside,
                                             groups, "m"),
            "1 − consistency": PointScore("1 − consistency", positions, error, inside, groups,
                                          "out")}


def _true_r(a1, a2, b1, b2, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(r_true, cross) for every row of the four (R, N) half estimates: the disattenuated
    correlation (NaN where a half-reliability is not positive) and its numerator, the
    cross-fitted correlation of halves that share no encoder and no membership draw."""
    raa, rbb = _corr_rows(a1, a2, how), _corr_rows(b1, b2, how)
    cross = np.stack([_corr_rows(a1, b2, how), _corr_rows(a2, b1, how)])
    with warnings.catch_warnings():  # both cross terms undefined: NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        cross = np.nanmean(cross, axis=0)
        r_true = np.where((raa > 0) & (rbb > 0), cross / np.sqrt(np.abs(raa * rbb)), math.nan)
    return r_true, cross


def agreements(scores: dict[str, PointScore], pairs, *, how: str = "spearman",
               n_splits: int = 100, n_boot: int = 1000, seed: int = 0,
               level: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement of each pair of scores, on the points all of them share.

    Returns (table, replicates): one row per pair with the observed correlation ``r`` (full
    ensembles) and its p-value, both reliabilities (Spearman–Brown from the halves), the
    disattenuated ``r_true`` with its interval, and the classical correction
    r / sqrt(rel_a · rel_b) for comparison; ``replicates`` holds every pair's bootstrap
    replicates of ``r_true`` and ``r`` drawn on the *same* resampled points and splits, so
    that two agreements can be compared by their paired difference (:func:`difference`).

    Every replicate resamples the points and draws a fresh random split of the encoder
    groups, so the interval covers which points were scored and how the encoders fell. Where
    more than (1 − level)/2 of the replicates have a half without positive reliability, the
    data cannot bound the true correlation: ``r_true`` and its interval are NaN.
    """
    pairs = [tuple(p) for p in pairs]
    names = sorted({n for p in pairs for n in p})
    missing = [n for n in names if n not in scores]
    if missing:
        raise SSLMemError(f"unknown score(s) {missing}; known: {sorted(scores)}")
    common = None
    for n in names:
        pos = pd.Index(scores[n].positions)
        common = pos if common is None else common.intersection(pos, sort=False)
    if common is None or len(common) < 4:
        raise SSLMemError("the scores share fewer than 4 points: nothing to correlate")
    aligned = {n: scores[n].align(common.to_numpy()) for n in names}
    labels = np.unique(np.concatenate([aligned[n].labels for n in names]))
    if len(labels) < 2 and any(aligned[n].fixed is None for n in names):
        raise SSLMemError("agreement needs at least two encoder groups to split")
    rng = np.random.default_rng(seed)
    full = {n: aligned[n].estimate() for n in names}
    halves = []  # per split: {name: (half one, half two)}
    for _ in range(n_splits):
        perm = rng.permutation(labels)
        h = len(perm) // 2
        one, two = perm[:h], perm[h:2 * h]
        halves.append({n: (aligned[n].estimate(one), aligned[n].estimate(two)) for n in names})
    n = len(common)
    boot_rows = np.array([rng.integers(0, n, n) for _ in range(n_boot)]).reshape(n_boot, n)
    boot_split = rng.integers(0, n_splits, n_boot)
    # every split's halves stacked (n_splits, N), and as each replicate draws them (n_boot, N)
    stacked = {name: [np.stack([s[name][j] for s in halves]) for j in (0, 1)]
               for name in names}
    drawn = {name: [h[boot_split[:, None], boot_rows] for h in stacked[name]]
             for name in names}
    rows, reps = [], {}
    q = [(1 - level) / 2, (1 + level) / 2]
    for a, b in pairs:
        shared = shares_membership(aligned[a], aligned[b])
        r_full = _corr(full[a], full[b], how)
        test = (stats.spearmanr if how == "spearman" else stats.pearsonr)(
            *(np.nan_to_num(v) for v in (full[a], full[b])))
        (a1, a2), (b1, b2) = stacked[a], stacked[b]
        raa = float(np.nanmean(_corr_rows(a1, a2, how)))
        rbb = float(np.nanmean(_corr_rows(b1, b2, how)))
        cross = np.nanmean([_corr_rows(a1, b2, how), _corr_rows(a2, b1, how)])
        r_true = (cross / math.sqrt(raa * rbb)) if raa > 0 and rbb > 0 else math.nan
        rel_a = 1.0 if aligned[a].fixed is not None else float(spearman_brown(raa, 2))
        rel_b = 1.0 if aligned[b].fixed is not None else float(spearman_brown(rbb, 2))
        boot_true, boot_cross = _true_r(*drawn[a], *drawn[b], how)
        undefined = float(np.mean(~np.isfinite(boot_true)))
        lo, hi = (np.nanquantile(boot_true, q) if undefined < (1 - level) / 2
                  else (math.nan, math.nan))  # too many replicates without a positive half
        if not np.isfinite(lo):  # no interval: the point estimate is not reported either
            r_true = math.nan
        # a true correlation lies in [-1, 1]; the ratio estimator can leave it by noise
        clipped = bool(np.isfinite(r_true) and max(abs(r_true), abs(lo), abs(hi)) > 1)
        r_true, lo, hi = (float(np.clip(v, -1, 1)) for v in (r_true, lo, hi))
        if shared:  # the full ensembles share their composition: only disjoint halves test
            r, boot_r, p = float(cross), boot_cross, _boot_p(boot_cross)
        else:
            r, p = r_full, float(test[1])
            boot_r = _corr_rows(full[a][boot_rows], full[b][boot_rows], how)
        r_lo, r_hi = np.nanquantile(boot_r, q)
        rows.append({"a": a, "b": b, "points": n, "r": r, "r_low": float(r_lo),
                     "r_high": float(r_hi), "p": p, "observed": (
                         "cross-fitted" if shared else "full ensembles"),
                     "shared_membership": shared, "r_full": r_full, "rel_a": rel_a,
                     "rel_b": rel_b, "r_true": r_true, "r_true_low": lo, "r_true_high": hi,
                     "r_true_clipped": clipped, "undefined_share": undefined,
                     "r_corrected": (r_true if shared else r / math.sqrt(rel_a * rel_b)
                                     if rel_a > 0 and rel_b > 0 else math.nan)})
        reps[f"{a} | {b}"] = np.clip(boot_true, -1, 1)  # a true correlation lies in [-1, 1]
        reps[f"{a} | {b} (observed)"] = boot_r
    return pd.DataFrame(rows), pd.DataFrame(reps)


def shares_membership(a: PointScore, b: PointScore) -> bool:
    """Whether two ensemble scores trained any encoder group on the same draw of halves.

    Why: two methods (or two measures of one ensemble) on the same membership draw share the
    composition effect (which of x's neighbours each encoder saw), so their full-ensemble
    estimates correlate even where the true scores do not (the placebo: +0.22 on the laptop
    store). Only estimates from disjoint draws can test their agreement."""
    if a.fixed is not None or b.fixed is not None:
        return False
    draws = {np.packbits(row).tobytes() for row in np.asarray(a.inside, bool)}
    return any(np.packbits(row).tobytes() in draws for row in np.asarray(b.inside, bool))


def _boot_p(boot) -> float:
    """Two-sided bootstrap p-value of "no correlation" from replicates of a correlation."""
    d = np.asarray(boot, float)
    d = d[np.isfinite(d)]
    if len(d) < 20:
        return math.nan
    return float(max(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))), 1 / len(d)))


def agreement(a: PointScore, b: PointScore, **kw) -> dict:
    """:func:`agreements` of one pair, as a dict."""
    table, _ = agreements({a.name: a, b.name: b}, [(a.name, b.name)], **kw)
    return table.iloc[0].to_dict()


def difference(replicates: pd.DataFrame, first: str, second: str,
               level: float = 0.95) -> dict:
    """Paired bootstrap difference of two agreements (columns of :func:`agreements`'
    replicates, e.g. "simclr | byol" − "simclr | supervised"): estimate, interval, and the
    two-sided bootstrap p-value of "no difference"; NaN where either agreement is undefined
    in more than (1 − level)/2 of the replicates."""
    d = (replicates[first] - replicates[second]).to_numpy()
    finite = np.isfinite(d)
    d = d[finite]
    # as for r_true: where too many replicates are undefined the data cannot bound it
    if len(d) < 20 or finite.mean() < 1 - (1 - level) / 2:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "p": math.nan}
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return {"difference": float(np.median(d)), "low": float(lo), "high": float(hi),
            "p": float(max(p, 1 / len(d)))}


def top_overlap(a, b, k: int) -> dict:
    """Share of the top-``k`` points of score ``a`` that are also in the top-``k`` of ``b``,
    its chance level k/N and the hypergeometric p-value of an overlap at least this large."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = len(a)
    if not 0 < k < n:
        raise SSLMemError(f"top-k needs 0 < k < {n} points, got k={k}")
    top_a, top_b = set(np.argsort(-a)[:k]), set(np.argsort(-b)[:k])
    shared = len(top_a & top_b)
    return {"k": int(k), "overlap": shared / k, "chance": k / n,
            "p": float(stats.hypergeom.sf(shared - 1, n, k, k))}


def top_overlap_cross(a: PointScore, b: PointScore, k: int, *, n_splits: int = 50,
                      n_perm: int = 200, seed: int = 0) -> dict:
    """Top-``k`` overlap of two ensemble scores from disjoint halves of their encoder groups.

    Why: two scores on one membership draw share its composition noise, so their full
    ensembles' top sets overlap beyond chance even where the true scores are unrelated (the
    placebo: 9 of 25 where 5 are expected). Each split takes a's top-k from one half of the
    groups and b's from the other (and vice versa); ``overlap`` is the mean share, ``p`` a
    permutation test that shuffles the points of b's halves (same splits)."""
    common = pd.Index(a.positions).intersection(pd.Index(b.positions), sort=False).to_numpy()
    a, b = a.align(common), b.align(common)
    n = len(common)
    if not 0 < k < n:
        raise SSLMemError(f"top-k needs 0 < k < {n} points, got k={k}")
    labels = np.union1d(a.labels, b.labels)
    if len(labels) < 2:
        raise SSLMemError("a cross-fitted overlap needs at least two encoder groups")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_splits):
        perm = rng.permutation(labels)
        h = len(perm) // 2
        one, two = perm[:h], perm[h:2 * h]
        pairs += [(a.estimate(one), b.estimate(two)), (a.estimate(two), b.estimate(one))]
    top_a = np.stack([_top(x, k) for x, _ in pairs])
    ys = np.stack([y for _, y in pairs])
    observed = float((top_a & np.stack([_top(y, k) for y in ys])).sum(1).mean() / k)
    null = np.empty(n_perm)
    for i in range(n_perm):
        shuffled = ys[:, rng.permutation(n)]
        null[i] = (top_a & np.stack([_top(y, k) for y in shuffled])).sum(1).mean() / k
    return {"k": int(k), "overlap": observed, "chance": k / n,
            "p": float((1 + np.sum(null >= observed)) / (1 + n_perm))}


def _top(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest finite values of x."""
    mask = np.zeros(len(x), bool)
    mask[np.argsort(-np.nan_to_num(x, nan=-np.inf))[:k]] = True
    return mask
