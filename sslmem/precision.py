"""The precision chapter's analyses: one summary per ensemble design, its curves, the one pair.

Why a module: the book's page, the tests and later chapters (which disattenuate their per-point
statistics by the reliabilities measured here) need the same numbers from the same stored
members. Everything is read from the results store; nothing here trains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.ensemble import Ensemble, label_memorization
from sslmem.reliability import (
    contrast,
    ensemble_estimate,
    members_needed,
    reliability_curve,
    retest_correlation,
    split_half,
    true_spread,
)
from sslmem.store import read_frame

TARGET = 0.8  # the reliability a per-point ranking should reach (0.7 at the least)
# Alignment losses are centred per encoder on its placebo mean (Ensemble.matrices): measured on
# the laptop store's first pairs, this removed 2-25 % of the placebo's variance (most with shared
# initialization) and none of the contrast; chapter 7 shows both SDs for every design.
CENTER = True


def encoder_minutes(ens: Ensemble, members, repeat: int = 0) -> float:
    """Minutes the stored members took: training (their histories) plus scoring."""
    exp = ens.exp
    total = 0.0
    for j in members:
        tag = f"ens{j}" if not repeat else f"ens{j}r{repeat}"
        name = exp._history_name(tag, ens.seed(j, repeat), ens.pool[ens.membership(j)])
        found = read_frame(exp.store_dir / f"{name}.csv.gz")
        if found is not None:
            total += float(found[0]["seconds"].sum())
        ens.member(j, repeat)
        prov = exp.sources.get(ens.member_name(j, repeat), {})
        total += float((prov.get("wall_s") or {}).get("score", 0.0))
    return total / 60


def summarize(name: str, ens: Ensemble, *, column: str | None = None, n_splits: int = 200,
              n_boot: int = 400) -> dict:
    """One design's row: members, cost, the in/out contrast, reliability (pool and placebo),
    the true between-point SD of self-memorization, and what reaching ``TARGET`` would take."""
    members = ens.stored_members()
    cfg = ens.exp.cfg
    row = {"design": name, "method": cfg.method, "epochs": cfg.epochs,
           "pool": len(ens.pool), "fraction": ens.fraction, "shared_init": ens.shared_init,
           "members": len(members), "K": cfg.n_pairs}
    if len(members) < 2:
        return row
    minutes = encoder_minutes(ens, members)
    row["minutes_per_encoder"] = minutes / len(members)
    for subset in ("pool", "placebo"):
        L, inside, got, _ = ens.matrices(subset, column=column, members=members,
                                         center=CENTER and column is None)
        est = ensemble_estimate(L, inside)
        c = contrast(est.m)
        row[f"{subset}_mean"], row[f"{subset}_t"], row[f"{subset}_p"] = c["mean"], c["t"], c["p"]
        spread = true_spread(est.m, est.se)
        row[f"{subset}_sd"], row[f"{subset}_sd_low"], row[f"{subset}_sd_high"] = (
            spread["sd"], spread["low"], spread["high"])
        groups = ens.pair_groups(got)
        if len(np.unique(groups)) >= 2:
            rel = split_half(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
            row[f"{subset}_rel"], row[f"{subset}_rel_low"], row[f"{subset}_rel_high"] = (
                rel["reliability"], rel["low"], rel["high"])
            rho = split_half(L, inside, groups=groups, n_splits=n_splits // 2, n_boot=2,
                             how="spearman")
            row[f"{subset}_rel_spearman"] = rho["reliability"]
    if column is None:  # what centring on the placebo did to the placebo's noise
        raw = ensemble_estimate(*ens.matrices("placebo", members=members)[:2]).m
        row["placebo_sd_uncentred"] = float(np.nanstd(raw, ddof=1))
        L, inside, _, _ = ens.matrices("placebo", members=members, center=CENTER)
        row["placebo_sd_observed"] = float(np.nanstd(ensemble_estimate(L, inside).m, ddof=1))
    rel = row.get("pool_rel", math.nan)
    need = members_needed(rel, len(members), TARGET) if np.isfinite(rel) else math.inf
    row["members_for_target"] = need
    row["hours_for_target_2cores"] = need * row["minutes_per_encoder"] / 60
    return row


def summary_table(designs: dict[str, Ensemble], **kw) -> pd.DataFrame:
    """:func:`summarize` for every design (rows in the given order)."""
    return pd.DataFrame([summarize(name, ens, **kw) for name, ens in designs.items()])


def curves(ens: Ensemble, *, n_splits: int = 60, n_boot: int = 200) -> pd.DataFrame:
    """Reliability against M for the pool and the placebo (stored members only)."""
    members = ens.stored_members()
    if len(members) < 4:
        return pd.DataFrame()
    frames = []
    for subset in ("pool", "placebo"):
        L, inside, got, _ = ens.matrices(subset, members=members, center=CENTER)
        groups = ens.pair_groups(got)
        if len(np.unique(groups)) < 2:
            continue
        curve = reliability_curve(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
        curve.insert(0, "subset", subset)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def k_curve(ens: Ensemble, *, n_splits: int = 100, n_boot: int = 200) -> pd.DataFrame:
    """Reliability of the full ensemble against K, the augmentation pairs per point."""
    members = ens.stored_members()
    if len(members) < 4:
        return pd.DataFrame()
    rows = []
    long = ens.member(members[0])
    for col in [c for c in long.columns if c.startswith("L") and c[1:].isdigit()]:
        L, inside, got, _ = ens.matrices("pool", column=col, members=members, center=CENTER)
        groups = ens.pair_groups(got)
        if len(np.unique(groups)) < 2:
            break
        rel = split_half(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
        rows.append({"K": int(col[1:]), "reliability": rel["reliability"], "low": rel["low"],
                     "high": rel["high"]})
    return pd.DataFrame(rows)


def one_pair(ens: Ensemble, repeat: int = 1) -> dict | None:
    """The paper's estimator (one f/g pair on a fixed partition) trained twice.

    Members 0 and 1 are complementary halves: for every point one of them is f (trained on it)
    and the other g. Their retraining with other seeds (``repeat``) is an independent second
    measurement of the same fixed-partition score; the correlation of the two over points is
    its reliability, on the pool and, tellingly, on the placebo, whose true score is zero.
    """
    if not {0, 1} <= set(ens.stored_members(repeat)) or not {0, 1} <= set(
            ens.stored_members()):
        return None
    out = {}
    for subset in ("pool", "placebo"):
        scores = []
        for rep in (0, repeat):
            L, inside, _, _ = ens.matrices(subset, members=[0, 1], repeat=rep, center=CENTER)
            scores.append(ensemble_estimate(L, inside).m.to_numpy())
        out[f"{subset}_retest"] = retest_correlation(*scores)
        out[f"{subset}_retest_spearman"] = retest_correlation(*scores, how="spearman")
        out[f"{subset}_sd"] = float(np.std(scores[0], ddof=1))
        out[f"{subset}_n"] = len(scores[0])
    return out


def supervised_summary(ens: Ensemble, *, n_splits: int = 200, n_boot: int = 400) -> dict:
    """Reliability of Feldman–Zhang label memorization and of held-out consistency."""
    members = ens.stored_members()
    lm = label_memorization(ens, members=members)
    acc, inside, got, _ = ens.matrices("pool", column="correct", members=members)
    groups = ens.pair_groups(got)
    out = {"members": len(members), "label_mem_mean": float(np.nanmean(lm.label_mem)),
           "consistency_mean": float(np.nanmean(lm.consistency))}
    if len(np.unique(groups)) >= 2:
        rel = split_half(1.0 - acc, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
        out.update(label_mem_rel=rel["reliability"], label_mem_rel_low=rel["low"],
                   label_mem_rel_high=rel["high"])
        # consistency: the out-models' accuracy; its split-half compares two halves' out-means
        rng = np.random.default_rng(0)
        rs = []
        labels = np.unique(groups)
        h = len(labels) // 2
        for _ in range(n_splits):
            perm = rng.permutation(labels)
            one, two = np.isin(groups, perm[:h]), np.isin(groups, perm[h:2 * h])
            a = ensemble_estimate(1.0 - acc[one], inside[one]).L_out
            b = ensemble_estimate(1.0 - acc[two], inside[two]).L_out
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0:
                rs.append(np.corrcoef(a[ok], b[ok])[0, 1])
        r = float(np.mean(rs)) if rs else math.nan
        factor = len(labels) / h
        out["consistency_rel"] = (factor * r / (1 + (factor - 1) * r) if np.isfinite(r)
                                  else math.nan)
    return out


def detectable_correlation(n_points: int, rel_a: float, rel_b: float, *, alpha: float = 0.05,
                           power: float = 0.8) -> float:
    """The smallest true correlation between two per-point scores that a two-sided test on
    ``n_points`` detects with ``power``, given the scores' reliabilities (Fisher's z).

    Why: an observed correlation is the true one times sqrt(rel_a · rel_b); a design whose
    scores are unreliable cannot see a real effect, and a null from it is not a result.
    """
    if not (rel_a > 0 and rel_b > 0) or n_points < 4:
        return math.nan
    z = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / math.sqrt(n_points - 3)
    observed = math.tanh(z)
    return min(1.0, observed / math.sqrt(rel_a * rel_b))
