"""Chapter 1's analyses: the appendix's toy, the split, the paper's t-tests, Frac. Mem., epochs.

Why a module: the page should narrate, not compute. The numbers and tables chapter 1 shows (the
2-D toy's panels, the split's sizes, the glued test statistics, the fractions above the threshold,
the memorization gap over training and the "paper vs this run" table) are built here from a score
table, so that tests can check them without executing the notebook. Nothing here trains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import connected_components

from sslmem.book import verdicts
from sslmem.book.notebook import scale_text
from sslmem.score.significance import frac_memorized

SUBSETS = ("candidate", "shared", "independent", "extra")
TOY_POINTS = (("(a) unseen typical point", (0.4, -0.3)), ("(b) unseen outlier", (3.6, 3.2)))
SIGNIFICANCE_COLUMNS = ["hypothesis", "alternative", "mean_a", "mean_b", "n_a", "n_b", "t", "p"]
SIGNIFICANCE_FORMATS = {"mean_a": "{:+.4f}", "mean_b": "{:+.4f}", "t": "{:.2f}", "p": "{:.2g}"}
WEAKER = "few points and epochs here: weaker tests"


def _views(rng: np.random.Generator, x: np.ndarray, radius: float, k: int) -> np.ndarray:
    """k augmentations of x: uniform in the disk of radius ``radius`` around it."""
    angle = rng.uniform(0, 2 * np.pi, k)
    dist = radius * np.sqrt(rng.uniform(0, 1, k))
    return x + np.c_[dist * np.cos(angle), dist * np.sin(angle)]


def invariant_encoder(anchors: np.ndarray, radius: float):
    """The idealized encoder trained on ``anchors``: anchors whose disks overlap are chained into
    one component; an input inside a component's disks maps to its centroid, any other input to
    itself (the encoder learned nothing there)."""
    near = np.linalg.norm(anchors[:, None] - anchors[None], axis=-1) <= 2 * radius
    _, comp = connected_components(near, directed=False)
    centroid = np.stack([anchors[comp == c].mean(0) for c in comp])

    def encode(z):
        inside = np.linalg.norm(z[:, None] - anchors[None], axis=-1) <= radius
        covered = inside.any(1)
        mean = (inside @ centroid) / np.maximum(inside.sum(1, keepdims=True), 1)
        return np.where(covered[:, None], mean, z)

    return encode


def toy_panels(seed: int = 0, radius: float = 0.6, n_train: int = 300, k: int = 400,
               shown: int = 60, points=TOY_POINTS) -> list[dict]:
    """The panels of the 2-D intuition figure (appendix, Figure 10), as ``grids.toy_views``
    takes them: per point x, L_f (f trains on the data plus x), L_g (g on the data alone), and
    ``shown`` views with their images under f and g."""
    rng = np.random.default_rng(seed)
    train = rng.normal(0.0, 1.0, size=(n_train, 2))
    panels = []
    for title, point in points:
        x = np.array(point)
        f = invariant_encoder(np.vstack([train, x]), radius)
        g = invariant_encoder(train, radius)
        v1, v2 = _views(rng, x, radius, k), _views(rng, x, radius, k)
        L_f = float(np.linalg.norm(f(v1) - f(v2), axis=1).mean())
        L_g = float(np.linalg.norm(g(v1) - g(v2), axis=1).mean())
        panels.append(dict(title=title, train=train, point=x, views=v1[:shown],
                           f_views=f(v1[:shown]), g_views=g(v1[:shown]), L_f=L_f, L_g=L_g))
    return panels


def run_texts(exp, profile: str) -> dict:
    """The run's glued words: the profile and the setup (where the results were computed is
    glued from their provenance at the end of the page)."""
    return {"profile": profile, "dataset": exp.cfg.dataset, "method_name": exp.cfg.method,
            "backbone": exp.cfg.backbone}


def run_numbers(exp) -> dict:
    """The run's glued sizes: epochs, seeds, augmentation pairs per point and candidates."""
    return {"epochs": exp.cfg.epochs, "n_seeds": len(exp.cfg.seeds), "n_pairs": exp.cfg.n_pairs,
            "n_candidates": len(exp.split.candidate)}


def split_table(split) -> pd.DataFrame:
    """The four subsets of the split: how many points each has and which encoder trained on it."""
    return pd.DataFrame({
        "subset": ["S_S shared", "S_C candidate", "S_I independent", "S_E extra"],
        "points": [len(split.shared), len(split.candidate), len(split.independent),
                   len(split.extra)],
        "trained on by": ["f and g", "f only", "g only", "neither (test split)"]})


def hypothesis_key(hypothesis: str) -> str:
    """A glue-name-safe key for a hypothesis label, e.g. "S_C > S_S" -> "S_CgtS_S"."""
    return hypothesis.replace(" ", "").replace("<", "lt").replace(">", "gt").replace("!=", "ne")


def ttest_numbers(sig: pd.DataFrame) -> dict:
    """``t_<key>`` and ``p_<key>`` of every row of a significance table (the glued numbers)."""
    out = {}
    for row in sig.itertuples():
        key = hypothesis_key(row.hypothesis)
        out[f"t_{key}"] = row.t
        out[f"p_{key}"] = row.p
    return out


def fractions(table: pd.DataFrame, threshold: float, column: str = "score_raw") -> dict:
    """Per subset, the fraction of points scoring above ``threshold`` ("Frac. Mem.")."""
    return {s: frac_memorized(table.loc[table.subset == s, column], threshold) for s in SUBSETS}


