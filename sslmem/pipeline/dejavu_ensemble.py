"""Déjà vu on an ensemble: every member attacks every pool point, in or out of its half.

Why: Déjà vu (Meehan et al. 2023) compares a model that trained on a point with a reference
that did not, one pair at a time, so like one f/g pair it mixes a point's own memorization with
the composition of the fixed split. On an ensemble every member already trained on a random
half of the pool; its kNN label inference from each pool point's corner crop, averaged over
the members that trained on the point minus those that did not, is Déjà vu memorization as an
expectation over models, with a standard error and a split-half reliability, exactly like
SSLMem's (:mod:`sslmem.score.reliability`). Chapter 5 then compares the two on the same encoders.

Each member's votes are one stored result (``dvmember-<key>-<j>``), computed from the member's
encoder (cached under ``runs/``, retrained from its seed when absent).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from sslmem.pipeline.ensemble import Ensemble
from sslmem.score.agreement import PointScore
from sslmem.score.dejavu import PROJECTORS, corner_crop, embedding_network, knn_label_inference
from sslmem.score.evaluate import extract_features


def settings(ens: Ensemble, k: int = 100, frac: float = 0.3, corner: str = "lower_left") -> dict:
    """The test's settings for this ensemble: the reference's, with the projector where the
    method has one (else the backbone)."""
    embedding = "projector" if ens.exp.cfg.method in PROJECTORS else "backbone"
    return dict(k=int(k), frac=float(frac), corner=corner, embedding=embedding)


def public_positions(ens: Ensemble) -> np.ndarray:
    """The public set: the test split minus the placebo (no member trained on either)."""
    return np.setdiff1d(np.arange(len(ens.exp.test)), ens.placebo)


def result_name(ens: Ensemble, j: int, **kw) -> str:
    key = ens.exp.key(ensemble=ens._key(), dejavu=settings(ens, **kw))
    return f"dvmember-{key}-{j:03d}"


def member_votes(ens: Ensemble, j: int, **kw) -> pd.DataFrame:
    """Member j's Déjà vu votes on the pool: per point its membership, whether the kNN vote of
    the point's corner crop is the true label (``correct``), the share of the k neighbours
    with the true label (``p_true``, a graded vote) and the vote's confidence."""
    s = settings(ens, **kw)
    exp = ens.exp

    def compute():
        inside = ens.membership(j)
        method = exp.train_on(ens.pool[inside], seed=ens.seed(j), tag=f"ens{j}")
        t0 = time.perf_counter()
        pos = torch.as_tensor(np.array(ens.pool))
        images, labels = exp.train.images[pos], exp.train.labels[pos]
        public = torch.as_tensor(public_positions(ens))
        pub_images, pub_labels = exp.test.images[public], exp.test.labels[public]
        crops = corner_crop(images, s["frac"], s["corner"], size=tuple(pub_images.shape[-2:]))
        net = embedding_network(method, s["embedding"])
        bank = extract_features(net, pub_images, 1024, exp.device, amp=exp.amp)
        queries = extract_features(net, crops, 1024, exp.device, amp=exp.amp)
        classes = int(max(labels.max(), pub_labels.max())) + 1
        pred, conf, counts = knn_label_inference(queries, bank, pub_labels, s["k"],
                                                 num_classes=classes, return_counts=True)
        counts = counts.cpu()
        votes = counts[torch.arange(len(labels)), labels] / counts.sum(1)
        exp.wall["score dejavu"] = time.perf_counter() - t0
        return pd.DataFrame({"position": np.asarray(ens.pool), "inside": inside,
                             "correct": (pred.cpu() == labels).numpy(),
                             "p_true": votes.numpy(), "confidence": conf.cpu().numpy()})

    return exp._cached(result_name(ens, j, **kw), f"Déjà vu votes of ensemble member {j}",
                       compute, table=True)


def stored_members(ens: Ensemble, **kw) -> list[int]:
    """Members whose votes are stored and whose complementary member's are too."""
    folder = ens.exp.store_dir
    have = {j for j in ens.complete_members()
            if (folder / f"{result_name(ens, j, **kw)}.csv.gz").exists()}
    return sorted(j for j in have if (j ^ 1) in have)


def score(ens: Ensemble, members=None, column: str = "p_true", **kw) -> PointScore:
    """Déjà vu memorization per pool point as a score: mean ``column`` of the members that
    trained on the point − that of the members that did not (the graded vote by default;
    ``correct`` gives the accuracy gap of the original test)."""
    members = stored_members(ens, **kw) if members is None else list(members)
    frames = [member_votes(ens, j, **kw).assign(member=j) for j in members]
    long = pd.concat(frames, ignore_index=True)
    values = long.pivot(index="member", columns="position", values=column).astype(float)
    inside = long.pivot(index="member", columns="position", values="inside").astype(bool)
    # PointScore's m is mean(out) − mean(in): scoring 1 − vote makes it mean(in) − mean(out)
    return PointScore("Déjà vu", values.columns.to_numpy(), 1.0 - values.to_numpy(),
                      inside.to_numpy(), ens.pair_groups(values.index.to_numpy()), "m")


def votes_table(ens: Ensemble, members=None, **kw) -> pd.DataFrame:
    """One row per stored member and pool point (``member_votes`` of each, with ``member``)."""
    members = stored_members(ens, **kw) if members is None else list(members)
    return pd.concat([member_votes(ens, j, **kw).assign(member=j) for j in members],
                     ignore_index=True)


def average_gap(ens: Ensemble, fractions=(0.2, 1.0), **kw) -> pd.DataFrame:
    """Déjà vu's accuracy gap on the ensemble: label-inference accuracy of the members that
    trained on a point minus that of those that did not, over every pool point (``fraction``
    1) and over each member's most confident crops (its own ranking, as the test does).

    The interval and test are over points (paired: each point's in-accuracy minus its
    out-accuracy), so the gap is a within-point comparison like SSLMem's contrast.
    """
    from scipy import stats

    long = votes_table(ens, **kw)
    rows = []
    for frac in fractions:
        part = long
        if frac < 1:  # each member's most confident ``frac`` of the pool
            ranked = long.groupby("member").confidence.rank(ascending=False, method="first")
            size = long.groupby("member").position.transform("count")
            part = long[ranked <= np.maximum(1, (frac * size).astype(int))]
        acc = part.groupby(["position", "inside"]).correct.mean().unstack()
        both = acc.dropna(subset=[c for c in (True, False) if c in acc.columns])
        gap = (both[True] - both[False]) if {True, False} <= set(both.columns) else pd.Series()
        t = stats.ttest_1samp(gap, 0.0) if len(gap) > 1 else None
        rows.append({"fraction": frac, "acc_in": float(part[part.inside].correct.mean()),
                     "acc_out": float(part[~part.inside].correct.mean()),
                     "gap": float(gap.mean()) if len(gap) else np.nan,
                     "se": float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else np.nan,
                     "p": float(t.pvalue) if t is not None else np.nan, "points": len(gap)})
    return pd.DataFrame(rows)
