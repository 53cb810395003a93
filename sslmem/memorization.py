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

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.evaluate import (
    as_float_images,
    eval_mode,
    forward_features,
    inference_copy,
    module_device,
    unwrap_images,
)
from sslmem.quantize import PRECISIONS, calibration_views, int8_copy

VARIANTS = ("pairs", "clean")
DISTANCES = ("l2", "cosine")
NORMALIZATIONS = ("raw", "ratio", "range", "zscore")
SUBSETS = ("shared", "candidate", "independent", "extra")
# Metadata that must agree between f and g for m to compare like with like (keys absent from
# either dict are not checked; f and g legitimately differ in their training subsets and seeds).
MATCHING_META_KEYS = ("dataset", "split", "split_fingerprint", "method", "arch", "backbone",
                      "image_size", "epochs", "augment", "recipe")


# ---------------------------------------------------------------------------------- views --

def _view_augs(augment, image_size: int):
    """(aug for x', aug for x''): a ViewAug for both, or a Recipe's first two views.

    Why a Recipe's two views: for asymmetric recipes (BYOL) these are the pair training compares.
    ``None`` is the ``score`` recipe of sslmem.augment (the SimCLR-strength scoring set).
    """
    if augment is None:
        from sslmem.augment import recipe

        augment = recipe("score", image_size)
    views = getattr(augment, "views", None)  # a Recipe (it also has sample/apply, per view)
    if views is None and hasattr(augment, "sample") and hasattr(augment, "apply"):
        return augment, augment
    views = list(views or [])
    if not views or not all(hasattr(v, "sample") and hasattr(v, "apply") for v in views):
        raise SSLMemError("augment must be a ViewAug (sample(n, generator, device) and "
                          "apply(images, params)) or a Recipe of them; got "
                          f"{type(augment).__name__}")
    return views[0], views[1 % len(views)]


def _take(params, start: int, stop: int, n: int, device):
    """Rows start:stop of a params dict (tensors whose first dim is n), moved to ``device``."""
    if isinstance(params, Mapping):
        return {k: _take(v, start, stop, n, device) for k, v in params.items()}
    if isinstance(params, torch.Tensor) and params.ndim and params.shape[0] == n:
        return params[start:stop].to(device, non_blocking=True)
    return params


