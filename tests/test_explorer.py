"""The per-point explorer: a Bokeh document with the data, the sprite sheet and a static fallback.

Its behaviour in a browser (hover shows an image, filters change the drawn points, no
JavaScript error in the built book) is checked by tests/test_browser.py; here: what goes into
the page, the image routing and the page weight.
"""

from __future__ import annotations

import base64
import io
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from bokeh.document import Document
from bokeh.models import ColumnDataSource, CustomJSHover
from PIL import Image

from sslmem.book.explorer import Explorer, bokehjs_files, explore
from sslmem.errors import SSLMemError

SUBSETS = ("shared", "candidate", "independent", "extra")
CLASSES = [f"class {k}" for k in range(10)]


def _table(n: int, n_train: int = 50, n_test: int = 20, seed: int = 0, **sizes) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subset = (np.concatenate([[s] * k for s, k in sizes.items()]) if sizes
              else np.array(SUBSETS)[rng.integers(0, 4, n)])
    n = len(subset)
    position = np.where(subset == "extra", rng.integers(0, n_test, n),
                        rng.integers(0, n_train, n))
    L_g = rng.gamma(4, 0.1, n)
    L_f = L_g + rng.normal(0, 0.05, n)
    return pd.DataFrame(dict(subset=subset, position=position, index=10_000 + np.arange(n),
                             label=rng.integers(0, 10, n), L_f=L_f, L_g=L_g, score_raw=L_g - L_f,
                             typicality=rng.random(n)))


def _doc(explorer: Explorer) -> Document:
    found = re.findall(r'<script type="application/json" class="sx-item">(.*?)</script>',
                       explorer.html, re.S)
    assert len(found) == 1
    item = json.loads(found[0])
    return Document.from_json(item["doc"])


def _data(explorer: Explorer) -> dict:
    """The points as the browser gets them: column -> numpy array, plus names from the hover."""
    doc = _doc(explorer)
    source = next(s for s in doc.select({"type": ColumnDataSource}) if "index" in s.data)
    names = next(m for m in doc.select({"type": CustomJSHover}) if "classes" in m.args)
    return {**{k: np.asarray(v) for k, v in source.data.items()}, "classes": names.args["classes"],
            "subsets": names.args["subsets"], "split": names.args["split"]}


def sprite_sheet(explorer: Explorer) -> np.ndarray:
    found = re.findall(r":root\{--sx-[\w-]+:url\(data:image/jpeg;base64,([^)]+)\)\}",
                       explorer.html)
    assert len(found) == 1  # the thumbnails once, however many places show them
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(found[0]))))


def _tile(sheet: np.ndarray, explorer: Explorer, i: int) -> np.ndarray:
    t, cols = explorer.geometry["tile"], explorer.geometry["cols"]
    r, c = divmod(i, cols)
    return sheet[r * t:(r + 1) * t, c * t:(c + 1) * t]


