"""A per-point explorer: a scatter of scored points where hovering a point shows its image.

Why: the paper's claims are about *which* images are memorized, and a static scatter of L_f
against L_g hides them. The explorer is one self-contained HTML block (no server, no network, no
CDN): thumbnails as one JPEG sprite sheet, points as compact JSON, ~13 kB of vanilla JS and
CSS drawing on a canvas. It displays in Jupyter (``_repr_html_``) and so in the built book, where
myst-nb renders the text/html output as is. Readers without JavaScript see a static PNG scatter.

Page weight (CIFAR-10 images, measured by tests/test_explorer.py): about 0.5 MB for 1,000 points
and 1.7 MB for 10,000; thumbnails shrink as points grow (``thumb_size=None``) so the sprite sheet
stays near ``THUMB_PIXELS`` pixels.

Example::

    from sslmem.explorer import explore
    explore(exp.scores(), exp.train, exp.test)                    # L_f against L_g
    explore(cands, exp.train, x="knn_distance", y="score_raw")   # score against typicality
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sslmem.errors import SSLMemError
from sslmem.splits import SUBSETS, TRAIN_SUBSETS

TEST_SUBSETS = tuple(s for s in SUBSETS if s not in TRAIN_SUBSETS)  # ("extra",): test split
THUMB_PIXELS = 3_200_000  # sprite-sheet budget: up to 3,125 points at 32 px, 10,000 at 16 px
BASE_FIELDS = ("L_f", "L_g", "score_raw")
FIELD_LABEL = {"L_f": "L_f (alignment loss of f)", "L_g": "L_g (alignment loss of g)",
               "score_raw": "m = L_g − L_f", "score_zscore": "m, z-score against S_E",
               "score_ratio": "m / (L_f + L_g)", "score_range": "m / range of m"}
FIELD_SHORT = {"L_f": "L<sub>f</sub>", "L_g": "L<sub>g</sub>", "score_raw": "m"}
SUBSET_HTML = {"candidate": "S<sub>C</sub> candidate (f only)",
               "shared": "S<sub>S</sub> shared (f and g)",
               "extra": "S<sub>E</sub> extra (neither, test split)",
               "independent": "S<sub>I</sub> independent (g only)"}
SUBSET_COLOR = {"candidate": "#d62728", "shared": "#7f7f7f", "extra": "#1f77b4",
                "independent": "#2ca02c"}  # as sslmem.plots.SUBSET_COLOR
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

# An image source: an ImageData, a uint8 tensor/array, or a callable positions -> images.
Images = object
_ids = itertools.count()


class Explorer:
    """The explorer's HTML; displays itself in Jupyter and in the built book."""

    def __init__(self, html_text: str, n_points: int, n_total: int, parts: dict[str, int]):
        self.html = html_text
        self.n_points = n_points
        self.n_total = n_total
        self.parts = parts  # bytes of each part: thumbnails, points, fallback, script

    @property
    def nbytes(self) -> int:
        return len(self.html.encode())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return (f"Explorer({self.n_points} of {self.n_total} points, "
                f"{self.nbytes / 1e6:.2f} MB of HTML)")

    def save(self, path) -> None:
        """A standalone page (to share one figure outside the book)."""
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>sslmem explorer"
                f"</title></head><body style='font-family:sans-serif'>{self.html}</body></html>")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)


