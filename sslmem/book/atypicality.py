"""Chapter 2's question on reliable scores: are atypical points the memorized ones?

Why a module: the paper shows it with image grids (Fig. 1); the literature measures
atypicality with held-out consistency (the C-score estimator, Jiang et al. 2021) and label
memorization (Feldman and Zhang 2020), both estimated from supervised models trained on random
subsets. Here a supervised ensemble on the same pool and membership matrix as the SSL ensemble
gives both, so the SSLMem ranking and the atypicality measures are compared point by point,
each with its measured precision (:mod:`sslmem.score.agreement`). The page's texts and tables
(verdicts, the agreement table as shown, "paper vs this run") are built here too, so that the
notebook narrates and tests can check them. Nothing here trains.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sslmem.book import verdicts
from sslmem.book.consensus import agreement_columns
from sslmem.book.notebook import data_text, describe_design, encoders_text
from sslmem.book.precision import detectable_correlation, summarize
from sslmem.pipeline.ensemble import Ensemble, label_memorization
from sslmem.score.agreement import PointScore, agreements, from_ensemble, label_scores

SSLMEM = "SSLMem"
MEASURES = ("1 − consistency", "label memorization")  # the literature's atypicality measures
# a second reading of "atypical", found by chapter 8 to track m̂ (exploratory here: the
# verdict stays on the pre-registered 1 − consistency)
PIXELS = "kNN distance in pixels"


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
    """The three per-point scores of ``subset`` as :class:`~sslmem.score.agreement.PointScore`s."""
    out = {SSLMEM: from_ensemble(SSLMEM, ssl, subset=subset)}
    out.update(label_scores(supervised, subset=subset))
    positions, distance = pixel_atypicality(ssl, subset)
    out[PIXELS] = PointScore(PIXELS, positions, fixed=distance)
    return out


def pixel_atypicality(ens: Ensemble, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions, kNN distance in standardized pixels) of ``subset``'s points, their
    neighbours taken among the pool and the placebo together (as chapter 8 does)."""
    import torch

    from sslmem.score.proxies import knn_distance, pixel_features

    images = torch.cat([ens.exp.train.images[torch.as_tensor(np.array(ens.pool))],
                        ens.exp.test.images[torch.as_tensor(np.array(ens.placebo))]])
    distance = knn_distance(pixel_features(images))
    pool = len(ens.pool)
    return (ens.pool, distance[:pool]) if subset == "pool" else (ens.placebo, distance[pool:])


def agreement_table(ssl: Ensemble, supervised: Ensemble, *, how: str = "spearman",
                    n_splits: int = 100, n_boot: int = 1000) -> pd.DataFrame:
    """SSLMem against each atypicality measure, on the pool and (the control) on the placebo.

    Columns as :func:`sslmem.score.agreement.agreements`, plus ``subset`` and ``detectable``: the
    smallest true correlation this design detects with 80 % power at α = 0.05, given the
    measured reliabilities (what a null here can and cannot rule out).
    """
    frames = []
    for subset in ("pool", "placebo"):
        found = scores(ssl, supervised, subset)
        # on the placebo the membership is fake: only its held-out error is a measure there
        measures = [*MEASURES, PIXELS] if subset == "pool" else [MEASURES[0], PIXELS]
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


# ---- the chapter's page: its texts and tables -------------------------------------------------

PAGE_TEXTS = ("reliability", "verdict", "fz_verdict", "control", "pixels", "precision_note")
NOT_COMPUTED = "not computed: too few encoders stored"


def missing_warning(profile: str, ssl_name: str, sup_name: str, n_ssl: int, n_sup: int) -> str:
    """The page's warning (MyST markdown) while either ensemble has too few stored members."""
    return (f":::{{warning}}\nThis page needs at least two complete pairs of encoders in each "
            f"ensemble; the store holds {n_ssl} of **{ssl_name}** and "
            f"{n_sup} of **{sup_name}**. Compute them with "
            f"`sslmem plan --profile {profile} --run` (units `ens-{ssl_name}-…` and "
            f"`ens-{sup_name}-…`); the page then fills in.\n:::\n")


def label_memorization_text(row, fit: float) -> str:
    """Plain words for the pool row of SSLMem against label memorization: its verdict, unless
    every supervised model fits its training images, where the two measures coincide."""
    if fit < 0.999:
        return verdict(row)
    return ("the same numbers as atypicality: every supervised model fits all of its training "
            f"images (accuracy {fit:.2f} on them), so label memorization (accuracy with the image "
            "− without it) equals 1 − consistency, image for image")


def pixels_text(agree: pd.DataFrame) -> str:
    """The pixel reading of atypicality in words: true-score ρ on the pool, its placebo."""
    if not {"pool", "placebo"} <= set(agree[agree.b == PIXELS].subset):
        return "not measured"
    pool, placebo = _row(agree, "pool", PIXELS), _row(agree, "placebo", PIXELS)
    if not pool["r_true"] == pool["r_true"]:
        return f"ρ = {pool['r']:+.2f}, not bounded after correction"
    return (f"true-score ρ = {pool['r_true']:+.2f} [{pool['r_true_low']:+.2f}, "
            f"{pool['r_true_high']:+.2f}] over the pool; on the placebo, whose true SSLMem is "
            f"zero, ρ = {placebo['r']:+.2f} [{placebo['r_low']:+.2f}, {placebo['r_high']:+.2f}]")


def precision_note(rel: float) -> str:
    """What the ranking's split-half reliability allows (0.5: enough to rank points)."""
    return ("reliable enough to rank points (at least 0.5)" if rel >= 0.5 else
            "below 0.5: the ranking below is mostly noise, and a null here is weak evidence")


