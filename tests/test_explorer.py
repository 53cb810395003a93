"""The per-point explorer: self-contained HTML with the data, the script and a static fallback.

Its behaviour in a browser (hover, filters, no JavaScript error in the built book) is checked by
tests/test_browser.py; here: what goes into the page, the image routing and the page weight.
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
from PIL import Image

from sslmem.errors import SSLMemError
from sslmem.explorer import Explorer, explore

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


def _data(explorer: Explorer) -> dict:
    found = re.findall(r'<script type="application/json" class="sx-data">(.*?)</script>',
                       explorer.html, re.S)
    assert len(found) == 1
    return json.loads(found[0].replace("<\\/", "</"))


def _sprite(data: dict) -> np.ndarray:
    head, b64 = data["sprite"]["src"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _tile(sheet: np.ndarray, data: dict, i: int) -> np.ndarray:
    t, cols = data["sprite"]["tile"], data["sprite"]["cols"]
    r, c = divmod(i, cols)
    return sheet[r * t:(r + 1) * t, c * t:(c + 1) * t]


def test_html_holds_data_script_and_static_fallback():
    table = _table(200)
    train = np.random.default_rng(1).integers(0, 256, (50, 3, 16, 16), dtype=np.uint8)
    test = np.random.default_rng(2).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)
    e = explore(table, train, test, classes=CLASSES, fields=["typicality"])
    assert e._repr_html_() == e.html and e.n_points == e.n_total == 200
    assert 'class="sslmem-explorer' in e.html and "sxExplorer" in e.html  # the script
    assert re.search(r'<noscript><img alt="[^"]+" src="data:image/png;base64,', e.html)
    assert "http://" not in e.html and "https://" not in e.html  # nothing to fetch
    data = _data(e)
    assert data["fields"] == ["L_f", "L_g", "score_raw", "typicality"]
    assert (data["x"], data["y"]) == ("L_f", "L_g")
    assert len(data["index"]) == len(data["label"]) == len(data["subset"]) == 200
    assert all(len(v) == 200 for v in data["values"].values())
    assert sorted(data["index"]) == sorted(table["index"])
    assert [s["key"] for s in data["subsets"]] == list(SUBSETS)
    assert {s["key"]: s["split"] for s in data["subsets"]}["extra"] == "test"
    assert data["classes"] == CLASSES
    sheet = _sprite(data)
    assert sheet.shape[0] >= 16 * (200 // data["sprite"]["cols"])
    # every shown value is the table's, to 4 significant digits
    by_index = table.set_index("index")
    for k in (0, 57, 199):
        row = by_index.loc[data["index"][k]]
        assert data["values"]["L_f"][k] == pytest.approx(row.L_f, rel=1e-3)
        assert SUBSETS[[s["key"] for s in data["subsets"]].index(row.subset)] == row.subset
        assert data["subsets"][data["subset"][k]]["key"] == row.subset


def test_extra_rows_take_their_image_from_the_test_split():
    """Train images black, test images white: each thumbnail shows where its row points."""
    table = _table(0, shared=30, candidate=10, extra=10)
    train = torch.zeros(50, 1, 16, 16, dtype=torch.uint8)  # a tensor (N,C,H,W), gray
    test = np.full((20, 16, 16), 255, dtype=np.uint8)  # an array (N,H,W)
    e = explore(table, train, lambda pos: test[pos])  # ... and a callable
    data = _data(e)
    sheet = _sprite(data)
    extra = [s["key"] for s in data["subsets"]].index("extra")
    for i, code in enumerate(data["subset"]):
        mean = _tile(sheet, data, i).mean()
        assert (mean > 240) if code == extra else (mean < 15), (i, code, mean)
    assert data["classes"] == [str(k) for k in range(10)]  # no names given: the labels


def test_image_sources_imagedata_float_and_channels_last():
    table = _table(0, shared=10, extra=5)
    rng = np.random.default_rng(0)
    train = SimpleNamespace(images=torch.from_numpy(rng.integers(0, 256, (50, 3, 8, 8),
                                                                 dtype=np.uint8)),
                            classes=tuple(CLASSES))
    test = rng.random((20, 8, 8, 3))  # floats in [0, 1], channels last
    e = explore(table, train, test)
    data = _data(e)
    assert data["classes"] == CLASSES  # from the ImageData
    assert data["sprite"]["tile"] == 8


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
    counts = {s["key"]: data["subset"].count(k) for k, s in enumerate(data["subsets"])}
    assert counts == {"shared": 1100, "candidate": 300, "independent": 300, "extra": 300}
    assert e.n_points == 2000 and e.n_total == 6900 and data["total"] == 6900
    assert "<noscript>" not in e.html
    assert _data(explore(table, images, images, max_points=2000, static=False)) == data  # seeded


def test_script_breaking_names_are_escaped():
    table = _table(20)
    images = np.zeros((50, 3, 8, 8), dtype=np.uint8)
    e = explore(table, images, images, classes=["</script><b>x"] * 10, title="a <b> & c")
    assert e.html.count("</script>") == 2  # the data block and the script, nothing else
    assert _data(e)["classes"][0] == "</script><b>x"
    assert "a &lt;b&gt; &amp; c" in e.html


@pytest.mark.parametrize("n, budget_mb", [(1_000, 0.8), (10_000, 2.2)])
def test_page_weight_for_cifar10(shared_data, n, budget_mb):
    """Real CIFAR-10 thumbnails (JPEG of noise would overstate it): within the stated budget."""
    with np.load(shared_data / "cifar10-mini" / "train.npz") as z:
        train, classes = z["images"], list(z["classes"])
    with np.load(shared_data / "cifar10-mini" / "test.npz") as z:
        test = z["images"]
    table = _table(n, n_train=len(train), n_test=len(test))
    e = explore(table, train, test, classes=classes, fields=["typicality"])
    print(f"{n} points: {e.nbytes / 1e6:.2f} MB", {k: round(v / 1e3) for k, v in e.parts.items()})
    assert e.nbytes < budget_mb * 1e6
    assert _data(e)["sprite"]["tile"] == (32 if n <= 3_000 else 16)
