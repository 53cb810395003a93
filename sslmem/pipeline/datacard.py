"""Data cards: what the book needs of a dataset, stored beside the results computed on it.

Why: every key in the results store hashes the data as loaded, and two chapters show images, so a
store alone could not be rendered where the dataset is absent (a new user's clone, a reader's
laptop). A card holds, for one split at one image size, what the keys and tables are built from:
the data's fingerprint, the labels, the original indices, the class names, the channel
statistics and the shape, plus the pixels of the points a page shows (chapter 1's scored subsets,
the ranking ensemble's pool and placebo). Cards are small, hash-checked and carry provenance like
every result. Reading results only, an experiment whose dataset files are absent is served from
its card and says so (``Experiment.data_checked`` is False); where the files are present, the
data is loaded and its fingerprint must equal the card's. Computing still needs the data: an
image a card does not hold stops with one line that says how to provide the dataset.

    <results>/<profile>/<dataset>/_data/<split>-<size>px.csv.gz   labels (and index), hashed
    <results>/<profile>/<dataset>/_data/<split>-<size>px-card.json  fingerprint, classes, shape...
    <results>/<profile>/<dataset>/_data/<split>-<size>px-images.npz the shown images (positions)
    <results>/<profile>/<dataset>/_data/available.json              a probe set the results used
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sslmem.errors import SSLMemError, signals_deferred
from sslmem.io import atomic_path
from sslmem.pipeline.store import (
    CorruptResult,
    _read_bytes,
    read_frame,
    read_record,
    results_root,
    sha256_bytes,
    write_frame,
    write_record,
)
from sslmem.train.data import ImageData, fingerprint, source_file

FOLDER = "_data"


def slug(dataset: str) -> str:
    """The store's folder name of a dataset (as ``Experiment.slug``)."""
    return dataset.replace("folder:", "folder-").replace("/", "_")[-60:]


def stem(results: str | Path | None, profile: str, dataset: str, split: str,
         image_size: int | None) -> Path:
    """Where one split's card lives (without suffix)."""
    size = "native" if image_size is None else f"{int(image_size)}px"
    return results_root(results) / profile / slug(dataset) / FOLDER / f"{split}-{size}"


def can_be_absent(dataset: str) -> bool:
    """``digits`` ships with scikit-learn and a ``folder:`` dataset is the user's own files:
    neither is ever absent in the sense a card stands in for."""
    return dataset != "digits" and not dataset.startswith("folder:")


def absent(dataset: str, split: str, data_root=None) -> bool:
    """True when the dataset's files are not here (what a card can stand in for)."""
    return can_be_absent(dataset) and source_file(dataset, split, data_root) is None


class StoredImages:
    """The images of one split as far as a card holds them: indexing returns a uint8 tensor for
    stored positions and stops with one line for any other (computing needs the dataset)."""

    def __init__(self, shape: tuple, positions: np.ndarray, images: np.ndarray, dataset: str):
        self.shape = torch.Size(shape)
        self.device = torch.device("cpu")
        self.dtype = torch.uint8
        self._row = {int(p): i for i, p in enumerate(positions)}
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self.dataset = dataset

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        wanted = np.asarray(torch.as_tensor(idx).cpu().numpy()).reshape(-1)
        if wanted.dtype == bool:
            wanted = np.flatnonzero(wanted)
        missing = [int(p) for p in wanted if int(p) not in self._row]
        if missing:
            raise SSLMemError(
                f"{len(missing)} {self.dataset} image(s) (position {missing[0]}, ...) are not in "
                "the results store, which holds only the images its pages show; this needs the "
                f"{self.dataset} data itself: put it under $SSLMEM_DATA (or ../shared/data), or "
                "let torchvision download it where the network allows")
        return self._images[[self._row[int(p)] for p in wanted]]

    def cpu(self) -> StoredImages:
        return self

    def to(self, device) -> StoredImages:
        if torch.device(device).type != "cpu":
            raise SSLMemError("stored images serve pages on the CPU only; computing on a GPU "
                              f"needs the {self.dataset} data itself")
        return self

    def detach(self) -> StoredImages:
        return self

    @property
    def stored(self) -> np.ndarray:
        return np.array(sorted(self._row), dtype=np.int64)


def write(data: ImageData, where: Path, shown, provenance: dict) -> None:
    """Store ``data``'s card at ``where`` with the images at positions ``shown``."""
    shown = np.unique(np.asarray(shown, dtype=np.int64))
    index = data.index.cpu().numpy().astype(np.int64)
    frame = pd.DataFrame({"label": data.labels.cpu().numpy().astype(np.int64)})
    identity = bool(np.array_equal(index, np.arange(len(index))))
    if not identity:
        frame["index"] = index
    if data.source_index is not None:
        frame["source_index"] = data.source_index.cpu().numpy().astype(np.int64)
    images = data.images[torch.as_tensor(shown, device=data.images.device)].cpu().numpy()
    buffer = io.BytesIO()
    with signals_deferred():  # a Ctrl-C inside zipfile would surface as its ValueError
        np.savez_compressed(buffer, positions=shown, images=images)
    with atomic_path(where.with_name(where.name + "-images.npz")) as tmp:
        tmp.write_bytes(buffer.getvalue())
    write_frame(where.with_name(where.name + ".csv.gz"), frame, provenance)
    write_record(where.with_name(where.name + "-card.json"), {
        "dataset": data.name, "split": data.split, "shape": list(data.images.shape),
        "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std),
        "fingerprint": fingerprint(data), "index": "identity" if identity else "stored",
        "shown": len(shown), "images_sha256": sha256_bytes(buffer.getvalue())}, provenance)


