"""A per-point explorer: a Bokeh scatter of scored points where hovering a point shows its image.

Why: the paper's claims are about *which* images are memorized, and a static scatter of L_f
against L_g hides them. The explorer is a Bokeh figure embedded as standalone HTML (no server, no
network, no CDN): hover shows a point's thumbnail, index, class, subset, L_f, L_g, m (and its
ensemble s.e. when the table has ``se``); checkboxes filter subsets and classes (the legend gives
each subset's colour and count); zoom, pan, box and lasso selection come from Bokeh's toolbar,
and a selection shows its images as a grid beside the plot. BokehJS is not in the output: the
book serves one copy from its static files (``sslmem.book.sphinxext`` adds it to the pages that hold
an explorer); in Jupyter, run ``bokeh.io.output_notebook()`` first. Readers without JavaScript
(or without BokehJS) see a static PNG scatter.

Thumbnails are one JPEG sprite sheet, held once as a CSS custom property of the page
(``:root{--sx-ID:url(...)}``, since Bokeh's tooltips hang from ``<body>``): the tooltip and the
selection grid show a tile of it by its background position. Per-point data travel as Bokeh's
compressed typed arrays. Page weight (CIFAR-10 images, measured by tests/test_explorer.py):
about 0.55 MB for 1,000 points and 1.5 MB for 10,000 (the hand-written canvas explorer this
replaced: 0.5 and 1.7 MB), plus BokehJS (1.65 MB, once for the whole book, cached).

Example::

    from sslmem.book.explorer import explore
    explore(exp.scores(), exp.train, exp.test)                    # L_f against L_g
    explore(cands, exp.train, x="knn_distance", y="score_raw")   # score against typicality
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sslmem.book.thumbnails import (
    PALETTE,
    SUBSET_COLOR,
    TEST_SUBSETS,
    Images,
    gather_images,
    sprite_sheet,
    static_png,
    thumbnail_size,
)
from sslmem.errors import SSLMemError
from sslmem.train.splits import SUBSETS

THUMB_SHOWN = 64  # px of a thumbnail in the tooltip
GRID_SHOWN = 32  # px of a thumbnail in the selection grid
GRID_MAX = 100  # at most this many thumbnails in the selection grid
BASE_FIELDS = ("L_f", "L_g", "score_raw", "se")
FIELD_LABEL = {"L_f": "L_f (alignment loss of f)", "L_g": "L_g (alignment loss of g)",
               "score_raw": "m = L_g − L_f", "score_zscore": "m, z-score against S_E",
               "score_ratio": "m / (L_f + L_g)", "score_range": "m / range of m",
               "se": "s.e. of m (over encoders)"}
FIELD_SHORT = {"L_f": "L<sub>f</sub>", "L_g": "L<sub>g</sub>", "score_raw": "m",
               "se": "s.e."}
SUBSET_TEXT = {"candidate": "S_C candidate (f only)", "shared": "S_S shared (f and g)",
               "extra": "S_E extra (neither, test split)",
               "independent": "S_I independent (g only)"}
# drawn first to last: the big S_S at the bottom, the small S_C and S_I on top (another
# subset name first of all)
DRAW_ORDER = ("shared", "extra", "independent", "candidate")

_ids = itertools.count()


def bokehjs_files() -> list[Path]:
    """The BokehJS bundles an explorer page needs (core and widgets), from the pinned package."""
    from bokeh.util.paths import bokehjs_path

    root = Path(bokehjs_path()) / "js"
    files = [root / "bokeh.min.js", root / "bokeh-widgets.min.js"]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SSLMemError(f"BokehJS files missing from the bokeh package: {', '.join(missing)}; "
                          "reinstall it (pip install -e '.[book]')")
    return files


class Explorer:
    """The explorer's HTML; displays itself in Jupyter and in the built book."""

    def __init__(self, html_text: str, n_points: int, n_total: int, parts: dict[str, int],
                 geometry: dict[str, int]):
        self.html = html_text
        self.n_points = n_points
        self.n_total = n_total
        self.parts = parts  # bytes of each part: thumbnails, figure (data + models), fallback
        self.geometry = geometry  # the sprite sheet: ``tile`` px per thumbnail, ``cols`` a row

    @property
    def nbytes(self) -> int:
        return len(self.html.encode())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return (f"Explorer({self.n_points} of {self.n_total} points, "
                f"{self.nbytes / 1e6:.2f} MB of HTML)")

    def save(self, path) -> None:
        """A standalone page with BokehJS inline (to share one figure outside the book)."""
        scripts = "".join(f"<script>{f.read_text(encoding='utf-8')}</script>"
                          for f in bokehjs_files())
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>sslmem explorer"
                f"</title>{scripts}</head><body style='font-family:sans-serif'>{self.html}"
                "</body></html>")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)


