"""Comparing two per-point score vectors: top-k overlap, rank agreement, bootstrap intervals.

Why a module: chapter 3's first design compared methods on one f/g pair each; these are the
plain comparisons (the noise-corrected ones live in :mod:`sslmem.score.agreement`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.errors import SSLMemError


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two score vectors over the same points: pandas Series align on their index."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise SSLMemError(f"score vectors must be 1-D over the same points; got shapes "
                          f"{a.shape} and {b.shape}")
    return a, b


def topk_overlap(a, b, k: int = 100) -> float:
    """Fraction of the k highest-scored points of ``a`` that are also in ``b``'s top k.

    The follow-up's [LM] Table 3 metric (reported there in %). Jaccard of the two top-k sets is
    o / (2 - o) for overlap o. Ties break by position (stable); k is clipped to the number of
    points.
    """
    a, b = _aligned(a, b)
    k = min(k, len(a))
    if k < 1:
        raise SSLMemError("topk_overlap needs k >= 1 and at least one point")
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return len(np.intersect1d(top_a, top_b)) / k


def rank_agreement(a, b) -> dict:
    """Kendall's tau (with p, as [LM] Table 3) and Spearman's rho (with p) between two scorings."""
    a, b = _aligned(a, b)
    tau = stats.kendalltau(a, b)
    rho = stats.spearmanr(a, b)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue), "n": len(a)}


def bootstrap_agreement(frame: pd.DataFrame, groups: dict[str, list[tuple[str, str]]],
                        k: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Mean top-k overlap and Kendall's tau over groups of column pairs, with bootstrap CIs.

    Why: "SSL methods agree with each other more than with supervised learning" is a claim
    about two averages over pairs of rankings of the same points; whether their difference is
    more than noise needs an uncertainty. Points (rows of ``frame``) are resampled with
    replacement ``n_boot`` times; in each resample every pair's overlap (k scaled to the
    resample's distinct points) and tau are recomputed and averaged within each group.

    Returns:
        One row per group and one for each difference ``a − b`` of the first two groups:
        estimate on all points, bootstrap 2.5 % and 97.5 % quantiles, for overlap and tau,
        with the chance level of the overlap (k / n) and of tau (0).
    """
    rng = np.random.default_rng(seed)
    n = len(frame)
    values = {c: frame[c].to_numpy(np.float64) for c in frame.columns}

    def group_means(rows: np.ndarray) -> dict[str, tuple[float, float]]:
        out = {}
        for name, pairs in groups.items():
            overlaps, taus = [], []
            for a, b in pairs:
                x, y = values[a][rows], values[b][rows]
                overlaps.append(topk_overlap(x, y, k=k))
                taus.append(stats.kendalltau(x, y).statistic)
            out[name] = (float(np.nanmean(overlaps)), float(np.nanmean(taus)))
        return out

    point = group_means(np.arange(n))
    boots = [group_means(rng.integers(0, n, n)) for _ in range(n_boot)]
    names = list(groups)
    rows = []

    def add(label: str, est: tuple[float, float], samples: list[tuple[float, float]],
            chance: tuple[float, float]) -> None:
        s = np.asarray(samples)
        lo, hi = np.nanquantile(s, 0.025, axis=0), np.nanquantile(s, 0.975, axis=0)
        rows.append({"comparison": label, "overlap": est[0], "overlap_lo": lo[0],
                     "overlap_hi": hi[0], "overlap_chance": chance[0], "tau": est[1],
                     "tau_lo": lo[1], "tau_hi": hi[1], "tau_chance": chance[1]})

    for name in names:
        add(name, point[name], [b[name] for b in boots], (min(k, n) / n, 0.0))
    if len(names) >= 2:
        a, b = names[:2]
        diff = tuple(point[a][i] - point[b][i] for i in range(2))
        add(f"{a} − {b}", diff, [tuple(x[a][i] - x[b][i] for i in range(2)) for x in boots],
            (0.0, 0.0))
    return pd.DataFrame(rows)
