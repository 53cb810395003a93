"""Which output of an encoder SSLMem compares: the pooled feature, or every token of a ViT.

Why a choice: the authors score their MAE encoders on the output of the whole token sequence
(class token and every patch token after the final LayerNorm, flattened and L2-normalised;
spec.md §1.5), not on the class token. MAE's loss reaches the class token only through
attention (the decoder reconstructs patches from patch tokens), so a class-token score can miss
what an MAE encoder memorized about a point's pixels. For a contrastive method the pooled
feature is what training aligns, so ``pooled`` stays the default.
"""

from __future__ import annotations

import torch
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice

REPRESENTATIONS = ("pooled", "tokens")


class Tokens(nn.Module):
    """Float [0, 1] images -> every token of a ViT encoder (B, T, D); scoring flattens them."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        vit = getattr(getattr(encoder, "backbone", None), "vit", None)
        if vit is None or not hasattr(vit, "encode"):
            raise SSLMemError("representation 'tokens' needs a ViT encoder (vit_tiny, vit_small);"
                              f" got {type(getattr(encoder, 'backbone', encoder)).__name__}: use "
                              "representation='pooled'")
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.backbone.vit.encode(self.encoder.normalize(x))


def scored(encoder: nn.Module, representation: str = "pooled") -> nn.Module:
    """The module whose output SSLMem compares for ``encoder`` (an ``Encoder``)."""
    if representation == "pooled":
        return encoder
    if representation == "tokens":
        return Tokens(encoder)
    raise unknown_choice("representation", representation, REPRESENTATIONS)
