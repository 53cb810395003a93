"""Thumbnails for the explorer: a point's image gathered from its split, sized to a budget, packed
into one JPEG sprite sheet, plus the static PNG shown where JavaScript is off.

Why a module: the explorer's figure (Bokeh glyphs, tooltips, callbacks) and the bytes it embeds
are two concerns; the sprite budget decides how large a page gets (3,200,000 pixels: up to 3,125
points at 32 px).
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

from sslmem.errors import SSLMemError
from sslmem.train.splits import SUBSETS, TRAIN_SUBSETS

THUMB_PIXELS = 3_200_000  # sprite-sheet budget: up to 3,125 points at 32 px, 10,000 at 16 px
TEST_SUBSETS = tuple(s for s in SUBSETS if s not in TRAIN_SUBSETS)  # ("extra",): test split
SUBSET_COLOR = {"candidate": "#d62728", "shared": "#7f7f7f", "extra": "#1f77b4",
                "independent": "#2ca02c"}  # as sslmem.book.plots.SUBSET_COLOR
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
# An image source: an ImageData, a uint8 tensor/array, or a callable positions -> images.
Images = object


def gather_images(rows: pd.DataFrame, train: Images, test: Images | None) -> np.ndarray:
    """Each row's image as uint8 (n, H, W, C), from the train or the test source."""
    is_test = rows.subset.isin(TEST_SUBSETS).to_numpy()
    if is_test.any() and test is None:
        raise SSLMemError("explore: rows of S_E ('extra') index the test split: pass "
                          "test_images (e.g. exp.test)")
    out = None
    for mask, source in ((~is_test, train), (is_test, test)):
        if not mask.any():
            continue
        part = _as_hwc(_lookup(source, rows.position.to_numpy(dtype=np.int64)[mask]))
        if out is None:
            out = np.zeros((len(rows), *part.shape[1:]), dtype=np.uint8)
        if part.shape[1:] != out.shape[1:]:
            raise SSLMemError(f"explore: train and test images differ in shape "
                              f"({out.shape[1:]} vs {part.shape[1:]})")
        out[mask] = part
    return out


def _lookup(source: Images, positions: np.ndarray):
    source = getattr(source, "images", source)  # an ImageData
    if callable(source) and not hasattr(source, "shape"):
        got = source(positions)
        if len(got) != len(positions):
            raise SSLMemError(f"explore: the image callable returned {len(got)} images for "
                              f"{len(positions)} positions")
        return got
    if len(positions) and (positions.min() < 0 or positions.max() >= len(source)):
        raise SSLMemError(f"explore: positions up to {positions.max()} but only "
                          f"{len(source)} images")
    if hasattr(source, "detach"):  # a torch tensor, maybe on a GPU: move only what is shown
        import torch

        return source[torch.as_tensor(positions, device=source.device)].cpu().numpy()
    return np.asarray(source)[positions]


def _as_hwc(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise SSLMemError(f"explore: images of shape {images.shape}; need (N,C,H,W) or "
                          "(N,H,W[,C]) with 1 or 3 channels")
    if images.dtype != np.uint8:
        scale = 255.0 if images.max() <= 1.0 else 1.0
        images = np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)
    return images


def thumbnail_size(native: int, n: int) -> int:
    """The largest of native (at most 32), 24, 16 px whose sprite sheet fits THUMB_PIXELS.

    Multiples of 8 keep JPEG's blocks inside one thumbnail; CIFAR-10 at 32 px costs ~330 bytes
    per thumbnail, at 16 px ~90.
    """
    sizes = [min(native, 32)] + [t for t in (24, 16) if t < min(native, 32)]
    return next((t for t in sizes if n * t * t <= THUMB_PIXELS), sizes[-1])


def sprite_sheet(images: np.ndarray, tile: int, quality: int) -> tuple[str, dict]:
    """All thumbnails in one JPEG data URI, ``cols`` tiles of ``tile`` px to a row."""
    from PIL import Image

    n, height, width, channels = images.shape
    if (height, width) != (tile, tile):
        mode = "L" if channels == 1 else "RGB"
        images = np.stack([np.asarray(Image.fromarray(im.squeeze(-1) if channels == 1 else im,
                                                      mode).resize((tile, tile),
                                                                   Image.BILINEAR))
                           for im in images]).reshape(n, tile, tile, channels)
    cols = max(1, int(math.ceil(math.sqrt(n))))
    rows = -(-n // cols)
    padded = np.pad(images, ((0, rows * cols - n), (0, 0), (0, 0), (0, 0)))
    sheet = padded.reshape(rows, cols, tile, tile, channels).swapaxes(1, 2)
    sheet = sheet.reshape(rows * tile, cols * tile, channels)
    buf = io.BytesIO()
    Image.fromarray(sheet.squeeze(-1) if channels == 1 else sheet).save(
        buf, "JPEG", quality=quality, optimize=True)
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return uri, {"tile": tile, "cols": cols}


def static_png(rows: pd.DataFrame, x: str, y: str, subsets: list[str],
                names_of: dict[str, str]) -> str:
    """The no-JavaScript fallback: the same scatter as a small PNG data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.2), dpi=72, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, s in enumerate(subsets):
        part = rows[rows.subset == s]
        ax.scatter(part[x], part[y], s=4, alpha=0.5, edgecolor="none", rasterized=True,
                   color=SUBSET_COLOR.get(s, PALETTE[i % len(PALETTE)]), label=s)
    if {x, y} == {"L_f", "L_g"}:
        lo = float(np.nanmin(rows[[x, y]].to_numpy()))
        hi = float(np.nanmax(rows[[x, y]].to_numpy()))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
    ax.set_xlabel(names_of.get(x, x))
    ax.set_ylabel(names_of.get(y, y))
    ax.legend(fontsize=8, markerscale=3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
