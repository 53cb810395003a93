"""The built book: every section shows figures and glued numbers, and in a real browser no
JavaScript error, math rendered, images and links intact. One build serves both (each build of
the book took 70 s of the test run).

Playwright (sync API) drives Debian's ``chromium`` (``executable_path``: no browser is downloaded,
none is needed on CI beyond ``apt-get install chromium``). Every page of a temporary build of the
book (plus a test page with the per-point explorer on a synthetic table) is loaded and fails the
test on

* a JavaScript error: an uncaught exception (``pageerror``), ``console.error`` or an assertion,
  and a request that failed (a missing script, stylesheet, font or image);
* a formula left unrendered: a ``.math`` element without MathJax output, raw ``\\(``, ``\\[`` or
  ``$$`` in the visible text, or MathJax/KaTeX error nodes;
* a missing image: an ``<img>`` whose ``decode()`` fails (broken src, naturalWidth 0);
* a broken internal link: an ``href`` to a local file that does not exist, or to an ``#anchor``
  that the target page does not define.

One screenshot per page is kept (full page, PNG) in ``$SSLMEM_SCREENSHOTS`` or a pytest temp folder;
its path is printed. ``test_detector_catches_injected_failures`` proves each check fires; the
explorer's page is also used: hovering a point shows its image, a filter changes the number of
points drawn, a box selection shows the selected images.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from sslmem.book.parameters import CHAPTERS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the system chromium, headless and quiet: no network of its own, no sandbox (CI runs as root)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--allow-file-access-from-files"]
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 900, 12_000
TIMEOUT_MS = 30_000

ON_CI = bool(os.environ.get("CI"))  # there a missing chromium fails: .ci/run installs it

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, for the whole module."""
    if CHROMIUM is None and not ON_CI:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs "
                    "it on CI)")
    if CHROMIUM is None:
        pytest.fail("chromium is missing on CI: .ci/run should have installed it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    timeout=TIMEOUT_MS)
        yield chrome
        chrome.close()


class Tab:
    """One page, loaded and settled, with the errors it reported."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(f"uncaught: {err}"))
        self.page.on("console", self._console)
        self.page.on("requestfailed", lambda r: self.errors.append(
            f"request failed: {r.url[:160]} ({r.failure})"))
        self.page.goto(url, wait_until="load")
        for attempt in range(3):  # a redirect (the book's index.html): the page it leads to
            try:
                if self.page.locator("meta[http-equiv=refresh i]").count():
                    first = self.page.url
                    self.page.wait_for_url(lambda to: to != first, wait_until="load")
                self.page.evaluate(SETTLE_JS)
                break
            except PlaywrightError as err:  # navigated away while we looked: look again
                if attempt == 2 or "context was destroyed" not in str(err):
                    raise

    def _console(self, msg) -> None:
        if msg.type in ("error", "assert"):
            self.errors.append(f"console.{msg.type}: {msg.text}")

    def screenshot(self, path: Path) -> None:
        height = self.page.evaluate("document.documentElement.scrollHeight")
        height = min(max(int(height), HEIGHT), MAX_SHOT_HEIGHT)
        self.page.screenshot(path=path, full_page=True,
                             clip={"x": 0, "y": 0, "width": WIDTH, "height": height})

    def close(self) -> None:
        self.page.close()


@contextlib.contextmanager
def opened(browser, path: Path):
    tab = Tab(browser, path.as_uri())
    try:
        yield tab
    finally:
        tab.close()


# Waits for what renders after "load": web fonts, MathJax's typesetting, every image's decode,
# and Bokeh's documents (the explorer) once they are idle.
SETTLE_JS = """async () => {
  if (document.readyState !== "complete")
    await new Promise(done => addEventListener("load", done, {once: true}));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await Promise.all(Array.from(document.images, i => {i.loading = "eager";
    return i.decode().catch(() => null);}));
  const explorers = document.querySelectorAll(".sslmem-explorer").length;
  for (let k = 0; explorers && window.Bokeh && k < 200; k++) {
    const docs = Bokeh.documents || [];
    if (docs.length >= explorers && docs.every(d => d.is_idle)) break;
    await new Promise(r => setTimeout(r, 50));
  }
  return true;
}"""

# What a reader would see as broken, collected in the page after SETTLE_JS.
INSPECT_JS = r"""async () => {
  const skip = "pre, code, script, style, textarea, noscript, .highlight, mjx-container, .katex";
  const raw = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const t = walk.currentNode.nodeValue, p = walk.currentNode.parentElement;
    if (!p || p.closest(skip)) continue;
    if (/\\\(|\\\[|\$\$|\\begin\{/.test(t)) raw.push(t.trim().slice(0, 80));
  }
  const unrendered = Array.from(document.querySelectorAll(".math"))
    .filter(m => !m.querySelector("mjx-container, .katex"))
    .map(m => m.textContent.trim().slice(0, 80));
  const mathErrors = Array.from(document.querySelectorAll(
      "mjx-merror, [data-mjx-error], .katex-error"))
    .map(m => (m.getAttribute("data-mjx-error") || m.textContent).slice(0, 80));
  const images = [];
  for (const img of document.images) {
    if (!img.getAttribute("src")) continue;
    const ok = await img.decode().then(() => img.naturalWidth > 0, () => false);
    if (!ok) images.push(img.getAttribute("src").slice(0, 120));
  }
  const links = Array.from(document.querySelectorAll("a[href]"), a => a.href);
  return {raw, unrendered, mathErrors, images, links};
}"""


def broken_links(links: list[str], ids_of) -> list[str]:
    """Local hrefs whose file is missing or whose #anchor the target does not define."""
    bad = []
    for href in sorted(set(links)):
        url = urllib.parse.urlsplit(href)
        if url.scheme != "file":
            continue
        path = Path(urllib.parse.unquote(url.path))
        if path.is_dir():
            path = path / "index.html"
        if not path.exists():
            bad.append(f"{href} (no such file)")
        elif url.fragment and path.suffix == ".html" and \
                urllib.parse.unquote(url.fragment) not in ids_of(path):
            bad.append(f"{href} (no such anchor)")
    return bad


def _ids(cache: dict, path: Path) -> set[str]:
    if path not in cache:
        text = path.read_text(errors="replace")
        cache[path] = set(re.findall(r"""\b(?:id|name)=["']([^"']+)["']""", text))
    return cache[path]


def check_page(browser, page: Path, shot: Path | None, id_cache: dict) -> dict:
    """Load one page, screenshot it, and return its problems by kind (empty lists when fine)."""
    with opened(browser, page) as tab:
        found = tab.page.evaluate(INSPECT_JS)
        if shot is not None:
            tab.screenshot(shot)
        return {
            "javascript": list(tab.errors),
            "math": ([f"raw: {t}" for t in found["raw"]]
                     + [f"unrendered: {t}" for t in found["unrendered"]]
                     + [f"error: {t}" for t in found["mathErrors"]]),
            "images": found["images"],
            "links": broken_links(found["links"], lambda p: _ids(id_cache, p)),
        }


# A page of its own in the test's book copy: math in every form the book uses (inline, display,
# amsmath, an autoloaded TeX package, glued markdown, markdown and LaTeX outputs) and the
# explorer on a synthetic table whose S_E rows come from a second ("test") image source.
EXPLORER_PAGE = "zz_browser_check"
N_POINTS = 600
MATH_CELL = r"""# Browser check

Inline $m(x) = L_g - L_f$, display

$$
\mathcal{L}_{\mathrm{align}}(f, x) = \mathbb{E}_{x', x''} \, d\big(f(x'), f(x'')\big),
$$

amsmath:

\begin{align}
a &= \boldsymbol{b} \\
c &= \sum_{i=1}^{n} d_i
\end{align}

A glued markdown value with math: {glue:md}`glued_math:myst`; a glued number:
{glue:text}`glued_number:.2f`.
"""
CODE_CELLS = [
    """\
from IPython.display import Markdown, Math, display
from myst_nb import glue

glue("glued_math", Markdown(r"$\\alpha + \\beta = \\gamma$"), display=False)
glue("glued_number", 0.25, display=False)
display(Markdown(r"A markdown output with math: $\\delta^2$."))
display(Math(r"\\int_0^1 x \\, dx = \\tfrac{1}{2}"))""",
    f"""\
import numpy as np
import pandas as pd
import torch

from sslmem.book.explorer import explore

rng = np.random.default_rng(0)
n = {N_POINTS}
subset = np.array(["shared", "candidate", "independent", "extra"])[rng.integers(0, 4, n)]
train = torch.from_numpy(rng.integers(0, 256, (300, 3, 16, 16), dtype=np.uint8))
test = rng.integers(0, 256, (100, 16, 16, 3), dtype=np.uint8)
position = np.where(subset == "extra", rng.integers(0, 100, n), rng.integers(0, 300, n))
L_g = rng.gamma(4, 0.1, n)
L_f = L_g - 0.05 * (subset == "candidate") + rng.normal(0, 0.03, n)
table = pd.DataFrame(dict(subset=subset, position=position, index=1000 + np.arange(n),
                          label=rng.integers(0, 10, n), L_f=L_f, L_g=L_g, score_raw=L_g - L_f))
explore(table, train, lambda pos: test[pos], classes=[f"class {{k}}" for k in range(10)])""",
]


def explorer_notebook():
    """The check page, executed here (a kernel, as the section notebooks are executed)."""
    import nbclient
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_markdown_cell(MATH_CELL)]
                         + [v4.new_code_cell(c) for c in CODE_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return nb


@pytest.fixture(scope="module")
def site(build_book) -> Path:
    return build_book({EXPLORER_PAGE: explorer_notebook()})


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request) -> Path:
    folder = os.environ.get("SSLMEM_SCREENSHOTS")
    folder = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nscreenshots of the built book: {folder}", flush=True)
    return folder


@pytest.fixture(scope="module")
def pages(site, browser, shots) -> dict[str, dict]:
    """Every page of the book, loaded once: its problems by kind (and a screenshot)."""
    found = [p for p in sorted(site.rglob("*.html"))
             if not {"_static", "_sources", "_images"} & set(p.relative_to(site).parts)]
    assert len(found) >= 8, found
    cache = {}
    return {str(p.relative_to(site)): check_page(browser, p, shots / (
        str(p.relative_to(site).with_suffix("")).replace(os.sep, "__") + ".png"), cache)
        for p in found}


def _failures(pages: dict, kind: str) -> dict:
    return {name: found[kind] for name, found in pages.items() if found[kind]}


@pytest.mark.parametrize("kind", ["javascript", "math", "images", "links"])
def test_every_page_is_clean(pages, kind):
    assert f"book/{EXPLORER_PAGE}.html" in pages
    assert _failures(pages, kind) == {}


def test_screenshots_kept(pages, shots):
    kept = [shots / (name[:-len(".html")].replace(os.sep, "__") + ".png") for name in pages]
    assert all(p.exists() for p in kept)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
               for p in kept)


def test_math_renders_offline(site, browser):
    """MathJax comes from the book (no CDN) and typesets every kind of math on the check page."""
    html = (site / "book" / f"{EXPLORER_PAGE}.html").read_text()
    assert "_static/mathjax/tex-mml-chtml.js" in html and "cdn.jsdelivr" not in html
    with opened(browser, site / "book" / f"{EXPLORER_PAGE}.html") as tab:
        rendered = tab.page.locator("mjx-container").count()
        glued = tab.page.evaluate("""Array.from(document.querySelectorAll('p'))
            .filter(p => p.textContent.includes('A glued markdown value'))
            .map(p => p.querySelectorAll('mjx-container').length)""")
    # inline x2, display, align, glued md, markdown output, latex output (none left raw: see
    # test_every_page_is_clean[math])
    assert rendered >= 6, rendered
    assert glued == [1], glued


def test_bokehjs_is_served_by_the_book_once(site):
    """One copy of BokehJS in _static/, loaded by the pages with an explorer and only by them."""
    import bokeh

    served = sorted(p.name for p in (site / "_static" / "bokeh").glob("*.js"))
    assert served == [f"bokeh-{bokeh.__version__}.min.js",
                      f"bokeh-widgets-{bokeh.__version__}.min.js"]
    html = (site / "book" / f"{EXPLORER_PAGE}.html").read_text()
    assert html.count('class="sx-item"') == 1
    assert f'src="../_static/bokeh/bokeh-{bokeh.__version__}.min.js' in html
    assert "cdn.bokeh.org" not in html and "bokeh.min.js\"" not in html
    assert "_static/bokeh/" not in (site / "book" / "intro.html").read_text()
    assert not [p for p in site.rglob("*.js") if p.name.startswith("bokeh")
                and p.parent != site / "_static" / "bokeh"]


# Where point ``i`` of the explorer's data is drawn, in page coordinates (Bokeh's own scales).
POINT_JS = """(i) => {
  const doc = Bokeh.documents[0], points = doc.get_model_by_name("points");
  const views = [];
  const walk = v => { views.push(v); for (const c of (v.child_views || [])) walk(c); };
  const index = Bokeh.index;  // a Map-like registry of the root views, or a plain object
  for (const v of (typeof index.values === "function" ? [...index.values()]
                   : Object.values(index))) walk(v);
  const fig = views.find(v => v.model.renderers && v.model.renderers.includes(points));
  const data = points.data_source.data, glyph = points.glyph;
  const box = fig.canvas_view.el.getBoundingClientRect(), frame = fig.frame.bbox;
  return {x: box.left + fig.frame.x_scale.compute(data[glyph.x.field][i]),
          y: box.top + fig.frame.y_scale.compute(data[glyph.y.field][i]),
          index: data.index[i], extra: Array.from(data.subset).filter(s => s === 3).length,
          frame: {left: box.left + frame.left, top: box.top + frame.top, width: frame.width,
                  height: frame.height}};
}"""
DRAWN_JS = "() => Bokeh.documents[0].get_model_by_name('points').view.indices.count"


def _ink(png: bytes) -> float:
    """The spread of the pixel values of a screenshot: 0 for a blank one."""
    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).std())


