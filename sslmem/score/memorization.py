"""SSLMem: memorization of a point x by an SSL encoder, measured by the alignment of x's views.

The paper's definition (spec §1.2; [LM] Eq. 1), with ``d`` the Euclidean distance::

    L_align(f, x) = E_{x', x'' ~ Aug(x)} d(f(x'), f(x''))
    m(x)          = E_{g ~ M(D \\ {x})} L_align(g, x) - E_{f ~ M(D)} L_align(f, x)

``m(x) > 0``: the encoder f that trained on x aligns x's views better than a reference g that never
saw it. In practice (spec §1.6) f trains on S_S ∪ S_C and g on S_S ∪ S_I, so every candidate is
"in" for f and "out" for g, and the expectations over f and g are one encoder per seed.

Estimator choices (spec §1.8), each a keyword so ablations are one argument away:
  * K = ``n_pairs`` independent pairs (x', x'') per point (``variant="pairs"``, the definition) or
    the authors' code variant ``"clean"``: d(f(x), f(aug_k(x))) over K augmentations (they use 5);
  * features flattened and L2-normalized (spec §1.5), Euclidean distance;
  * common random numbers: ONE draw of augmentation parameters is applied to the images and the
    same views go through f and g (and every seed). The noise of the views then largely cancels in
    m = L_g - L_f, and the Monte-Carlo standard error of m is the std of the per-pair differences
    over sqrt(K);
  * all parameters are drawn up front on the CPU from one seeded generator, in order of the points'
    original dataset index. Results therefore do not depend on batch size or device, permuting the
    inputs (with their indices) permutes the outputs, and the same seed gives identical scores.

Normalizations (spec §1.3), always named in column names: ``score_raw`` (m), ``score_ratio``
((L_g - L_f) / (L_f + L_g), [LM] Eq. 2), ``score_range`` (m / (max m - min m) over the scored set,
the authors' script: depends on which points are scored together), ``score_zscore`` (m
standardized by the extra set S_E's scores).

Also: the paper's t-tests between subsets, a "Frac. Mem." analogue, Feldman's label memorization
for the supervised comparison, and top-k / rank agreement between score vectors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.score.alignment import (
    _as_list,
    _pair_se,
    _positions,
    score_alignment,
)
from sslmem.score.evaluate import (
    unwrap_images,
)

NORMALIZATIONS = ("raw", "ratio", "range", "zscore")
SUBSETS = ("shared", "candidate", "independent", "extra")
# Metadata that must agree between f and g for m to compare like with like (keys absent from
# either dict are not checked; f and g legitimately differ in their training subsets and seeds).
MATCHING_META_KEYS = ("dataset", "split", "split_fingerprint", "method", "arch", "backbone",
                      "image_size", "epochs", "augment", "recipe")


# ---------------------------------------------------------------------------------- views --


# ------------------------------------------------------------------------ alignment loss --


# ----------------------------------------------------------------------------- the score --

def normalize_scores(raw, how: str, reference=None, *, L_f=None, L_g=None) -> np.ndarray:
    """Normalize raw scores m = L_g - L_f (spec §1.3).

    how:
        "raw": m unchanged.
        "ratio": m / (L_f + L_g) ([LM] Eq. 2, in [-1, 1]); needs ``L_f`` and ``L_g``; 0 where
            both are 0 (both encoders perfectly invariant: nothing to tell apart).
        "range": m / (max m - min m) over ``raw`` itself (the authors' script); the scale depends
            on which points are scored together. NaN if all scores are equal.
        "zscore": (m - mean(ref)) / std(ref) with ``reference`` the raw scores of the extra set
            S_E (points neither encoder saw), so 2 means "2 std above unseen data".
    """
    raw = np.asarray(raw, dtype=np.float64)
    if how == "raw":
        return raw.copy()
    if how == "ratio":
        if L_f is None or L_g is None:
            raise SSLMemError('normalization "ratio" needs L_f and L_g (keyword arguments)')
        denom = np.asarray(L_f, dtype=np.float64) + np.asarray(L_g, dtype=np.float64)
        return np.divide(raw, denom, out=np.zeros_like(raw), where=denom != 0)
    if how == "range":
        spread = raw.max() - raw.min() if raw.size else 0.0
        return raw / spread if spread > 0 else np.full_like(raw, np.nan)
    if how == "zscore":
        ref = np.asarray(reference if reference is not None else [], dtype=np.float64)
        if ref.size < 2:
            raise SSLMemError('normalization "zscore" needs reference= (raw scores of the extra '
                              f"set S_E, at least 2); got {ref.size}")
        return (raw - ref.mean()) / ref.std(ddof=1)
    raise unknown_choice("normalization", how, NORMALIZATIONS)


def _score_frame(d_f: torch.Tensor, d_g: torch.Tensor, reference=None) -> pd.DataFrame:
    """Per-point L_f, L_g, raw score, its se over pairs and the normalizations."""
    d_f, d_g = d_f.double(), d_g.double()
    L_f, L_g = d_f.mean(1).numpy(), d_g.mean(1).numpy()
    raw = L_g - L_f  # exactly antisymmetric in (f, g)
    frame = pd.DataFrame({"L_f": L_f, "L_g": L_g, "score_raw": raw,
                          "score_se": _pair_se(d_g - d_f).numpy()})
    frame["score_ratio"] = normalize_scores(raw, "ratio", L_f=L_f, L_g=L_g)
    frame["score_range"] = normalize_scores(raw, "range")
    if reference is not None:
        frame["score_zscore"] = normalize_scores(raw, "zscore", reference)
    return frame


def _mean_distances(models, name: str, d: dict) -> torch.Tensor:
    return torch.stack([d[f"{name}{i}"] for i in range(len(models))]).mean(0)


def sslmem_score(f, g, images, n_pairs: int = 10, augment=None, *, reference=None,
                 index=None, **kwargs) -> pd.DataFrame:
    """SSLMem m(x) = L_align(g, x) - L_align(f, x) per point, with its se and normalizations.

    ``f`` (trained with the points) and ``g`` (without them) are modules or lists of modules
    (seeds): E_f and E_g are means over the list, all on the same views. ``score_se`` is the std
    over pairs of the per-pair differences d_g - d_f, / sqrt(K): with common random numbers this
    is the right Monte-Carlo error of m (it excludes seed-to-seed variance of the encoders).
    ``reference``: raw scores of the extra set S_E -> adds ``score_zscore``. Other keywords go to
    :func:`score_alignment`.

    Returns:
        DataFrame with ``index`` (when known), L_f, L_g, score_raw, score_se, score_ratio,
        score_range[, score_zscore]; ``attrs`` record the estimator settings.
    """
    fs, gs = _as_list(f), _as_list(g)
    encoders = {**{f"f{i}": m for i, m in enumerate(fs)}, **{f"g{i}": m for i, m in enumerate(gs)}}
    d = score_alignment(encoders, images, n_pairs, augment, index=index, **kwargs)
    frame = _score_frame(_mean_distances(fs, "f", d), _mean_distances(gs, "g", d), reference)
    if index is None:
        index = unwrap_images(images)[1]
    if index is not None:
        frame.insert(0, "index", _positions(index))
    frame.attrs.update(n_pairs=n_pairs, n_f=len(fs), n_g=len(gs), **_settings(kwargs))
    return frame


def _settings(kwargs: dict) -> dict:
    keys = ("seed", "variant", "distance", "normalize", "precision")
    defaults = {"seed": 0, "variant": "pairs", "distance": "l2", "normalize": True,
                "precision": "fp32"}
    return {k: kwargs.get(k, defaults[k]) for k in keys}


def _check_protocol(split, f_train, g_train, f_meta, g_meta) -> None:
    """Refuse comparisons whose f/g pair does not match the leave-a-set-out design."""
    candidate = _positions(split.candidate)
    if f_train is not None:
        missing = ~np.isin(candidate, _positions(f_train))
        if missing.any():
            raise SSLMemError(f"{int(missing.sum())} of {len(candidate)} candidate points are not "
                              "in f's training set: f must train on S_S ∪ S_C, otherwise the "
                              "comparison would be meaningless. Pass the f that matches the split.")
    if g_train is not None:
        leaked = np.isin(candidate, _positions(g_train))
        if leaked.any():
            raise SSLMemError(f"{int(leaked.sum())} candidate points are in g's training set: g "
                              "must never see S_C, otherwise the comparison would be meaningless.")
    fingerprint = split.fingerprint() if callable(getattr(split, "fingerprint", None)) else None
    for role, meta in (("f", f_meta), ("g", g_meta)):
        if fingerprint and meta and meta.get("split_fingerprint", fingerprint) != fingerprint:
            raise SSLMemError(f"{role} was trained on another split (fingerprint "
                              f"{str(meta['split_fingerprint'])[:12]}, this split "
                              f"{fingerprint[:12]}): the comparison would be meaningless.")
    if f_meta is not None and g_meta is not None:
        differ = [k for k in MATCHING_META_KEYS if k in f_meta and k in g_meta
                  and f_meta[k] != g_meta[k]]
        if differ:
            detail = "; ".join(f"{k}: f={f_meta[k]!r}, g={g_meta[k]!r}" for k in differ)
            raise SSLMemError(f"f and g differ in {detail}: the comparison would be meaningless. "
                              "Train f and g with the same dataset, split and recipe.")


def memorization_table(f, g, train, test, split, n_pairs: int = 10, augment=None, *,
                       f_train=None, g_train=None, f_meta: dict | None = None,
                       g_meta: dict | None = None, **kwargs) -> pd.DataFrame:
    """Score the four subsets S_S, S_C, S_I (of ``train``) and S_E (of ``test``) in one pass.

    Args:
        f, g: encoder (or list of seeds) trained on S_S ∪ S_C, resp. S_S ∪ S_I.
        train, test: ImageData-like (``.images``, ``.labels``, optional ``.index``).
        split: has ``shared``, ``candidate``, ``independent`` (positions into ``train``) and
            ``extra`` (positions into ``test``).
        f_train / g_train: optional training positions of f / g; candidates must be in f's and
            absent from g's, else SSLMemError.
        f_meta / g_meta: optional metadata dicts; the keys in MATCHING_META_KEYS present in both
            must agree, and a ``split_fingerprint`` must equal ``split.fingerprint()`` when the
            split has one; else SSLMemError.
        kwargs: estimator settings for :func:`score_alignment` (seed, variant, distance, ...).

    Returns:
        One row per scored point: subset, position, index (original dataset index), label, L_f,
        L_g, score_raw, score_se, score_ratio, score_range (range over the whole table, so it is
        one scale for all subsets), score_zscore (against S_E's raw scores).
    """
    _check_protocol(split, f_train, g_train, f_meta, g_meta)
    parts, images = [], []
    for subset in SUBSETS:
        data = test if subset == "extra" else train
        pos = _positions(getattr(split, subset))
        index = getattr(data, "index", None)
        parts.append(pd.DataFrame({
            "subset": subset, "position": pos,
            "index": _positions(index)[pos] if index is not None else pos,
            "label": _positions(data.labels)[pos]}))
        images.append(data.images[torch.as_tensor(pos).to(data.images.device)])
    if len({im.shape[1:] for im in images}) > 1:
        raise SSLMemError("train and test images differ in shape "
                          f"{sorted({tuple(im.shape[1:]) for im in images})}; load both at the "
                          "same image_size and channels")
    meta = pd.concat(parts, ignore_index=True)
    images = torch.cat([im.to(images[0].device) for im in images])
    scores = sslmem_score(f, g, images, n_pairs, augment, **kwargs)
    table = pd.concat([meta, scores], axis=1)
    extra = table.loc[table.subset == "extra", "score_raw"].to_numpy()
    table["score_zscore"] = (normalize_scores(table.score_raw, "zscore", extra)
                             if len(extra) >= 2 else np.nan)
    table.attrs.update(scores.attrs)
    if callable(getattr(split, "fingerprint", None)):
        table.attrs["split_fingerprint"] = split.fingerprint()
    return table


STORED_SCORE_COLUMNS = ("subset", "position", "index", "label", "L_f", "L_g", "score_se")
TABLE_COLUMNS = ("subset", "position", "index", "label", "L_f", "L_g", "score_raw", "score_se",
                 "score_ratio", "score_range", "score_zscore")


def derive_scores(stored: pd.DataFrame) -> pd.DataFrame:
    """The full memorization table from its stored columns (L_f, L_g, score_se per point).

    Why: the raw score and its normalizations are functions of L_f, L_g and S_E, so the results
    store keeps only those (a paper-scale table is ~40 % smaller) and every reader derives the
    rest the same way, in the column order of :func:`memorization_table`.
    """
    frame = stored.copy()
    raw = (frame.L_g.astype(np.float64) - frame.L_f.astype(np.float64)).to_numpy()
    derived = {
        "score_raw": raw,
        "score_ratio": normalize_scores(raw, "ratio", L_f=frame.L_f, L_g=frame.L_g),
        "score_range": normalize_scores(raw, "range"),
    }
    extra = raw[(frame.subset == "extra").to_numpy()]
    derived["score_zscore"] = (normalize_scores(raw, "zscore", extra) if len(extra) >= 2
                               else np.full_like(raw, np.nan))
    for name, values in derived.items():
        frame[name] = values
    order = [c for c in TABLE_COLUMNS if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]]


# -------------------------------------------------------------------- significance, frac --


# ------------------------------------------------------------------- label memorization --


# -------------------------------------------------------------- comparing score vectors --