def explore(table: pd.DataFrame, train_images: Images, test_images: Images | None = None, *,
            classes: Sequence[str] | None = None, x: str = "L_f", y: str = "L_g",
            fields: Sequence[str] = (), labels: dict[str, str] | None = None,
            max_points: int = 10_000, thumb_size: int | None = None,
            title: str | None = None, seed: int = 0, quality: int = 80,
            static: bool = True) -> Explorer:
    """An interactive scatter of ``table``'s points with their images.

    Args:
        table: scored points with columns subset, position, index, label and the numeric
            columns named in ``x``, ``y`` and ``fields`` (L_f, L_g, score_raw shown when present).
        train_images: images of the rows of the training subsets (S_S, S_C, S_I), looked up by
            ``position``: an ImageData, a uint8 tensor/array (N,C,H,W) or (N,H,W[,C]), or a
            callable taking an int64 array of positions and returning such an array.
        test_images: the same for rows of S_E (``extra``), which index the test split.
        classes: class names by label (default: ``train_images.classes`` if it has them).
        x, y: the columns on the axes at first (the page offers every numeric field).
        fields: further numeric columns to show and offer as axes (e.g. a typicality).
        labels: axis labels by column, e.g. ``{"knn_distance": "atypicality (kNN distance)"}``.
        max_points: at most this many points; above it, small subsets are kept whole and the
            large ones sampled (seeded), so S_C and S_I survive beside a big S_S.
        thumb_size: thumbnail side in px (default: native size, capped at 32 and shrunk so that
            all thumbnails fit ``THUMB_PIXELS``).
        static: add a PNG scatter for readers without JavaScript (inside ``<noscript>``).
    """
    table = _checked(table, x, y, fields)
    shown = _sample(table, max_points, seed)
    fields = list(dict.fromkeys([f for f in (*BASE_FIELDS, x, y, *fields) if f in table]))
    names_of = {**FIELD_LABEL, **(labels or {})}
    if classes is None:
        classes = getattr(train_images, "classes", None)
    classes = [str(c) for c in classes] if classes is not None else None
    images = _gather(shown, train_images, test_images)
    tile = thumb_size or _thumb_size(images.shape[1], len(shown))
    sprite, geometry = _sprite(images, tile, quality)
    subsets = [s for s in (*SUBSETS, *sorted(set(table.subset) - set(SUBSETS)))
               if s in set(table.subset)]
    code = {s: i for i, s in enumerate(subsets)}
    labels = shown.label.to_numpy(dtype=np.int64)
    n_classes = max(int(table.label.max()) + 1, len(classes or ()))
    names = classes or [str(k) for k in range(n_classes)]
    names = names + [str(k) for k in range(len(names), n_classes)]
    data = {
        "total": len(table), "x": x, "y": y, "fields": fields,
        "fieldLabels": {f: names_of.get(f, f) for f in fields},
        "fieldShort": {f: FIELD_SHORT.get(f, html.escape(f)) for f in fields},
        "values": {f: [_num(v) for v in shown[f].to_numpy(dtype=np.float64)] for f in fields},
        "index": shown["index"].astype(np.int64).tolist(), "label": labels.tolist(),
        "subset": [code[s] for s in shown.subset],
        "subsets": [{"key": s, "html": SUBSET_HTML.get(s, html.escape(s)),
                     "color": SUBSET_COLOR.get(s, PALETTE[i % len(PALETTE)]),
                     "split": "test" if s in TEST_SUBSETS else "train",
                     "total": int((table.subset == s).sum())} for i, s in enumerate(subsets)],
        "classes": names, "palette": list(PALETTE),
        "sprite": {"src": sprite, **geometry},
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    fallback = _static_png(shown, x, y, subsets, names_of) if static else ""
    uid = f"sx-{hashlib.sha1(payload.encode()).hexdigest()[:10]}-{next(_ids)}"
    caption = html.escape(title or "Hover or click a point to see its image; tick boxes to filter")
    noscript = (f'<noscript><img alt="scatter of {html.escape(y)} against {html.escape(x)} by '
                f'subset (static: enable JavaScript for images)" src="{fallback}" '
                'style="max-width:100%"></noscript>') if fallback else ""
    body = (f'<div class="sslmem-explorer mathjax_ignore" id="{uid}">'
            f'<style>{_CSS}</style><div class="sx-caption">{caption}</div>{noscript}'
            f'<script type="application/json" class="sx-data">{payload}</script>'
            f'<script>{_JS.replace("__ID__", uid)}</script></div>')
    parts = {"thumbnails": len(sprite), "points": len(payload) - len(sprite),
             "fallback": len(fallback), "script": len(_JS) + len(_CSS)}
    return Explorer(body, len(shown), len(table), parts)


def _checked(table: pd.DataFrame, x: str, y: str, fields: Sequence[str]) -> pd.DataFrame:
    need = ["subset", "position", "index", "label", x, y, *fields]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise SSLMemError(f"explore: table lacks column(s) {', '.join(missing)}; it has "
                          f"{', '.join(map(str, table.columns))}")
    if not len(table):
        raise SSLMemError("explore: the table has no rows")
    return table.reset_index(drop=True)


def _sample(table: pd.DataFrame, max_points: int, seed: int) -> pd.DataFrame:
    """At most ``max_points`` rows: small subsets whole, the rest shared equally (seeded).

    The rows come back shuffled so that no subset is always drawn on top of the others.
    """
    rng = np.random.default_rng(seed)
    groups = {s: g.index.to_numpy() for s, g in table.groupby("subset", sort=True)}
    quota, left = {}, max_points
    for k, (s, idx) in enumerate(sorted(groups.items(), key=lambda kv: len(kv[1]))):
        quota[s] = min(len(idx), left // (len(groups) - k))
        left -= quota[s]
    keep = np.concatenate([rng.choice(idx, quota[s], replace=False) if quota[s] < len(idx)
                           else idx for s, idx in groups.items()])
    return table.loc[rng.permutation(keep)].reset_index(drop=True)


def _gather(rows: pd.DataFrame, train: Images, test: Images | None) -> np.ndarray:
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


def _thumb_size(native: int, n: int) -> int:
    """The largest of native (at most 32), 24, 16 px whose sprite sheet fits THUMB_PIXELS.

    Multiples of 8 keep JPEG's blocks inside one thumbnail; CIFAR-10 at 32 px costs ~330 bytes
    per thumbnail, at 16 px ~90.
    """
    sizes = [min(native, 32)] + [t for t in (24, 16) if t < min(native, 32)]
    return next((t for t in sizes if n * t * t <= THUMB_PIXELS), sizes[-1])


def _sprite(images: np.ndarray, tile: int, quality: int) -> tuple[str, dict]:
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


def _num(v: float):
    """4 significant digits: plenty for a scatter, and a third of the bytes of a float64."""
    return None if not math.isfinite(v) else float(f"{v:.4g}")


def _static_png(rows: pd.DataFrame, x: str, y: str, subsets: list[str],
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


_CSS = """
.sslmem-explorer{font-size:13px;line-height:1.35;margin:.5em 0 1em;color:inherit}
.sslmem-explorer .sx-caption{font-style:italic;margin-bottom:4px;opacity:.8}
.sslmem-explorer .sx-row{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:flex-start}
.sslmem-explorer .sx-plot{flex:1 1 360px;min-width:260px}
.sslmem-explorer canvas.sx-canvas{width:100%;height:400px;display:block;cursor:crosshair}
.sslmem-explorer .sx-detail{flex:0 0 190px;min-height:200px;border:1px solid rgba(128,128,128,.4);
 border-radius:4px;padding:6px;box-sizing:border-box}
.sslmem-explorer .sx-detail canvas{width:96px;height:96px;image-rendering:pixelated;
 display:block;margin-bottom:4px;background:rgba(128,128,128,.15)}
.sslmem-explorer .sx-detail table{border:0;margin:0;font-size:12px}
.sslmem-explorer .sx-detail td{border:0;padding:0 6px 0 0;vertical-align:top}
.sslmem-explorer fieldset{border:1px solid rgba(128,128,128,.4);border-radius:4px;
 margin:0;padding:2px 8px 4px;min-width:0}
.sslmem-explorer legend{font-size:12px;font-weight:bold;width:auto;margin:0;padding:0 3px;
 float:none;border:0}
.sslmem-explorer label{white-space:nowrap;margin:0 10px 0 0;font-weight:normal;
 display:inline-block}
.sslmem-explorer .sx-subsets label,.sslmem-explorer .sx-axes label{display:block}
.sslmem-explorer .sx-classes{flex:1 1 260px}
.sslmem-explorer .sx-sw{display:inline-block;width:10px;height:10px;border-radius:50%;
 margin:0 4px 0 2px}
.sslmem-explorer button{font-size:11px;padding:0 6px;margin:0 4px 2px 0}
.sslmem-explorer select{font-size:12px;max-width:220px}
.sslmem-explorer .sx-count{font-size:12px;opacity:.75}
"""

_JS = r"""
(function () {
  "use strict";
  var root = document.getElementById("__ID__");
  if (!root || root.sxReady) return;
  root.sxReady = true;
  var D = JSON.parse(root.querySelector("script.sx-data").textContent);
  var N = D.index.length, F = D.fields;
  var el = function (tag, attrs, html) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (html !== undefined) e.innerHTML = html;
    return e;
  };
  var fmt = function (v) {
    return v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (v !== 0 &&
      Math.abs(v) < 1e-3) ? v.toExponential(2) : (+v.toPrecision(4)).toString();
  };
  var state = {x: D.x, y: D.y, color: "subset", hover: -1, pinned: -1,
               subsets: D.subsets.map(function () { return true; }),
               classes: D.classes.map(function () { return true; })};
  // layout: the plot with the detail of a point beside it; filters and axes in a row below
  var row = el("div", {"class": "sx-row"}), plot = el("div", {"class": "sx-plot"});
  var canvas = el("canvas", {"class": "sx-canvas", "role": "img",
                             "aria-label": "scatter of the scored points"});
  var detail = el("div", {"class": "sx-detail"});
  var thumb = el("canvas", {width: 96, height: 96});
  var info = el("div", {"class": "sx-info"}, "Hover or click a point.");
  detail.appendChild(thumb); detail.appendChild(info);
  plot.appendChild(canvas); row.appendChild(plot); row.appendChild(detail);
  var controls = el("div", {"class": "sx-row"});
  controls.style.marginTop = "8px";
  var count = el("div", {"class": "sx-count"});
  var axes = el("fieldset", {"class": "sx-axes"}, "<legend>axes and colour</legend>");
  var select = function (name, options, value) {
    var s = el("select", {"class": "sx-" + name});
    options.forEach(function (o) {
      var opt = el("option", {value: o[0]}, o[1]);
      if (o[0] === value) opt.selected = true;
      s.appendChild(opt);
    });
    var l = el("label", {}, name + " ");
    l.appendChild(s); axes.appendChild(l);
    return s;
  };
  var fieldOptions = F.map(function (f) { return [f, D.fieldLabels[f]]; });
  var selX = select("x", fieldOptions, state.x), selY = select("y", fieldOptions, state.y);
  var selC = select("colour", [["subset", "subset"], ["class", "class"]], "subset");
  var subsetBox = el("fieldset", {"class": "sx-subsets"}, "<legend>subsets</legend>");
  var classBox = el("fieldset", {"class": "sx-classes"}, "<legend>classes</legend>");
  var classList = el("div");
  var nSub = D.subsets.map(function () { return 0; });
  var nCls = D.classes.map(function () { return 0; });
  for (var i = 0; i < N; i++) { nSub[D.subset[i]]++; nCls[D.label[i]]++; }
  var swatches = [];
  D.subsets.forEach(function (s, k) {
    var l = el("label", {}, "<input type='checkbox' checked data-subset='" + s.key + "'>" +
      "<span class='sx-sw' style='background:" + s.color + "'></span>" + s.html +
      " <span class='sx-count'>" + nSub[k] + (nSub[k] < s.total ? "/" + s.total : "") +
      "</span>");
    l.firstChild.addEventListener("change", function (e) {
      state.subsets[k] = e.target.checked; draw();
    });
    subsetBox.appendChild(l);
  });
  var classChecks = [];
  D.classes.forEach(function (c, k) {
    if (!nCls[k]) return;
    var l = el("label", {}, "<input type='checkbox' checked data-class='" + k + "'>" +
      "<span class='sx-sw'></span>" + c.replace(/</g, "&lt;") +
      " <span class='sx-count'>" + nCls[k] + "</span>");
    swatches[k] = l.querySelector(".sx-sw");
    classChecks.push(l.firstChild);
    l.firstChild.addEventListener("change", function (e) {
      state.classes[k] = e.target.checked; draw();
    });
    classList.appendChild(l);
  });
  var all = el("button", {type: "button"}, "all"), none = el("button", {type: "button"}, "none");
  [[all, true], [none, false]].forEach(function (b) {
    b[0].addEventListener("click", function () {
      classChecks.forEach(function (c) {
        c.checked = b[1]; state.classes[+c.dataset.class] = b[1];
      });
      draw();
    });
    classBox.appendChild(b[0]);
  });
  classBox.appendChild(classList);
  axes.appendChild(count);
  controls.appendChild(subsetBox); controls.appendChild(classBox); controls.appendChild(axes);
  root.appendChild(row); root.appendChild(controls);
  [selX, selY, selC].forEach(function (s) {
    s.addEventListener("change", function () {
      state.x = selX.value; state.y = selY.value; state.color = selC.value; draw();
    });
  });
  var sprite = new Image(), spriteReady = false;
  sprite.onload = function () { spriteReady = true; show(); };
  sprite.src = D.sprite.src;

  var sx = new Float32Array(N), sy = new Float32Array(N), visible = new Uint8Array(N);
  var M = {l: 58, r: 12, t: 10, b: 42};
  var ticks = function (lo, hi, n) {
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    // integer multiples of the step, rounded: no 6.9e-18 where 0 belongs
    for (var k = Math.ceil(lo / step); k * step <= hi + step * 1e-9; k++) {
      out.push(parseFloat((k * step).toPrecision(12)));
    }
    return out;
  };
  var range = function (f) {
    var lo = Infinity, hi = -Infinity, v = D.values[f];
    for (var i = 0; i < N; i++) {
      if (v[i] !== null) { lo = Math.min(lo, v[i]); hi = Math.max(hi, v[i]); }
    }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  };
  var colorOf = function (i) {
    return state.color === "subset" ? D.subsets[D.subset[i]].color
      : D.palette[D.label[i] % D.palette.length];
  };
  function draw() {
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var ink = getComputedStyle(root).color || "#222";
    var rx = range(state.x), ry = range(state.y);
    var X = function (v) { return M.l + (v - rx[0]) / (rx[1] - rx[0]) * (w - M.l - M.r); };
    var Y = function (v) { return h - M.b - (v - ry[0]) / (ry[1] - ry[0]) * (h - M.t - M.b); };
    g.font = "11px sans-serif"; g.fillStyle = ink; g.strokeStyle = "rgba(128,128,128,.25)";
    g.lineWidth = 1; g.textAlign = "center"; g.textBaseline = "top";
    ticks(rx[0], rx[1], 6).forEach(function (v) {
      g.beginPath(); g.moveTo(X(v), M.t); g.lineTo(X(v), h - M.b); g.stroke();
      g.fillText(fmt(v), X(v), h - M.b + 4);
    });
    g.textAlign = "right"; g.textBaseline = "middle";
    ticks(ry[0], ry[1], 6).forEach(function (v) {
      g.beginPath(); g.moveTo(M.l, Y(v)); g.lineTo(w - M.r, Y(v)); g.stroke();
      g.fillText(fmt(v), M.l - 4, Y(v));
    });
    g.textAlign = "center"; g.textBaseline = "bottom"; g.font = "12px sans-serif";
    g.fillText(D.fieldLabels[state.x], M.l + (w - M.l - M.r) / 2, h - 2);
    g.save(); g.translate(12, M.t + (h - M.t - M.b) / 2); g.rotate(-Math.PI / 2);
    g.textBaseline = "middle"; g.fillText(D.fieldLabels[state.y], 0, 0); g.restore();
    var pair = [state.x, state.y].sort().join();
    if (pair === "L_f,L_g") {  // m = 0: above it f aligns x better than g does
      var lo = Math.max(rx[0], ry[0]), hi = Math.min(rx[1], ry[1]);
      g.strokeStyle = ink; g.globalAlpha = 0.6; g.beginPath();
      g.moveTo(X(lo), Y(lo)); g.lineTo(X(hi), Y(hi)); g.stroke(); g.globalAlpha = 1;
      g.font = "11px sans-serif"; g.textAlign = "right"; g.textBaseline = "bottom";
      g.fillText(state.y === "L_g" ? "m = 0 (above: m > 0)" : "m = 0 (below: m > 0)",
                 X(hi) - 4, Y(hi) + 14);
    }
    var vx = D.values[state.x], vy = D.values[state.y], shown = 0;
    g.globalAlpha = 0.65;
    for (var i = 0; i < N; i++) {
      visible[i] = state.subsets[D.subset[i]] && state.classes[D.label[i]] &&
        vx[i] !== null && vy[i] !== null ? 1 : 0;
      if (!visible[i]) continue;
      shown++;
      sx[i] = X(vx[i]); sy[i] = Y(vy[i]);
      g.fillStyle = colorOf(i); g.beginPath(); g.arc(sx[i], sy[i], 2.6, 0, 2 * Math.PI); g.fill();
    }
    g.globalAlpha = 1;
    var sel = current();
    if (sel >= 0 && visible[sel]) {
      g.strokeStyle = ink; g.lineWidth = 2; g.beginPath();
      g.arc(sx[sel], sy[sel], 6, 0, 2 * Math.PI); g.stroke();
    }
    D.classes.forEach(function (c, k) {
      if (swatches[k]) swatches[k].style.background = state.color === "class" ?
        D.palette[k % D.palette.length] : "transparent";
    });
    count.textContent = shown + " of " + N + " points shown" +
      (N < D.total ? " (a sample of " + D.total + ")" : "");
    root.dataset.visible = shown;
  }
  function current() { return state.hover >= 0 ? state.hover : state.pinned; }
  function show() {
    var i = current();
    var g = thumb.getContext("2d");
    g.clearRect(0, 0, 96, 96);
    if (i < 0) { info.innerHTML = "Hover or click a point."; root.dataset.shown = ""; return; }
    var s = D.sprite, sub = D.subsets[D.subset[i]];
    if (spriteReady) {
      g.imageSmoothingEnabled = false;
      g.drawImage(sprite, (i % s.cols) * s.tile, Math.floor(i / s.cols) * s.tile,
                  s.tile, s.tile, 0, 0, 96, 96);
    }
    var rows = [["index", D.index[i] + " (" + sub.split + ")"],
                ["class", (D.classes[D.label[i]] || D.label[i]).replace(/</g, "&lt;")],
                ["subset", sub.html]];
    F.forEach(function (f) {
      rows.push([D.fieldShort[f], fmt(D.values[f][i])]);
    });
    info.innerHTML = "<table>" + rows.map(function (r) {
      return "<tr><td>" + r[0] + "</td><td><b>" + r[1] + "</b></td></tr>";
    }).join("") + "</table>" + (state.pinned === i ? "<i>pinned: click elsewhere</i>" : "");
    root.dataset.shown = String(D.index[i]);
  }
  function nearest(ev) {
    var r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    var best = -1, bd = 64;  // within 8 px
    for (var i = 0; i < N; i++) {
      if (!visible[i]) continue;
      var d = (sx[i] - mx) * (sx[i] - mx) + (sy[i] - my) * (sy[i] - my);
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  canvas.addEventListener("mousemove", function (ev) {
    var i = nearest(ev);
    if (i !== state.hover) { state.hover = i; draw(); show(); }
  });
  canvas.addEventListener("mouseleave", function () { state.hover = -1; draw(); show(); });
  canvas.addEventListener("click", function (ev) {
    state.pinned = nearest(ev); state.hover = -1; draw(); show();
  });
  // for tests and the console: where point i is drawn (client coordinates), what is shown
  root.sxExplorer = {
    point: function (i) {
      var r = canvas.getBoundingClientRect();
      return {x: r.left + sx[i], y: r.top + sy[i], visible: !!visible[i]};
    },
    size: N
  };
  if (window.ResizeObserver) new ResizeObserver(function () { draw(); }).observe(canvas);
  draw();
})();
"""
