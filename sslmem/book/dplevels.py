"""Chapter 6's ensemble test: does memorization fall as privacy rises, where there is some to lose?

Why a module: one f/g pair per ε cannot carry the claim (its ε = ∞ encoder showed no
memorization to lower). The test here has two steps. First the regimes tried at ε = ∞: an
ensemble of complementary pairs per DP-capable recipe, its average in/out contrast tested over
the pairs; only a regime whose interval lies above zero can show a decrease. Then, on such a
regime, one ensemble per ε on the same pairs (halves, inits, views), so each pair is one paired
observation per level: the difference from ε = ∞ and the trend across ε are tested over the
pairs (:mod:`sslmem.score.levels`). Losses are centred per encoder on its placebo mean, as
chapter 7's estimates are; the placebo's own contrast is the control (it must include zero).
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import numpy as np
import pandas as pd

from sslmem.book import verdicts
from sslmem.book.notebook import data_text
from sslmem.book.precision import encoder_minutes
from sslmem.pipeline.chapters import eps_label
from sslmem.score.levels import pair_contrasts, paired_levels
from sslmem.score.reliability import CENTER, one_sample_t

MIN_PAIRS = 2  # an interval over pairs needs two
_SCORED_ON = {"pooled": "class token", "tokens": "every token"}  # a ViT's scored output


def _iv(mean, low=math.nan, high=math.nan) -> str:
    """``mean [low, high]`` with enough decimals for two significant digits of the largest
    (contrasts range from 1e-5 on the smoke run to 1e-2)."""
    if not (mean == mean):
        return "–"
    top = max(abs(v) for v in (mean, low, high) if v == v) or 1.0
    fmt = f"+.{min(max(4, 1 - math.floor(math.log10(top))), 8)}f"
    if not (low == low):
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


_READ = weakref.WeakKeyDictionary()  # ensemble -> {(members, subset): per-pair contrasts}


def contrasts(ens, subset: str = "pool") -> pd.Series:
    """Per complementary pair of the stored members, its average in/out contrast.

    Kept per ensemble object, members and subset: the regimes table and the levels test read
    the ε = ∞ design alike (one object), and a member added later changes the key."""
    members = ens.complete_members()
    if len(members) < 2:
        return pd.Series(dtype=float)
    read, key = _READ.setdefault(ens, {}), (tuple(members), subset)
    if key not in read:
        L, inside, got, _ = ens.matrices(subset, members=members, center=CENTER)
        read[key] = pair_contrasts(L, inside, ens.pair_groups(got))
    return read[key]


def _median_minutes(ens, members, minutes) -> float:
    """One encoder's cost here: the median over the stored members (NaN with none)."""
    return float(np.median([minutes(ens, [j]) for j in members])) if members else math.nan