def _generator(seed: int, generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(seed)


def _order(n: int, index) -> torch.Tensor:
    """Processing order: by original dataset index (stable), so params follow the point."""
    if index is None:
        return torch.arange(n)
    index = torch.from_numpy(_positions(index))
    if index.shape != (n,):
        raise SSLMemError(f"index must have one entry per image ({n}); got shape "
                          f"{tuple(index.shape)}")
    return torch.argsort(index, stable=True)


def _view_batches(images, order, augs, n_views, generator, batch_size, device, with_clean):
    """Yield (positions, batch): per chunk of points, [clean images?, x' views, x'' views].

    ``augs`` holds one or two ViewAugs; each contributes ``n_views`` views per point, with
    parameters drawn once for all points (chunk-independent) in ``order``.
    """
    n = len(images)
    params = [aug.sample(n * n_views, generator, torch.device("cpu")) for aug in augs]
    per_point = len(augs) * n_views + with_clean
    chunk = max(1, batch_size // per_point)
    for a in range(0, n, chunk):
        pos = order[a:a + chunk]
        x = images[pos.to(images.device)].to(device, non_blocking=True)
        parts = []
        if augs:
            xr = x.repeat_interleave(n_views, 0)
            lo, hi = a * n_views, (a + len(pos)) * n_views
            parts = [aug.apply(xr, _take(p, lo, hi, n * n_views, device))
                     for aug, p in zip(augs, params, strict=True)]
        if with_clean:
            clean = as_float_images(x)
            if parts and clean.shape[-2:] != parts[0].shape[-2:]:
                clean = F.interpolate(clean, size=parts[0].shape[-2:], mode="bilinear",
                                      antialias=True, align_corners=False)
            parts.insert(0, clean)
        yield pos, torch.cat(parts) if len(parts) > 1 else parts[0]


def _encoders_device(modules, device):
    if device is not None:
        return torch.device(device)
    devices = {module_device(m) for m in modules}
    if len(devices) > 1:
        raise SSLMemError(f"encoders live on different devices {sorted(map(str, devices))}; "
                          "move them to one device or pass device=")
    return devices.pop() if devices else torch.device("cpu")


def _distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "l2":
        return torch.linalg.vector_norm(a - b, dim=-1)
    return 1 - F.cosine_similarity(a, b, dim=-1)


# ------------------------------------------------------------------------ alignment loss --

def score_alignment(encoders: Mapping[str, nn.Module], images, n_pairs: int = 10,
                    augment=None, *, seed: int = 0, generator: torch.Generator | None = None,
                    index=None, variant: str = "pairs", distance: str = "l2",
                    normalize: bool = True, batch_size: int = 4096, device=None,
                    amp: bool = True, fast: bool = True,
                    precision: str = "fp32") -> dict[str, torch.Tensor]:
    """Per-pair alignment distances of several encoders on the SAME views, in one pass.

    Every chunk of points is augmented once and fed to each encoder (common random numbers), so
    differences between encoders are not blurred by different views.

    Args:
        encoders: name -> frozen encoder (float [0, 1] images -> features; normalizes inside).
        images: uint8/float (N, C, H, W) on any device, or an ImageData (its ``.index`` is used).
        n_pairs: K, augmentation pairs per point ("pairs") or augmentations per point ("clean").
        augment: a ViewAug, a Recipe (its first two views give x' and x''), or None for the
            ``score`` recipe.
        seed / generator: parameters come from ``torch.Generator().manual_seed(seed)`` unless a
            CPU ``generator`` is given.
        index: original dataset index per image; parameters are drawn in this order, so a
            point keeps its views when the inputs are permuted.
        variant: "pairs" d(f(x'), f(x'')) (definition) or "clean" d(f(x), f(aug(x))) (code).
        distance: "l2" (Euclidean, the paper) or "cosine" (1 - cos).
        normalize: L2-normalize features before the distance (spec §1.5).
        batch_size: views per forward pass (chunks hold batch_size // views-per-point points).
        device: where views are made and encoded; default the encoders' device.
        amp: bf16 autocast on CUDA.
        fast: score through each encoder's :func:`~sslmem.evaluate.inference_copy` (about 2x
            faster on a CPU, the same scores to ~1e-3 of their s.e.); False: the encoders as
            given, in eval mode (the reference path the benchmark compares with).
        precision: "fp32", or "int8": score through each encoder's
            :func:`~sslmem.quantize.int8_copy` (CPU, fx-traceable encoders; 3.2-3.6x the eager
            fp32 path on an AVX2 EPYC, scores within ~0.1 s.e. of fp32), its activation ranges
            fixed on views of the first chunk.

    Returns:
        name -> float32 CPU tensor (N, K) of distances; its row mean is L_align.
    """
    if n_pairs < 1:
        raise SSLMemError(f"n_pairs must be >= 1 (got {n_pairs}): L_align averages over pairs")
    if variant not in VARIANTS:
        raise unknown_choice("variant", variant, VARIANTS)
    if distance not in DISTANCES:
        raise unknown_choice("distance", distance, DISTANCES)
    if precision not in PRECISIONS:
        raise unknown_choice("precision", precision, PRECISIONS)
    if not encoders:
        raise SSLMemError("score_alignment needs at least one encoder")
    images, own_index = unwrap_images(images)
    order = _order(len(images), index if index is not None else own_index)
    augs = _view_augs(augment, images.shape[-1])
    augs = augs if variant == "pairs" else augs[:1]
    device = _encoders_device(encoders.values(), device)
    k = n_pairs
    out = {name: torch.empty(len(images), k, device=device) for name in encoders}
    batches = _view_batches(images, order, augs, k, _generator(seed, generator), batch_size,
                            device, with_clean=variant == "clean")
    if precision == "int8":
        first = next(batches)
        batches = itertools.chain([first], batches)
        views = calibration_views(first[1])
        encoders = {name: int8_copy(e, views) for name, e in encoders.items()}
    elif fast:
        sample = as_float_images(images[:256].to(device))
        encoders = {name: inference_copy(e, sample) for name, e in encoders.items()}
    with eval_mode(*encoders.values()), torch.inference_mode():
        for pos, batch in batches:
            b, pos = len(pos), pos.to(device)  # results stay on the device: no per-chunk sync
            for name, encoder in encoders.items():
                z = forward_features(encoder, batch, amp=amp)
                if normalize:
                    z = F.normalize(z, dim=1)
                if variant == "pairs":
                    z1, z2 = z.view(2, b, k, -1)
                else:
                    z1, z2 = z[:b].unsqueeze(1), z[b:].view(b, k, -1)
                out[name][pos] = _distance(z1, z2, distance)
    return {name: d.cpu() for name, d in out.items()}


def alignment_loss(encoder: nn.Module, images, n_pairs: int = 10, augment=None, *,
                   return_se: bool = False, **kwargs):
    """L_align(f, x) per point: mean distance over K augmentation pairs (see score_alignment).

    Returns a float64 CPU tensor (N,), or (L, se) with ``return_se``: se = std over the K pairs
    / sqrt(K), the Monte-Carlo standard error of L (NaN for K = 1).
    """
    d = score_alignment({"f": encoder}, images, n_pairs, augment, **kwargs)["f"].double()
    loss = d.mean(1)
    return (loss, _pair_se(d)) if return_se else loss


def _pair_se(d: torch.Tensor) -> torch.Tensor:
    if d.shape[1] < 2:
        return torch.full((d.shape[0],), math.nan, dtype=torch.float64)
    return d.std(1) / math.sqrt(d.shape[1])


def _as_list(models) -> list[nn.Module]:
    models = list(models) if isinstance(models, (Sequence, nn.ModuleList)) else [models]
    if not models:
        raise SSLMemError("need at least one model for each of f and g")
    return models


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


def _positions(x) -> np.ndarray:
    """Integer positions/indices/labels as a writable int64 NumPy copy (from any device)."""
    x = x.cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.array(x, dtype=np.int64).reshape(-1)


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
    two-sided control S_S vs S_E (both should be ~0). NaN where a subset has < 2 points.
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


# ------------------------------------------------------------------- label memorization --

def label_memorization(f_models, g_models, images, labels, *, augment=None, n_aug: int = 1,
                       seed: int = 0, generator: torch.Generator | None = None, index=None,
                       batch_size: int = 4096, device=None, amp: bool = True) -> pd.DataFrame:
    """Feldman's label memorization P[f(x) = y] - P[g(x) = y] for the supervised comparison.

    ``f_models`` (trained with the points) and ``g_models`` (without) are classifier modules
    (float [0, 1] images -> logits) or lists of them (seeds); probabilities are the fraction of
    correct predictions over the models and, with ``augment`` (a ViewAug or Recipe), over
    ``n_aug`` augmented views shared by all models. Without ``augment`` the clean images are used
    (n_aug must be 1).

    Returns:
        DataFrame with ``index`` (when known), label, p_f, p_g, label_mem.
    """
    if n_aug < 1 or (augment is None and n_aug != 1):
        raise SSLMemError(f"n_aug={n_aug}: need n_aug >= 1, and n_aug = 1 without augment")
    fs, gs = _as_list(f_models), _as_list(g_models)
    images, own_index = unwrap_images(images)
    index = index if index is not None else own_index
    y = torch.as_tensor(_positions(labels))
    if len(y) != len(images):
        raise SSLMemError(f"{len(images)} images but {len(y)} labels")
    augs = () if augment is None else _view_augs(augment, images.shape[-1])[:1]
    device = _encoders_device([*fs, *gs], device)
    correct = {"f": torch.zeros(len(images), dtype=torch.float64, device=device),
               "g": torch.zeros(len(images), dtype=torch.float64, device=device)}
    batches = _view_batches(images, _order(len(images), index), augs, n_aug,
                            _generator(seed, generator), batch_size, device,
                            with_clean=augment is None)
    with eval_mode(*fs, *gs), torch.inference_mode():
        for pos, batch in batches:
            target = y[pos].repeat_interleave(n_aug).to(device)
            pos = pos.to(device)
            for name, models in (("f", fs), ("g", gs)):
                hits = sum((forward_features(m, batch, amp=amp).argmax(1) == target).double()
                           for m in models)
                correct[name][pos] = hits.view(len(pos), n_aug).mean(1) / len(models)
    p_f, p_g = correct["f"].cpu().numpy(), correct["g"].cpu().numpy()
    frame = pd.DataFrame({"label": y.numpy(), "p_f": p_f, "p_g": p_g, "label_mem": p_f - p_g})
    if index is not None:
        frame.insert(0, "index", _positions(index))
    return frame


# -------------------------------------------------------------- comparing score vectors --

def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two score vectors over the same points: pandas Series align on their index."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise SSLMemError(f"score vectors must be 1-D over the same points; got shapes "
                          f"{a.shape} and {b.shape}")
    return a, b


def topk_overlap(a, b, k: int = 100) -> float:
    """Fraction of the k highest-scored points of ``a`` that are also in ``b``'s top k.

    The follow-up's [LM] Table 3 metric (reported there in %). Jaccard of the two top-k sets is
    o / (2 - o) for overlap o. Ties break by position (stable); k is clipped to the number of
    points.
    """
    a, b = _aligned(a, b)
    k = min(k, len(a))
    if k < 1:
        raise SSLMemError("topk_overlap needs k >= 1 and at least one point")
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return len(np.intersect1d(top_a, top_b)) / k


def rank_agreement(a, b) -> dict:
    """Kendall's tau (with p, as [LM] Table 3) and Spearman's rho (with p) between two scorings."""
    a, b = _aligned(a, b)
    tau = stats.kendalltau(a, b)
    rho = stats.spearmanr(a, b)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue), "n": len(a)}


