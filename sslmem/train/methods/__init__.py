"""Training methods by name: one module each, all with the :class:`Method` interface.

Each module imports lightly where a method is built, not at its top: lightly loads torchvision
and torch._dynamo (3 s of the 8 s that ``sslmem plan`` took to list a plan on a 2-core EPYC),
and reading results from the store (the book's pages, the plan, the CLI) builds no method."""

from __future__ import annotations

from sslmem.errors import SSLMemError, unknown_choice
from sslmem.train.methods.barlowtwins import BarlowTwins
from sslmem.train.methods.base import Defaults, Method
from sslmem.train.methods.byol import BYOL
from sslmem.train.methods.dino import DINO
from sslmem.train.methods.mae import MAE
from sslmem.train.methods.simclr import SimCLR
from sslmem.train.methods.simsiam import SimSiam
from sslmem.train.methods.supervised import Supervised
from sslmem.train.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (SimCLR, BYOL, SimSiam, DINO, MAE, VICReg, BarlowTwins, Supervised)}
SSL_METHODS = tuple(n for n in METHODS if n != "supervised")


def method_class(name: str) -> type[Method]:
    """The class of a method by name (errors list the choices)."""
    if name not in METHODS:
        raise unknown_choice("method", name, METHODS)
    return METHODS[name]


def build_method(name: str, backbone: str | None, *, image_size: int, channels: int, mean, std,
                 num_classes: int, patch_size: int = 0, **options) -> Method:
    """Build a method; ``backbone=None`` takes the method's paper default."""
    cls = method_class(name)
    backbone = backbone or cls.defaults.backbone
    from sslmem.train.backbones import BACKBONES, VITS

    if backbone not in BACKBONES:
        raise unknown_choice("backbone", backbone, BACKBONES)
    if name == "mae" and backbone not in VITS:
        raise SSLMemError(f"method 'mae' needs a ViT backbone ({', '.join(VITS)}); "
                          f"got {backbone!r}")
    return cls(backbone, image_size, channels, mean, std, num_classes, patch_size, **options)


__all__ = ["METHODS", "SSL_METHODS", "Defaults", "Method", "build_method", "method_class"]