def regime_row(name: str, design, minutes=encoder_minutes) -> dict:
    """One regime tried at ε = ∞: its recipe, members, cost, and its pool and placebo
    contrasts tested over the pairs."""
    ens = design.ensemble
    cfg, members = ens.exp.cfg, ens.complete_members()
    row = {"design": name, "method": cfg.method, "backbone": cfg.backbone, "epochs": cfg.epochs,
           "representation": getattr(cfg, "representation", "pooled"),
           "images per encoder": int(round(ens.fraction * len(ens.pool))),
           "members": len(members), "planned": design.members, "pairs": len(members) // 2}
    for subset in ("pool", "placebo"):
        per_pair = contrasts(ens, subset)
        c = one_sample_t(per_pair[np.isfinite(per_pair)])
        row |= {f"{subset}": c["mean"], f"{subset}_low": c["low"], f"{subset}_high": c["high"],
                f"{subset}_p": c["p"]}
    row["minutes"] = _median_minutes(ens, members, minutes)
    row["memorizes"] = (row["pool_low"] > 0) if row["pool_low"] == row["pool_low"] else None
    return row


def regimes(found, minutes=encoder_minutes) -> pd.DataFrame:
    """Every regime tried at ε = ∞: one row each (``minutes``: an encoder's cost here)."""
    return pd.DataFrame([regime_row(n, d, minutes) for n, d in found.items()])


def shown_regimes(rows: pd.DataFrame) -> pd.DataFrame:
    """The regimes as the page shows them."""
    return pd.DataFrame([{
        "design": r.design, "recipe": f"{r.method}, {r.backbone}, {r.epochs} epochs on "
                                      f"{r['images per encoder']} images",
        "scored on": _SCORED_ON.get(r.get("representation", "pooled"), "pooled feature")
        if r.backbone not in (None, "") and str(r.backbone).startswith("vit")
        or r.get("representation") == "tokens" else "pooled feature",
        "encoders (planned)": f"{r.members} ({r.planned})",
        "min per encoder": "–" if r.minutes != r.minutes else f"{r.minutes:.1f}",
        "contrast, pool": _iv(r.pool, r.pool_low, r.pool_high),
        "p (over pairs)": "–" if r.pool_p != r.pool_p else f"{r.pool_p:.2g}",
        "contrast, placebo": _iv(r.placebo, r.placebo_low, r.placebo_high),
        "memorizes at ε = ∞": {True: "yes", False: "not shown"}.get(r.memorizes, "too few pairs")}
        for _, r in rows.iterrows()])


def level_rows(found_levels: dict, minutes=encoder_minutes) -> pd.DataFrame:
    """The designs the paired test reads, one per ε: how many encoders are stored of those
    planned and what one cost here (DP-SGD's per-sample gradients make a private one dearer)."""
    rows = []
    for eps, d in found_levels.items():
        members = d.ensemble.complete_members()
        rows.append({"ε": eps_label(eps), "design": d.name,
                     "encoders (planned)": f"{len(members)} ({d.members})",
                     "minutes": _median_minutes(d.ensemble, members, minutes)})
    return pd.DataFrame(rows)


def shown_level_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`level_rows` as the page shows them."""
    shown = rows.drop(columns="minutes")
    shown["min per encoder"] = ["–" if m != m else f"{m:.1f}" for m in rows["minutes"]]
    return shown


def minutes_text(rows: pd.DataFrame) -> str:
    """The regimes' cost per encoder here as a range (``1.3–5.0``), for the opening table."""
    m = rows["minutes"].dropna() if len(rows) else pd.Series(dtype=float)
    if m.empty:
        return "–"
    low, high = float(m.min()), float(m.max())
    return f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}–{high:.1f}"


def levels(found_levels: dict) -> dict | None:
    """The paired test across ε (None with fewer than :data:`MIN_PAIRS` pairs stored at
    every level): ``frame`` (pairs × ε), ``placebo`` (the same on the placebo), and
    :func:`sslmem.score.levels.paired_levels` of both."""
    pool = pd.DataFrame({eps_label(e): contrasts(d.ensemble) for e, d in found_levels.items()})
    placebo = pd.DataFrame({eps_label(e): contrasts(d.ensemble, "placebo")
                            for e, d in found_levels.items()})
    if pool.shape[1] < 2 or len(pool.dropna()) < MIN_PAIRS:
        return None
    return {"frame": pool.dropna(), "placebo": placebo.dropna(), "test": paired_levels(pool),
            "control": paired_levels(placebo)}


def shown_levels(found: dict) -> pd.DataFrame:
    """Per ε: the pairs, the pool's contrast and the placebo's, and the paired difference
    from ε = ∞ with the difference the design detects with 80 % power."""
    test, control = found["test"]["levels"], found["control"]["levels"].set_index("level")
    rows = []
    for _, r in test.iterrows():
        first = r.level == test.level.iloc[0]
        rows.append({"ε": r.level, "pairs": int(r.pairs),
                     "contrast, pool": _iv(r["mean"], r.low, r.high),
                     "p": f"{r.p:.2g}",
                     "contrast, placebo": _iv(control.loc[r.level, "mean"],
                                              control.loc[r.level, "low"],
                                              control.loc[r.level, "high"]),
                     "Δ from ε = ∞ (paired)": "–" if first else _iv(r["diff"], r.diff_low,
                                                                    r.diff_high),
                     "p (Δ)": "–" if first else f"{r.diff_p:.2g}",
                     "Δ detectable (80 %)": "–" if first else "±" + _iv(r.diff_detectable)[1:]})
    return pd.DataFrame(rows)


