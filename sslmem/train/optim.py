"""The optimizers and the learning-rate schedule every method trains with.

Why a module of its own: the fit loop and the calibration (which times a few real training steps)
both build the same optimizer, and neither should import the other for it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sslmem.errors import unknown_choice

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float):
    """Adam/AdamW/SGD/LARS; biases and norm parameters get no weight decay (and no LARS)."""
    if name not in OPTIMIZERS:
        raise unknown_choice("optimizer", name, OPTIMIZERS)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True}]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    from lightly.utils.lars import LARS

    return LARS(groups, lr=lr, momentum=0.9)


def learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warmup to ``peak`` then cosine decay to 0 (per optimizer step)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