def _row(agree: pd.DataFrame, subset: str, measure: str | None = None) -> pd.Series:
    keep = agree.subset == subset
    if measure is not None:
        keep &= agree.b == measure
    return agree[keep].iloc[0]


def page_texts(summary: dict, agree: pd.DataFrame, fit: float) -> dict:
    """The page's glued texts (:data:`PAGE_TEXTS`), from the SSL design's precision summary
    (:func:`sslmem.book.precision.summarize`), :func:`agreement_table` and :func:`fit_accuracy`."""
    rel = summary.get("pool_rel", math.nan)
    return {
        "reliability": f"{rel:.2f} [{summary['pool_rel_low']:.2f}, "
                       f"{summary['pool_rel_high']:.2f}]",
        "verdict": verdict(_row(agree, "pool", MEASURES[0])),
        "fz_verdict": label_memorization_text(_row(agree, "pool", MEASURES[1]), fit),
        "control": control(_row(agree, "placebo", MEASURES[0])),
        "pixels": pixels_text(agree),
        "precision_note": precision_note(rel)}


def page(name: str, ssl: Ensemble, supervised: Ensemble) -> dict:
    """Everything the page shows once both ensembles are stored: ``table`` (:func:`point_table`),
    ``pool`` (its pool rows), ``summary`` (the SSL design's precision), ``agree``
    (:func:`agreement_table`), ``main`` (its pool row against 1 − consistency) and ``texts``
    (:func:`page_texts`)."""
    table = point_table(ssl, supervised)
    summary = summarize(name, ssl, n_splits=100, n_boot=400)
    agree = agreement_table(ssl, supervised)
    return {"table": table, "pool": table[table.subset == "candidate"].reset_index(drop=True),
            "summary": summary, "agree": agree, "main": _row(agree, "pool", MEASURES[0]),
            "texts": page_texts(summary, agree, fit_accuracy(supervised))}


AGREEMENT_FORMATS = {"p": "{:.2g}", "detectable ρ": "{:.2f}"}


def agreement_view(agree: pd.DataFrame) -> pd.DataFrame:
    """:func:`agreement_table` as the page shows it: one row per pair, intervals as text
    (show with :data:`AGREEMENT_FORMATS`)."""
    shown = agree.assign(pair=agree.a + " vs " + agree.b + " (" + agree.subset + ")",
                         **agreement_columns(agree))
    return shown[["pair", "observed", "p", "rels", "true", "detectable"]].rename(columns={
        "observed": "ρ observed [95 %]", "rels": "rank reliabilities",
        "true": "ρ true-score [95 %]", "detectable": "detectable ρ"})


def comparison(found: dict, n_members: int) -> pd.DataFrame:
    """The "paper vs this run" table, from :func:`page` and the number of SSL encoders."""
    texts, rel = found["texts"], found["summary"].get("pool_rel", math.nan)
    return pd.DataFrame([
        ("Fig. 1: atypical / outlier images are memorized most",
         "qualitative, from image grids of one f/g pair (ViT-Tiny + MAE; values UNVERIFIED)",
         f"grids above, ranked by an ensemble of {n_members} encoders (reliability {rel:.2f})",
         "our method, encoder and scale differ from the figure's"),
        ("rank correlation of m(x) with atypicality",
         "not reported in the paper; target ρ > 0, p < 0.01",
         texts["verdict"], "atypicality measured by a supervised ensemble"),
        ("memorized points are the ones with high label memorization",
         "not reported", texts["fz_verdict"], "Feldman–Zhang estimator, same halves"),
        ("the correlation is not an artefact of the estimator",
         "not checked", texts["control"], "placebo: true SSLMem = 0"),
    ], columns=["claim", "paper", "this run", "why they may differ"])


# ---- the chapter's verdict --------------------------------------------------------------------

CLAIM = dict(claim="“outliers and atypical examples experience higher memorization than more "
                   "standard samples”", short="Atypical points are memorized most",
             source="Fig. 1", chapter="02_atypical_examples")


def scale(ssl: Ensemble, supervised: Ensemble, n_ssl: int, n_sup: int) -> str:
    """The run's scale in words: the SSL ensemble's data and encoders, and the supervised one's."""
    return (f"{data_text(ssl.exp)}; {n_ssl} SSL encoders ({describe_design(ssl)}) and {n_sup} "
            f"supervised models ({encoders_text(supervised.exp.cfg)}) on the same halves")


def claim_verdict(found: dict | None, scale_: str) -> verdicts.Verdict:
    """The chapter's verdict from :func:`page`: the correlation of SSLMem with atypicality
    (1 − held-out consistency) over the pool, positive in the paper's direction; a failed
    placebo control keeps it from holding."""
    if found is None:
        return verdicts.not_run("too few encoders stored to rank the pool", scale=scale_, **CLAIM)
    row, placebo = found["main"], _row(found["agree"], "placebo", MEASURES[0])
    test = ("Spearman's ρ between SSLMem and atypicality (1 − held-out consistency) over the "
            f"{int(row['points'])} pool images, with a 95 % bootstrap interval; placebo control")
    note = ("Placebo control " + control(placebo) + ". Read as " + PIXELS + " (exploratory, "
            "chapter 8): " + pixels_text(found["agree"]) + ".")
    v = verdicts.from_correlation(row, row.get("detectable", math.nan), test=test,
                                  scale=scale_, note=note, **CLAIM)
    if v.word == verdicts.HOLDS and placebo["p"] < 0.01:
        return verdicts.Verdict(**{**v.__dict__, "word": verdicts.NOT_DETECTED})
    return v