def values(found: dict) -> dict:
    """The glued numbers of the ensemble test."""
    test, trend = found["test"]["levels"], found["test"]["trend"]
    first, last = test.iloc[0], test.iloc[-1]
    return {"dp_pairs": int(trend["pairs"]), "dp_eps_low": last.level,
            "dp_inf": _iv(first["mean"], first.low, first.high),
            "dp_low": _iv(last["mean"], last.low, last.high),
            "dp_diff": _iv(last["diff"], last.diff_low, last.diff_high),
            "dp_diff_p": f"{last.diff_p:.2g}",
            "dp_slope": _iv(trend["slope"], trend["slope_low"], trend["slope_high"]),
            "dp_slope_p": f"{trend['slope_p']:.2g}",
            "dp_page_p": "–" if trend["page_p"] != trend["page_p"] else f"{trend['page_p']:.2g}"}


def figure(found: dict):
    """Each pair's contrast across ε (thin lines: one pair's halves, init and views at every
    level) and the mean with its 95 % interval over the pairs; the placebo in grey."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 2.8), layout="constrained")
    for key, color, label in (("control", "0.6", "placebo (control)"), ("test", "C0", "pool")):
        frame = found["frame" if key == "test" else "placebo"]
        x = np.arange(frame.shape[1]) + (0.04 if key == "control" else 0.0)
        for _, row in frame.iterrows():
            ax.plot(x, row.to_numpy(float), color=color, lw=0.6, alpha=0.5)
        lv = found[key]["levels"]
        ax.errorbar(x, lv["mean"], yerr=[lv["mean"] - lv.low, lv.high - lv["mean"]], fmt="o-",
                    color=color, capsize=3, label=label, lw=1.6)
    ax.axhline(0, color="0.3", lw=0.7)
    ax.set_xticks(np.arange(found["frame"].shape[1]), [f"ε = {c}" for c in found["frame"]])
    ax.set_ylabel("average in/out contrast", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    return fig


CLAIM = dict(claim="training the encoder with a differentially private algorithm reduces its "
                   "memorization", short="Differential privacy lowers memorization",
             source="the paper's privacy experiment", chapter="06_privacy")


def _regime_text(rows: pd.DataFrame) -> str:
    return "; ".join(f"{r.design} ({r.members} encoders): {_iv(r.pool, r.pool_low, r.pool_high)}"
                     for _, r in rows.iterrows())


def claim_verdict(found: dict | None, rows: pd.DataFrame, found_levels: dict,
                  one_pair: verdicts.Verdict | None = None) -> verdicts.Verdict:
    """From the paired test across ε where the ε = ∞ ensemble memorizes (its interval above
    zero): the difference at the most private level (the paper: lower), the trend in the note.
    Otherwise not run here, naming the regimes tried and their contrasts. ``one_pair``: the
    paper's design (one f/g pair per ε), said in the note."""
    said = "" if one_pair is None else (
        f" One f/g pair per ε (the paper's design): {one_pair.word}, "
        f"{verdicts.effect_text(one_pair)}; its interval runs over the points one pair of "
        "encoders scores, not over independent pairs, so it speaks for that pair only.")
    v = _verdict(found, rows, found_levels)
    return dataclasses.replace(v, note=(v.note + said).strip())


