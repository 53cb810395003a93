"""The book's figures: one function per figure type, each returning its matplotlib Figure.

Why a module: the four notebooks draw the same kinds of figures (score distributions per subset,
image grids ranked by memorization, agreement heatmaps, accuracy curves) and should look alike;
keeping the styling here keeps the notebooks about the paper. Functions take the DataFrames that
``sslmem.pipeline.experiment.Experiment`` returns and never compute results themselves.

Every figure is at most ``WIDTH`` inches wide: the book's text column is ~740 px, and a wider
figure is scaled down with its text (a 12-inch figure's 7-pt captions became unreadable).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

WIDTH = 7.2  # inches: 790 px at 110 dpi, about the book's text column
SUBSET_ORDER = ("candidate", "shared", "extra", "independent")
SUBSET_LABEL = {"candidate": "$S_C$ candidate (f only)", "shared": "$S_S$ shared (f and g)",
                "extra": "$S_E$ extra (neither)", "independent": "$S_I$ independent (g only)"}
SUBSET_COLOR = {"candidate": "#d62728", "shared": "#7f7f7f", "extra": "#1f77b4",
                "independent": "#2ca02c"}


def style() -> None:
    """One look for every figure (called on import)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "axes.titleweight": "bold",
                         "figure.autolayout": False})


style()


def _num(value: float, fmt: str = ".2f") -> str:
    """``format`` without the "-0.00" of a tiny negative number."""
    text = format(value, fmt)
    return text.replace("-", "", 1) if float(text) == 0 else text


def _subsets(table: pd.DataFrame) -> list[str]:
    return [s for s in SUBSET_ORDER if s in set(table.subset)]


