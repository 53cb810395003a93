"""Déjà vu memorization (Meehan et al., NeurIPS 2023), adapted to small images without boxes.

The test: crop a training image's background, embed the crop, and infer the foreground label from
the crop's k nearest neighbours in a labelled public set. A model f that trained on the image
(the paper's SSL_A) can beat a reference model g that did not (SSL_B) only by having memorized
that image's background-object association; g's accuracy is what dataset-level correlation
alone gives. Déjà vu memorization = acc(KNN_f) - acc(KNN_g), reported on the most confident
fractions of the points, where memorization concentrates.

SSLMem's split is Déjà vu's A/B design (spec §1.6, §5.1): f trains on S_S ∪ S_C and g on
S_S ∪ S_I, so the attacked points are the candidates S_C (Déjà vu's unique set ``bbox_A``). The
reference also runs the mirror direction (B attacks its unique set with A as reference) and
averages the two; here that is a second call, ``dejavu_test(g, f, S_I, public)``.

Choices below were checked against facebookresearch/DejaVu (``label_inference_attack.py``,
``dejavu_utils/utils.py``, ``dejavu_utils/plot_utils.py``); each function says which.
Nothing here is random: the same inputs give the same frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.evaluate import as_float_images, extract_features, unwrap_images
from sslmem.methods.base import Method

CORNERS = ("lower_left", "lower_right", "upper_left", "upper_right")
EMBEDDINGS = ("projector", "backbone")
METRICS = ("l2", "cosine")
FRACTIONS = (0.05, 0.2, 1.0)
# The attribute holding each SSL method's projection head (BYOL, DINO: the student's, whose
# backbone is ``method.encoder``).
PROJECTORS = {"simclr": "projection", "byol": "projection", "simsiam": "projection",
              "vicreg": "projection", "barlowtwins": "projection", "dino": "head"}
_NO_PROJECTOR = {"mae": "MAE trains a pixel decoder, not a projection head",
                 "supervised": "its head is a classifier, not a projection head"}


# ------------------------------------------------------------------------------- crops --

def _side(frac: float, n: int) -> int:
    """``int(frac * n)`` as the reference's ``crop_xfrm`` (guarded against 0.3*10 = 2.999..)."""
    return max(1, int(frac * n + 1e-9))


def corner_crop(images, frac: float = 0.3, corner: str = "lower_left", size=None,
                batch_size: int = 4096) -> torch.Tensor:
    """A ``frac`` x ``frac`` corner of every image, resized to ``size`` (default: the input's).

    Why a corner: CIFAR-size images have no bounding boxes, so Déjà vu's periphery crop (the
    largest patch outside the object's boxes) is unavailable; its code has a corner-crop variant
    for this (``--use_corner_crop``, ``crop_xfrm``: the *lower-left* 30 % x 30 %), which is the
    default here. One fixed corner keeps one query per point, so per-point predictions,
    confidences and categories mean what they mean in Déjà vu; the other corners exist to check
    that a result does not hinge on the corner (run the test once per corner). On CIFAR the
    object often reaches into the corner, so the crop is mostly, not only, background: the
    reference model g is what separates memorization from what the crop itself shows.

    Sides are ``int(frac * H)`` x ``int(frac * W)`` (at least 1 px), as in the reference. The
    resize is bilinear with antialiasing (torchvision's match of the PIL resize the reference
    uses), batched, on the images' device. uint8 in -> uint8 out (rounded, as PIL would), float
    in [0, 1] -> float32: either is what :func:`~sslmem.evaluate.extract_features` takes.
    """
    images, _ = unwrap_images(images)
    if corner not in CORNERS:
        raise unknown_choice("corner", corner, CORNERS)
    if not 0 < frac <= 1:
        raise SSLMemError(f"crop fraction must be in (0, 1]; got {frac}")
    H, W = images.shape[-2:]
    h, w = _side(frac, H), _side(frac, W)
    top = H - h if corner.startswith("lower") else 0
    left = W - w if corner.endswith("right") else 0
    size = (H, W) if size is None else (size, size) if isinstance(size, int) else tuple(size)
    patch = images[:, :, top:top + h, left:left + w]
    parts = []
    for a in range(0, len(patch), batch_size):
        x = F.interpolate(as_float_images(patch[a:a + batch_size]), size=size, mode="bilinear",
                          antialias=True, align_corners=False)
        if images.dtype == torch.uint8:
            x = x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
        parts.append(x)
    return torch.cat(parts) if parts else patch.new_empty((0, images.shape[1], *size))


# -------------------------------------------------------------------------- embeddings --