def explore(table: pd.DataFrame, train_images: Images, test_images: Images | None = None, *,
            classes: Sequence[str] | None = None, x: str = "L_f", y: str = "L_g",
            fields: Sequence[str] = (), labels: dict[str, str] | None = None,
            max_points: int = 10_000, thumb_size: int | None = None,
            title: str | None = None, seed: int = 0, quality: int = 80,
            static: bool = True, subset_text: dict[str, str] | None = None) -> Explorer:
    """An interactive scatter of ``table``'s points with their images.

    Args:
        table: scored points with columns subset, position, index, label and the numeric
            columns named in ``x``, ``y`` and ``fields`` (L_f, L_g, score_raw and se are shown
            when present).
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
        subset_text: legend names by subset code where chapter 1's do not fit (an ensemble's
            pool is listed as "candidate", its placebo as "extra").
    """
    table = _checked(table, x, y, fields)
    shown = _sample(table, max_points, seed)
    rank = {s: k for k, s in enumerate(DRAW_ORDER)}  # drawn in row order: small subsets on top
    shown = shown.iloc[np.argsort(shown.subset.map(lambda s: rank.get(s, -1)).to_numpy(),
                                  kind="stable")].reset_index(drop=True)
    fields = list(dict.fromkeys([f for f in (*BASE_FIELDS, x, y, *fields) if f in table]))
    names_of = {**FIELD_LABEL, **(labels or {})}
    if classes is None:
        classes = getattr(train_images, "classes", None)
    classes = [str(c) for c in classes] if classes is not None else None
    subsets = [s for s in (*SUBSETS, *sorted(set(table.subset) - set(SUBSETS)))
               if s in set(table.subset)]
    n_classes = max(int(table.label.max()) + 1, len(classes or ()))
    names = classes or [str(k) for k in range(n_classes)]
    names = names + [str(k) for k in range(len(names), n_classes)]
    images = gather_images(shown, train_images, test_images)
    tile = thumb_size or thumbnail_size(images.shape[1], len(shown))
    sprite, geometry = sprite_sheet(images, tile, quality)
    uid = f"sx-{hashlib.sha1(shown.to_csv().encode()).hexdigest()[:10]}-{next(_ids)}"
    texts = {**SUBSET_TEXT, **(subset_text or {})}
    item = _figure(shown, table, x, y, fields, names_of, names, subsets, geometry, title, uid,
                   texts)
    payload = json.dumps(item, separators=(",", ":")).replace("</", "<\\/")
    fallback = static_png(shown, x, y, subsets, names_of) if static else ""
    alt = (f"scatter of {html.escape(y)} against {html.escape(x)} by subset (static: enable "
           "JavaScript for the interactive figure)")
    noscript = (f'<noscript><img alt="{alt}" src="{fallback}" style="max-width:100%">'
                '</noscript>') if fallback else ""
    # the sheet once, as a custom property of the page: Bokeh's tooltips hang from <body>
    body = (f'<div class="sslmem-explorer mathjax_ignore" id="{uid}">'
            f'<style>:root{{--{uid}:url({sprite})}}</style>{noscript}'
            f'<div class="sx-plot" id="{uid}-plot"></div>'
            f'<script type="application/json" class="sx-item">{payload}</script>'
            f'<script>{_EMBED_JS.replace("__ID__", uid)}</script></div>')
    parts = {"thumbnails": len(sprite), "figure": len(payload), "fallback": len(fallback)}
    return Explorer(body, len(shown), len(table), parts, geometry)