def test_html_holds_figure_sprite_and_static_fallback():
    table = _table(200)
    train = np.random.default_rng(1).integers(0, 256, (50, 3, 16, 16), dtype=np.uint8)
    test = np.random.default_rng(2).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)
    e = explore(table, train, test, classes=CLASSES, fields=["typicality"])
    assert e._repr_html_() == e.html and e.n_points == e.n_total == 200
    assert 'class="sslmem-explorer' in e.html and "Bokeh.embed.embed_item" in e.html
    assert re.search(r'<noscript><img alt="[^"]+" src="data:image/png;base64,', e.html)
    assert "http://" not in e.html and "https://" not in e.html  # nothing to fetch: no CDN
    assert "<script src" not in e.html  # BokehJS comes from the page (the book), not from here
    data = _data(e)
    assert [k for k in ("L_f", "L_g", "score_raw", "typicality", "se") if k in data] == [
        "L_f", "L_g", "score_raw", "typicality"]
    assert all(len(data[k]) == 200 for k in ("index", "label", "subset", "L_f", "typicality"))
    assert sorted(data["index"]) == sorted(table["index"])
    assert data["subsets"][0].startswith("S_S") and data["split"] == [
        "train", "train", "train", "test"]  # in the order of sslmem.train.splits.SUBSETS
    assert data["classes"] == CLASSES
    assert data["L_f"].dtype == np.float32  # compact: 4 significant digits are plenty
    sheet = sprite_sheet(e)
    assert sheet.shape[0] >= 16 * (200 // e.geometry["cols"])
    # every shown value is the table's; small subsets are drawn last (on top)
    by_index = table.set_index("index")
    for k in (0, 57, 199):
        row = by_index.loc[int(data["index"][k])]
        assert data["L_f"][k] == pytest.approx(row.L_f, rel=1e-6)
        assert SUBSETS[data["subset"][k]] == row.subset and data["label"][k] == row.label
    assert SUBSETS[data["subset"][0]] == "shared" and SUBSETS[data["subset"][-1]] == "candidate"


def test_se_column_is_shown_when_present():
    table = _table(40).assign(se=0.01)
    images = np.zeros((50, 3, 8, 8), dtype=np.uint8)
    e = explore(table, images, images)
    assert "se" in _data(e)
    assert "s.e." in e.html  # a row of the tooltip


def test_extra_rows_take_their_image_from_the_test_split():
    """Train images black, test images white: each thumbnail shows where its row points."""
    table = _table(0, shared=30, candidate=10, extra=10)
    train = torch.zeros(50, 1, 16, 16, dtype=torch.uint8)  # a tensor (N,C,H,W), gray
    test = np.full((20, 16, 16), 255, dtype=np.uint8)  # an array (N,H,W)
    e = explore(table, train, lambda pos: test[pos])  # ... and a callable
    data = _data(e)
    sheet = sprite_sheet(e)
    assert len(data["split"]) == 3  # the subsets present: shared, candidate, extra
    for i, code in enumerate(data["subset"]):
        mean = _tile(sheet, e, i).mean()
        test_split = data["split"][code] == "test"
        assert (mean > 240) if test_split else (mean < 15), (i, code, mean)
    assert data["classes"] == [str(k) for k in range(10)]  # no names given: the labels


def test_image_sources_imagedata_float_and_channels_last():
    table = _table(0, shared=10, extra=5)
    rng = np.random.default_rng(0)
    train = SimpleNamespace(images=torch.from_numpy(rng.integers(0, 256, (50, 3, 8, 8),
                                                                 dtype=np.uint8)),
                            classes=tuple(CLASSES))
    test = rng.random((20, 8, 8, 3))  # floats in [0, 1], channels last
    e = explore(table, train, test)
    assert _data(e)["classes"] == CLASSES  # from the ImageData
    assert e.geometry["tile"] == 8


def test_errors_say_what_to_do():
    table = _table(30)
    images = np.zeros((50, 3, 8, 8), dtype=np.uint8)
    with pytest.raises(SSLMemError, match="test_images"):
        explore(table, images)
    with pytest.raises(SSLMemError, match="lacks column.*typicality_x"):
        explore(table, images, images, y="typicality_x")
    with pytest.raises(SSLMemError, match="positions up to"):
        explore(table, images[:3], images)
    with pytest.raises(SSLMemError, match="differ in shape"):
        explore(table, images, np.zeros((50, 3, 4, 4), dtype=np.uint8))


def test_sampling_keeps_small_subsets_whole():
    table = _table(0, n_train=100, shared=6000, candidate=300, independent=300, extra=300)
    images = np.zeros((100, 1, 8, 8), dtype=np.uint8)
    e = explore(table, images, images, max_points=2000, static=False)
    data = _data(e)
    counts = {s: int((data["subset"] == k).sum()) for k, s in enumerate(SUBSETS)}
    assert counts == {"shared": 1100, "candidate": 300, "independent": 300, "extra": 300}
    assert e.n_points == 2000 and e.n_total == 6900
    assert "1100 of 6000" in e.html and "(a sample of 6900)" in e.html
    assert "<noscript>" not in e.html
    again = _data(explore(table, images, images, max_points=2000, static=False))
    assert all(np.array_equal(again[k], data[k]) for k in ("index", "L_f"))  # seeded


def test_script_breaking_names_are_escaped():
    table = _table(20)
    images = np.zeros((50, 3, 8, 8), dtype=np.uint8)
    e = explore(table, images, images, classes=["</script><b>x"] * 10, title="a </script> c")
    assert e.html.count("</script>") == 2  # the data block and the script, nothing else
    assert _data(e)["classes"][0] == "</script><b>x"


def test_bokehjs_comes_from_the_pinned_package(tmp_path):
    """The files the book serves match the Python side; a saved page carries them inline."""
    import bokeh

    files = bokehjs_files()
    assert [f.name for f in files] == ["bokeh.min.js", "bokeh-widgets.min.js"]
    assert f'"{bokeh.__version__}"' in files[0].read_text()
    e = explore(_table(20), np.zeros((50, 3, 8, 8), np.uint8), np.zeros((20, 3, 8, 8), np.uint8))
    e.save(tmp_path / "one.html")
    page = (tmp_path / "one.html").read_text()
    assert page.count("Bokeh.embed.embed_item") >= 1 and len(page) > 1_000_000


@pytest.mark.parametrize("n, budget_mb", [(1_000, 0.8), (10_000, 2.2)])
def test_page_weight_for_cifar10(shared_data, n, budget_mb):
    """Real CIFAR-10 thumbnails (JPEG of noise would overstate it): within the stated budget.

    The hand-written explorer this replaced weighed 0.5 MB (1,000) and 1.7 MB (10,000); the
    BokehJS files (1.65 MB, once for the whole book, cached) are not part of a page.
    """
    with np.load(shared_data / "cifar10-mini" / "train.npz") as z:
        train, classes = z["images"], list(z["classes"])
    with np.load(shared_data / "cifar10-mini" / "test.npz") as z:
        test = z["images"]
    table = _table(n, n_train=len(train), n_test=len(test))
    e = explore(table, train, test, classes=classes, fields=["typicality"])
    print(f"{n} points: {e.nbytes / 1e6:.2f} MB", {k: round(v / 1e3) for k, v in e.parts.items()})
    assert e.nbytes < budget_mb * 1e6
    assert e.geometry["tile"] == (32 if n <= 3_000 else 16)
