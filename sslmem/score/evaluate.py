"""Downstream evaluation of a frozen encoder: cached features, a linear probe, a weighted kNN.

Why cached features: the encoder is frozen, so its features are computed once on the device and
every probe (several datasets, seeds, removal runs) trains on them in seconds. The paper's own
linear evaluation differs (see :func:`linear_probe`); both measure linear separability.

Also home of the frozen-forward helpers that :mod:`sslmem.score.memorization` shares (eval mode that
is restored afterwards, bf16 autocast and channels_last on CUDA, uint8 -> float in [0, 1], and
:func:`inference_copy`, the fast frozen copy the scorer runs).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError


@contextmanager
def eval_mode(*modules: nn.Module):
    """Put modules (and every submodule) in eval mode; restore each submodule's own mode after.

    Why per submodule: ``module.train(was_training)`` would flatten a deliberately mixed state
    (e.g. a frozen BatchNorm inside a training model).
    """
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) in 0..255 or float in [0, 1] -> float32 in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


def unwrap_images(images) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Accept a tensor or an ImageData-like object (``.images``, optional ``.index``)."""
    if hasattr(images, "images"):
        index = getattr(images, "index", None)
        return images.images, None if index is None else torch.as_tensor(index)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise SSLMemError("images must be a (N, C, H, W) tensor or an ImageData; got "
                          f"{type(images).__name__} with shape {getattr(images, 'shape', None)}")
    return images, None


def module_device(module: nn.Module, default="cpu") -> torch.device:
    """The device of a module's first parameter (or buffer), else ``default``."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device(default)


class _Frozen(nn.Module):
    """A frozen encoder that feeds its inputs in its weights' memory format."""

    def __init__(self, module: nn.Module, channels_last: bool):
        super().__init__()
        self.module, self.channels_last = module, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x)


def fold_batchnorm(encoder: nn.Module) -> nn.Module:
    """An eval-mode copy of ``encoder`` with each BatchNorm folded into the convolution that
    feeds it (``torch.fx``), or a plain eval-mode copy where fx cannot trace it."""
    import copy

    from torch.fx.experimental.optimization import fuse

    frozen = copy.deepcopy(encoder).eval()
    try:
        return fuse(frozen)
    except Exception:  # noqa: BLE001 - untraceable (e.g. a ViT's control flow): as it is
        return frozen


def inference_copy(encoder: nn.Module, sample: torch.Tensor) -> nn.Module:
    """A copy of ``encoder`` for frozen forward passes, about 2x faster on a CPU.

    Why: scoring runs every point's K view pairs through every encoder. Each BatchNorm is
    folded into the convolution before it (``torch.fx``: only where the traced graph really
    chains them), which leaves an fp32 network that computes the same function with fewer
    passes over memory; only the order of floating-point operations changes (features move by
    ~1e-7 relative, far below a score's Monte-Carlo error). It then runs in the memory format
    ``sslmem.train.calibrate`` measured faster on this host for ``sample``'s shape. An encoder that
    fx cannot trace (a ViT's control flow; it has no BatchNorm) is only copied.
    """
    from sslmem.train.calibrate import inference_setting

    frozen = fold_batchnorm(encoder)
    channels_last = (any(isinstance(m, nn.Conv2d) for m in frozen.modules())
                     and inference_setting(frozen, sample).channels_last)
    if channels_last:
        frozen = frozen.to(memory_format=torch.channels_last)
    return _Frozen(frozen, channels_last)


def forward_features(encoder: nn.Module, batch: torch.Tensor, *, amp: bool = True) -> torch.Tensor:
    """One frozen forward pass -> float32 (B, D) features (extra dims, e.g. tokens, flattened).

    On CUDA the batch goes in channels_last under bf16 autocast (2.5x the fp32 throughput on an
    H100, NOTES.md); features are cast back to float32 before any distance is taken.
    """
    if batch.is_cuda:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and batch.is_cuda):
        z = encoder(batch)
    return z.flatten(1).float()


def extract_features(encoder: nn.Module, images, batch_size: int = 1024, device=None, *,
                     amp: bool = True) -> torch.Tensor:
    """Features of every image through a frozen encoder -> float32 (N, D) on ``device``.

    ``images`` is uint8 or float (N, C, H, W) on any device, or an ImageData of any dataset
    (downstream sets may differ from the pre-training set). ``device`` defaults to the encoder's.
    The encoder runs in eval mode under ``torch.inference_mode``; its modes are restored after.
    """
    images, _ = unwrap_images(images)
    device = torch.device(device) if device is not None else module_device(encoder)
    parts = []
    encoder = inference_copy(encoder, as_float_images(images[:256].to(device)))
    with torch.inference_mode():
        for a in range(0, len(images), batch_size):
            batch = as_float_images(images[a:a + batch_size].to(device, non_blocking=True))
            parts.append(forward_features(encoder, batch, amp=amp))
    if not parts:
        raise SSLMemError("extract_features got no images")
    return torch.cat(parts)  # outside inference mode: a normal tensor a probe can train on


