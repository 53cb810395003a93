"""Chapter 6's analyses: DP-SGD's accounting, memorization and utility per privacy level.

Why a module: the page should narrate, not compute. What it shows (the privacy accounting of each
pair of encoders, memorization and probe accuracy per ε, the paper-vs-run table and the chapter's
verdict) is built here from the stored results of one f/g pair per privacy level, so it can be
tested without executing the notebook. Nothing here trains.

Memorization is compared across levels as chapter 1 measures it, against the points neither
encoder saw: the mean score of S_C minus that of S_E. The raw mean score of S_C also holds
whatever separates f from g on every image (without DP, the pair here differs by -0.006 on
the unseen S_E), which moves with the level for reasons other than memorization.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.book import verdicts
from sslmem.book.notebook import scale_text
from sslmem.pipeline import chapters
from sslmem.score.significance import extra_threshold, frac_memorized


def _signed(value: float) -> str:
    """``+.4f`` without the "-0.0000" of a tiny negative number."""
    text = f"{value:+.4f}"
    return "0.0000" if float(text) == 0 else text


ACCOUNTING_FORMATS = {"ε achieved (f)": "{:.2f}", "δ": "{:.0e}", "noise σ": "{:.3f}",
                      "clip C": "{:g}", "q": "{:.3f}"}
LEVEL_FORMATS = {"mean m(S_C)": _signed, "m(S_C) − m(S_E)": _signed, "p: S_C > S_E": "{:.2g}",
                 "p: S_C > S_S": "{:.2g}", "p: S_I < S_S": "{:.2g}", "p: S_I < S_E": "{:.2g}",
                 "Frac. Mem.": "{:.3f}",
                 "linear probe": "{:.3f}", "kNN probe": "{:.3f}"}


def _last(history: pd.DataFrame, column: str, default=math.nan) -> float:
    last = history.iloc[-1]
    return float(last[column]) if column in history and pd.notna(last.get(column)) else default


def accounting_table(experiments: dict) -> pd.DataFrame:
    """Per privacy level (None: no DP): the ε the accountant reached for f, δ, the noise
    multiplier σ, the clipping bound C, epochs, batch and sampling rate q."""
    rows = []
    for eps, exp in experiments.items():
        h = exp.history("f")
        rows.append({"ε target": chapters.eps_label(eps),
                     "ε achieved (f)": _last(h, "epsilon", math.inf), "δ": _last(h, "delta"),
                     "noise σ": _last(h, "noise_multiplier", 0.0),
                     "clip C": exp.cfg.dp_max_grad_norm if eps is not None else math.nan,
                     "epochs": exp.cfg.epochs, "batch": exp.cfg.batch_size,
                     "q": exp.cfg.batch_size / len(exp.split.f_train)})
    return pd.DataFrame(rows)


def _subset(table: pd.DataFrame, subset: str) -> pd.Series:
    return table.loc[table.subset == subset, "score_raw"]


def levels_table(experiments: dict, tables: dict, profile: str) -> pd.DataFrame:
    """Per privacy level: the candidates' mean score and its gap to the unseen S_E, the t-tests
    of chapter 1, the fraction above the S_E threshold, and f's linear and kNN probes."""
    rows = []
    for eps, exp in experiments.items():
        t, sig = tables[eps], exp.significance().set_index("hypothesis")
        cand = _subset(t, "candidate")
        probe = exp.probe("f", **chapters.probe_caps(profile))
        rows.append({"ε": chapters.eps_label(eps), "mean m(S_C)": float(cand.mean()),
                     "m(S_C) − m(S_E)": float(cand.mean() - _subset(t, "extra").mean()),
                     "p: S_C > S_E": sig.loc["S_C > S_E", "p"],
                     "p: S_C > S_S": sig.loc["S_C > S_S", "p"],
                     "p: S_I < S_S": sig.loc["S_I < S_S", "p"],
                     "p: S_I < S_E": sig.loc["S_I < S_E", "p"],
                     "Frac. Mem.": frac_memorized(
                         cand, extra_threshold(_subset(t, "extra"), 0.99)),
                     "linear probe": probe["linear"], "kNN probe": probe["knn"]})
    return pd.DataFrame(rows)