def _figure(shown: pd.DataFrame, table: pd.DataFrame, x: str, y: str, fields: list[str],
            names_of: dict, classes: list[str], subsets: list[str], geometry: dict,
            title: str | None, uid: str, texts: dict = SUBSET_TEXT) -> dict:
    """The Bokeh document (as ``bokeh.embed.json_item``) of the explorer.

    One scatter renderer (so that hover shows the one nearest point), coloured by subset code
    through a colour mapper; a ``BooleanFilter`` that the subset and class checkboxes rewrite
    decides which points are drawn.
    """
    from bokeh.embed import json_item
    from bokeh.layouts import column, row
    from bokeh.models import (
        BooleanFilter,
        Button,
        CDSView,
        CheckboxGroup,
        ColumnDataSource,
        CustomJS,
        CustomJSHover,
        Div,
        HoverTool,
        InlineStyleSheet,
        Legend,
        LegendItem,
        LinearColorMapper,
        Select,
        Slope,
    )
    from bokeh.plotting import figure

    code = shown.subset.map({s: k for k, s in enumerate(subsets)}).to_numpy(dtype=np.int8)
    label = shown.label.to_numpy(dtype=np.int16)
    data = {f: shown[f].to_numpy(dtype=np.float32) for f in fields}
    data.update(index=shown["index"].to_numpy(dtype=np.int32), label=label, subset=code)
    source = ColumnDataSource(data=data)
    colors = [SUBSET_COLOR.get(s, PALETTE[k % len(PALETTE)]) for k, s in enumerate(subsets)]
    by_subset = LinearColorMapper(palette=colors, low=-0.5, high=len(subsets) - 0.5)
    cols = geometry["cols"]
    plot = figure(height=420, sizing_mode="stretch_width", min_width=300,
                  tools="pan,wheel_zoom,box_zoom,box_select,lasso_select,tap,reset",
                  active_drag="box_select", active_scroll=None, toolbar_location="above",
                  x_axis_label=names_of.get(x, x), y_axis_label=names_of.get(y, y))
    for axis in (plot.xaxis, plot.yaxis):
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font_size = "12px"
    diagonal = Slope(gradient=1, y_intercept=0, line_color="black", line_alpha=0.6,
                     line_width=1, visible={x, y} == {"L_f", "L_g"})
    plot.add_layout(diagonal)
    shown_filter = BooleanFilter(booleans=np.ones(len(shown), dtype=bool))
    color = {"field": "subset", "transform": by_subset}
    points = plot.scatter(x, y, source=source, size=5, fill_color=color, line_color=None,
                          fill_alpha=0.65, selection_fill_alpha=0.9,
                          nonselection_fill_alpha=0.12, hover_fill_color=color,
                          hover_line_color="black", hover_fill_alpha=1,
                          view=CDSView(filter=shown_filter), name="points")
    counts = {s: int((shown.subset == s).sum()) for s in subsets}
    totals = {s: int((table.subset == s).sum()) for s in subsets}
    # the legend's dots: renderers of one undrawn (NaN) point in each subset's colour, which no
    # filter hides
    keys = [plot.scatter([np.nan], [np.nan], size=7, fill_color=c, line_color=None)
            for c in colors]
    plot.add_layout(Legend(
        items=[LegendItem(label=f"{texts.get(s, s)}: {counts[s]}"
                          + (f" of {totals[s]}" if counts[s] < totals[s] else ""),
                          renderers=[key]) for s, key in zip(subsets, keys)],
        label_text_font_size="11px", glyph_width=12, spacing=0, padding=4, margin=6,
        background_fill_alpha=0.75, location="top_left"))

    num = CustomJSHover(code=_NUMBER_JS)
    names = CustomJSHover(args=dict(classes=classes,
                                    subsets=[texts.get(s, s) for s in subsets],
                                    split=["test" if s in TEST_SUBSETS else "train"
                                           for s in subsets]),
                          code="return format === 'split' ? split[value] : format === 'class'"
                               " ? classes[value] : subsets[value];")
    px = THUMB_SHOWN
    thumb = CustomJSHover(code=f"""
        const i = special_vars.index, c = i % {cols}, r = Math.floor(i / {cols});
        return format === 'pos' ? `-${{c * {px}}}px -${{r * {px}}}px` : String(value);""")
    rows_html = "".join(f"<tr><td>{FIELD_SHORT.get(f, html.escape(f))}</td>"
                        f"<td><b>@{{{f}}}{{num}}</b></td></tr>" for f in fields)
    tooltips = f"""
<div class="sx-tip" style="display:flex;gap:8px;align-items:flex-start;font-size:12px">
<div class="sx-thumb" style="flex:0 0 {px}px;height:{px}px;background-image:var(--{uid});
 background-size:{cols * px}px auto;background-position:@index{{pos}};
 image-rendering:pixelated"></div>
<table style="border-collapse:collapse;line-height:1.3">
<tr><td>index&nbsp;</td><td><b>@index</b> (@subset{{split}})</td></tr>
<tr><td>class</td><td><b>@label{{class}}</b></td></tr>
<tr><td>subset</td><td><b>@subset{{subset}}</b></td></tr>{rows_html}
</table></div>"""
    plot.add_tools(HoverTool(renderers=[points], tooltips=tooltips, limit=1,
                             point_policy="snap_to_data",
                             formatters={"@index": thumb, "@label": names, "@subset": names,
                                         **{f"@{{{f}}}": num for f in fields}}))

    n_class = np.bincount(label, minlength=len(classes))
    present = [k for k in range(len(classes)) if n_class[k]]
    # each subset's checkbox in its colour; the class checkboxes wrap
    tick = InlineStyleSheet(css="".join(
        f"label:nth-of-type({k + 1}) input{{accent-color:{c}}}" for k, c in enumerate(colors)))
    wrap = InlineStyleSheet(css=".bk-input-group{flex-wrap:wrap;column-gap:12px}")
    subset_box = CheckboxGroup(labels=[texts.get(s, s) for s in subsets],
                               active=list(range(len(subsets))), stylesheets=[tick],
                               name="subsets")
    class_box = CheckboxGroup(labels=[f"{classes[k]} ({n_class[k]})" for k in present],
                              active=list(range(len(present))), inline=True,
                              stylesheets=[wrap], sizing_mode="stretch_width", name="classes")
    status = Div(text=_status(len(shown), len(shown), len(table)), name="status",
                 styles={"font-size": "12px", "opacity": "0.8"}, tags=[len(shown)])
    refilter = CustomJS(args=dict(source=source, filter=shown_filter, subset_box=subset_box,
                                  class_box=class_box, present=present, status=status,
                                  total=len(table)), code=_FILTER_JS)
    subset_box.js_on_change("active", refilter)
    class_box.js_on_change("active", refilter)
    every = Button(label="all", width=50, height=26)
    none = Button(label="none", width=60, height=26)
    every.js_on_click(CustomJS(args=dict(box=class_box),
                               code="box.active = box.labels.map((_, k) => k);"))
    none.js_on_click(CustomJS(args=dict(box=class_box), code="box.active = [];"))

    options = [(f, names_of.get(f, f)) for f in fields]
    pick_x = Select(title="x axis", value=x, options=options, width=210, name="x")
    pick_y = Select(title="y axis", value=y, options=options, width=210, name="y")
    axes_js = CustomJS(args=dict(points=points, plot=plot, diagonal=diagonal, px=pick_x,
                                 py=pick_y, names=dict(options), xaxis=plot.xaxis[0],
                                 yaxis=plot.yaxis[0]), code="""
        points.glyph.x = {field: px.value}; points.glyph.y = {field: py.value};
        xaxis.axis_label = names[px.value]; yaxis.axis_label = names[py.value];
        diagonal.visible = [px.value, py.value].sort().join() === "L_f,L_g";
        plot.reset.emit();""")
    pick_x.js_on_change("value", axes_js)
    pick_y.js_on_change("value", axes_js)

    # below the plot, so that the plot takes the page's width (a book's column is narrow)
    grid = Div(text=_GRID_EMPTY, name="grid", sizing_mode="stretch_width",
               styles={"font-size": "12px", "max-height": "260px", "overflow-y": "auto"},
               stylesheets=[InlineStyleSheet(css=".bk-clearfix{display:block !important}")])
    source.selected.js_on_change("indices", CustomJS(args=dict(
        source=source, grid=grid, classes=classes, cols=cols, empty=_GRID_EMPTY, uid=uid,
        most=GRID_MAX, size=GRID_SHOWN), code=_GRID_JS))

    controls = row(
        column(Div(text="<b>subsets</b>"), subset_box, width=250),
        column(row(Div(text="<b>classes</b>"), every, none), class_box,
               sizing_mode="stretch_width"),
        column(pick_x, pick_y, status, width=220),
        sizing_mode="stretch_width")
    caption = Div(text=f"<i>{html.escape(title)}</i>" if title else "", name="caption",
                  styles={"font-size": "13px"}, sizing_mode="stretch_width")
    layout = column(caption, plot, grid, controls, sizing_mode="stretch_width", name=uid)
    return json_item(layout, f"{uid}-plot")