def test_explorer_works_in_the_built_page(site, browser, shots):
    with opened(browser, site / "book" / f"{EXPLORER_PAGE}.html") as tab:
        page = tab.page
        page.locator(".sslmem-explorer").scroll_into_view_if_needed()
        assert page.evaluate(DRAWN_JS) == N_POINTS
        # hover point 0 with the mouse: a tooltip with its index, class, subset and image
        at = page.evaluate(POINT_JS, 0)
        page.mouse.move(at["x"], at["y"])
        tip = page.locator(".sx-tip")
        tip.wait_for(state="visible")
        text = tip.inner_text()
        assert "class" in text and "subset" in text and re.search(r"^m\s", text, re.M), text
        shown = int(re.search(r"index\s+(\d+)", text).group(1))
        assert 1000 <= shown < 1000 + N_POINTS  # the nearest point: 0 or one on the same pixel
        thumb = page.locator(".sx-tip .sx-thumb")
        assert "data:image/jpeg" in thumb.evaluate("e => getComputedStyle(e).backgroundImage")
        assert _ink(thumb.screenshot()) > 5, "the thumbnail in the tooltip stayed blank"
        page.screenshot(path=shots / "explorer-hover.png")
        # untick S_E: its points are no longer drawn, and the count says so
        plot = page.locator(".sx-plot")
        before = plot.screenshot()
        page.mouse.move(1, 1)
        page.locator("label", has_text="S_E extra").locator("input").click()
        page.wait_for_function(f"({DRAWN_JS})() === {N_POINTS - at['extra']}")
        assert page.get_by_text(f"{N_POINTS - at['extra']} of {N_POINTS} points shown").count()
        assert plot.screenshot() != before
        # untick a class as well: fewer again
        page.locator("label", has_text="class 3 (").locator("input").click()
        assert page.evaluate(DRAWN_JS) < N_POINTS - at["extra"]
        # a box selection shows the selected images
        frame = page.evaluate(POINT_JS, 0)["frame"]  # the plot's data area, below the legend
        page.mouse.move(frame["left"] + 0.3 * frame["width"], frame["top"] + 0.3 * frame["height"])
        page.mouse.down()
        page.mouse.move(frame["left"] + 0.95 * frame["width"],
                        frame["top"] + 0.95 * frame["height"], steps=6)
        page.mouse.up()
        cells = page.locator(".sx-grid > div")
        cells.first.wait_for(state="visible")
        chosen = page.evaluate(
            "Bokeh.documents[0].get_model_by_name('points').data_source.selected.indices.length")
        assert chosen > 0 and cells.count() == min(chosen, 100)
        assert page.locator("b", has_text=f"{chosen} selected").count() == 1
        assert _ink(page.locator(".sx-grid").screenshot()) > 5
        page.screenshot(path=shots / "explorer-selection.png")
        assert tab.errors == []