def _verdict(found, rows, found_levels) -> verdicts.Verdict:
    ens = next(iter(found_levels.values())).ensemble
    eps = ", ".join(eps_label(e) for e in found_levels)
    scale = (f"{data_text(ens.exp)}; one ensemble per ε ({eps}) on the same complementary "
             f"pairs, {ens.exp.cfg.method} on {ens.exp.cfg.backbone}")
    if found is None:
        why = (f"fewer than {MIN_PAIRS} complementary pairs stored at every ε"
               if len(found_levels) > 1 else
               "no DP level trained: they follow once a regime memorizes at ε = ∞")
        return verdicts.not_run(f"{why}; regimes tried at ε = ∞ (average in/out contrast): "
                                f"{_regime_text(rows)}", scale=scale, **CLAIM)
    test, trend = found["test"]["levels"], found["test"]["trend"]
    last = test.iloc[-1]
    control = found["control"]["levels"]
    page = "" if trend["page_p"] != trend["page_p"] else f"; Page's test p = {trend['page_p']:.2g}"
    note = (f"Trend over ε = {', '.join(test.level)}: slope per step "
            f"{_iv(trend['slope'], trend['slope_low'], trend['slope_high'])} (p = "
            f"{trend['slope_p']:.2g}{page}). Placebo contrasts "
            + ", ".join(_iv(r["mean"], r.low, r.high) for _, r in control.iterrows()) + ".")
    # memorization at ε = ∞ is judged on every pair that level has, not only on those the DP
    # levels have reached so far: a partial DP level must not hide the memorization it lowers
    every = contrasts(ens)
    inf = one_sample_t(every[np.isfinite(every)])
    if not inf["low"] > 0:
        return verdicts.not_run(
            f"the ε = ∞ ensemble shows no memorization to lower (average in/out contrast "
            f"{_iv(inf['mean'], inf['low'], inf['high'])} over {len(every)} pairs); "
            f"regimes tried: {_regime_text(rows)}", scale=scale, note=note, **CLAIM)
    planned = min(d.members for d in found_levels.values()) // 2
    return verdicts.from_interval(
        direction=-1, test=f"paired difference of the ensembles' average in/out contrast, "
        f"ε = {last.level} minus ε = ∞, t-interval over the {int(last.pairs)} complementary "
        f"pairs every ε has (of {planned} planned; the same halves, inits and views at every ε)",
        measure="change in the average in/out contrast", fmt="+.4f", effect=float(last["diff"]),
        low=float(last.diff_low), high=float(last.diff_high),
        detectable=float(last.diff_detectable), scale=scale, note=note, **CLAIM)


def text(found: dict | None, rows: pd.DataFrame, found_levels: dict) -> str:
    """The section's conclusion in words, from the numbers."""
    tried = ", ".join(f"{r.design} {_iv(r.pool, r.pool_low, r.pool_high)} over {r.pairs} "
                      f"pairs (p = {r.pool_p:.2g})" if r.pairs >= MIN_PAIRS else
                      f"{r.design} ({r.members} of {r.planned} encoders stored)"
                      for _, r in rows.iterrows())
    memorizing = [r.design for _, r in rows.iterrows() if r.memorizes]
    head = (f"At ε = ∞ the regimes tried show average in/out contrasts of {tried}. "
            + (f"Memorization beyond its interval: {', '.join(memorizing)}. " if memorizing
               else "None shows memorization beyond its interval, so none has any to lower. "))
    if found is None and len(found_levels) < 2:
        return head + ("The DP levels (ε = 20 and 8 on the same pairs) are trained once a "
                       "regime memorizes at ε = ∞: without that there is nothing to lower.")
    if found is None:
        stored = ", ".join(f"ε = {eps_label(e)}: {len(d.ensemble.complete_members())} of "
                           f"{d.members}" for e, d in found_levels.items())
        return head + (f"The paired test across ε needs {MIN_PAIRS} complementary pairs at "
                       f"every level (encoders stored: {stored}).")
    v = values(found)
    return head + (
        f"On the {v['dp_pairs']} pairs every level has, the contrast is {v['dp_inf']} at "
        f"ε = ∞ and {v['dp_low']} at ε = {v['dp_eps_low']}: a paired difference of "
        f"{v['dp_diff']} (p = {v['dp_diff_p']}); per step of privacy the slope is "
        f"{v['dp_slope']} (p = {v['dp_slope_p']}"
        + ("" if v["dp_page_p"] == "–" else f"; Page's trend test p = {v['dp_page_p']}") + ")."
        + _orders_only(found))


def _orders_only(found: dict) -> str:
    """Why Page's test may reject while the paired interval includes zero: it reads only each
    pair's order of contrasts across ε, the interval also their sizes."""
    page_p, last = found["test"]["trend"]["page_p"], found["test"]["levels"].iloc[-1]
    if not (page_p < 0.05 and last.diff_low <= 0 <= last.diff_high):
        return ""
    return (" Page's test reads only the order of each pair's contrasts across ε: the pairs "
            "agree that the contrast falls with privacy, but their sizes at ε = ∞ vary too "
            "much for the paired interval (the stated test) to exclude zero; more pairs "
            "decide how large the drop is.")
