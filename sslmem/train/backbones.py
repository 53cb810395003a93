"""Encoders for small and large images: ResNets (CIFAR or ImageNet stem) and ViTs.

Why two stems: a 32 px image through the ImageNet stem (7x7 stride-2 conv + max-pool) is 8 px
before the first block, which costs CIFAR accuracy; the CIFAR stem (3x3 stride-1 conv, no pool)
is the convention of SimCLR/lightly/solo-learn on 32 px data.

The ViTs follow the authors' MAE encoder on CIFAR-10 (spec.md §2.3): ViT-tiny = width 192, 12 blocks
of 3 heads, patch 2 on 32 px (256 patches + a class token). They are wrapped in lightly's
``MaskedVisionTransformerTorchvision`` so MAE can encode only the kept tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from sslmem.errors import SSLMemError, unknown_choice

# torchvision (with torch._dynamo, ~3 s) is imported where a backbone is built, not here: reading
# results from the store builds none
RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}  # feature dimension
VITS = {"vit_tiny": dict(hidden_dim=192, num_heads=3),
        "vit_small": dict(hidden_dim=384, num_heads=6)}
BACKBONES = ("resnet9",) + tuple(RESNETS) + tuple(VITS)


def default_patch_size(image_size: int) -> int:
    """Patch 2 for 32 px (the authors' MAE), 4 up to 64 px, 16 above."""
    return 2 if image_size <= 32 else 4 if image_size <= 64 else 16


class Normalize(nn.Module):
    """Per-channel standardization with the training set's statistics, stored in the checkpoint."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Encoder(nn.Module):
    """Float [0, 1] images -> backbone features (B, D).

    Why it owns the normalization: scoring and probing code (and other datasets fed to a
    CIFAR-10 encoder) must not need to know the training set's mean and std.
    """

    def __init__(self, backbone: nn.Module, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.feature_dim: int = backbone.feature_dim
        self.kind: str = backbone.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


class ResNet(nn.Module):
    """torchvision ResNet without its classifier; ``forward`` returns pooled features."""

    kind = "resnet"

    def __init__(self, name: str, image_size: int, in_channels: int):
        super().__init__()
        import torchvision

        self.feature_dim = RESNETS[name]
        net = getattr(torchvision.models, name)(weights=None)
        if image_size <= 64:  # CIFAR stem
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
              nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


class ResNet9(nn.Module):
    """The follow-up paper's ResNet9 (spec.md §4.4): widths 32-64-64-64-128-256-256-256.

    Why it is here: it is ~20x cheaper than ResNet-18 at 32 px, which makes the CPU (``tiny``)
    profile train real encoders in seconds, and it is an architecture the authors' lab scored.
    """

    kind = "resnet"
    feature_dim = 256

    def __init__(self, image_size: int, in_channels: int):
        super().__init__()
        self.net = nn.Sequential(
            _conv_bn(in_channels, 32), _conv_bn(32, 64, pool=True), _Residual(64),
            _conv_bn(64, 128, pool=True), _conv_bn(128, 256, pool=True), _Residual(256),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ViT(nn.Module):
    """A torchvision ViT inside lightly's masked wrapper; ``forward`` returns the class token."""

    kind = "vit"

    def __init__(self, name: str, image_size: int, in_channels: int, patch_size: int = 0):
        super().__init__()
        patch_size = patch_size or default_patch_size(image_size)
        if image_size % patch_size:
            raise SSLMemError(f"image size {image_size} is not divisible by patch size "
                              f"{patch_size}")
        import torchvision
        from lightly.models.modules import MaskedVisionTransformerTorchvision

        width = VITS[name]
        vit = torchvision.models.VisionTransformer(
            image_size=image_size, patch_size=patch_size, num_layers=12,
            num_heads=width["num_heads"], hidden_dim=width["hidden_dim"],
            mlp_dim=4 * width["hidden_dim"])
        if in_channels != 3:
            vit.conv_proj = nn.Conv2d(in_channels, vit.hidden_dim, patch_size, patch_size)
        vit.heads = nn.Identity()
        self.vit = MaskedVisionTransformerTorchvision(vit=vit)
        self.feature_dim = width["hidden_dim"]
        self.patch_size = patch_size
        self.sequence_length = self.vit.sequence_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


def build_backbone(name: str, image_size: int = 32, in_channels: int = 3,
                   patch_size: int = 0) -> nn.Module:
    """Build a backbone by name; it has ``feature_dim`` and ``kind`` ('resnet' or 'vit')."""
    if name == "resnet9":
        return ResNet9(image_size, in_channels)
    if name in RESNETS:
        return ResNet(name, image_size, in_channels)
    if name in VITS:
        return ViT(name, image_size, in_channels, patch_size)
    raise unknown_choice("backbone", name, BACKBONES)
