"""The rendered book: it builds with warnings as errors, every section shows figures and numbers.

The build is a temporary copy (the ``build_book`` fixture of conftest.py): the checkout's
``_build`` is never touched; notebooks missing from ``book/`` are executed with the tiny profile.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sslmem import reproduce as rp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(build_book) -> Path:
    return build_book()


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