def level_numbers(levels: pd.DataFrame) -> dict:
    """The page's glued numbers: per level ``mem_<ε>``, ``gap_<ε>``, ``frac_<ε>``,
    ``acc_<ε>``; the strongest level's ``eps_low`` and the first and strongest levels'
    ``mem_``, ``gap_``, ``frac_``, ``acc_`` (``none``, ``low``) and ``p_low``."""
    out = {}
    for _, row in levels.iterrows():
        tag = row["ε"].replace("∞", "inf")
        out |= {f"mem_{tag}": row["mean m(S_C)"], f"gap_{tag}": row["m(S_C) − m(S_E)"],
                f"frac_{tag}": row["Frac. Mem."], f"acc_{tag}": row["linear probe"]}
    first, low = levels.iloc[0], levels.iloc[-1]
    out["eps_low"] = low["ε"]
    for name, column in (("mem", "mean m(S_C)"), ("gap", "m(S_C) − m(S_E)"),
                         ("frac", "Frac. Mem."), ("acc", "linear probe")):
        out[f"{name}_none"], out[f"{name}_low"] = first[column], low[column]
    out["p_low"] = low["p: S_C > S_E"]
    return out


def paper_table(levels: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims beside this run's numbers."""
    first, low = levels.iloc[0], levels.iloc[-1]
    return pd.DataFrame([
        ("DP training reduces SSLMem memorization",
         "stated, one DP algorithm; ε values and numbers UNVERIFIED",
         f"m(S_C) − m(S_E): {_signed(first['m(S_C) − m(S_E)'])} (ε = {first['ε']}) → "
         f"{_signed(low['m(S_C) − m(S_E)'])} (ε = {low['ε']}); raw mean m(S_C) "
         f"{first['mean m(S_C)']:+.4f} → {low['mean m(S_C)']:+.4f}",
         "our DP-SGD (per-sample clipping, RDP accountant) may differ from the paper's algorithm"),
        ("... but not to zero", "the follow-up paper (UnitMem): memorization falls with ε but "
         "stays above zero (a trend, no numbers in its text)",
         f"S_C > S_E at ε = {low['ε']}: p = {low['p: S_C > S_E']:.2g}",
         "a small profile may leave little to remove"),
        ("... at a cost in utility", "stated (privacy–utility trade-off); values UNVERIFIED",
         f"linear probe {first['linear probe']:.3f} → {low['linear probe']:.3f}"
         + (", higher: against the paper" if low["linear probe"] > first["linear probe"] else ""),
         "short schedules; DP-SGD needs large batches and long training to be useful"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


CLAIM = dict(claim="training the encoder with a differentially private algorithm reduces its "
                   "memorization", short="Differential privacy lowers memorization",
             source="the paper's privacy experiment",
             chapter="06_privacy")


def claim_verdict(experiments: dict, tables: dict, levels: pd.DataFrame) -> verdicts.Verdict:
    """The chapter's verdict: the change of memorization (mean score of S_C minus that of S_E)
    from no DP to the strongest privacy level, with a 95 % interval from the four samples'
    variances (the paper: lower); the utility in the note."""
    keys = list(experiments)
    first, exp = experiments[keys[0]], experiments[keys[-1]]
    scale = (f"{scale_text(first)}; one pair of encoders f and g per privacy level "
             f"(ε = {', '.join(levels['ε'])})")
    if len(keys) < 2 or keys[0] is not None:
        return verdicts.not_run("needs the level without DP and at least one DP level",
                                scale=scale, **CLAIM)
    parts = [_subset(tables[k], s).to_numpy(float) for k in (keys[0], keys[-1])
             for s in ("candidate", "extra")]
    gaps = [parts[0].mean() - parts[1].mean(), parts[2].mean() - parts[3].mean()]
    se = math.sqrt(sum(x.var(ddof=1) / len(x) for x in parts))
    z = 1.959963984540054
    low, top = levels.iloc[0], levels.iloc[-1]
    utility = top["linear probe"] - low["linear probe"]
    note = (f"The raw mean score of S_C moves {low['mean m(S_C)']:+.4f} → "
            f"{top['mean m(S_C)']:+.4f}: without DP the pair differs on every image "
            f"(S_E: {low['mean m(S_C)'] - low['m(S_C) − m(S_E)']:+.4f}). Utility: the linear "
            f"probe goes {low['linear probe']:.3f} → {top['linear probe']:.3f} "
            + ("(higher: against the paper, which reports a cost in utility" if utility > 0
               else "(lower: the cost in utility the paper reports")
            + "; one encoder per level, so no interval).")
    return verdicts.from_interval(
        direction=-1, test=f"difference of the memorization gaps at ε = {low['ε']} and ε = "
        f"{top['ε']} (normal 95 % interval from the four subsets' variances); DP-SGD with "
        f"clipping bound C = {exp.cfg.dp_max_grad_norm:g}",
        measure="change in m(S_C) − m(S_E)", fmt="+.4f", effect=gaps[1] - gaps[0],
        low=gaps[1] - gaps[0] - z * se, high=gaps[1] - gaps[0] + z * se,
        detectable=(z + 0.8416212335729143) * se if np.isfinite(se) else math.nan,
        scale=scale, note=note.replace("-", "−"), **CLAIM)