def score_histograms(table: pd.DataFrame, column: str = "score_raw",
                     threshold: float | None = None, title: str | None = None) -> plt.Figure:
    """Distribution of the memorization score per subset (S_C right of 0, S_I left of 0)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.4), layout="constrained")
    bins = np.histogram_bin_edges(table[column].to_numpy(), bins=30)
    for subset in _subsets(table):
        values = table.loc[table.subset == subset, column]
        ax.hist(values, bins=bins, histtype="step", linewidth=1.8, density=True,
                color=SUBSET_COLOR[subset],
                label=f"{SUBSET_LABEL[subset]}: mean {values.mean():+.3g}")
    ax.axvline(0, color="black", linewidth=0.8)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1,
                   label=f"threshold (99th pct. of $S_E$) = {threshold:.3g}")
    ax.set_xlabel(f"memorization score m(x) [{column}]")
    ax.set_ylabel("density")
    ax.set_title(title or "SSLMem scores per subset")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig


def alignment_scatter(table: pd.DataFrame, max_points: int = 2000) -> plt.Figure:
    """L_f against L_g per subset: points above the diagonal are better aligned by f (m > 0)."""
    subsets = _subsets(table)
    ncols = 2 if len(subsets) > 2 else len(subsets)
    nrows = int(np.ceil(len(subsets) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    lo = float(min(table.L_f.min(), table.L_g.min()))
    hi = float(max(table.L_f.max(), table.L_g.max()))
    for ax, subset in zip(axes.flat, subsets):
        part = table[table.subset == subset]
        part = part.sample(min(len(part), max_points), random_state=0)
        ax.scatter(part.L_f, part.L_g, s=7, alpha=0.5, color=SUBSET_COLOR[subset],
                   edgecolor="none")
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        above = float((part.L_g > part.L_f).mean())
        ax.set_title(f"{SUBSET_LABEL[subset]}\n{above:.0%} above the diagonal", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("$L_f$ (alignment loss of f)")
    for ax in axes[:, 0]:
        ax.set_ylabel("$L_g$ (alignment loss of g)")
    for ax in axes.flat[len(subsets):]:
        ax.set_visible(False)
    return fig


def _epoch_axis(ax, epochs) -> None:
    """A log-scaled epoch axis labelled with the snapshot epochs themselves."""
    ticks = sorted({int(e) for e in epochs})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()


def scores_over_epochs(frame: pd.DataFrame, history: pd.DataFrame | None = None) -> plt.Figure:
    """Mean score per subset at each snapshot epoch, next to the kNN monitor of f."""
    ncols = 2 if history is not None and "knn" in history else 1
    fig, axes = plt.subplots(1, ncols, figsize=(WIDTH / 2 * ncols, 3.6), layout="constrained")
    axes = np.atleast_1d(axes)
    ax = axes[0]
    for subset in [s for s in SUBSET_ORDER if s in set(frame.subset)]:
        part = frame[frame.subset == subset].sort_values("epoch")
        ax.errorbar(part.epoch, part.score_raw, yerr=part["sem"], marker="o", capsize=3,
                    color=SUBSET_COLOR[subset], label=SUBSET_LABEL[subset])
    ax.axhline(0, color="black", linewidth=0.8)
    _epoch_axis(ax, frame.epoch)
    ax.set_xlabel("training epoch of f and g (log scale)")
    ax.set_ylabel("mean m(x) ± s.e.m.")
    ax.set_title("memorization during training")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)
    if ncols == 2:
        knn = history.dropna(subset=["knn"])
        axes[1].plot(knn.epoch, 100 * knn.knn, marker="o", color="black")
        _epoch_axis(axes[1], knn.epoch)
        axes[1].set_xlabel("training epoch of f (log scale)")
        axes[1].set_ylabel("kNN accuracy on the test split (%)")
        axes[1].set_title("kNN monitor of f")
    return fig


def score_vs(x, y, xlabel: str, ylabel: str, title: str, hue=None) -> plt.Figure:
    """Scatter of a per-point quantity against the memorization score, with a rank trend."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    order = sorted(set(hue)) if hue is not None else None
    sns.scatterplot(x=np.asarray(x), y=np.asarray(y), hue=hue, hue_order=order, s=14,
                    alpha=0.7, ax=ax, palette="tab10" if hue is not None else None,
                    edgecolor="none", legend="brief" if hue is not None else False)
    if hue is not None and ax.get_legend() is not None:  # beside the points, never on them
        ax.legend(fontsize=7, title="class", title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def heatmaps(matrices: dict[str, pd.DataFrame], fmt: str = ".2f", vmin=None, vmax=None,
             cmap: str = "viridis") -> plt.Figure:
    """Annotated heatmaps of square method-by-method tables (overlap, tau, rho), two per row."""
    ncols = min(2, len(matrices))
    nrows = int(np.ceil(len(matrices) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH / 2 * ncols, 3.4 * nrows), squeeze=False,
                             layout="constrained")
    for ax, (name, m) in zip(axes.flat, matrices.items()):
        sns.heatmap(m.astype(float), annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax,
                    square=True, cbar=False, ax=ax, annot_kws={"fontsize": 8})
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.tick_params(axis="y", rotation=0, labelsize=8)
    for ax in axes.flat[len(matrices):]:
        ax.set_visible(False)
    return fig


ARM_COLORS = {"top": "#d62728", "random": "#7f7f7f", "bottom": "#1f77b4"}


def removal_ranking(ranking: pd.DataFrame, k: int) -> plt.Figure:
    """The pool ranked by its ensemble score (±1 s.e.), the top-k and bottom-k arms marked."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0), layout="constrained")
    n = len(ranking)
    x = np.arange(n)
    color = np.array([ARM_COLORS["random"]] * n, dtype=object)
    color[:k], color[n - k:] = ARM_COLORS["top"], ARM_COLORS["bottom"]
    ax.errorbar(x, ranking.m, yerr=ranking.se, fmt="none", ecolor="0.8", lw=0.8)
    ax.scatter(x, ranking.m, c=list(color), s=10, zorder=3)
    ax.axhline(0, color="black", lw=0.8)
    for arm in ("top", "bottom"):
        ax.scatter([], [], c=ARM_COLORS[arm], s=10, label=f"removed in the {arm}-{k} arm")
    ax.set_xlabel("pool points, most memorized first")
    ax.set_ylabel("ensemble SSLMem m̂ (±1 s.e.)")
    ax.legend(fontsize=8)
    return fig


def paired_arms(table: pd.DataFrame, metric: str = "linear") -> plt.Figure:
    """Probe accuracy per arm, one line per seed (the pairing), one panel per probe set.

    Two panels per row at most: four in a row left each ~1.8 inches, and the arms' names
    ("−top", ...) printed over each other."""
    probes = list(dict.fromkeys(table.probe))
    ncols = min(2, len(probes))
    nrows = int(np.ceil(len(probes) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.4 * nrows + 0.5), squeeze=False,
                             layout="constrained")
    arms = [a for a in ARM_COLORS if a in set(table.arm)]
    for ax in axes.flat[len(probes):]:
        ax.set_visible(False)
    for ax, probe in zip(axes.flat, probes):
        wide = table[table.probe == probe].pivot(index="seed", columns="arm", values=metric)
        wide = 100 * wide.reindex(columns=arms)
        for _, row in wide.iterrows():
            ax.plot(range(len(arms)), row.to_numpy(), color="0.6", lw=0.8, marker="o", ms=3)
        ax.plot(range(len(arms)), wide.mean().to_numpy(), color="black", lw=2, marker="s",
                label="mean over seeds")
        ax.set_xticks(range(len(arms)), [f"{a} k\nremoved" for a in arms], fontsize=8)
        ax.set_xlim(-0.3, len(arms) - 0.7)
        ax.set_title(f"probe on {probe}", fontsize=10)
        ax.set_ylabel(f"{metric} accuracy (%)", fontsize=9)
    handles = [plt.Line2D([], [], color="0.6", lw=0.8, marker="o", ms=3),
               plt.Line2D([], [], color="black", lw=2, marker="s")]
    fig.legend(handles, ["one seed (its three arms)", "mean over seeds"],
               loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def dejavu_curves(summaries: dict[str, pd.DataFrame]) -> plt.Figure:
    """Déjà vu: label-inference accuracy of KNN_f and KNN_g on their most confident fractions.

    ``summaries`` maps a panel title (e.g. a method) to ``sslmem.score.dejavu.dejavu_summary``
    output over many fractions. The vertical gap between the curves is the Déjà vu memorization.
    """
    ncols = min(2, len(summaries))
    nrows = int(np.ceil(len(summaries) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH / 2 * ncols, 2.9 * nrows),
                             squeeze=False, layout="constrained", sharey=True)
    for ax in axes.flat[len(summaries):]:
        ax.set_visible(False)
    for ax, (name, s) in zip(axes.flat, summaries.items()):
        ax.plot(100 * s.fraction, 100 * s.acc_f, marker="o", markersize=3, color="#d62728",
                label="KNN$_f$ (trained on $S_C$)")
        ax.plot(100 * s.fraction, 100 * s.acc_g, marker="s", markersize=3, color="#2ca02c",
                label="KNN$_g$ (never saw $S_C$)")
        ax.fill_between(100 * s.fraction, 100 * s.acc_g, 100 * s.acc_f, color="#d62728",
                        alpha=0.12)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("most confident crops kept (%)", fontsize=9)
        ax.set_ylabel("label inferred correctly (%)", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def paired_bars(frame: pd.DataFrame, columns: dict[str, str], title: str) -> plt.Figure:
    """One bar group per row of ``frame`` (index = labels), one bar per column, with 0 marked.

    ``columns`` maps a column of ``frame`` to its legend label; a column ``<name>_err`` adds
    error bars.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0), layout="constrained")
    n = len(columns)
    x = np.arange(len(frame))
    for i, (col, label) in enumerate(columns.items()):
        err = frame.get(f"{col}_err")
        ax.bar(x + (i - (n - 1) / 2) * 0.8 / n, frame[col], width=0.8 / n, label=label,
               yerr=err, capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [str(i) for i in frame.index], fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def scores_by_level(tables: dict[str, pd.DataFrame], column: str = "score_raw",
                    title: str | None = None) -> plt.Figure:
    """The candidates' score distribution at each level of a setting (e.g. privacy ε).

    Each level's dashed line is its threshold: the 99th percentile of its unseen points S_E.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8), layout="constrained")
    cands = {name: t.loc[t.subset == "candidate", column] for name, t in tables.items()}
    bins = np.histogram_bin_edges(np.concatenate([c.to_numpy() for c in cands.values()]), 30)
    colors = sns.color_palette("rocket_r", len(tables))
    for color, (name, t) in zip(colors, tables.items()):
        ax.hist(cands[name], bins=bins, histtype="step", linewidth=1.8, density=True,
                color=color, label=f"{name}: mean {cands[name].mean():+.3g}")
        extra = t.loc[t.subset == "extra", column]
        if len(extra) > 1:
            ax.axvline(np.quantile(extra, 0.99), color=color, linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("memorization score m(x) of the candidates $S_C$")
    ax.set_ylabel("density")
    ax.set_title(title or "candidates' scores per level", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def privacy_tradeoff(frame: pd.DataFrame) -> plt.Figure:
    """Memorization of S_C (its gap to S_E, else its mean; and Frac. Mem.) and probe accuracy
    per privacy level (index); the accuracy bars start at 0."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.0), layout="constrained")
    labels = [f"ε = {i}" for i in frame.index]
    gap = "m(S_C) − m(S_E)" if "m(S_C) − m(S_E)" in frame else "mean m(S_C)"
    axes[0].bar(labels, frame[gap], color="#d62728")
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_ylabel("m($S_C$) − m($S_E$)" if gap != "mean m(S_C)" else "mean m(x) on $S_C$")
    axes[0].set_title("memorization", fontsize=10)
    twin = axes[0].twinx()
    twin.plot(labels, frame["Frac. Mem."], color="black", marker="o", label="Frac. Mem.")
    twin.set_ylabel("fraction above threshold")
    twin.grid(False)
    twin.set_ylim(0, max(0.05, 1.2 * float(frame["Frac. Mem."].max())))
    twin.legend(fontsize=7, loc="upper right")
    axes[1].bar(labels, 100 * frame["linear probe"], color="#1f77b4")
    axes[1].set_ylabel("linear probe accuracy (%)")
    axes[1].set_title("utility", fontsize=10)
    axes[1].set_ylim(0, min(100.0, 100 * float(frame["linear probe"].max()) + 5))  # bars from 0
    for x, value in enumerate(100 * frame["linear probe"]):
        axes[1].text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
    return fig


def agreement_intervals(frame: pd.DataFrame, k: int) -> plt.Figure:
    """Mean overlap and Kendall's tau per comparison with bootstrap intervals and chance level.

    ``frame``: ``sslmem.score.memorization.bootstrap_agreement`` output (the difference row is drawn
    against 0).
    """
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.8), layout="constrained")
    y = np.arange(len(frame))[::-1]
    for ax, metric, label in ((axes[0], "overlap", f"top-{k} overlap"),
                              (axes[1], "tau", "Kendall's τ")):
        est = frame[metric].to_numpy()
        err = np.vstack([est - frame[f"{metric}_lo"], frame[f"{metric}_hi"] - est])
        ax.errorbar(est, y, xerr=err, fmt="o", color="black", capsize=4)
        for yi, chance in zip(y, frame[f"{metric}_chance"]):
            ax.plot([chance, chance], [yi - 0.3, yi + 0.3], color="#d62728", linewidth=2)
        ax.set_yticks(y, frame.comparison, fontsize=8)
        ax.set_xlabel(f"{label} (red: chance)", fontsize=9)
        ax.axvline(0, color="grey", linewidth=0.6)
    return fig


def forest(labels, estimate, low, high, xlabel: str, title: str, ref: float = 0.0) -> plt.Figure:
    """Estimates with their intervals, one row each (a missing interval: the point alone)."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * n + 1.2), layout="constrained")
    y = np.arange(n)[::-1]
    est, lo, hi = (np.asarray(v, float) for v in (estimate, low, high))
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.errorbar(est[ok], y[ok], xerr=[est[ok] - lo[ok], hi[ok] - est[ok]], fmt="o", color="C0",
                capsize=3)
    ax.plot(est[~ok], y[~ok], "o", color="C7")
    ax.axvline(ref, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(y, labels)
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))  # at most 6 ticks: 4-digit values overprinted
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig
