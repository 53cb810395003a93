"""One run instead of twenty: cheap per-point proxies for SSL memorization.

Why: the ensemble estimate of SSLMem costs tens of encoders per question (chapter 7). In
supervised learning the field found cheap proxies that track the expensive estimate: learning
speed tracks the C-score (Jiang et al. 2021), loss curvature tracks Feldman–Zhang memorization
(Garg et al. 2023). These are the SSL counterparts, each computable from **one** training run
or none; chapter 8 measures how well each tracks the ensemble's m̂, on encoders and views
that share nothing with it.

* :func:`pair_estimate`: the paper's own estimator, one f/g pair on a fixed partition;
* :func:`learning_speed`: x's alignment loss over the epochs of an encoder that trained on it
  (the area under its curve: a point learned late stays high);
* :func:`heldout_contrast`: one encoder, no g: the loss of x's nearest held-out neighbours
  (never trained on) minus x's own, i.e. what training on x bought beyond its neighbourhood;
* :func:`knn_distance`: no training at all: distance to the k nearest neighbours, in pixels or
  a frozen encoder's embedding, the reading of "atypical" that the paper's Fig. 1 invites.

All take arrays; :func:`encoder_proxies` computes the one-encoder ones for any encoder and
image set the library loads. Larger values mean "more memorized" (or more atypical) for all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sslmem.errors import SSLMemError

PROXIES = ("pair_estimate", "learning_speed", "heldout_contrast", "knn_distance")


def pair_estimate(L_f, L_g, inside_f) -> np.ndarray:
    """The paper's one-pair SSLMem per point: L_g(x) − L_f(x) where f trained on x, and
    L_f(x) − L_g(x) where g did (complementary halves): the encoder without x minus the one
    with it."""
    L_f, L_g = np.asarray(L_f, float), np.asarray(L_g, float)
    inside_f = np.asarray(inside_f, bool)
    if not L_f.shape == L_g.shape == inside_f.shape:
        raise SSLMemError("L_f, L_g and inside_f must have one shape (one value per point)")
    return np.where(inside_f, L_g - L_f, L_f - L_g)


def learning_speed(dynamics, epochs=None) -> np.ndarray:
    """Area under each point's alignment-loss curve (E, N) over training, one encoder that
    trained on the points: the mean over snapshots, weighted by the log-epoch span each covers
    (snapshots are log-spaced), so early and late training count alike. A point the encoder
    learns late keeps a high loss for longer: large values are slow points."""
    d = np.asarray(dynamics, float)
    if d.ndim != 2 or len(d) < 2:
        raise SSLMemError("dynamics must be (snapshots ≥ 2, points): a loss per epoch and point")
    x = np.log(np.asarray(epochs, float)) if epochs is not None else np.arange(len(d), dtype=float)
    if len(x) != len(d) or np.any(np.diff(x) <= 0):
        raise SSLMemError("epochs must be increasing, one per snapshot row of dynamics")
    area = ((d[1:] + d[:-1]) / 2 * np.diff(x)[:, None]).sum(0)
    return area / (x[-1] - x[0])


def heldout_contrast(loss, trained, features, k: int = 8) -> np.ndarray:
    """One encoder, no g: per point, the mean loss of its ``k`` nearest neighbours that the
    encoder did **not** train on (in ``features`` space) minus its own loss.

    Why: L_f(x) alone mixes how typical x is with how much training on it helped; its
    held-out neighbours estimate the loss x would have without being trained on. For a point
    the encoder did not train on the same formula gives a placebo value (expected 0)."""
    loss = np.asarray(loss, float)
    trained = np.asarray(trained, bool)
    feats = np.asarray(features, float).reshape(len(loss), -1)
    held = np.flatnonzero(~trained)
    if len(held) < k + 1:
        raise SSLMemError(f"heldout_contrast needs more than k = {k} points not trained on")
    dist = _distances(feats, feats[held])
    dist[held, np.arange(len(held))] = np.inf  # a held-out point is not its own neighbour
    nearest = np.argsort(dist, axis=1)[:, :k]
    return loss[held][nearest].mean(1) - loss


def knn_distance(features, k: int = 5, reference=None) -> np.ndarray:
    """Mean Euclidean distance of each point to its ``k`` nearest neighbours among
    ``reference`` (default: the points themselves, excluding the point)."""
    feats = np.asarray(features, float).reshape(len(features), -1)
    ref = feats if reference is None else np.asarray(reference, float).reshape(
        len(reference), -1)
    if len(ref) <= k:
        raise SSLMemError(f"knn_distance needs more than k = {k} reference points")
    dist = _distances(feats, ref)
    if reference is None:
        np.fill_diagonal(dist, np.inf)
    return np.sort(dist, axis=1)[:, :k].mean(1)


def pixel_features(images) -> np.ndarray:
    """uint8 images (N, C, H, W) as standardized pixel vectors (per channel), for kNN."""
    x = torch.as_tensor(images).float() / 255.0
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return ((x - mean) / std).flatten(1).numpy()


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def encoder_proxies(encoder, images, trained, *, augment, n_pairs: int = 16, seed: int = 0,
                    k: int = 8, device: str = "cpu") -> pd.DataFrame:
    """The one-encoder proxies for any encoder and image set (uint8, N × C × H × W):
    its alignment loss (``loss``), :func:`heldout_contrast` in its own embedding, and
    :func:`knn_distance` in that embedding and in pixels. ``trained``: which images it
    trained on. One pass of scoring; nothing is trained."""
    from sslmem.score.alignment import score_alignment
    from sslmem.score.evaluate import extract_features

    images = torch.as_tensor(images)
    trained = np.asarray(trained, bool)
    if len(trained) != len(images):
        raise SSLMemError(f"trained must flag each of the {len(images)} images")
    loss = score_alignment({"e": encoder}, images, n_pairs, augment, seed=seed,
                           device=device)["e"].double().mean(1).numpy()
    embedding = extract_features(encoder, images, device=device).numpy()
    return pd.DataFrame({"loss": loss, "trained": trained,
                         "heldout_contrast": heldout_contrast(loss, trained, embedding, k),
                         "knn_embedding": knn_distance(embedding, k),
                         "knn_pixels": knn_distance(pixel_features(images), k)})
