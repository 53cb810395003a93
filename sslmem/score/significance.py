"""The paper's tests on a score table: one-sided t-tests between subsets, and Frac. Mem.

Why a module: these are statistics over a stored score table, computed again by every chapter
that reads one; they need no encoder.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sslmem.errors import SSLMemError

HYPOTHESES = (  # (label, subset a, subset b, alternative): the paper's claims and a control
    ("S_C > S_S", "candidate", "shared", "greater"),
    ("S_C > S_E", "candidate", "extra", "greater"),
    ("S_I < S_S", "independent", "shared", "less"),
    ("S_I < S_E", "independent", "extra", "less"),
    ("S_S != S_E", "shared", "extra", "two-sided"),
)


def significance_tests(table: pd.DataFrame, column: str = "score_raw") -> pd.DataFrame:
    """Student t-tests between subsets (equal variances, as the authors' Ttest.py).

    One-sided: S_C > S_S, S_C > S_E (candidates memorized), S_I < S_S, S_I < S_E (the mirror);
    two-sided control S_S vs S_E (both should be ~0). NaN where a subset has < 2 points
    (:func:`why_untested` says which, in one line).
    """
    if column not in table:
        raise SSLMemError(f"no column {column!r} in the table; have {list(table.columns)}")
    rows = []
    for label, a, b, alternative in HYPOTHESES:
        xa = table.loc[table.subset == a, column].to_numpy(dtype=np.float64)
        xb = table.loc[table.subset == b, column].to_numpy(dtype=np.float64)
        t = p = np.nan
        if len(xa) >= 2 and len(xb) >= 2:
            t, p = stats.ttest_ind(xa, xb, equal_var=True, alternative=alternative)
        rows.append({"hypothesis": label, "t": float(t), "p": float(p),
                     "mean_a": float(xa.mean()) if len(xa) else np.nan,
                     "mean_b": float(xb.mean()) if len(xb) else np.nan,
                     "n_a": len(xa), "n_b": len(xb), "alternative": alternative,
                     "column": column})
    return pd.DataFrame(rows)


NAMES = {"candidate": "S_C", "shared": "S_S", "independent": "S_I", "extra": "S_E"}


def why_untested(result: pd.DataFrame) -> str | None:
    """One line on the tests of ``significance_tests`` that are NaN: which subsets have fewer
    than 2 points, which tests they leave uncomputed, and how to size them (None: all ran)."""
    short: dict[str, int] = {}
    lost = []
    for label, a, b, _ in HYPOTHESES:
        row = result.loc[result.hypothesis == label]
        if row.empty:
            continue
        sizes = {a: int(row.n_a.iloc[0]), b: int(row.n_b.iloc[0])}
        small = {s: n for s, n in sizes.items() if n < 2}
        if small:
            short.update(small)
            lost.append(label)
    if not lost:
        return None
    said = ", ".join(f"{NAMES.get(s, s)} ({s}) is empty" if n == 0 else
                     f"{NAMES.get(s, s)} ({s}) has 1 point" for s, n in short.items())
    fields = ", ".join(f"--set {s}=N" for s in short)
    return (f"{said}: the t-test(s) {', '.join(lost)} cannot be computed (NaN; each subset "
            f"needs at least 2 points); to compute them, size the subset(s) with {fields}")


def extra_threshold(extra_scores, quantile: float = 0.99) -> float:
    """A "memorized" threshold from unseen data: the ``quantile`` of the extra set's scores.

    Why: S_E was seen by neither encoder, so its scores are the null distribution of m; above
    its 99th percentile, 1 % of unseen points would be called memorized by chance.
    """
    extra_scores = np.asarray(extra_scores, dtype=np.float64)
    if extra_scores.size == 0:
        raise SSLMemError("extra_threshold needs the extra set's scores (got none)")
    return float(np.quantile(extra_scores, quantile))


def frac_memorized(scores, threshold: float) -> float:
    """Fraction of points with score > threshold (the paper's "Frac. Mem." analogue).

    Always report the threshold with it (e.g. ``extra_threshold(...)``, the 99th percentile of
    S_E), since the paper's own threshold is unknown (spec §3.2).
    """
    scores = np.asarray(scores, dtype=np.float64)
    return float((scores > threshold).mean()) if scores.size else math.nan