INJECTED = """<!doctype html><html><head><meta charset="utf-8">
<script src="{mathjax}" defer></script></head><body>
<h1 id="top">injected failures</h1>
<p class="mathjax_ignore">raw math MathJax never saw: \\(x^2\\) and $$y$$</p>
<span class="math notranslate nohighlight">\\(\\frac{{1}}\\)</span>
<img src="missing.png" alt="a missing image">
<img src="{good_image}" alt="an image that exists">
<a href="nowhere.html">a missing page</a> <a href="#top">a good anchor</a>
<a href="#nowhere">a missing anchor</a> <a href="{good_page}#no-such-id">missing anchor</a>
<a href="{good_page}">a good page</a> <a href="https://example.org/x">external, unchecked</a>
<script>console.error("injected console error")</script>
<script>throw new Error("injected uncaught error")</script>
</body></html>"""


def test_detector_catches_injected_failures(site, browser, tmp_path):
    """Each check fires on a page built to fail it (and passes what is fine on the same page)."""
    good_image = next((site / "_images").glob("*.png"))
    page = tmp_path / "injected.html"
    page.write_text(INJECTED.format(
        mathjax=(site / "_static" / "mathjax" / "tex-mml-chtml.js").as_uri(),
        good_image=good_image.as_uri(), good_page=(site / "book" / "intro.html").as_uri()))
    found = check_page(browser, page, tmp_path / "injected.png", {})
    js = found["javascript"]
    assert any("injected uncaught error" in e and e.startswith("uncaught") for e in js), js
    assert any("injected console error" in e for e in js), js
    assert any("missing.png" in e and e.startswith("request failed") for e in js), js
    assert found["images"] == ["missing.png"]
    math = found["math"]
    assert any(m.startswith("raw:") and "x^2" in m and "$$y$$" in m for m in math), math
    assert any(m.startswith("error:") and "frac" in m for m in math), math
    assert sorted(link.split("/")[-1] for link in found["links"]) == [
        "injected.html#nowhere (no such anchor)", "intro.html#no-such-id (no such anchor)",
        "nowhere.html (no such file)"]
    assert (tmp_path / "injected.png").stat().st_size > 1000


