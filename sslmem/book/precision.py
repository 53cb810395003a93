"""The precision chapter's analyses: one summary per ensemble design, its curves, the one pair.

Why a module: the book's page, the tests and later chapters (which disattenuate their per-point
statistics by the reliabilities measured here) need the same numbers from the same stored
members. Everything is read from the results store; nothing here trains.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.pipeline.ensemble import Ensemble, label_memorization
from sslmem.pipeline.store import read_frame
from sslmem.score.reliability import (
    CENTER,
    ensemble_estimate,
    members_needed,
    pair_contrast,
    reliability_curve,
    retest_correlation,
    spearman_brown,
    split_half,
    true_spread,
)

TARGET = 0.8  # the reliability a per-point ranking should reach (0.7 at the least)


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
    members = ens.complete_members()
    cfg = ens.exp.cfg
    row = {"design": name, "method": cfg.method, "epochs": cfg.epochs,
           "pool": len(ens.pool), "fraction": ens.fraction, "shared_init": ens.shared_init,
           "members": len(members), "K": cfg.n_pairs, "facets": error_facets(ens)}
    if len(members) < 2:
        return row
    # the median, not the mean: projections are for the idle host, and members that trained
    # beside other work (BYOL: 22-31 min against 10.5 alone) would inflate every one of them
    row["minutes_per_encoder"] = float(np.median([encoder_minutes(ens, [j]) for j in members]))
    for subset in ("pool", "placebo"):
        L, inside, got, _ = ens.matrices(subset, column=column, members=members,
                                         center=CENTER and column is None)
        groups = ens.pair_groups(got)
        est = ensemble_estimate(L, inside, groups=groups)  # s.e. over the pairs
        c = pair_contrast(L, inside, groups)  # tested over the pairs, not the points
        row[f"{subset}_mean"], row[f"{subset}_t"], row[f"{subset}_p"] = c["mean"], c["t"], c["p"]
        row["pairs"] = c["groups"]
        spread = true_spread(est.m, est.se)
        row[f"{subset}_sd"], row[f"{subset}_sd_low"], row[f"{subset}_sd_high"] = (
            spread["sd"], spread["low"], spread["high"])
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
    need = members_needed(rel, len(members), TARGET) if np.isfinite(rel) else math.nan
    row["members_for_target"] = need
    row["hours_for_target_2cores"] = need * row["minutes_per_encoder"] / 60
    return row


def error_facets(ens: Ensemble) -> str:
    """What a split-half over this design's pairs counts as error, in words: membership
    always; seeds where each pair (or encoder) draws its own; views where each pair does."""
    return ", ".join(["membership"] + ["seeds"] * (not ens.shared_init)
                     + ["views"] * (ens.views == "pair"))


def summary_table(designs: dict[str, Ensemble], **kw) -> pd.DataFrame:
    """:func:`summarize` for every design (rows in the given order)."""
    return pd.DataFrame([summarize(name, ens, **kw) for name, ens in designs.items()])


def curves(ens: Ensemble, *, n_splits: int = 60, n_boot: int = 200) -> pd.DataFrame:
    """Reliability against M for the pool and the placebo (stored members only)."""
    members = ens.complete_members()
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
    members = ens.complete_members()
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


def fixed_partition(ens: Ensemble, *, n_splits: int = 100, n_boot: int = 400) -> dict | None:
    """The multi-seed f/g estimator (one fixed partition, S seeds) beside the ensemble on the
    same number of encoders.

    Members 0 and 1 and their retrainings (repeats 1, 2, …) are S seeds of one f/g pair on a
    fixed partition: averaging them is the alternative to random halves that a user of the
    paper's code would reach for. Its split-half reliability (halves of the seeds) is measured
    on the pool and on the placebo, whose true score is zero; the ensemble's reliability at
    2S encoders (Spearman–Brown from all its encoders) is the comparison at equal compute.
    Why: a fixed partition reproduces its composition effect at every seed, so its
    reliability is high on the placebo too, which is not memorization.
    """
    seeds = [r for r in range(0, 64) if {0, 1} <= set(ens.stored_members(r))]
    seeds = [r for k, r in enumerate(seeds) if r == k]  # 0, 1, 2, … without gaps
    if len(seeds) < 2:
        return None
    out = {"seeds": len(seeds), "encoders": 2 * len(seeds)}
    for subset in ("pool", "placebo"):
        parts = [ens.matrices(subset, members=[0, 1], repeat=r, center=CENTER) for r in seeds]
        L = np.concatenate([p[0] for p in parts])
        inside = np.concatenate([p[1] for p in parts])
        groups = np.repeat(np.arange(len(seeds)), 2)
        rel = split_half(L, inside, groups=groups, n_splits=n_splits, n_boot=n_boot)
        out[f"{subset}_rel"], out[f"{subset}_rel_low"], out[f"{subset}_rel_high"] = (
            rel["reliability"], rel["low"], rel["high"])
    members = ens.complete_members()
    if len(members) >= 4:
        for subset in ("pool", "placebo"):
            L, inside, got, _ = ens.matrices(subset, members=members, center=CENTER)
            rel = split_half(L, inside, groups=ens.pair_groups(got), n_splits=n_splits,
                             n_boot=n_boot)["reliability"]
            r1 = rel / (len(members) - (len(members) - 1) * rel) if rel > 0 else math.nan
            out[f"ensemble_{subset}_rel"] = (float(spearman_brown(r1, out["encoders"]))
                                             if np.isfinite(r1) else rel)
        out["ensemble_members"] = len(members)
    return out


def supervised_summary(ens: Ensemble, *, n_splits: int = 200, n_boot: int = 400) -> dict:
    """Reliability of Feldman–Zhang label memorization and of held-out consistency."""
    members = ens.complete_members()
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


# ---- the chapter's figures and tables --------------------------------------------------------

def _interval(row, key: str, fmt: str = "{:+.2f}") -> str:
    value, lo, hi = (row.get(k, math.nan) for k in (key, f"{key}_low", f"{key}_high"))
    if not np.isfinite(value):
        return "–"
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def tables(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The regime search as two narrow tables: (contrast and noise, precision and cost)."""
    def get(row, key):
        return row.get(key, math.nan)

    def mean_p(row, subset):
        mean, p = get(row, f"{subset}_mean"), get(row, f"{subset}_p")
        return "–" if not np.isfinite(mean) else f"{mean:+.4f} (p = {p:.1g})"

    def noise(row):
        raw, centred = get(row, "placebo_sd_uncentred"), get(row, "placebo_sd_observed")
        return "–" if not np.isfinite(raw) else f"{raw:.4f} → {centred:.4f}"

    contrast_rows, precision_rows = [], []
    for _, row in table.iterrows():
        contrast_rows.append({
            "design": row.design, "pool": int(row.pool), "M": int(row.members),
            "min / encoder (median)": get(row, "minutes_per_encoder"),
            "mean m̂, pool": mean_p(row, "pool"), "mean m̂, placebo": mean_p(row, "placebo"),
            "placebo SD: raw → centred": noise(row)})
        precision_rows.append({
            "design": row.design, "M": int(row.members), "error counts": row.get("facets", ""),
            "true SD (pool)": _interval(row, "pool_sd", "{:.4f}"),
            "reliability (pool)": _interval(row, "pool_rel"),
            "reliability (placebo)": _interval(row, "placebo_rel"),
            "M for 0.8": get(row, "members_for_target"),
            "hours for 0.8": get(row, "hours_for_target_2cores")})
    return pd.DataFrame(contrast_rows), pd.DataFrame(precision_rows)