def card(where: Path) -> dict | None:
    """The card's record at ``where`` (None when none is stored)."""
    found = read_record(where.with_name(where.name + "-card.json"))
    return None if found is None else found[0]


def read(where: Path) -> ImageData | None:
    """The split as its card stores it (None when no card is stored).

    Raises:
        CorruptResult: a part of the card fails its hash or cannot be parsed.
    """
    meta = card(where)
    if meta is None:
        return None
    found = read_frame(where.with_name(where.name + ".csv.gz"))
    images_path = where.with_name(where.name + "-images.npz")
    raw = _read_bytes(images_path)
    if found is None or raw is None:
        raise CorruptResult(f"the data card {where} is incomplete (its labels or images are "
                            "missing); restore it with git, or recompute it with the data here")
    if sha256_bytes(raw) != meta.get("images_sha256"):
        raise CorruptResult(f"{images_path} fails its SHA-256 (edited or damaged)")
    try:
        with np.load(io.BytesIO(raw)) as npz:
            positions, pixels = npz["positions"], npz["images"]
    except (OSError, ValueError, KeyError) as err:
        raise CorruptResult(f"{images_path} cannot be read ({err})") from None
    frame = found[0]
    n = len(frame)
    index = frame["index"].to_numpy() if "index" in frame else np.arange(n)
    source = frame["source_index"].to_numpy() if "source_index" in frame else None
    data = ImageData(
        name=meta["dataset"], split=meta["split"],
        images=StoredImages(tuple(meta["shape"]), positions, pixels, meta["dataset"]),
        labels=torch.tensor(frame["label"].to_numpy(), dtype=torch.int64),
        classes=tuple(meta["classes"]), index=torch.tensor(index, dtype=torch.int64),
        mean=tuple(meta["mean"]), std=tuple(meta["std"]),
        source_index=None if source is None else torch.tensor(source, dtype=torch.int64))
    data._fingerprint = meta["fingerprint"]
    return data


def check(data: ImageData, where: Path) -> None:
    """Stop when the data here is not the data the stored card (and so the store) was made
    from: its keys would find no result, and a page would say 'not stored' instead of why."""
    meta = card(where)
    if meta is not None and meta.get("fingerprint") != fingerprint(data):
        raise SSLMemError(
            f"the {data.name} {data.split} data here (fingerprint {fingerprint(data)[:12]}) is "
            f"not the data the results store was computed on ({str(meta.get('fingerprint'))[:12]}"
            "); point $SSLMEM_DATA at that copy, or recompute the profile with this data")


def mark_available(results, profile: str, dataset: str, protocol: str, provenance: dict) -> None:
    """Record that the profile's results probed ``dataset`` (so a page reading only results lists
    it where the dataset's files are absent)."""
    path = stem(results, profile, dataset, "x", None).with_name("available.json")
    write_record(path, {"dataset": dataset, "protocol": protocol}, provenance)


def was_available(results, profile: str, dataset: str) -> bool:
    """Whether the profile's results probed ``dataset`` (see :func:`mark_available`)."""
    path = stem(results, profile, dataset, "x", None).with_name("available.json")
    try:
        return read_record(path) is not None
    except CorruptResult:
        return False


def require(exp) -> None:
    """Reading only: both splits' cards of ``exp``'s data are stored (else MissingResult)."""
    from sslmem.pipeline.store import MissingResult

    for split in ("train", "test"):
        where = exp.card_stem(split)
        found = read_record(where.with_name(where.name + "-card.json"))
        if found is not None:
            exp.sources[f"data-{split}"] = found[1]
        else:
            raise MissingResult(
                f"the data card of {exp.cfg.dataset} ({split}, {exp.cfg.image_size or 'native'}"
                f" px) is not in the results store ({where}); compute it with "
                f"`sslmem plan --profile {exp.cfg.profile} --run` where the data is")


def ensure(exp, shown: dict) -> None:
    """Computing: store (or renew) the cards of ``exp``'s splits, holding the images at the
    positions ``shown[split]``; a card that already matches the data and holds them is kept."""
    for split in ("train", "test"):
        t0 = time.perf_counter()
        data = exp.train if split == "train" else exp.test
        where = exp.card_stem(split)
        wanted = np.unique(np.asarray(shown.get(split, ()), dtype=np.int64))
        meta = card(where)
        if meta is not None and meta.get("fingerprint") == fingerprint(data):
            stored = read(where)
            if np.isin(wanted, stored.images.stored).all():
                continue
            wanted = np.union1d(wanted, stored.images.stored)
        write(data, where, wanted, exp.provenance(wall={"total": time.perf_counter() - t0}))
