"""What every training method shares: the encoder, its views, and the alignment regularizer.

A method is an ``nn.Module`` whose ``forward(images, labels, generator, align_weight)`` returns
the scalar training loss for a batch of uint8 images, so that the one training loop (and DDP)
can drive any of them. ``encoder`` is what SSLMem scores and what the probes read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sslmem.train.augment import recipe
from sslmem.train.backbones import Encoder, build_backbone


@dataclass(frozen=True)
class Defaults:
    """A method's paper-profile training settings (spec.md §2.3) and where we deviate."""

    backbone: str
    epochs: int
    batch_size: int
    optimizer: str  # adam | adamw | sgd | lars
    lr: float  # base learning rate for batch 256 (scaled linearly with batch size)
    weight_decay: float
    warmup_epochs: int
    source: str  # where these numbers come from, and what we changed
    extra: dict = field(default_factory=dict)


class Method(nn.Module):
    """Base class: builds the encoder and the augmentation recipe named ``recipe_name``."""

    name = "base"
    recipe_name = "simclr"
    defaults: Defaults
    # DP-SGD (sslmem.train.privacy) clips each sample's gradient, which bounds a sample's influence
    # only
    # if the loss is a mean of per-sample terms; methods that are say so and implement
    # sample_inputs/inputs_loss, the others say what couples the samples of a batch
    per_sample_loss: bool = False
    batch_coupling: str = "its loss couples the samples of a batch"

    def __init__(self, backbone: str, image_size: int, channels: int, mean, std,
                 num_classes: int, patch_size: int = 0, augment_strength: float = 1.0,
                 **options):
        super().__init__()
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        backbone_net = build_backbone(backbone, image_size, channels, patch_size)
        self.encoder = Encoder(backbone_net, mean, std)
        self.views = recipe(self.recipe_name, image_size, augment_strength)
        # two SimCLR-style views for the regularizer of single-view methods (built once)
        self.pair_views = recipe("simclr", image_size)
        self.options = options

    def forward(self, images: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None,
                align_weight: float = 0.0) -> torch.Tensor:
        views = self.views(images, generator)
        loss, h1, h2 = self.views_loss(views, labels)
        if align_weight:
            loss = loss + align_weight * self.alignment_penalty(h1, h2, images, generator)
        return loss

    def views_loss(self, views: list[torch.Tensor], labels: torch.Tensor):
        """Loss for one batch of views; also the backbone features of two views (or None)."""
        raise NotImplementedError

    def sample_inputs(self, views: list[torch.Tensor],
                      labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample tensors (leading dim B) that fix every random draw of the loss (e.g. masks).

        Only for ``per_sample_loss`` methods: DP-SGD evaluates ``inputs_loss`` on one sample at a
        time (``torch.func.vmap``), where nothing may be drawn at random.
        """
        raise NotImplementedError(f"{self.name} has no per-sample loss ({self.batch_coupling})")

    def inputs_loss(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The batch loss, the mean of per-sample terms, from ``sample_inputs``' tensors."""
        raise NotImplementedError(f"{self.name} has no per-sample loss ({self.batch_coupling})")

    def alignment_penalty(self, h1, h2, images, generator) -> torch.Tensor:
        """Mean cosine similarity of two views' backbone features (spec.md §3.1 item 6).

        Adding ``lambda * cos`` to the loss *penalizes* alignment, which is what the paper's Eq. 3
        is described to do (the authors' draft rewards it; spec.md §4.3); methods with a single
        view (MAE, supervised) draw a second SimCLR-style pair for it.
        """
        if h1 is None:
            v1, v2 = self.pair_views(images, generator)
            h1, h2 = self.encoder(v1), self.encoder(v2)
        return F.cosine_similarity(h1.float(), h2.float(), dim=-1).mean()

    def on_step(self, progress: float) -> None:
        """Called after every optimizer step with training progress in [0, 1] (EMA updates)."""


def momentum_schedule(progress: float, base: float) -> float:
    """BYOL/DINO teacher momentum: cosine from ``base`` to 1 over training."""
    import math

    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1) / 2
