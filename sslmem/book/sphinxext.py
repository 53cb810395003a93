"""Sphinx extension for the book as readers see it: offline math, no duplicated scripts.

Enable with ``sphinx: extra_extensions: [sslmem.book.sphinxext]`` in ``_config.yml``.

1. MathJax from the book itself. Sphinx loads MathJax from a CDN by default; a book opened offline
   (a laptop on a train, a sandboxed CI browser) then shows every formula as raw LaTeX. The MathJax
   3.2.2 files come from the pinned ``sphinx-mathjax-offline`` package, but its own extension
   copies all 24 MB of them into every build; this one copies what the CHTML bundle can load (the
   bundle, TeX/MathML extensions, CHTML fonts, the menu and its accessibility tools: 7 MB) and
   leaves the rest to ``sphinx.ext.mathjax`` (only pages with math load it, ``mathjax3_config``
   still applies). A page with math loads 1.2 MB of script plus the few fonts it uses.
2. Each script once per page. Sphinx 7.4 re-adds inline scripts registered after the builder
   started (``filename=None`` becomes ``''``), so sphinx-thebe's ``const THEBE_JS_URL`` ran twice
   and every page threw "Identifier 'THEBE_JS_URL' has already been declared".
3. BokehJS from the book itself, once. The per-point explorer (``sslmem.book.explorer``) is a Bokeh
   document embedded in a notebook output without BokehJS; the pages that hold one load the
   pinned package's ``bokeh.min.js`` and ``bokeh-widgets.min.js`` from ``_static/bokeh/`` (one
   copy for the whole book, named with the version, so a cached older copy is never used), no
   CDN and no server.
4. Citations that tell papers apart. The book cites two "Wang et al., 2024" papers (SSLMem and
   its follow-up [LM]); author-year citations showed the same text for both, and the reference
   list used other labels (WKD+24). The ``sslmem_authoryear`` bibliography style labels entries
   "Wang et al., 2024a" / "2024b" and, with ``bibtex_reference_style: label``, citations in the
   text are those same labels.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import string
from collections import Counter
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.ext.mathjax import MATHJAX_URL

PACKAGE = "sphinx-mathjax-offline"  # its import name has dashes; it is a data package for us
BUNDLE = "tex-mml-chtml.js"  # the bundle Sphinx takes from the CDN, so pages behave the same
# Everything BUNDLE may fetch later, relative to the MathJax root (autoloaded TeX packages,
# MathML entities, the woff fonts of the CHTML output, the context menu's a11y tools and speech).
LAZY = ("input/tex/extensions", "input/mml", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre")
TARGET = "mathjax"  # under _static/
BOKEH_TARGET = "bokeh"  # under _static/
EXPLORER_MARK = 'class="sslmem-explorer'  # in the body of a page with an explorer


def mathjax_root() -> Path:
    """The MathJax folder shipped by the pinned package (an error says how to install it)."""
    spec = importlib.util.find_spec(PACKAGE)
    root = Path(spec.origin).parent / "static" / "mathjax" if spec and spec.origin else None
    if root is None or not (root / BUNDLE).exists():
        raise ExtensionError(f"sslmem.book.sphinxext needs the MathJax files of {PACKAGE}: "
                             "pip install -e '.[book]'")
    return root


def _use_local_mathjax(app: Sphinx, config) -> None:
    if config.mathjax_path == MATHJAX_URL:  # a book that picked its own MathJax keeps it
        config.mathjax_path = f"{TARGET}/{BUNDLE}"


def _copy(src: Path, dst: Path) -> None:
    """Copy a file unless an identical-size copy is there (rebuilds stay fast)."""
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if app.config.mathjax_path != f"{TARGET}/{BUNDLE}":
        return
    root = mathjax_root()
    out = Path(app.outdir) / "_static" / TARGET
    _copy(root / BUNDLE, out / BUNDLE)
    for sub in LAZY:
        for src in sorted((root / sub).rglob("*")):
            if src.is_file():
                _copy(src, out / src.relative_to(root))


def _bokeh_files() -> list[tuple[Path, str]]:
    """(the pinned BokehJS bundle, its versioned name under ``_static/bokeh/``)."""
    import bokeh

    from sslmem.book.explorer import bokehjs_files

    return [(f, f.name.replace(".min.js", f"-{bokeh.__version__}.min.js"))
            for f in bokehjs_files()]


def _copy_bokeh(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir) / "_static" / BOKEH_TARGET
    for src, name in _bokeh_files():
        _copy(src, out / name)


def _load_bokeh(app: Sphinx, pagename: str, templatename: str, context: dict,
                doctree) -> None:
    """Only the pages with an explorer load BokehJS (before the page's own scripts run)."""
    if EXPLORER_MARK in (context.get("body") or ""):
        for _, name in _bokeh_files():
            app.add_js_file(f"{BOKEH_TARGET}/{name}", priority=400)


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                    doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (str(getattr(js, "filename", js) or ""),
               tuple(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Feldman and Zhang, 2020", "Wang et al., 2024a": a letter only where needed."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        bases = [self._base(e) for e in entries]
        seen, counts = Counter(), Counter(bases)
        for base in bases:
            seen[base] += 1
            yield base + (string.ascii_lowercase[seen[base] - 1] if counts[base] > 1 else "")

    @staticmethod
    def _base(entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [re.sub(r"[{}\\]", "", " ".join(p.last_names)) for p in people]
        who = (last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2
               else f"{last[0]} et al." if last else entry.fields.get("title", "?")[:20])
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "sslmem_authoryear"
    default_sorting_style = "author_year_title"


def setup(app: Sphinx) -> dict:
    mathjax_root()  # fail at start, not after the whole build
    _bokeh_files()
    register_plugin("pybtex.style.labels", "sslmem_authoryear", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "sslmem_authoryear", AuthorYearStyle, force=True)
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_bokeh)
    app.connect("html-page-context", _load_bokeh, priority=400)  # before the dedupe
    app.connect("html-page-context", _dedupe_scripts, priority=900)  # after mathjax's
    return {"parallel_read_safe": True, "parallel_write_safe": True}
