"""Per-sample batched augmentation on any device: the views SSL methods train on and SSLMem scores.

Why: SSLMem's score is an expectation over augmented pairs, and every SSL method trains on them.
A PIL pipeline in DataLoader workers is CPU-bound (NOTES.md: ~31k img/s with 16 workers on an
H100 host, against ~60k img/s of ResNet-18 training). Here a whole batch is augmented with tensor
ops where it lives (uint8 on the GPU, say), each sample with its own random parameters, without a
Python loop over samples and without host syncs.

Two layers:
  * functional ops taking explicit per-sample parameter tensors (``adjust_brightness(x, f[B])``,
    ``resized_crop(x, boxes, size, flip)``, ...). Each matches
    ``torchvision.transforms.v2.functional`` for fixed parameters (tests/test_augment.py checks it);
  * ``ViewAug`` (one view's random recipe): ``sample`` draws all per-sample parameters as a dict of
    tensors, ``apply`` applies them. Parameters can be drawn once for N images x K pairs and applied
    in any batching (``index_params``), so encoders f and g see identical views. ``Recipe`` bundles
    the views of one method; ``recipe(name, image_size)`` builds the named ones.

Deliberate differences from torchvision (all documented where they occur):
  * crop boxes are continuous fractions of the image (no rounding to whole pixels), so parameters
    do not depend on the input resolution; for square images the area/ratio law is torchvision's;
  * crop, flip and resize are ONE resampling with separable per-sample interpolation matrices
    (bilinear, antialiased when shrinking, exactly torchvision's crop-then-resize weights for
    pixel-aligned boxes) rather than ``affine_grid`` + ``grid_sample``, which cannot antialias;
  * RandomResizedCrop's "10 tries, then centre crop" is done as 10 vectorized tries per sample;
  * colour jitter applies brightness, contrast, saturation, hue in this fixed order (torchvision
    draws a random order per call);
  * everything works on float [0, 1] pixels; uint8 input is divided by 255 first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from sslmem.errors import SSLMemError, unknown_choice

CROPS = ("resized", "padded", "full")
PARAM_KEYS = ("box", "flip", "brightness", "contrast", "saturation", "hue", "gray", "blur_sigma",
              "solarize")


def _per_sample(v: Tensor | float, x: Tensor) -> Tensor:
    """A per-sample parameter (B,) or scalar as a (B, 1, 1, 1) tensor on x's device."""
    return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


def _blend(x: Tensor, other: Tensor, factor: Tensor | float) -> Tensor:
    f = _per_sample(factor, x)
    return (f * x + (1 - f) * other).clamp_(0, 1)