def reliability_figure(designs: dict[str, Ensemble], table: pd.DataFrame,
                       titles: dict[str, str] | None = None):
    """Split-half reliability against M per design (pool, placebo), with the Spearman–Brown
    extrapolation of the full ensemble's value: three panels a row (seven in one row were
    ~1 inch each, titles and legends overlapping), titles in words (``titles``), one legend."""
    import matplotlib.pyplot as plt

    ncols = min(3, len(designs))
    nrows = -(-len(designs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.2, 2.3 * nrows + 0.6), sharey=True,
                             squeeze=False, layout="constrained")
    rows = table.set_index("design")
    for ax in axes.flat[len(designs):]:
        ax.set_visible(False)
    for ax, (name, ens) in zip(axes.flat, designs.items()):
        curve, row = curves(ens), rows.loc[name]
        if not len(curve):
            ax.text(0.5, 0.5, f"{int(row.members)} encoder(s) stored:\nnot enough for a curve",
                    ha="center", va="center", transform=ax.transAxes, fontsize=8)
        for subset, color in (("pool", "C0"), ("placebo", "0.5")):
            part = curve[curve.subset == subset] if len(curve) else curve
            if len(part):
                ax.fill_between(part.members, part.low, part.high, color=color, alpha=0.2,
                                lw=0)
                ax.plot(part.members, part.reliability, "o-", color=color, ms=3)
        rel = row.get("pool_rel", math.nan)
        if np.isfinite(rel) and rel > 0 and row.members >= 4:
            grid = np.geomspace(row.members, max(4 * row.members, 64), 30)
            r1 = rel / (row.members - (row.members - 1) * rel)
            ax.plot(grid, grid * r1 / (1 + (grid - 1) * r1), "--", color="C0", lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.axhline(TARGET, color="C3", lw=0.5, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_title(textwrap.fill((titles or {}).get(name, name), 30), fontsize=8)
        ax.set_xlabel("encoders M", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("split-half reliability", fontsize=8)
    axes[0][0].set_ylim(-0.6, 1.0)
    handles = [plt.Line2D([], [], color="C0", marker="o", ms=3),
               plt.Line2D([], [], color="0.5", marker="o", ms=3),
               plt.Line2D([], [], color="C0", ls="--", lw=1),
               plt.Line2D([], [], color="C3", ls=":", lw=0.8)]
    fig.legend(handles, ["pool", "placebo", "Spearman–Brown from all encoders",
                         f"target {TARGET}"], loc="outside lower center", ncol=4, fontsize=8,
               frameon=False)
    return fig


def interval_figure(ens: Ensemble):
    """Every pool and placebo point's estimate with its 95 % interval, sorted: ± t(G − 1)
    s.e. over the G complementary pairs (the independent units)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6), sharey=True)
    members = ens.complete_members()
    crit = stats.t.ppf(0.975, max(len(set(ens.pair_groups(members))) - 1, 1))
    for ax, subset in zip(axes, ("pool", "placebo")):
        est = ens.scores(subset, members=members, center=CENTER)
        est = est.sort_values("m").reset_index(drop=True)
        ax.errorbar(est.index, est.m, yerr=crit * est.se, fmt=".", ms=2, lw=0.4,
                    color="C0" if subset == "pool" else "0.4")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{subset} ({len(est)} points)", fontsize=9)
        ax.set_xlabel("points, sorted by estimate")
    axes[0].set_ylabel("m̂(x), 95 % interval")
    fig.tight_layout()
    return fig


def k_figure(curve: pd.DataFrame):
    """Reliability of the full ensemble against K."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.6, 2.4))
    ax.fill_between(curve.K, curve.low, curve.high, alpha=0.2, lw=0)
    ax.plot(curve.K, curve.reliability, "o-", ms=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("augmentation pairs K")
    ax.set_ylabel("reliability")
    ax.axhline(0, color="k", lw=0.5)
    fig.tight_layout()
    return fig


def verdict(row) -> str:
    """One sentence on the reliability a design reached."""
    rel = row.get("pool_rel", math.nan)
    if row.get("members", 0) < 4 or not np.isfinite(rel):
        return ("not measurable yet: fewer than 4 encoders (two complementary pairs) are "
                "stored; run more member units with `sslmem plan --run`")
    if rel >= TARGET:
        return f"the target of {TARGET} is reached"
    if rel >= 0.7:
        return f"the minimum of 0.7 is reached, the target of {TARGET} not yet"
    if rel >= 0.5:
        return ("enough to re-test per-point claims with disattenuated statistics (≥ 0.5), "
                f"not yet the target of {TARGET}")
    if rel >= 0.2:
        return ("partly signal, but below the 0.5 that re-testing a per-point claim needs: "
                "any per-point statistic would be attenuated by more than a third")
    return "not enough for any per-point claim: at this size the ranking is mostly noise"


def design_markdown(row) -> str:
    """The chosen design's numbers as Markdown bullets (computed, never typed)."""
    m = int(row.get("members", 0))
    text = [f"- average contrast: mean m̂ = {row.get('pool_mean', math.nan):+.4f} over the "
            f"pool (t = {row.get('pool_t', math.nan):.1f}, p = {row.get('pool_p', math.nan):.1g}"
            f" over {row.get('pairs', 0):.0f} complementary pairs);"
            f" placebo {row.get('placebo_mean', math.nan):+.4f} "
            f"(p = {row.get('placebo_p', math.nan):.2f})"]
    if m >= 4 and np.isfinite(row.get("pool_rel", math.nan)):
        placebo_ok = (row.get("placebo_rel_low", -1) <= 0 <= row.get("placebo_rel_high", 1)
                      and row.get("placebo_p", 0) > 0.01)
        text += [
            f"- true between-point SD of self-memorization {_interval(row, 'pool_sd', '{:.4f}')}",
            f"- split-half reliability {_interval(row, 'pool_rel')}: {verdict(row)}; the "
            f"placebo's is {_interval(row, 'placebo_rel')}, so the placebo check "
            + ("passes (centred at zero and unreliable, as it must be)" if placebo_ok
               else "does not pass"),
            f"- a reliability of {TARGET} would take about "
            f"{row.get('members_for_target', math.inf):.0f} encoders of this design: "
            f"{row.get('hours_for_target_2cores', math.inf):.1f} hours on 2 cores "
            f"({row.get('minutes_per_encoder', math.nan):.1f} min each, the measured median), "
            "about "
            f"{row.get('hours_for_target_2cores', math.inf) / 4:.1f} hours on 8 "
            "(members are independent units: 4 at once)"]
    else:
        text += [f"- reliability: {verdict(row)}"]
    return "\n".join(text)


def choose(table: pd.DataFrame, ranking: str | None = None) -> pd.Series:
    """The design the book ranks points by (``ranking``, chapters 2-5) once it has 4 encoders;
    else the one with the lowest projected cost of a reliable ranking; while no design has 4
    encoders, the one with the most.

    Why the ranking design first: the search picked it, and the encoders spent on it since
    make its reliability the best measured one; another design's cost projected from 4 encoders
    can look cheaper by chance (its interval is wide), and switching would waste them."""
    usable = table[table.members >= 4]
    if ranking is not None and ranking in set(usable.design):
        return usable[usable.design == ranking].iloc[0]
    return cheapest(usable) if len(usable) else table.sort_values(
        "members", ascending=False, kind="stable").iloc[0]


def cheapest(table: pd.DataFrame) -> pd.Series:
    """The design (of those with 4 encoders) with the lowest projected cost of reliability 0.8,
    else the most reliable one."""
    usable = table[table.members >= 4]
    if "hours_for_target_2cores" in usable:
        finite = usable[np.isfinite(usable.hours_for_target_2cores)]
        if len(finite):
            return finite.sort_values("hours_for_target_2cores").iloc[0]
    if "pool_rel" in usable and len(usable):
        return usable.sort_values("pool_rel", ascending=False).iloc[0]
    return table.sort_values("members", ascending=False, kind="stable").iloc[0]
