"""L_align: how closely an encoder maps two augmented views of a point, on common random numbers.

Why a module of its own: the alignment loss is the one primitive every estimator here builds on
(the f/g pair of :mod:`sslmem.score.memorization`, the ensemble's members, Déjà vu's
reference), and its design (one seeded draw of view parameters per point, in order of the points'
dataset index, the same views through every encoder) is what makes m = L_g - L_f precise. The
estimator choices are described in :mod:`sslmem.score.memorization`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.score.evaluate import (
    as_float_images,
    eval_mode,
    forward_features,
    inference_copy,
    module_device,
    unwrap_images,
)
from sslmem.score.quantize import PRECISIONS, calibration_views, int8_copy

VARIANTS = ("pairs", "clean")


DISTANCES = ("l2", "cosine")


def _view_augs(augment, image_size: int):
    """(aug for x', aug for x''): a ViewAug for both, or a Recipe's first two views.

    Why a Recipe's two views: for asymmetric recipes (BYOL) these are the pair training compares.
    ``None`` is the ``score`` recipe of sslmem.train.augment (the SimCLR-strength scoring set).
    """
    if augment is None:
        from sslmem.train.augment import recipe

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
        fast: score through each encoder's :func:`~sslmem.score.evaluate.inference_copy` (about 2x
            faster on a CPU, the same scores to ~1e-3 of their s.e.); False: the encoders as
            given, in eval mode (the reference path the benchmark compares with).
        precision: "fp32", or "int8": score through each encoder's
            :func:`~sslmem.score.quantize.int8_copy` (CPU, fx-traceable encoders; 3.2-3.6x the eager
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


def _positions(x) -> np.ndarray:
    """Integer positions/indices/labels as a writable int64 NumPy copy (from any device)."""
    x = x.cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.array(x, dtype=np.int64).reshape(-1)