# ----------------------------------------------------------------------------- functional ops
def rgb_to_grayscale(x: Tensor) -> Tensor:
    """ITU-R 601 luma (torchvision's weights): (B, 3, H, W) -> (B, 1, H, W); 1 channel as is."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def adjust_brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    """Multiply by a per-sample factor (1 = identity), clamp to [0, 1]."""
    return (x * _per_sample(factor, x)).clamp_(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend each image with its mean grey level (factor 1 = identity)."""
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend each image with its greyscale version (factor 1 = identity); no-op on 1 channel."""
    if x.shape[-3] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x), factor)


def adjust_hue(x: Tensor, factor: Tensor | float) -> Tensor:
    """Rotate hue by a per-sample fraction of the colour wheel in [-0.5, 0.5]; no-op on 1 channel.

    The HSV round trip of torchvision (Pillow's hue sectors) in closed form: value v = max and
    chroma c = max - min are unchanged, and channel n in (R 5, G 3, B 1) becomes
    v - c * clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6. Equal within float rounding,
    with fewer kernels (no gather, no channel reduction).
    """
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    c = v - torch.minimum(torch.minimum(r, g), b)
    cd = torch.where(c == 0, 1.0, c)
    h6 = torch.where(v == r, (g - b) / cd, torch.where(v == g, (b - r) / cd + 2, (r - g) / cd + 4))
    h6 = h6 + 6.0 * _per_sample(factor, x)[:, 0]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = (n + h6.unsqueeze(-3)).remainder_(6.0)
    return (v.unsqueeze(-3) - c.unsqueeze(-3) * torch.minimum(k, 4.0 - k).clamp_(0, 1)).clamp_(0, 1)


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian kernel ~10% of the image side (SimCLR/BYOL: 23 px at 224), at least 3."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)


def gaussian_blur(x: Tensor, sigma: Tensor | float, kernel_size: int | None = None) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma; sigma <= 0 leaves that sample unchanged.

    Kernel and reflect padding as torchvision's ``gaussian_blur``; the convolution is ``k``
    shifted multiply-adds per axis, so each sample can have its own kernel in one batched op.
    """
    k = blur_kernel_size(min(x.shape[-2:])) if kernel_size is None else kernel_size
    if k % 2 == 0 or k < 1:
        raise SSLMemError(f"gaussian blur kernel size must be odd and positive, got {k}")
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)
    lim = (k - 1) / (2.0 * math.sqrt(2.0))
    t = torch.linspace(-lim, lim, k, dtype=x.dtype, device=x.device)
    off = sig <= 0
    w = torch.softmax(-(t / torch.where(off, torch.ones_like(sig), sig)) ** 2, dim=-1)
    w = torch.where(off, (torch.arange(k, device=x.device) == k // 2).to(x.dtype), w)  # (B, k)
    w = w.expand(x.shape[0], k) if w.shape[0] == 1 else w
    pad = k // 2
    H, W = x.shape[-2:]
    xp = torch.nn.functional.pad(x, (pad, pad, 0, 0), mode="reflect")
    x = sum(w[:, j, None, None, None] * xp[..., j:j + W] for j in range(k))
    xp = torch.nn.functional.pad(x, (0, 0, pad, pad), mode="reflect")
    return sum(w[:, j, None, None, None] * xp[..., j:j + H, :] for j in range(k))


def solarize(x: Tensor, threshold: Tensor | float = 0.5) -> Tensor:
    """Invert pixels >= threshold (per sample); a threshold of +inf leaves the sample unchanged."""
    return torch.where(x >= _per_sample(threshold, x), 1.0 - x, x)


def _axis_weights(start: Tensor, length: Tensor, n_in: int, n_out: int,
                  flip: Tensor | None) -> Tensor:
    """(B, n_out, n_in) interpolation matrix of one axis: crop [start, start+length) and resize.

    Triangle (bilinear) filter widened by the shrink factor when downsampling (antialiasing) and
    renormalized over the input pixels that overlap the crop: the weights of torch's
    ``interpolate(..., antialias=True)`` after cropping, i.e. torchvision's ``resized_crop``.
    Output positions outside the image get zero weight (zero fill, as RandomCrop's padding).
    """
    start, length = start * n_in, length * n_in  # pixels
    scale = (length / n_out)[:, None, None]
    o = torch.arange(n_out, device=start.device, dtype=start.dtype).expand(start.shape[0], n_out)
    if flip is not None:
        o = torch.where(flip[:, None], n_out - 1 - o, o)
    centre = start[:, None, None] + (o[..., None] + 0.5) * scale  # (B, n_out, 1)
    i = torch.arange(n_in, device=start.device, dtype=start.dtype)
    w = (1 - (i + 0.5 - centre).abs() / scale.clamp(min=1)).clamp_(min=0)
    inside = (i >= start.floor()[:, None, None]) & (i < (start + length).ceil()[:, None, None])
    w = w * inside
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


def resized_crop(x: Tensor, boxes: Tensor, size: int | tuple[int, int],
                 flip: Tensor | None = None) -> Tensor:
    """Crop each image to its box, optionally flip it horizontally, and resize to ``size``.

    Args:
        x: float images (B, C, H, W).
        boxes: (B, 4) = (top, left, height, width) as fractions of the image side, so (0, 0, 1, 1)
            is the whole image; boxes may leave the image (the outside reads as 0).
        size: output side (int) or (height, width).
        flip: optional (B,) bool, mirror the output left-right.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    top, left, height, width = boxes.unbind(-1)
    wy = _axis_weights(top, height, x.shape[-2], out_h, None)
    wx = _axis_weights(left, width, x.shape[-1], out_w, None if flip is None else flip.to(x.device))
    # Two batched matmuls with channels folded into the rows (3-4x faster than broadcasting over C).
    B, C, H, W = x.shape
    t = (x.reshape(B, C * H, W) @ wx.transpose(1, 2)).view(B, C, H, out_w)
    t = wy @ t.transpose(1, 2).reshape(B, H, C * out_w)
    return t.view(B, out_h, C, out_w).transpose(1, 2).contiguous()


# ----------------------------------------------------------------------------- random views
def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise SSLMemError(msg)


def index_params(params: dict[str, Tensor], idx) -> dict[str, Tensor]:
    """Parameters of a subset of samples (any index a tensor accepts: slice, int tensor, mask)."""
    return {k: v[idx] for k, v in params.items()}


@dataclass(frozen=True)
class ViewAug:
    """The random recipe of one view; parameters are drawn per sample.

    Order of application (torchvision's in SimCLR/BYOL pipelines): crop + flip + resize, colour
    jitter (with probability ``jitter_p``; brightness, contrast, saturation, hue in this fixed
    order), random grayscale, Gaussian blur, solarization.

    Crop modes:
        "resized": RandomResizedCrop: area fraction ~ U(scale), aspect ratio log-uniform in
            ``ratio``; 10 tries per sample (vectorized), a sample with no valid try gets
            torchvision's fallback centre crop. Boxes are continuous (not rounded to pixels) and
            relative to the image sides, so ``ratio`` is torchvision's for square images.
        "padded": the supervised CIFAR crop: pad ``padding`` px of zeros, random ``size`` crop,
            i.e. an integer shift in [-padding, padding] px (pixels of the output side ``size``).
        "full": the whole image, resized to ``size`` (identity when sizes match).
    """

    size: int
    crop: str = "resized"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    padding: int = 4
    flip_p: float = 0.5
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    gray_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self):
        _check(isinstance(self.size, int) and self.size >= 1,
               f"view size must be an integer >= 1, got {self.size!r}")
        if self.crop not in CROPS:
            raise unknown_choice("crop mode", self.crop, CROPS)
        a, b = self.scale
        _check(0 < a <= b <= 1, f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        a, b = self.ratio
        _check(0 < a <= b, f"crop ratio must satisfy 0 < min <= max, got {self.ratio}")
        _check(self.padding >= 0, f"padding must be >= 0, got {self.padding}")
        for f in fields(self):
            if f.name.endswith("_p"):
                p = getattr(self, f.name)
                _check(0 <= p <= 1, f"{f.name} is a probability and must lie in [0, 1], got {p}")
        for name in ("brightness", "contrast", "saturation"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(0 <= self.hue <= 0.5, f"hue must lie in [0, 0.5], got {self.hue}")
        a, b = self.blur_sigma
        _check(0 < a <= b, f"blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma}")
        _check(self.blur_p == 0 or self.size >= 2, "gaussian blur needs a view size >= 2")

    def _boxes(self, n: int, u, device: torch.device) -> Tensor:
        if self.crop == "full":
            return torch.tensor([0.0, 0.0, 1.0, 1.0], device=device).expand(n, 4)
        if self.crop == "padded":
            shift = (torch.floor(u(n, 2) * (2 * self.padding + 1)) - self.padding) / self.size
            return torch.cat([shift, torch.ones_like(shift)], dim=1)
        tries = 10
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u(n, tries)
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        ratio = torch.exp(lo + (hi - lo) * u(n, tries))
        w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        ok = (w <= 1) & (h <= 1)
        first = torch.argmax(ok.float(), dim=1, keepdim=True)  # first valid try
        w, h, found = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0], ok.any(1)
        # torchvision's fallback for a square image: the largest centre crop within `ratio`.
        fw = min(1.0, self.ratio[1]) if self.ratio[0] <= 1 else 1.0
        fh = min(1.0, 1 / self.ratio[0]) if self.ratio[1] >= 1 else 1.0
        w, h = torch.where(found, w, fw), torch.where(found, h, fh)
        off = u(n, 2)
        top, left = off[:, 0] * (1 - h), off[:, 1] * (1 - w)
        return torch.stack([torch.where(found, top, (1 - h) / 2),
                            torch.where(found, left, (1 - w) / 2), h, w], dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """Draw the parameters of ``n`` views: a dict of per-sample tensors (see PARAM_KEYS).

        Drawn on the generator's device (CPU by default) and moved to ``device``, so a seeded CPU
        generator gives the same views on every device. Identity values mark "not applied"
        (factor 1, hue 0, sigma 0, grayscale/solarize False).
        """
        gdev = generator.device if generator is not None else torch.device(device)

        def u(*shape):
            return torch.rand(shape, generator=generator, device=gdev)

        box = self._boxes(n, u, gdev)
        flip = u(n) < self.flip_p
        jit = u(n) < self.jitter_p

        def factor(strength):
            f = max(0.0, 1 - strength) + (1 + strength - max(0.0, 1 - strength)) * u(n)
            return torch.where(jit, f, 1.0)

        brightness, contrast, saturation = (factor(s) for s in
                                            (self.brightness, self.contrast, self.saturation))
        hue = torch.where(jit, (2 * u(n) - 1) * self.hue, 0.0)
        gray = u(n) < self.gray_p
        lo, hi = self.blur_sigma
        sigma = torch.where(u(n) < self.blur_p, lo + (hi - lo) * u(n), 0.0)
        sol = u(n) < self.solarize_p
        params = dict(box=box, flip=flip, brightness=brightness, contrast=contrast,
                      saturation=saturation, hue=hue, gray=gray, blur_sigma=sigma, solarize=sol)
        return {k: v.to(device, non_blocking=True) for k, v in params.items()}

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Augment ``images`` (B, C, H, W), uint8 or float in [0, 1], with per-sample ``params``.

        Returns float32 (B, C, size, size) in [0, 1]. Ops whose strength or probability is 0 in
        this recipe are skipped statically (no data-dependent branches, so no host syncs).
        """
        _check(images.ndim == 4 and images.shape[1] in (1, 3),
               f"images must be (B, C, H, W) with C = 1 or 3, got shape {tuple(images.shape)}")
        _check(params["box"].shape[0] == images.shape[0],
               f"{params['box'].shape[0]} parameter sets for {images.shape[0]} images")
        # full precision even inside the training loop's bf16 autocast (views are float32)
        with torch.autocast(images.device.type, enabled=False):
            return self._apply(images, params)

    def _apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        p = {k: v.to(images.device, non_blocking=True) for k, v in params.items()}
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        x = resized_crop(x, p["box"], self.size, p["flip"])
        if self.jitter_p > 0:
            if self.brightness > 0:
                x = adjust_brightness(x, p["brightness"])
            if self.contrast > 0:
                x = adjust_contrast(x, p["contrast"])
            if self.saturation > 0:
                x = adjust_saturation(x, p["saturation"])
            if self.hue > 0:
                x = adjust_hue(x, p["hue"])
        if self.gray_p > 0 and x.shape[1] == 3:
            x = torch.where(p["gray"][:, None, None, None], rgb_to_grayscale(x).expand_as(x), x)
        if self.blur_p > 0:
            x = gaussian_blur(x, p["blur_sigma"], blur_kernel_size(self.size))
        if self.solarize_p > 0:
            x = solarize(x, torch.where(p["solarize"], 0.5, math.inf))
        return x.clamp_(0, 1).contiguous()

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(images, self.sample(images.shape[0], generator, images.device))


@dataclass(frozen=True)
class Recipe:
    """The views of one method, e.g. SimCLR's two symmetric views or DINO's 2 global + 6 local."""

    name: str
    views: tuple[ViewAug, ...]

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> list[dict[str, Tensor]]:
        return [v.sample(n, generator, device) for v in self.views]

    def apply(self, images: Tensor, params: list[dict[str, Tensor]]) -> list[Tensor]:
        return [v.apply(images, p) for v, p in zip(self.views, params)]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        return [v(images, generator) for v in self.views]


def _simclr(size: int, **kw) -> ViewAug:
    base = dict(size=size, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                gray_p=0.2)
    return ViewAug(**{**base, **kw})


def _byol_pair(size: int, **kw) -> tuple[ViewAug, ViewAug]:
    """BYOL's asymmetric pair (also VICReg's, Barlow Twins'): blur 1.0 / 0.1, solarize 0 / 0.2."""
    return (_simclr(size, saturation=0.2, blur_p=1.0, **kw),
            _simclr(size, saturation=0.2, blur_p=0.1, solarize_p=0.2, **kw))


def _dino(size: int) -> tuple[ViewAug, ...]:
    """DINO multi-crop: 2 global crops (scale 0.4-1) + 6 local crops (0.05-0.4) at half the side.

    DINO uses 224 / 96 px; at 32 px the local crops are 16 px (size // 2, rounded down to even).
    """
    local = max(2, size // 2 // 2 * 2)
    g1, g2 = _byol_pair(size, scale=(0.4, 1.0))
    return (g1, g2) + (_simclr(local, saturation=0.2, scale=(0.05, 0.4), blur_p=0.5),) * 6


def _score(size: int) -> tuple[ViewAug, ViewAug]:
    """SSLMem's scoring augmentation, from the authors' ``memorization_scores.py`` (spec.md §2.4).

    ``RandomResizedCrop(32)`` (scale 0.08-1), ``RandomHorizontalFlip()``,
    ``RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8)``, ``RandomGrayscale(p=0.2)``, i.e.
    SimCLR strength 1. The authors applied it to tensors already normalized to [-1, 1]; we apply it
    to [0, 1] pixels, where colour jitter means what it says. Two independent views: one pair.
    """
    view = _simclr(size, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
    return view, view


def _views(name: str, size: int) -> tuple[ViewAug, ...]:
    if name in ("simclr", "simsiam"):  # SimCLR's CIFAR recipe: no blur at 32 px
        return (_simclr(size),) * 2
    if name in ("byol", "vicreg", "barlowtwins"):
        return _byol_pair(size)
    if name == "dino":
        return _dino(size)
    if name == "mae":
        return (ViewAug(size, scale=(0.2, 1.0)),)
    if name == "supervised":
        return (ViewAug(size, crop="padded", padding=4),)
    if name == "score":
        return _score(size)
    return (ViewAug(size, crop="full", flip_p=0.0),)  # none


RECIPES = ("simclr", "byol", "simsiam", "dino", "mae", "vicreg", "barlowtwins", "supervised",
           "score", "none")


def weaken(view: ViewAug, strength: float) -> ViewAug:
    """``view`` at ``strength`` (1 = unchanged, towards 0 = towards the identity).

    Why: memorization is known to shrink with stronger augmentation, so a weaker recipe is a
    knob of the precision chapter's regime search. Every colour-jitter magnitude and every
    probability (jitter, grayscale, blur, solarize) is multiplied by ``strength``, and a resized
    crop's smallest area moves towards the whole image: min = 1 − strength · (1 − min).
    Flips are kept (they change no pixel statistics).
    """
    _check(0 < strength <= 1, f"augmentation strength must lie in (0, 1], got {strength}")
    if strength == 1:
        return view
    lo, hi = view.scale
    return replace(view, scale=(1 - strength * (1 - lo), hi), jitter_p=view.jitter_p * strength,
                   brightness=view.brightness * strength, contrast=view.contrast * strength,
                   saturation=view.saturation * strength, hue=view.hue * strength,
                   gray_p=view.gray_p * strength, blur_p=view.blur_p * strength,
                   solarize_p=view.solarize_p * strength)


def recipe(name: str, image_size: int, strength: float = 1.0) -> Recipe:
    """The named augmentation recipe producing views of side ``image_size`` (locals: half),
    at ``strength`` (:func:`weaken`; 1 = the method's recipe)."""
    if name not in RECIPES:
        raise unknown_choice("augmentation recipe", name, RECIPES)
    _check(isinstance(image_size, int) and image_size >= 1,
           f"image_size must be an integer >= 1, got {image_size!r}")
    views = _views(name, image_size)
    return Recipe(name, tuple(weaken(v, strength) for v in views) if strength != 1 else views)
