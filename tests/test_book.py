"""The rendered book: it builds with warnings as errors, every section shows figures and numbers.

Builds a temporary copy of the book (``_config.yml``, ``_toc.yml``, ``book/``) so the checkout's
``_build`` is never touched. The executed notebooks are the checkout's ``book/*.ipynb`` (what a
commit ships); where those are missing, the notebooks are executed here with the tiny profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sslmem import reproduce as rp

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).with_name("jupyter-book")


@pytest.fixture(scope="module")
def site(tmp_path_factory, shared_data) -> Path:
    src = tmp_path_factory.mktemp("book-src")
    shutil.copy(REPO / "_config.yml", src)
    shutil.copy(REPO / "_toc.yml", src)
    shutil.copytree(REPO / "book", src / "book",
                    ignore=shutil.ignore_patterns("_build", ".*.tmp"))
    missing = [n for n in rp.NOTEBOOKS if not (src / "book" / f"{n}.ipynb").exists()]
    if missing:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SSLMEM_DATA", str(shared_data))
            patch.setenv("SSLMEM_RUNS", str(tmp_path_factory.mktemp("book-runs")))
            rp.reproduce("tiny", only=",".join(missing), out=src / "book", log=lambda *_: None)
    out = tmp_path_factory.mktemp("book-out")
    done = subprocess.run([str(JB), "build", str(src), "-W", "-n", "--keep-going",
                           "--path-output", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return out / "_build" / "html"


def test_front_pages_exist(site):
    assert (site / "index.html").exists()
    intro = (site / "book" / "intro.html").read_text()
    assert "SSLMem" in intro and "UNVERIFIED" in intro
    assert "sslmem.reproduce" in (site / "book" / "reproduce.html").read_text()


@pytest.mark.parametrize("name", rp.NOTEBOOKS)
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
