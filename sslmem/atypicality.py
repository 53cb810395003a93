"""Chapter 2's question on reliable scores: are atypical points the memorized ones?

Why a module: the paper shows it with image grids (Fig. 1); the literature measures
atypicality with held-out consistency (the C-score estimator, Jiang et al. 2021) and label
memorization (Feldman and Zhang 2020), both estimated from supervised models trained on random
subsets. Here a supervised ensemble on the same pool and membership matrix as the SSL ensemble
gives both, so the SSLMem ranking and the atypicality measures are compared point by point,
each with its measured precision (:mod:`sslmem.agreement`). Nothing here trains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.agreement import agreements, from_ensemble, label_scores
from sslmem.ensemble import Ensemble, label_memorization
from sslmem.precision import detectable_correlation

SSLMEM = "SSLMem"
MEASURES = ("1 − consistency", "label memorization")  # the literature's atypicality measures


def point_table(ssl: Ensemble, supervised: Ensemble) -> pd.DataFrame:
    """One row per pool and placebo point: the SSLMem estimate (m, se) of the SSL ensemble and
    the supervised ensemble's atypicality (1 − consistency) and label memorization, with the
    columns the image grids and the explorer need (subset, position, index, label).

    The placebo (test images nobody trained on) is listed as subset "extra", as in chapter 1.
    """
    exp = ssl.exp
    frames = []
    for subset, data, code in (("pool", exp.train, "candidate"), ("placebo", exp.test, "extra")):
        est = ssl.scores(subset, members=ssl.complete_members())
        lab = label_memorization(supervised, subset, members=supervised.complete_members())
        frame = est[["position", "m", "se", "n_in", "n_out"]].merge(
            lab[["position", "label_mem", "label_mem_se", "consistency"]], on="position",
            how="left")
        pos = frame.position.to_numpy().copy()  # writable: torch indexes with it
        frame.insert(0, "subset", code)
        frame.insert(2, "index", np.asarray(data.index)[pos])
        frame.insert(3, "label", data.labels[pos].numpy())
        frame["atypicality"] = 1.0 - frame.consistency
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fit_accuracy(supervised: Ensemble) -> float:
    """Accuracy of the supervised models on their own training images. Where it is 1,
    Feldman–Zhang label memorization (accuracy with x − without x) *is* 1 − consistency."""
    long = supervised.table(supervised.complete_members())
    return float(long[(long.subset == "pool") & long.inside].correct.mean())


def scores(ssl: Ensemble, supervised: Ensemble, subset: str = "pool") -> dict:
    """The three per-point scores of ``subset`` as :class:`~sslmem.agreement.PointScore`s."""
    out = {SSLMEM: from_ensemble(SSLMEM, ssl, subset=subset)}
    out.update(label_scores(supervised, subset=subset))
    return out


def agreement_table(ssl: Ensemble, supervised: Ensemble, *, how: str = "spearman",
                    n_splits: int = 100, n_boot: int = 1000) -> pd.DataFrame:
    """SSLMem against each atypicality measure, on the pool and (the control) on the placebo.

    Columns as :func:`sslmem.agreement.agreements`, plus ``subset`` and ``detectable``: the
    smallest true correlation this design detects with 80 % power at α = 0.05, given the
    measured reliabilities (what a null here can and cannot rule out).
    """
    frames = []
    for subset in ("pool", "placebo"):
        found = scores(ssl, supervised, subset)
        # on the placebo the membership is fake: only its held-out error is a measure there
        measures = MEASURES if subset == "pool" else MEASURES[:1]
        table, _ = agreements(found, [(SSLMEM, m) for m in measures], how=how,
                              n_splits=n_splits, n_boot=n_boot)
        table.insert(0, "subset", subset)
        table["detectable"] = [detectable_correlation(int(r.points), r.rel_a, r.rel_b)
                               for r in table.itertuples()]
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def verdict(row, alpha: float = 0.01) -> str:
    """Plain words for one pool row of :func:`agreement_table` (the paper: ρ > 0)."""
    r, p, lo, hi = row["r"], row["p"], row["r_true_low"], row["r_true_high"]
    if p < alpha and r > 0:
        return (f"held: ρ = {r:+.2f} (p = {p:.1g}), true-score ρ = {row['r_true']:+.2f} "
                f"[{lo:+.2f}, {hi:+.2f}]")
    if p < alpha and r < 0:
        return (f"reversed: ρ = {r:+.2f} (p = {p:.1g}), the opposite of the paper's direction")
    power = row.get("detectable", math.nan)
    if np.isfinite(power) and power < 1:
        return (f"not detected: ρ = {r:+.2f} (p = {p:.2g}); with these reliabilities the "
                f"design detects a true ρ of {power:.2f} or more (80 % power), so a weaker "
                "relation is not ruled out")
    return (f"undecidable: ρ = {r:+.2f} (p = {p:.2g}), but the measures are too unreliable "
            "for this design to detect even a perfect true correlation")


def control(row, alpha: float = 0.01) -> str:
    """Plain words for a placebo row: SSLMem's true value is 0 there, so any significant
    correlation would come from the estimator, not from memorization."""
    r, p = row["r"], row["p"]
    if p < alpha:
        return (f"FAILED: on the placebo, whose true SSLMem is zero, ρ = {r:+.2f} (p = {p:.1g}): "
                "the pool's correlation may be an artefact of the estimator")
    return (f"passed: on the placebo, whose true SSLMem is zero, ρ = {r:+.2f} "
            f"[{row['r_low']:+.2f}, "
            f"{row['r_high']:+.2f}] (p = {p:.2g})")