def _labels(y, device) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y.to(device=device, dtype=torch.long)
    return torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def linear_probe(train_x: torch.Tensor, train_y, test_x: torch.Tensor, test_y, *,
                 epochs: int = 100, lr: float | None = None, weight_decay: float = 1e-4,
                 batch_size: int | None = None, standardize: bool = True, seed: int = 0) -> dict:
    """Train a linear classifier on frozen features; return test and train accuracy.

    Loss: cross-entropy + ``weight_decay``/2 * ||W||^2 (a convex multinomial logistic regression,
    weights start at zero). ``batch_size=None`` (default): full-batch L-BFGS with strong-Wolfe line
    search for at most ``epochs`` iterations (``lr`` default 1.0) -- converged in a second on
    cached features. ``batch_size=int``: Adam (``lr`` default 1e-3, the authors' value) on
    shuffled mini-batches for ``epochs`` epochs with a cosine schedule; ``seed`` fixes the order.

    Differs from the paper on purpose: the authors' SimCLR probe trains ``nn.Linear`` for 100
    epochs with Adam on *augmented* images through the frozen backbone and keeps the best test
    epoch; we train on un-augmented features once and report the final test accuracy (no
    selection on test). Expect a few points below augmented probing, same ordering of encoders.

    Returns:
        dict(accuracy, train_accuracy, optimizer, epochs, weight_decay).
    """
    device = train_x.device
    x, xt = train_x.float(), test_x.float().to(device)
    y, yt = _labels(train_y, device), _labels(test_y, device)
    if len(x) != len(y) or len(xt) != len(yt):
        raise SSLMemError(f"features and labels differ in length: train {len(x)} vs {len(y)}, "
                          f"test {len(xt)} vs {len(yt)}")
    if standardize:
        mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
        x, xt = (x - mu) / sd, (xt - mu) / sd
    num_classes = int(max(int(y.max()), int(yt.max()) if len(yt) else 0)) + 1
    layer = nn.Linear(x.shape[1], num_classes).to(device)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)

    def objective(xb, yb):
        return F.cross_entropy(layer(xb), yb) + 0.5 * weight_decay * layer.weight.pow(2).sum()

    if batch_size is None:
        opt = torch.optim.LBFGS(layer.parameters(), lr=1.0 if lr is None else lr, max_iter=epochs,
                                history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-7, tolerance_change=1e-10)

        def closure():
            opt.zero_grad()
            loss = objective(x, y)
            loss.backward()
            return loss

        opt.step(closure)
        optimizer = "lbfgs"
    else:
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3 if lr is None else lr)
        steps = epochs * math.ceil(len(x) / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen).to(device)
            for a in range(0, len(x), batch_size):
                idx = perm[a:a + batch_size]
                opt.zero_grad()
                objective(x[idx], y[idx]).backward()
                opt.step()
                sched.step()
        optimizer = "adam"
    with torch.no_grad():
        return {"accuracy": _accuracy(layer(xt), yt), "train_accuracy": _accuracy(layer(x), y),
                "optimizer": optimizer, "epochs": epochs, "weight_decay": weight_decay}


def knn_accuracy(train_x: torch.Tensor, train_y, test_x: torch.Tensor, test_y, k: int = 200,
                 temperature: float = 0.1) -> float:
    """Weighted kNN top-1 accuracy, the usual SSL monitor (Wu et al. 2018; lightly's benchmark).

    Cosine similarity on L2-normalized features; each of the k nearest train points votes for its
    class with weight exp(sim / temperature); the class with the largest summed vote wins.
    ``k`` is clipped to the train size; test points are processed in chunks so the (chunk, N)
    similarity matrix stays ~256 MB.
    """
    device = train_x.device
    bank = F.normalize(train_x.float(), dim=1)
    y, yt = _labels(train_y, device), _labels(test_y, device)
    num_classes = int(max(int(y.max()), int(yt.max()))) + 1
    k = max(1, min(k, len(bank)))
    chunk = max(1, (1 << 26) // max(len(bank), 1))
    correct = 0
    for a in range(0, len(test_x), chunk):
        q = F.normalize(test_x[a:a + chunk].float().to(device), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes, device=device)
        votes.scatter_add_(1, y[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == yt[a:a + chunk]).sum())
    return correct / max(len(test_x), 1)


def atypicality(encoder: nn.Module, reference, queries, k: int = 10, *, exclude=None,
                batch_size: int = 2048) -> torch.Tensor:
    """Mean distance of each query to its ``k`` nearest reference images in ``encoder``'s space.

    Why: "atypical points are memorized most" (the paper's Fig. 1) needs a typicality measure
    that does not already contain the memorization it is compared with. With ``encoder`` = g and
    ``reference`` = g's training images, a candidate's distance to its nearest neighbours is
    measured by an encoder that never saw it. Features are L2-normalized, distances Euclidean.

    Args:
        reference, queries: uint8/float (N, C, H, W) tensors or ImageData.
        exclude: optional int64 (len(queries),) position in ``reference`` of each query itself
            (-1 when it is not there), so a point that g trained on is not its own neighbour.

    Returns:
        float32 (len(queries),) on the CPU.
    """
    ref = F.normalize(extract_features(encoder, reference), dim=1)
    qry = F.normalize(extract_features(encoder, queries), dim=1)
    k = min(k, len(ref) - 1) if exclude is not None else min(k, len(ref))
    if k < 1:
        raise SSLMemError("atypicality needs at least 2 reference images")
    if exclude is not None:
        exclude = torch.as_tensor(np.asarray(exclude), dtype=torch.long, device=ref.device)
    out = []
    for a in range(0, len(qry), batch_size):
        d = torch.cdist(qry[a:a + batch_size], ref)
        if exclude is not None:
            own = exclude[a:a + batch_size]
            rows = (own >= 0).nonzero().squeeze(1)
            d[rows, own[rows]] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).values.mean(1))
    return torch.cat(out).cpu()
