"""The built book in a real browser: no JavaScript error, math rendered, images and links intact.

Drives Debian's headless ``chromium`` over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-separated JSON), so it needs no websocket
library, no port and no network. Every page of a temporary build of the book (plus a test page
with the per-point explorer on a synthetic table) is loaded and fails the test on

* a JavaScript error: uncaught exceptions (``Runtime.exceptionThrown``), ``console.error``
  (``Runtime.consoleAPICalled``), and browser log errors (``Log.entryAdded``: failed resource
  loads, CSP, ...);
* a formula left unrendered: a ``.math`` element without MathJax output, raw ``\\(``, ``\\[`` or
  ``$$`` in the visible text, or MathJax/KaTeX error nodes;
* a missing image: an ``<img>`` whose ``decode()`` fails (broken src, naturalWidth 0);
* a broken internal link: an ``href`` to a local file that does not exist, or to an ``#anchor``
  that the target page does not define.

One screenshot per page is kept (full page, PNG) in ``$SSLMEM_SCREENSHOTS`` or a pytest temp folder;
its path is printed. ``test_detector_catches_injected_failures`` proves each check fires.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 900, 12_000

ON_CI = bool(os.environ.get("CI"))  # there a missing chromium fails: .ci/run installs it

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None and not ON_CI,
                                 reason="chromium is not installed (apt-get install -y chromium; "
                                 ".ci/run installs it on CI)")]


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (stdlib only)."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="sslmem-chromium-")
        to_r, self._to = os.pipe()  # we write commands, chromium reads fd 3
        self._from, from_w = os.pipe()  # chromium writes fd 4, we read
        # F_DUPFD >= 10 first, so that dup2 onto 3 and 4 never clobbers the other end
        child_r, child_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w,
                                                                             fcntl.F_DUPFD, 10)

        def wire():
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--allow-file-access-from-files", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4), start_new_session=True)
        for fd in (to_r, from_w, child_r, child_w):
            os.close(fd)
        self._buf, self._id, self.events, self._targets = b"", 0, [], {}

    def close(self) -> None:
        """End this chromium and its helper processes (its own process group, started above)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        os.close(self._to)
        os.close(self._from)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict | None:
        while b"\0" not in self._buf:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self._from], [], [], wait)[0]:
                return None
            chunk = os.read(self._from, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        """One command; events that arrive meanwhile are kept in ``events``."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply is None:
                raise TimeoutError(f"{method}: no reply in {self.timeout} s")
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict | None:
        """The first ``method`` event of ``session`` not waited for yet (None on time-out)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for k, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    return self.events.pop(k)
            event = self._read(deadline)
            if event is None:
                return None
            self.events.append(event)

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", session, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> str:
        """A fresh tab on ``url``, loaded, fonts and MathJax done; returns its session id."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._targets[session] = target
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", session, url=url)
        if self.wait_event("Page.loadEventFired", session) is None:
            raise TimeoutError(f"{url} did not load in {self.timeout} s")
        if self.evaluate(session, "!!document.querySelector('meta[http-equiv=refresh i]')"):
            # a redirect (the book's index.html): check the page it leads to
            if self.wait_event("Page.loadEventFired", session) is None:
                raise TimeoutError(f"{url} did not redirect in {self.timeout} s")
        self.evaluate(session, SETTLE_JS)
        return session

    def errors(self, session: str) -> list[str]:
        """JavaScript errors and browser log errors seen by this tab so far."""
        out = []
        for e in self.events:
            if e.get("sessionId") != session:
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append("uncaught: " + d.get("exception", {}).get("description", d["text"]))
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get(
                    "description", ""))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}".strip())
        return out

    def screenshot(self, session: str, path: Path) -> None:
        height = self.evaluate(session, "document.documentElement.scrollHeight")
        height = min(max(int(height), HEIGHT), MAX_SHOT_HEIGHT)
        self.send("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=height,
                  deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", session, format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        self.send("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)

    def close_tab(self, session: str) -> None:
        self.send("Target.closeTarget", targetId=self._targets.pop(session))
        self.events = [e for e in self.events if e.get("sessionId") != session]


# Waits for what renders after "load": web fonts, MathJax's typesetting, every image's decode.
SETTLE_JS = """(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await Promise.all(Array.from(document.images, i => {i.loading = "eager";
    return i.decode().catch(() => null);}));
  return true;
})()"""

# What a reader would see as broken, collected in the page after SETTLE_JS.
INSPECT_JS = r"""(async () => {
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
  return {raw, unrendered, mathErrors, images, links,
          mathjax: !!window.MathJax, title: document.title};
})()"""


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


def check_page(browser: Chromium, page: Path, shot: Path | None, id_cache: dict) -> dict:
    """Load one page, screenshot it, and return its problems by kind (empty lists when fine)."""
    session = browser.open(page.as_uri())
    try:
        found = browser.evaluate(session, INSPECT_JS)
        if shot is not None:
            browser.screenshot(session, shot)
        problems = {
            "javascript": browser.errors(session),
            "math": ([f"raw: {t}" for t in found["raw"]]
                     + [f"unrendered: {t}" for t in found["unrendered"]]
                     + [f"error: {t}" for t in found["mathErrors"]]),
            "images": found["images"],
            "links": broken_links(found["links"], lambda p: _ids(id_cache, p)),
        }
        return problems
    finally:
        browser.close_tab(session)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("chromium is missing on CI: .ci/run should have installed it")
    chrome = Chromium()
    yield chrome
    chrome.close()


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

from sslmem.explorer import explore

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
    kept = sorted(shots.glob("*.png"))
    assert len(kept) == len(pages)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
               for p in kept)


def test_math_renders_offline(site, browser):
    """MathJax comes from the book (no CDN) and typesets every kind of math on the check page."""
    html = (site / "book" / f"{EXPLORER_PAGE}.html").read_text()
    assert "_static/mathjax/tex-mml-chtml.js" in html and "cdn.jsdelivr" not in html
    session = browser.open((site / "book" / f"{EXPLORER_PAGE}.html").as_uri())
    try:
        rendered = browser.evaluate(session, "document.querySelectorAll('mjx-container').length")
        glued = browser.evaluate(session, """Array.from(document.querySelectorAll('p'))
            .filter(p => p.textContent.includes('A glued markdown value'))
            .map(p => p.querySelectorAll('mjx-container').length)""")
    finally:
        browser.close_tab(session)
    # inline x2, display, align, glued md, markdown output, latex output (none left raw: see
    # test_every_page_is_clean[math])
    assert rendered >= 6, rendered
    assert glued == [1], glued


def test_explorer_works_in_the_built_page(site, browser):
    html = (site / "book" / f"{EXPLORER_PAGE}.html").read_text()
    assert html.count('class="sx-data"') == 1 and "sxExplorer" in html
    session = browser.open((site / "book" / f"{EXPLORER_PAGE}.html").as_uri())
    try:
        root = "document.querySelector('.sslmem-explorer')"
        assert browser.evaluate(session, f"{root}.dataset.visible") == str(N_POINTS)
        # hover point 0 with a real mouse event: its index, class and thumbnail appear
        data = browser.evaluate(session, f"JSON.parse({root}.querySelector('.sx-data')"
                                         ".textContent)")
        at = browser.evaluate(session, f"({root}.scrollIntoView({{block: 'center'}}),"
                                       f"{root}.sxExplorer.point(0))")
        assert at["visible"]
        browser.send("Input.dispatchMouseEvent", session, type="mouseMoved", x=at["x"],
                     y=at["y"])
        shown = browser.evaluate(session, f"{root}.dataset.shown")
        # the nearest point is 0 unless another sits on the very same pixel
        i = data["index"].index(int(shown))
        assert abs(data["values"]["L_f"][i] - data["values"]["L_f"][0]) < 0.02
        detail = browser.evaluate(session, f"{root}.querySelector('.sx-detail').innerText")
        assert shown in detail and f"class {data['label'][i]}" in detail and "subset" in detail
        ink = browser.evaluate(session, f"""(() => {{
            const c = {root}.querySelector('.sx-detail canvas');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)
                .reduce((a, b) => a + b, 0); }})()""")
        assert ink > 0, "the thumbnail stayed blank"
        # a click pins it; untick S_E: its points disappear
        browser.send("Input.dispatchMouseEvent", session, type="mousePressed", x=at["x"],
                     y=at["y"], button="left", clickCount=1)
        browser.send("Input.dispatchMouseEvent", session, type="mouseReleased", x=at["x"],
                     y=at["y"], button="left", clickCount=1)
        assert "pinned" in browser.evaluate(session, f"{root}.querySelector('.sx-detail')"
                                                     ".innerText")
        extra = data["subset"].count([s["key"] for s in data["subsets"]].index("extra"))
        browser.evaluate(session, f"{root}.querySelector('input[data-subset=extra]').click()")
        assert browser.evaluate(session, f"{root}.dataset.visible") == str(N_POINTS - extra)
        assert browser.errors(session) == []
    finally:
        browser.close_tab(session)


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
    assert any("missing.png" in e for e in js), js  # the failed load is logged too
    assert found["images"] == ["missing.png"]
    math = found["math"]
    assert any(m.startswith("raw:") and "x^2" in m and "$$y$$" in m for m in math), math
    assert any(m.startswith("error:") and "frac" in m for m in math), math
    assert sorted(link.split("/")[-1] for link in found["links"]) == [
        "injected.html#nowhere (no such anchor)", "intro.html#no-such-id (no such anchor)",
        "nowhere.html (no such file)"]
    assert (tmp_path / "injected.png").stat().st_size > 1000