def _status(n: int, of: int, total: int) -> str:
    return f"{n} of {of} points shown" + (f" (a sample of {total})" if of < total else "")


_GRID_EMPTY = ("<i>Drag over points (box select; lasso in the toolbar) or click one: "
               "their images appear here.</i>")
_NUMBER_JS = """
    return value === null || value === undefined || isNaN(value) ? "–"
        : Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
        ? value.toExponential(2) : String(+value.toPrecision(4));"""
# the drawn points: those of a ticked subset and a ticked class
_FILTER_JS = """
    const subsets = new Set(subset_box.active);
    const classes = new Set(class_box.active.map(k => present[k]));
    const s = source.data.subset, l = source.data.label;
    const keep = Array.from(s, (code, i) => subsets.has(code) && classes.has(l[i]));
    filter.booleans = keep;
    source.change.emit();
    const n = keep.filter(Boolean).length;
    status.text = `${n} of ${s.length} points shown` +
        (s.length < total ? ` (a sample of ${total})` : "");
    status.tags = [n];"""
# the selected points' thumbnails, tiles of the sprite sheet
_GRID_JS = """
    const ids = cb_obj.indices, d = source.data;
    if (!ids.length) { grid.text = empty; return; }
    const esc = t => String(t).replace(/[&<>"]/g, c => `&#${c.charCodeAt(0)};`);
    const cells = ids.slice(0, most).map(i => {
        const c = i % cols, r = Math.floor(i / cols);
        return `<div title="${d.index[i]}: ${esc(classes[d.label[i]])}" style="width:${size}px;` +
            `height:${size}px;background-image:var(--${uid});` +
            `background-size:${cols * size}px auto;` +
            `background-position:-${c * size}px -${r * size}px;image-rendering:pixelated"></div>`;
    }).join("");
    grid.text = `<b>${ids.length} selected</b>` +
        (ids.length > most ? ` (the first ${most} shown)` : "") +
        `<div class="sx-grid" style="display:grid;grid-template-columns:repeat(auto-fill,` +
        `${size}px);gap:2px;margin-top:4px">${cells}</div>`;"""
# Renders the figure with the book's BokehJS; without it, the static image and a hint.
_EMBED_JS = r"""
(function () {
  var root = document.getElementById("__ID__");
  if (!root || root.sxReady) return;
  root.sxReady = true;
  var item = JSON.parse(root.querySelector("script.sx-item").textContent);
  if (!window.Bokeh || !window.Bokeh.embed) {
    var still = root.querySelector("noscript");
    root.querySelector(".sx-plot").innerHTML = (still ? still.textContent : "") +
      "<p><i>The interactive figure needs BokehJS: in Jupyter, run " +
      "<code>bokeh.io.output_notebook()</code> first (the built book serves it).</i></p>";
    return;
  }
  Bokeh.embed.embed_item(item, "__ID__-plot");
})();
"""


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


