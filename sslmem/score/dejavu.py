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

Choices, checked against facebookresearch/DejaVu (``label_inference_attack.py``,
``dejavu_utils/utils.py``, ``dejavu_utils/plot_utils.py``; each function says where): lower-left
30 % corner crop, projector embedding, k = 100 Euclidean neighbours, confidence = negative
entropy of the neighbour labels with each model ranked by its own, top-1 accuracy at the 5 %,
20 % and 100 % most confident points. Our choice: the public set is the test split minus S_E
(:func:`default_public`). Left out: periphery crops (they need bounding boxes), top-5 accuracy
and RCDM reconstructions. Nothing here is random: the same inputs give the same frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.score.evaluate import as_float_images, extract_features, unwrap_images
from sslmem.train.methods.base import Method

CORNERS = ("lower_left", "lower_right", "upper_left", "upper_right")
EMBEDDINGS = ("projector", "backbone")
METRICS = ("l2", "cosine")
FRACTIONS = (0.05, 0.2, 1.0)
# Déjà vu's per-point categories, by which of KNN_f (trained on the point) and KNN_g is correct.
CATEGORIES = ("memorized", "correlated", "misrepresented", "unassociated")
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
    in [0, 1] -> float32: either is what :func:`~sslmem.score.evaluate.extract_features` takes.
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
    """The projection head of an SSL :class:`~sslmem.train.methods.base.Method`.

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
                        chunk_size: int | None = None, return_counts: bool = False) -> tuple:
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
        (predictions int64 (M,), confidences float64 (M,)) on the bank's device, and with
        ``return_counts`` the neighbour-label histograms float64 (M, classes).
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
    hists = [torch.empty(0, num_classes, dtype=torch.float64, device=device)]
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
        if return_counts:
            hists.append(counts)
    if return_counts:
        return torch.cat(preds), torch.cat(confs), torch.cat(hists)
    return torch.cat(preds), torch.cat(confs)


# ---------------------------------------------------------------------------- the test --

def most_confident(confidence, frac: float) -> np.ndarray:
    """Positions of the ``frac`` most confident points, most confident first.

    As the reference's ``attack_p_frac``: ``int(frac * n)`` points (here at least 1) with the
    lowest neighbour-label entropy. Ties keep position order (a stable sort; the reference's
    quicksort breaks them arbitrarily), so with many all-agree histograms the order of the
    points matters: pass them in a meaningful order (e.g. by dataset index).
    """
    if not 0 < frac <= 1:
        raise SSLMemError(f"confidence fraction must be in (0, 1]; got {frac}")
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    return order[:_side(frac, len(order))] if len(order) else order


def categories(correct_f, correct_g) -> pd.Categorical:
    """Déjà vu's sample-level partition: memorized (only KNN_f correct), correlated (both),
    misrepresented (only KNN_g; the reference's plots call these 'forgotten'), unassociated
    (neither)."""
    f, g = np.asarray(correct_f, dtype=bool), np.asarray(correct_g, dtype=bool)
    names = np.select([f & ~g, f & g, ~f & g], CATEGORIES[:3], CATEGORIES[3])
    return pd.Categorical(names, categories=CATEGORIES)


def dejavu_summary(frame: pd.DataFrame, fractions=FRACTIONS) -> pd.DataFrame:
    """Accuracy of KNN_f and KNN_g on their most confident fractions, and the gap acc_f - acc_g.

    Each model is ranked by its *own* confidence, as the reference does (``A_attk_A`` and
    ``B_attk_A`` each call ``attack_p_frac`` on their own entropies), so the two accuracies at a
    fraction may come from different points; at fraction 1 both cover every point.
    """
    rows = []
    for frac in fractions:
        top_f = most_confident(frame["conf_f"], frac)
        top_g = most_confident(frame["conf_g"], frac)
        acc_f = float(frame["correct_f"].to_numpy()[top_f].mean()) if len(top_f) else np.nan
        acc_g = float(frame["correct_g"].to_numpy()[top_g].mean()) if len(top_g) else np.nan
        rows.append({"fraction": float(frac), "n": len(top_f), "acc_f": acc_f, "acc_g": acc_g,
                     "gap": acc_f - acc_g})
    return pd.DataFrame(rows, columns=["fraction", "n", "acc_f", "acc_g", "gap"])


def _labels(data, labels, what: str, n: int) -> torch.Tensor:
    if labels is None:
        labels = getattr(data, "labels", None)
        if labels is None:
            raise SSLMemError(f"{what} are a tensor without labels; pass {what}_labels=")
    labels = torch.as_tensor(labels if isinstance(labels, torch.Tensor) else np.asarray(labels))
    labels = labels.detach().to("cpu", torch.long).reshape(-1)
    if len(labels) != n:
        raise SSLMemError(f"{what}: {n} images but {len(labels)} labels")
    return labels


def default_public(test, split):
    """The recommended public set: the test split minus S_E (an :class:`ImageData`).

    Why: neither f nor g trained on the test split, so its labels carry no memorization; S_E is
    left out so that it stays available as an unseen control for the attack (an S_E point
    attacked against a public set that holds its own full image would simply find itself).
    """
    if len(test) != split.n_test:
        raise SSLMemError(f"this split was made for {split.n_test} test images, got {len(test)}")
    keep = np.setdiff1d(np.arange(len(test)), split.extra)
    return test.subset(keep)


def dejavu_test(f: nn.Module, g: nn.Module, candidates, public, *, candidates_labels=None,
                public_labels=None, k: int = 100, frac: float = 0.3, corner: str = "lower_left",
                embedding: str = "projector", metric: str = "l2", fractions=FRACTIONS,
                batch_size: int = 1024, chunk_size: int | None = None, device=None,
                amp: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Déjà vu memorization of the candidates by f (trained on them) against g (not).

    Each candidate's corner crop (:func:`corner_crop`, resized to the public images' size) is
    embedded by f and by g; KNN_f and KNN_g infer its label from the k nearest *full* public
    images embedded by the same model (:func:`knn_label_inference`). Defaults are the
    reference's (k = 100, 30 % lower-left crop, projector, Euclidean); see
    :func:`default_public` for the public set. ``candidates``/``public`` are ImageData (labels
    and ``index`` taken from them) or uint8/float (N, C, H, W) tensors with ``*_labels=``.

    Returns:
        (points, summary). ``points``: one row per candidate with position, index (when known),
        label, pred_f, pred_g, conf_f, conf_g (negative entropy), correct_f, correct_g,
        p_true_f, p_true_g (share of the k neighbours with the true label; their difference is
        a graded, per-point Déjà vu margin), category (:func:`categories`). ``summary``:
        :func:`dejavu_summary` at ``fractions``; ``gap`` is the Déjà vu memorization. Settings
        are in ``attrs`` of both.
    """
    images, index = unwrap_images(candidates)
    pub_images, _ = unwrap_images(public)
    if len(images) == 0:
        raise SSLMemError("dejavu_test got no candidate images")
    labels = _labels(candidates, candidates_labels, "candidates", len(images))
    pub_labels = _labels(public, public_labels, "public", len(pub_images))
    crops = corner_crop(images, frac, corner, size=tuple(pub_images.shape[-2:]))
    num_classes = int(max(labels.max(), pub_labels.max())) + 1
    result = {}
    for name, model in (("f", f), ("g", g)):
        net = embedding_network(model, embedding)
        bank = extract_features(net, pub_images, batch_size, device, amp=amp)
        queries = extract_features(net, crops, batch_size, device, amp=amp)
        pred, conf, counts = knn_label_inference(queries, bank, pub_labels, k, metric=metric,
                                                 num_classes=num_classes, chunk_size=chunk_size,
                                                 return_counts=True)
        votes = counts.cpu()[torch.arange(len(labels)), labels] / counts.sum(1).cpu()
        result[name] = pred.cpu().numpy(), conf.cpu().numpy(), votes.numpy()
    y = labels.numpy()
    points = pd.DataFrame({"position": np.arange(len(y))})
    if index is not None:
        points["index"] = index.cpu().numpy().astype(np.int64)
    points["label"] = y
    for name in ("f", "g"):
        points[f"pred_{name}"] = result[name][0]
    for name in ("f", "g"):
        points[f"conf_{name}"] = result[name][1]
    for name in ("f", "g"):
        points[f"correct_{name}"] = result[name][0] == y
    for name in ("f", "g"):  # the share of the k neighbours with the true label: a graded vote
        points[f"p_true_{name}"] = result[name][2]
    points["category"] = categories(points["correct_f"], points["correct_g"])
    summary = dejavu_summary(points, fractions)
    settings = dict(k=min(k, len(pub_images)), frac=frac, corner=corner, embedding=embedding,
                    metric=metric, n_public=len(pub_images))
    points.attrs.update(settings)
    summary.attrs.update(settings)
    return points, summary