# ------------------------------------------------------------- the pages' content --
def test_front_pages_exist(site):
    assert (site / "index.html").exists()
    intro = (site / "book" / "intro.html").read_text()
    assert "SSLMem" in intro and "UNVERIFIED" in intro
    assert "sslmem.book.reproduce" in (site / "book" / "reproduce.html").read_text()


@pytest.mark.parametrize("name", CHAPTERS)
def test_section_has_figures_and_glued_numbers(site, name):
    html = (site / "book" / f"{name}.html").read_text()
    images = re.findall(r"<img [^>]*src=\"[^\"]+\.png\"", html)
    assert len(images) >= 2, f"{name}: {len(images)} figures"
    for img in re.findall(r"src=\"([^\"]+\.png)\"", html):
        assert (site / "book" / img).resolve().exists(), img
    assert "Paper vs this run" in html and "Summary" in html
    # glued values render as plain text in <span class="pasted-text">; a missing key would have
    # failed the build (-W), a NumPy repr would show up as np.float64(...)
    pasted = re.findall(r'class="pasted-text">([^<]*)<', html)
    assert len(pasted) >= 5, f"{name}: {len(pasted)} glued values"
    assert not [p for p in pasted if "np." in p or p in ("nan", "None")], pasted
    for marker in ("Traceback (most recent call last)", "output traceback", "{glue",
                   "SSLMemError:", "check_parameters("):
        assert marker not in html, f"{name}: {marker}"