def bootstrap_agreement(frame: pd.DataFrame, groups: dict[str, list[tuple[str, str]]],
                        k: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Mean top-k overlap and Kendall's tau over groups of column pairs, with bootstrap CIs.

    Why: "SSL methods agree with each other more than with supervised learning" is a claim
    about two averages over pairs of rankings of the same points; whether their difference is
    more than noise needs an uncertainty. Points (rows of ``frame``) are resampled with
    replacement ``n_boot`` times; in each resample every pair's overlap (k scaled to the
    resample's distinct points) and tau are recomputed and averaged within each group.

    Returns:
        One row per group and one for each difference ``a − b`` of the first two groups:
        estimate on all points, bootstrap 2.5 % and 97.5 % quantiles, for overlap and tau,
        with the chance level of the overlap (k / n) and of tau (0).
    """
    rng = np.random.default_rng(seed)
    n = len(frame)
    values = {c: frame[c].to_numpy(np.float64) for c in frame.columns}

    def group_means(rows: np.ndarray) -> dict[str, tuple[float, float]]:
        out = {}
        for name, pairs in groups.items():
            overlaps, taus = [], []
            for a, b in pairs:
                x, y = values[a][rows], values[b][rows]
                overlaps.append(topk_overlap(x, y, k=k))
                taus.append(stats.kendalltau(x, y).statistic)
            out[name] = (float(np.nanmean(overlaps)), float(np.nanmean(taus)))
        return out

    point = group_means(np.arange(n))
    boots = [group_means(rng.integers(0, n, n)) for _ in range(n_boot)]
    names = list(groups)
    rows = []

    def add(label: str, est: tuple[float, float], samples: list[tuple[float, float]],
            chance: tuple[float, float]) -> None:
        s = np.asarray(samples)
        lo, hi = np.nanquantile(s, 0.025, axis=0), np.nanquantile(s, 0.975, axis=0)
        rows.append({"comparison": label, "overlap": est[0], "overlap_lo": lo[0],
                     "overlap_hi": hi[0], "overlap_chance": chance[0], "tau": est[1],
                     "tau_lo": lo[1], "tau_hi": hi[1], "tau_chance": chance[1]})

    for name in names:
        add(name, point[name], [b[name] for b in boots], (min(k, n) / n, 0.0))
    if len(names) >= 2:
        a, b = names[:2]
        diff = tuple(point[a][i] - point[b][i] for i in range(2))
        add(f"{a} − {b}", diff, [tuple(x[a][i] - x[b][i] for i in range(2)) for x in boots],
            (0.0, 0.0))
    return pd.DataFrame(rows)
