"""Chapter 8: can one run rank points? Each one-run proxy against the ensemble's m̂.

Why this design: a proxy is validated against a ground truth that shares nothing with it.
The all-facet ensemble draws membership, init and views per complementary pair, so its pairs
are independent runs: pair 0 computes every proxy once, pair 1 computes it again (the proxy's
own test-retest reliability, over seeds, views and membership), and the remaining pairs give
the ground truth m̂ with its split-half reliability. The correlation of proxy and m̂ is then
corrected for both reliabilities (rank correlations throughout), with a bootstrap interval
over points that redraws the ground truth's split in every replicate. On the placebo, where
nothing was trained, a proxy that still reproduces measures typicality, not memorization.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd

from sslmem.book import verdicts
from sslmem.book.notebook import data_text, describe_design
from sslmem.book.precision import encoder_minutes
from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble
from sslmem.score import proxies
from sslmem.score.reliability import CENTER, _corr_rows, ensemble_estimate, spearman_brown

NAMES = {"pair_estimate": "one f/g pair (the paper's estimator)",
         "learning_speed": "learning speed (loss over epochs)",
         "heldout_contrast": "one encoder vs its held-out neighbours",
         "knn_distance": "kNN distance in pixels (no training)"}
TRACKS, PARTLY, DOES_NOT = "tracks m̂", "partly", "does not"
TRACK_LOW = 0.5  # "tracks": the true-score ρ's interval lies above this


def _table(ens: Ensemble, j: int) -> pd.DataFrame:
    # pool and placebo positions index different splits: they may coincide, so both keys
    return ens.member(j).set_index(["subset", "position"], drop=False)


def runs(ens: Ensemble, pair: int) -> dict[str, pd.Series]:
    """Every proxy from complementary pair ``pair`` alone, over the pool and the placebo
    (indexed by subset and position)."""
    f, g = _table(ens, 2 * pair), _table(ens, 2 * pair + 1)
    k = f"L{ens.exp.cfg.n_pairs}"
    out = {"pair_estimate": pd.Series(proxies.pair_estimate(f[k], g[k], f.inside), f.index)}
    # for each point the member that trained on it (on the placebo: the one with fake "in")
    own = lambda col: np.where(f.inside, f[col], g[col])  # noqa: E731
    epochs = [c for c in f.columns if c.startswith("E") and c[1:].isdigit()]
    if len(epochs) >= 2:
        curves = np.stack([own(c) for c in epochs])
        out["learning_speed"] = pd.Series(
            proxies.learning_speed(curves, [int(c[1:]) for c in epochs]), f.index)
    feats = features(ens, f)
    contrast = np.full(len(f), np.nan)
    for member, trained in ((f, f.inside.to_numpy() & (f.subset == "pool").to_numpy()),
                            (g, g.inside.to_numpy() & (g.subset == "pool").to_numpy())):
        value = proxies.heldout_contrast(member[k].to_numpy(), trained, feats)
        contrast = np.where(member.inside.to_numpy(), value, contrast)
    out["heldout_contrast"] = pd.Series(contrast, f.index)
    out["knn_distance"] = pd.Series(proxies.knn_distance(feats), f.index)
    return out


def features(ens: Ensemble, table: pd.DataFrame) -> np.ndarray:
    """Standardized pixels of the table's points (pool from the train split, placebo from
    the test split), in its order."""
    import torch

    pool = table.subset.to_numpy() == "pool"
    pos = table.position.to_numpy()
    images = torch.empty((len(pos), *ens.exp.train.images.shape[1:]), dtype=torch.uint8)
    images[torch.as_tensor(pool)] = ens.exp.train.images[torch.as_tensor(pos[pool])]
    images[torch.as_tensor(~pool)] = ens.exp.test.images[torch.as_tensor(pos[~pool])]
    return proxies.pixel_features(images)


def validate(ens: Ensemble, *, n_splits: int = 100, n_boot: int = 1000, seed: int = 0) -> dict:
    """Each proxy (pairs 0 and 1) against m̂ from the ensemble's other pairs: a ``table`` per
    proxy and subset, and the per-point values for the figure (``points``)."""
    members = ens.complete_members()
    truth_members = [j for j in members if j >= 4]
    if len(set(ens.pair_groups(truth_members))) < 2 or not {0, 1, 2, 3} <= set(members):
        raise SSLMemError(f"chapter 8 needs pairs 0 and 1 and at least two more complete pairs "
                          f"of the all-facet design; {len(members)} members are stored")
    a, b = runs(ens, 0), runs(ens, 1)
    rng = np.random.default_rng(seed)
    rows, points = [], []
    for subset in ("pool", "placebo"):
        L, inside, got, pos = ens.matrices(subset, members=truth_members, center=CENTER)
        groups = ens.pair_groups(got)
        m = ensemble_estimate(L, inside).m.to_numpy()
        halves = _halves(L, inside, groups, n_splits, rng)
        boot = rng.integers(0, len(pos), (n_boot, len(pos)))
        split = rng.integers(0, n_splits, n_boot)
        for name in a:
            keys = pd.MultiIndex.from_arrays([[subset] * len(pos), pos])
            x, y = (s.reindex(keys).to_numpy(float) for s in (a[name], b[name]))
            row = _agreement(x, y, m, halves, boot, split)
            rows.append({"proxy": name, "subset": subset, "points": len(pos),
                         "truth_pairs": len(set(groups)), **row})
            points.append(pd.DataFrame({"proxy": name, "subset": subset, "position": pos,
                                        "value": x, "m": m}))
    table = pd.DataFrame(rows)
    table["verdict"] = [word(r) if r.subset == "pool" else "" for r in table.itertuples()]
    return {"table": table, "points": pd.concat(points, ignore_index=True)}


def _halves(L, inside, groups, n_splits, rng):
    labels = np.unique(groups)
    one, two = [], []
    for _ in range(n_splits):
        perm = rng.permutation(labels)
        h = len(perm) // 2
        for half, out in ((perm[:h], one), (perm[h:2 * h], two)):
            keep = np.isin(groups, half)
            out.append(ensemble_estimate(L[keep], inside[keep]).m.to_numpy())
    return np.stack(one), np.stack(two)


def _agreement(x, y, m, halves, boot, split) -> dict:
    """Observed ρ(proxy, m̂), both reliabilities and the true-score ρ with a bootstrap
    interval (points resampled; the ground truth's split redrawn per replicate)."""
    one, two = halves
    fixed = bool(np.allclose(x, y, equal_nan=True))  # a deterministic proxy: reliability 1
    r_obs = float(_corr_rows(x[None], m[None], "spearman")[0])
    rel_x = 1.0 if fixed else float(_corr_rows(x[None], y[None], "spearman")[0])
    rel_m = float(spearman_brown(np.nanmean(_corr_rows(one, two, "spearman")), 2))
    cross = (r_obs + float(_corr_rows(y[None], m[None], "spearman")[0])) / 2
    true = cross / math.sqrt(rel_x * rel_m) if rel_x > 0 and rel_m > 0 else math.nan
    bx, by, bm = x[boot], y[boot], m[boot]
    bc = (_corr_rows(bx, bm, "spearman") + _corr_rows(by, bm, "spearman")) / 2
    brx = np.ones(len(boot)) if fixed else _corr_rows(bx, by, "spearman")
    brm = spearman_brown(_corr_rows(one[split[:, None], boot], two[split[:, None], boot],
                                    "spearman"), 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        bt = np.where((brx > 0) & (brm > 0), bc / np.sqrt(np.abs(brx * brm)), np.nan)
    ok = np.isfinite(bt)
    lo, hi = np.quantile(np.clip(bt[ok], -1, 1), [0.025, 0.975]) if ok.mean() > 0.975 else (
        math.nan, math.nan)
    r_lo, r_hi = np.nanquantile(_corr_rows(bx, bm, "spearman"), [0.025, 0.975])
    rel_lo, rel_hi = np.nanquantile(brx, [0.025, 0.975])
    return {"r": r_obs, "r_low": float(r_lo), "r_high": float(r_hi), "rel_proxy": rel_x,
            "rel_low": float(rel_lo), "rel_high": float(rel_hi),
            "rel_m": rel_m, "r_true": float(np.clip(true, -1, 1)) if np.isfinite(lo) else
            math.nan, "r_true_low": float(lo), "r_true_high": float(hi)}


def word(row) -> str:
    """The proxy's verdict from its true-score ρ interval: tracks m̂ (above
    :data:`TRACK_LOW`), partly (above 0), does not (reaching 0 or below, or unbounded)."""
    lo = getattr(row, "r_true_low", math.nan)
    if not lo == lo:
        return DOES_NOT
    return TRACKS if lo > TRACK_LOW else PARTLY if lo > 0 else DOES_NOT


def costs(ens: Ensemble, table: pd.DataFrame) -> pd.DataFrame:
    """Per proxy: encoder-minutes of one run here, its runs for the ensemble's reliability
    (Spearman–Brown from its retest), and what the placebo says it measures (typicality where
    its placebo retest interval lies above 0)."""
    members = ens.complete_members()
    per = float(np.median([encoder_minutes(ens, [j]) for j in members]))
    pool = table[table.subset == "pool"].set_index("proxy")
    placebo = table[table.subset == "placebo"].set_index("proxy")
    target = float(np.clip(pool.rel_m.max(), 0, 0.99))  # the ground truth's own reliability
    rows = []
    for name, r in pool.iterrows():
        encoders = 0 if name == "knn_distance" else 2
        rel = r.rel_proxy
        runs_needed = (1.0 if rel >= target else target * (1 - rel) / (rel * (1 - target))
                       if rel > 0 else math.inf)
        retest_placebo = placebo.loc[name, "rel_proxy"]
        typical = placebo.loc[name, "rel_low"] > 0  # reproduces beyond chance untrained
        rows.append({"proxy": NAMES.get(name, name), "encoders per run": encoders,
                     "encoder-min per run": encoders * per,
                     "retest ρ (pool)": rel, "retest ρ (placebo)": retest_placebo,
                     "measures": ("typicality (reproduces where nothing was trained)"
                                  if typical else "memorization-specific"),
                     "runs for the ensemble's reliability": runs_needed,
                     "verdict": r.verdict})
    return pd.DataFrame(rows)


def design(profile: str, **fields):
    """The profile's all-facet design (its ranking's ``facets``), as chapter 7 shows it."""
    name = (chapters.settings(profile).get("ranking") or {}).get("facets")
    if name is None:
        raise SSLMemError(f"profile {profile!r} names no all-facet design (ranking: facets)")
    return chapters.ensembles(profile, names=[name], **fields)[name]


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The validation as the page shows it: one row per proxy, pool and placebo side by side."""
    def iv(r, key, low=None, high=None):
        v, lo, hi = (r[k] for k in (key, low or f"{key}_low", high or f"{key}_high"))
        return "–" if not v == v else f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]"

    pool = table[table.subset == "pool"].set_index("proxy")
    placebo = table[table.subset == "placebo"].set_index("proxy")
    return pd.DataFrame([{
        "proxy": NAMES.get(name, name), "ρ with m̂ (pool)": iv(r, "r"),
        "retest ρ": iv(r, "rel_proxy", "rel_low", "rel_high"), "ρ true-score": iv(r, "r_true"),
        "placebo: ρ with m̂": iv(placebo.loc[name], "r"), "verdict": r.verdict}
        for name, r in pool.iterrows()])


def control_passes(table: pd.DataFrame) -> pd.Series:
    """Per proxy: its placebo correlation with m̂ (true score 0) is consistent with zero."""
    placebo = table[table.subset == "placebo"].set_index("proxy")
    return (placebo.r_low <= 0) & (placebo.r_high >= 0)


def summary(table: pd.DataFrame) -> str:
    """The page's conclusion in words, from the numbers."""
    pool = table[table.subset == "pool"].set_index("proxy")
    ok = control_passes(table)
    parts = []
    for name, r in pool.iterrows():
        text = f"{NAMES.get(name, name)}: {r.verdict}"
        if r.r_true == r.r_true:
            text += f" (true-score ρ {r.r_true:+.2f} [{r.r_true_low:+.2f}, {r.r_true_high:+.2f}])"
        else:
            text += f" (retest ρ {r.rel_proxy:+.2f}: too unreliable to bound)"
        if not ok[name]:
            text += ", but its placebo control fails"
        parts.append(text)
    return "; ".join(parts)


CLAIM = dict(claim="one f/g pair on a fixed partition measures each point's memorization (the "
                   "paper ranks points by it)", short="One pair ranks points",
             source="Sec. 3, Fig. 1", chapter="08_proxies")
ENOUGH = 0.5  # the retest reliability a per-point ranking needs at the least (chapter 7)


def claim_verdict(table: pd.DataFrame, ens: Ensemble) -> verdicts.Verdict:
    """The paper's one-pair estimator, judged by its retest reliability across independent
    pairs (new halves, seeds and views) against :data:`ENOUGH`; the best proxy in the note."""
    pool = table[table.subset == "pool"].set_index("proxy")
    scale = (f"{data_text(ens.exp)}; pairs 0 and 1 of {describe_design(ens)} as two runs, "
             f"m̂ from its other {int(pool.truth_pairs.iloc[0])} pairs")
    r = pool.loc["pair_estimate"]
    best = pool.sort_values("r_true_low", na_position="first").index[-1]
    note = (f"Best proxy: {NAMES.get(best, best)}, {pool.loc[best].verdict} (true-score ρ "
            f"{pool.loc[best].r_true:+.2f}). All: {summary(table)}.")
    return verdicts.from_threshold(
        threshold=ENOUGH, test="Spearman retest reliability of one pair's per-point scores "
        "across two independent pairs, 95 % bootstrap interval over points",
        measure="retest ρ", fmt=".2f", effect=r.rel_proxy, low=r.rel_low, high=r.rel_high,
        scale=scale, note=note, **CLAIM)


def figure(points: pd.DataFrame):
    """Each proxy against m̂ per point: the pool in colour, the placebo in grey."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(points.proxy))
    fig, axes = plt.subplots(1, len(names), figsize=(7.2, 2.3), layout="constrained")
    for ax, name in zip(np.atleast_1d(axes), names):
        for subset, color in (("placebo", "0.6"), ("pool", "C0")):
            p = points[(points.proxy == name) & (points.subset == subset)]
            ax.scatter(p.value, p.m, s=4, color=color, label=subset)
        ax.set_title(textwrap.fill(NAMES.get(name, name), 24), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("proxy (one run)", fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("m̂ (other pairs)", fontsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=6, frameon=False)
    return fig


def forest(table: pd.DataFrame):
    """Per proxy, its retest ρ on the pool and on the placebo (left: what reproduces where
    nothing was trained measures the image, not its memorization) and its true-score ρ with
    m̂ (right), each with its 95 % interval; the dotted line marks :data:`ENOUGH`."""
    import matplotlib.pyplot as plt

    pool = table[table.subset == "pool"].set_index("proxy")
    placebo = table[table.subset == "placebo"].set_index("proxy")
    names = list(pool.index)
    y = np.arange(len(names))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 0.5 + 0.45 * len(names)),
                                      sharey=True, layout="constrained")
    for frame, shift, color, label in ((pool, 0.12, "C0", "pool"),
                                       (placebo, -0.12, "0.55", "placebo")):
        v = frame.loc[names]
        left.errorbar(v.rel_proxy, y + shift, xerr=[v.rel_proxy - v.rel_low,
                                                    v.rel_high - v.rel_proxy],
                      fmt="o", ms=3, color=color, label=label, capsize=2)
    v = pool.loc[names]
    ok = np.isfinite(v.r_true.to_numpy(float))
    right.errorbar(v.r_true[ok], y[ok], xerr=[(v.r_true - v.r_true_low)[ok],
                                              (v.r_true_high - v.r_true)[ok]],
                   fmt="o", ms=3, color="C0", capsize=2)
    for yy in y[~ok]:
        right.text(0, yy, "cannot be bounded", fontsize=6, va="center", ha="center",
                   color="0.4")
    for ax, title in ((left, "retest ρ (one run vs another)"),
                      (right, "true-score ρ with m̂ (pool)")):
        ax.axvline(0, color="0.8", lw=0.8)
        ax.axvline(ENOUGH, color="0.5", lw=0.8, ls=":")
        ax.set_xlim(-1.05, 1.05)
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)
    left.set_yticks(y, [textwrap.fill(NAMES.get(n, n), 28) for n in names], fontsize=6)
    left.legend(fontsize=6, frameon=False, loc="lower left")
    return fig


def paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's one-pair estimator beside this run's retest of it."""
    r = table[table.subset == "pool"].set_index("proxy").loc["pair_estimate"]
    return pd.DataFrame([(
        "one f/g pair on a fixed partition scores each point (Sec. 3, Fig. 1)",
        "per-point scores from one pair, ranked; their precision is not stated",
        f"retest ρ between two independent pairs {r.rel_proxy:+.2f} "
        f"[{r.rel_low:+.2f}, {r.rel_high:+.2f}]",
        "a small pool at 16 px; the paper's pairs train on 45,000 images")],
        columns=["claim", "paper", "this run", "why they may differ"])