def projector(method: nn.Module) -> nn.Module:
    """The projection head of an SSL :class:`~sslmem.methods.base.Method`.

    Raises:
        SSLMemError: for a method without one (MAE, supervised) or a module that is not a Method.
    """
    name = getattr(method, "name", type(method).__name__)
    head = getattr(method, PROJECTORS.get(name, ""), None) if isinstance(method, Method) else None
    if isinstance(head, nn.Module):
        return head
    why = _NO_PROJECTOR.get(name, "not an sslmem SSL method with a known projection head")
    raise SSLMemError(f"{name!r} has no projector ({why}); use embedding='backbone'")


def embedding_network(model: nn.Module, embedding: str = "projector") -> nn.Module:
    """The network whose output Déjà vu searches: backbone (+ projector) of a Method.

    Why the projector is the default: the reference attacks the projector embedding
    (``--use_backbone 0``) and finds memorization strongest there; probing the backbone instead
    ("guillotine regularization") reduces it. A module that is not a Method is taken to be an
    encoder already, usable with ``embedding="backbone"`` only.
    """
    if embedding not in EMBEDDINGS:
        raise unknown_choice("embedding", embedding, EMBEDDINGS)
    encoder = model.encoder if isinstance(model, Method) else model
    if embedding == "backbone":
        return encoder
    return nn.Sequential(encoder, projector(model))


def embed(model: nn.Module, images, embedding: str = "projector", *, batch_size: int = 1024,
          device=None, amp: bool = True) -> torch.Tensor:
    """float32 (N, D) embeddings of uint8/float images (batched, bf16 autocast on CUDA)."""
    return extract_features(embedding_network(model, embedding), images, batch_size, device,
                            amp=amp)


# -------------------------------------------------------------------------------- kNN --

def knn_confidence(counts: torch.Tensor) -> torch.Tensor:
    """Negative entropy (nats) of each row's neighbour-label histogram; 0 = all neighbours agree.

    The reference ranks by ``scipy.stats.entropy`` of the class counts. Each row is sorted first,
    so histograms that are permutations of one another get bit-identical confidences (exact ties).
    """
    p = counts.double().sort(dim=1, descending=True).values
    p = p / p.sum(1, keepdim=True).clamp_min(1)
    return torch.xlogy(p, p).sum(1)


def knn_label_inference(queries: torch.Tensor, bank: torch.Tensor, bank_labels, k: int = 100, *,
                        metric: str = "l2", num_classes: int | None = None,
                        chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Déjà vu's KNN attack: the labels of each query's k nearest bank points vote.

    ``metric="l2"`` (default) is the reference's: Euclidean distance on *un-normalized*
    embeddings (a faiss ``IndexFlatL2``); ``"cosine"`` L2-normalizes both sides first. The
    prediction is the most frequent neighbour label (ties: the smallest label); the confidence
    is :func:`knn_confidence`. Neighbours at equal distance are taken in bank order (a stable
    sort), so ``chunk_size`` (queries per step; the default keeps the (chunk, N) distance matrix
    near 2**24 entries) changes nothing, except where two distances differ only by float
    rounding (the matmul kernel may round a row differently for another chunk shape). ``k`` is
    clipped to N.

    Returns:
        (predictions int64 (M,), confidences float64 (M,)) on the bank's device.
    """
    if metric not in METRICS:
        raise unknown_choice("metric", metric, METRICS)
    device = bank.device
    labels = torch.as_tensor(np.asarray(bank_labels) if not isinstance(bank_labels, torch.Tensor)
                             else bank_labels).to(device=device, dtype=torch.long)
    if bank.ndim != 2 or len(bank) == 0 or len(labels) != len(bank):
        raise SSLMemError(f"the public bank needs (N, D) embeddings with one label each; got "
                          f"{tuple(bank.shape)} and {len(labels)} labels")
    bank = F.normalize(bank.float(), dim=1) if metric == "cosine" else bank.float()
    sq = bank.pow(2).sum(1)
    k = max(1, min(int(k), len(bank)))
    num_classes = num_classes or int(labels.max()) + 1
    chunk = chunk_size or max(1, (1 << 24) // len(bank))
    preds = [torch.empty(0, dtype=torch.long, device=device)]
    confs = [torch.empty(0, dtype=torch.float64, device=device)]
    for a in range(0, len(queries), chunk):
        q = queries[a:a + chunk].float().to(device)
        if metric == "cosine":
            score = -(F.normalize(q, dim=1) @ bank.T)
        else:  # ||q - b||^2 - ||q||^2: the per-row constant ||q||^2 does not change the order
            score = sq - 2 * (q @ bank.T)
        idx = score.sort(dim=1, stable=True).indices[:, :k]
        counts = torch.zeros(len(q), num_classes, dtype=torch.float64, device=device)
        counts.scatter_add_(1, labels[idx], torch.ones(idx.shape, dtype=torch.float64,
                                                       device=device))
        preds.append(counts.argmax(1))
        confs.append(knn_confidence(counts))
    return torch.cat(preds), torch.cat(confs)