def fraction_table(fracs: dict) -> pd.DataFrame:
    """The fractions of :func:`fractions` as the page's table."""
    return pd.DataFrame({"subset": list(fracs), "fraction above threshold": list(fracs.values())})


def fraction_numbers(threshold: float, fracs: dict) -> dict:
    """The glued threshold and ``frac_<subset>`` of every subset."""
    return {"threshold": threshold, **{f"frac_{s}": v for s, v in fracs.items()}}


def epoch_gap(over_epochs: pd.DataFrame) -> pd.Series:
    """Per snapshot epoch, the mean score of the candidates minus that of the extra set."""
    per_epoch = over_epochs.pivot_table(index="epoch", columns="subset", values="score_raw")
    return per_epoch["candidate"] - per_epoch["extra"]


def epoch_numbers(gap: pd.Series, history: pd.DataFrame) -> dict:
    """The glued numbers of the training curve: first and last epoch, their gaps, last kNN."""
    return {"epoch_first": int(gap.index[0]), "epoch_last": int(gap.index[-1]),
            "epoch_first_gap": gap.iloc[0], "epoch_last_gap": gap.iloc[-1],
            "knn_last": history.dropna(subset=["knn"]).knn.iloc[-1]}


def score_numbers(means: pd.Series, sig: pd.DataFrame, threshold: float, fracs: dict,
                  over_epochs: pd.DataFrame, history: pd.DataFrame) -> dict:
    """Every number the page quotes from the scores, by glue name: ``mean_<subset>``, the
    t-tests' ``t_<key>`` and ``p_<key>``, the threshold and ``frac_<subset>``, and the gap over
    training (:func:`epoch_numbers`)."""
    return {**{f"mean_{s}": means[s] for s in SUBSETS}, **ttest_numbers(sig),
            **fraction_numbers(threshold, fracs),
            **epoch_numbers(epoch_gap(over_epochs), history)}


def _tests_hold(numbers: dict, a: str, b: str, alpha: float) -> str:
    return "holds here" if max(numbers[a], numbers[b]) < alpha else WEAKER


def comparison(numbers: dict, alpha: float = 0.01) -> pd.DataFrame:
    """The "paper vs this run" table, from :func:`score_numbers`: each claim, what the paper
    says, what this run gives and why the two may differ."""
    n = numbers
    return pd.DataFrame([
        ("S_C > S_S, S_C > S_E (one-sided t-test)",
         "significant (stated in the paper; p-values UNVERIFIED)",
         f"p = {n['p_S_CgtS_S']:.2g}, {n['p_S_CgtS_E']:.2g}",
         _tests_hold(n, "p_S_CgtS_S", "p_S_CgtS_E", alpha)),
        ("S_I < S_S, S_I < S_E (one-sided t-test)",
         "significant (stated; p-values UNVERIFIED)",
         f"p = {n['p_S_IltS_S']:.2g}, {n['p_S_IltS_E']:.2g}",
         _tests_hold(n, "p_S_IltS_S", "p_S_IltS_E", alpha)),
        ("S_S vs S_E (two-sided control)", "not significant (implied by the design)",
         f"p = {n['p_S_SneS_E']:.2g}", "S_E comes from the test split: a small shift is possible"),
        ("Frac. Mem. of the candidates", "Table 1 value and threshold UNVERIFIED",
         f"{n['frac_candidate']:.3f} above {n['threshold']:.3g}",
         "our threshold: 99th percentile of S_E"),
        ("memorization grows with training",
         "UNVERIFIED for SSLMem; the follow-up paper (UnitMem, Fig. 4): it rises",
         f"S_C − S_E gap {n['epoch_first_gap']:+.4f} → {n['epoch_last_gap']:+.4f}",
         "few snapshots in a short schedule"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


CLAIM = dict(
    claim="points seen only by f (the candidates S_C) are memorized more than points f and g "
          "both saw (S_S) and points neither saw (S_E): one-sided t-tests, p < 0.01",
    short="The candidates are memorized", source="Sec. 3, Table 1", chapter="01_definition")


def verdict(sig: pd.DataFrame, exp) -> verdicts.Verdict:
    """The chapter's verdict: S_C − S_E and S_C − S_S with Student's 95 % intervals (from the
    significance table's means, sizes and t); holds only if both lie above zero."""
    rows = sig.set_index("hypothesis")
    parts = {}
    for h in ("S_C > S_E", "S_C > S_S"):
        if h in rows.index:
            r = rows.loc[h]
            parts[h] = verdicts.two_sample(r.mean_a, r.mean_b, int(r.n_a), int(r.n_b), r.t)
    n = len(exp.cfg.seeds)
    pairs = "one pair of encoders f and g" if n == 1 else f"{n} pairs of f and g (one per seed)"
    scale = f"{scale_text(exp)}; {pairs}"
    if "S_C > S_E" not in parts:
        return verdicts.not_run("the significance tests are missing", scale=scale, **CLAIM)
    main, shared = parts["S_C > S_E"], parts.get("S_C > S_S")
    word = verdicts.weakest(*(verdicts.interval_word(v["low"], v["high"])
                              for v in parts.values()))
    note = ("" if shared is None else "Against the shared points S_S: " + verdicts.effect_text(
        verdicts.Verdict(word=word, fmt="+.4f", measure="mean score of S_C − S_S", **CLAIM,
                         **shared)) + ".")
    return verdicts.Verdict(
        word=word, test="Student's t-tests (equal variances, as in the authors' code) of S_C "
        "against S_E and against S_S", measure="mean score of S_C − mean score of S_E",
        effect=main["effect"], low=main["low"], high=main["high"],
        detectable=main["detectable"], fmt="+.4f", scale=scale, note=note, **CLAIM)
