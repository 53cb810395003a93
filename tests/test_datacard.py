"""Data cards (sslmem.pipeline.datacard): the book renders where the dataset is absent.

What a card must guarantee: an experiment reading only results, whose dataset files are absent,
gets the same keys (fingerprint), labels, split and shown images as with the data present; an
image the card does not hold stops with one line; a damaged card is never served; data that is
not the data the store was computed on is refused with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.pipeline import datacard
from sslmem.pipeline.config import Config
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.store import CorruptResult

REPO = Path(__file__).resolve().parents[1]


def _npz(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arrays = {"images": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
              "labels": np.arange(n, dtype=np.int64) % 3,
              "classes": np.array(["a", "b", "c"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value, allow_pickle=False)


def _data_root(root: Path, seed: int = 0) -> Path:
    _npz(root / "mnist" / "train.npz", 60, seed)
    _npz(root / "mnist" / "test.npz", 30, seed + 1)
    return root


def _config(data_root, results, runs, results_only) -> Config:
    return Config.tiny(dataset="mnist", image_size=8, data_root=str(data_root),
                       results_root=str(results), runs_root=str(runs), device="cpu",
                       results_only=results_only).replace(
        shared=20, candidate=10, independent=10, extra=10)


@pytest.fixture
def stored(tmp_path):
    """Cards written with the data present (positions of S_C and S_E shown)."""
    data, results, runs = _data_root(tmp_path / "data"), tmp_path / "results", tmp_path / "runs"
    exp = Experiment(_config(data, results, runs, False))
    shown = {"train": exp.split.candidate, "test": exp.split.extra}
    datacard.ensure(exp, shown)
    return exp, shown, results, runs


def test_without_the_data_a_card_gives_the_same_keys_labels_split_and_shown_images(
        stored, tmp_path):
    exp, shown, results, runs = stored
    (tmp_path / "empty").mkdir()
    bare = Experiment(_config(tmp_path / "empty", results, runs, True))
    assert datacard.absent("mnist", "train", str(tmp_path / "empty"))
    assert bare.data_fingerprint == exp.data_fingerprint and bare.key() == exp.key()
    assert bare.store_dir == exp.store_dir
    assert not bare.data_checked and exp.data_checked
    assert torch.equal(bare.train.labels, exp.train.labels)
    assert bare.split.fingerprint() == exp.split.fingerprint()
    assert bare.train.classes == exp.train.classes and bare.train.image_size == 8
    pos = torch.as_tensor(np.array(shown["train"]))
    assert torch.equal(bare.train.images[pos], exp.train.images[pos])
    assert torch.equal(bare.test.images[torch.as_tensor(np.array(shown["test"]))],
                       exp.test.images[torch.as_tensor(np.array(shown["test"]))])
    # an image no page shows: one line that says what is needed
    other = int(np.setdiff1d(np.arange(60), shown["train"])[0])
    with pytest.raises(SSLMemError, match=r"not in the results store.*\$SSLMEM_DATA") as err:
        bare.train.images[[other]]
    assert "\n" not in str(err.value)


def test_a_computing_experiment_never_uses_a_card(stored, tmp_path):
    """Computing needs the data: the card is only for reading results."""
    _, _, results, runs = stored
    (tmp_path / "empty").mkdir()
    computing = Experiment(_config(tmp_path / "empty", results, runs, False))
    with pytest.raises(SSLMemError, match="mnist"):
        computing.train  # noqa: B018 - the dataset is missing here


def test_other_data_than_the_store_was_computed_on_is_refused(stored, tmp_path):
    _, _, results, runs = stored
    other = _data_root(tmp_path / "other", seed=7)
    reading = Experiment(_config(other, results, runs, True))
    with pytest.raises(SSLMemError, match="not the data the results store was computed on"):
        reading.train  # noqa: B018


def test_a_damaged_card_is_never_served(stored, tmp_path):
    exp, _, results, runs = stored
    images = exp.card_stem("train").with_name("train-8px-images.npz")
    raw = bytearray(images.read_bytes())
    raw[-20] ^= 0xFF
    images.write_bytes(bytes(raw))
    (tmp_path / "empty").mkdir()
    bare = Experiment(_config(tmp_path / "empty", results, runs, True))
    with pytest.raises(CorruptResult, match="SHA-256"):
        bare.train  # noqa: B018
    assert images.exists()  # never deleted for failing its check


def test_ensure_keeps_a_matching_card_and_widens_it_for_new_images(stored):
    exp, shown, _, _ = stored
    card = exp.card_stem("train").with_name("train-8px-card.json")
    before = card.stat().st_mtime_ns
    datacard.ensure(exp, shown)
    assert card.stat().st_mtime_ns == before  # nothing new to hold: untouched
    more = {"train": exp.split.shared[:3], "test": []}
    datacard.ensure(exp, more)
    held = datacard.read(exp.card_stem("train")).images.stored
    assert set(np.asarray(shown["train"])) | set(np.asarray(more["train"])) == set(held)


def test_the_card_stores_labels_and_images_compactly(stored):
    exp, _, _, _ = stored
    meta = json.loads(exp.card_stem("train").with_name("train-8px-card.json").read_text())
    assert meta["result"]["index"] == "identity" and meta["result"]["shown"] == 10
    assert "provenance" in meta and meta["provenance"]["config"]["dataset"] == "mnist"
    with np.load(exp.card_stem("train").with_name("train-8px-images.npz")) as npz:
        assert npz["images"].shape == (10, 3, 8, 8) and npz["images"].dtype == np.uint8


@pytest.mark.slow
def test_the_committed_book_renders_without_the_data(tmp_path):
    """Chapters 1 and 2 (the ones that show images) from the committed store with no dataset
    anywhere: every glued value and every output, figures included, equals the committed
    page's."""
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "SSLMEM_DATA": str(tmp_path / "empty"), "TQDM_DISABLE": "1",
           "SSLMEM_RUNS": str(tmp_path / "runs"), "SSLMEM_RESULTS": str(REPO / "results")}
    done = subprocess.run([sys.executable, "-m", "sslmem.book.reproduce", "--profile", "stored",
                           "--only", "01,02", "--out", str(tmp_path / "book")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    said = 0
    for name in ("01_definition", "02_atypical_examples"):
        new = json.loads((tmp_path / "book" / f"{name}.ipynb").read_text())
        old = json.loads((REPO / "book" / f"{name}.ipynb").read_text())
        for a, b in zip(_outputs(old), _outputs(new), strict=True):
            # the banner says the data was not re-checked; nothing else may differ
            told = re.sub(r" The cifar10 data is not on this machine:[^.]*\.", "", b[2])
            said += told != b[2]
            assert a == (*b[:2], told), (name, a[:2])
    assert said == 2  # one banner per page


def _outputs(nb) -> list[tuple]:
    out = []
    for i, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name in ("seconds", "minutes"):
                continue
            out.append((i, name, json.dumps(o.get("data") or o.get("text"), sort_keys=True)))
    return out


def test_stored_images_index_like_a_tensor():
    images = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2)
    stored = datacard.StoredImages((10, 3, 2, 2), np.array([2, 5, 7, 9]), images, "cifar10")
    assert len(stored) == 10 and stored.shape[1] == 3 and stored.cpu() is stored
    assert torch.equal(stored[torch.tensor([5, 9])], torch.from_numpy(images[[1, 3]]))
    mask = np.zeros(10, dtype=bool)
    mask[[2, 7]] = True
    assert torch.equal(stored[mask], torch.from_numpy(images[[0, 2]]))
    with pytest.raises(SSLMemError):
        stored[[3]]
