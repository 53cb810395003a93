"""The book's figures of images: ranked grids, per-class grids, a point's augmented views.

Why a module of its own: the paper's evidence for which points are memorized is pictures
(Fig. 1); these figures take images and a score table, the others in :mod:`sslmem.book.plots`
take numbers only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sslmem.book.plots import WIDTH, _num


def _to_hwc(images) -> np.ndarray:
    """uint8 (N, C, H, W) tensor/array -> (N, H, W, C) or (N, H, W) numpy for imshow."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return images


def image_grid(images, titles=None, ncols: int = 10, title: str | None = None,
               size: float = WIDTH / 10) -> plt.Figure:
    """A grid of images with a short caption under each (e.g. its score and class)."""
    images = _to_hwc(images)
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.32) * nrows + 0.4),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images[i].ndim == 2 else None,
                  interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10, fontweight="bold")
    return fig


def ranked_grid(table: pd.DataFrame, images, column: str = "score_raw", n: int = 10,
                classes=None, title: str | None = None, error: str | None = None) -> plt.Figure:
    """Two rows of images: the ``n`` highest (top) and lowest (bottom) scored rows of ``table``.

    ``images`` is indexed by ``table.position`` (positions into the training ImageData);
    ``error``: a column of standard errors, captioned under each score (a ranking is only as
    good as its precision).
    """
    ranked = table.sort_values(column, ascending=False)
    rows = pd.concat([ranked.head(n), ranked.tail(n)])
    label = (lambda y: classes[int(y)]) if classes is not None else (lambda y: str(int(y)))
    fmt = "+.3f" if rows[column].min() < 0 else ".3f"  # a sign only where scores have one
    titles = [f"{label(r.label)}\n{_num(getattr(r, column), fmt)}"
              + (f"\n±{_num(getattr(r, error), '.3f')}" if error else "")
              for r in rows.itertuples()]
    pos = rows.position.to_numpy().copy()  # writable: torch indexes with it
    fig = image_grid(images[pos], titles, ncols=n,
                     title=title or f"top row: {n} most memorized; bottom row: {n} least")
    return fig


def per_class_grid(table: pd.DataFrame, images, classes, column: str = "score_raw",
                   n: int = 3) -> plt.Figure:
    """Per class: the ``n`` most memorized (red frames) and ``n`` least memorized (blue) candidates.

    Classes are laid out in two blocks side by side so that ten classes fit one screen.
    """
    labels = sorted(table.label.unique())
    blocks = 2 if len(labels) > 5 else 1
    rows_per_block = int(np.ceil(len(labels) / blocks))
    ncols = blocks * 2 * n + (blocks - 1)  # a blank spacer column between blocks
    fig, axes = plt.subplots(rows_per_block, ncols, squeeze=False, layout="constrained",
                             figsize=(min(WIDTH, 0.52 * ncols + 0.5),
                                      0.72 * rows_per_block + 0.5))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for i, y in enumerate(labels):
        row, col0 = i % rows_per_block, (i // rows_per_block) * (2 * n + 1)
        part = table[table.label == y].sort_values(column, ascending=False)
        chosen = list(part.head(n).itertuples()) + list(part.tail(n).itertuples())
        for j, item in enumerate(chosen[: 2 * n]):
            ax = axes[row, col0 + j]
            img = _to_hwc(images[[int(item.position)]])[0]  # only the images shown
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_title(_num(getattr(item, column), "+.2f"), fontsize=6.5, pad=1)
            ax.set_frame_on(True)
            for spine in ax.spines.values():
                spine.set_edgecolor("#d62728" if j < n else "#1f77b4")
                spine.set_linewidth(2)
        axes[row, col0].set_ylabel(str(classes[int(y)]), rotation=0, ha="right", va="center",
                                   fontsize=8)
    fig.suptitle(f"per class: {n} most memorized (red) | {n} least memorized (blue)",
                 fontsize=10)
    return fig


def toy_views(panels: list[dict]) -> plt.Figure:
    """The 2-D intuition: views of a point and where encoders f (with it) and g (without) send them.

    Each panel dict: title, train (N, 2), point (2,), views (K, 2), f_views (K, 2), g_views (K, 2),
    L_f, L_g.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH / 2 * len(panels), 4.2),
                             layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, p in zip(axes, panels):
        ax.scatter(*p["train"].T, s=8, color="#bbbbbb", label="training data of g (and f)")
        ax.scatter(*p["views"].T, s=10, color="black", alpha=0.5, label="views x′, x″ ~ Aug(x)")
        ax.scatter(*p["f_views"].T, s=12, color="#d62728", alpha=0.7,
                   label=f"f(views), L_f = {_num(p['L_f'])}")
        ax.scatter(*p["g_views"].T, s=12, color="#2ca02c", alpha=0.7, marker="x",
                   label=f"g(views), L_g = {_num(p['L_g'])}")
        ax.scatter(*p["point"], s=120, marker="*", color="gold", edgecolor="black", zorder=5,
                   label="x (in f's data only)")
        ax.set_title(f"{p['title']}:\nm(x) = L_g − L_f = {_num(p['L_g'] - p['L_f'])}",
                     fontsize=9)
        ax.set_aspect("equal")
        ax.legend(fontsize=6.5, loc="lower right")
    return fig
