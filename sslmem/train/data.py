"""Datasets by name, offline first, as uint8 tensors that live on the training device.

Why uint8 on the device: CIFAR-10 is 150 MiB as uint8 and 600 MiB as float32; keeping the bytes
and converting per batch inside the augmentation (as cifar10-airbench does) is both the cheapest
and the fastest layout, and one ``ImageData`` can be sliced into the paper's subsets for free.

Where data comes from, in order:
  * ``digits``: scikit-learn's bundled ``load_digits`` (1,797 real 8x8 digits, served as 3x32x32);
    needs no files and no network, so it is the default for smoke tests.
  * ``<data_root>/<dir>/<split>.npz`` (``sslmem.io.data_root``: argument, else $SSLMEM_DATA):
    arrays ``images`` (N,H,W,C) uint8, ``labels`` int64, ``classes`` str; the format of
    ``../shared/data`` (see its README). Compressed archives (the shared ones are LZMA, ~8 s for
    CIFAR-10 train) are decompressed once into
    ``<runs_root>/_data/<dir>/<split>-<bytes>-<mtime_ns>.npy`` (channel-first, written atomically,
    checked on every read and rebuilt if damaged, memory-mapped copy-on-write), so later loads
    take a fraction of a second. The data root itself is never written, except by a download.
  * a download (``download=True``, the file is absent): the real torchvision loader fetches the
    dataset into ``<data_root>/_downloads/<dir>/``, both splits are converted to the same ``.npz``
    format at ``<data_root>/<dir>/{train,test}.npz``, and the download folder is removed again
    (if this call created it).
  * ``folder:PATH``: your own ImageFolder tree, converted once (see :func:`load_dataset`).

``index`` is each image's position in its source split (the original index for CIFAR-10, MNIST
and Fashion-MNIST, whose files keep the original order; for CIFAR-100 the file's fixed
permutation). cifar10-mini's ``index`` is its own position; ``source_index`` gives its CIFAR-10
index. STL-10 offers the labelled 'train' (5,000) and 'test' (8,000) splits at 96 px; its
'unlabeled' split is not offered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sslmem.errors import (
    SSLMemError,
    unknown_choice,
)
from sslmem.io import data_root as _data_root
from sslmem.io import runs_root
from sslmem.train.datastore import (
    _CHUNK,
    _DIRS,
    _NOT_DOWNLOADABLE,
    _TORCHVISION,
    SPLITS,
    _missing,
    _offline_path,
    _Raw,
    _stored,
)
from sslmem.train.folders import (
    _FOLDER_SIZE,
    _folder,
)

DATASETS = ("cifar10", "cifar100", "svhn", "stl10", "mnist", "fashionmnist", "cifar10-mini",
            "digits")
_NATIVE = {"digits": (32, 3)}  # (image_size, channels) served when the caller passes None


@dataclass(eq=False, repr=False)
class ImageData:
    """One split of a dataset: uint8 images (N,C,H,W), int64 labels and where each image came from.

    ``mean``/``std`` are per-channel statistics in [0,1] of the loaded split; a subset keeps its
    parent's statistics so that encoders trained on different subsets (f and g) normalize alike.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    index: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source_index: torch.Tensor | None = None  # cifar10-mini only: index into cifar10

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        """Side length in pixels (images are square)."""
        return self.images.shape[-1]

    def subset(self, idx) -> ImageData:
        """The images at positions ``idx`` (ints or a boolean mask); ``index`` keeps the origin."""
        if not isinstance(idx, torch.Tensor):
            idx = np.array(idx)  # a copy: split arrays are read-only, torch wants writable
        idx = torch.as_tensor(idx, device=self.images.device)
        idx = idx.nonzero().squeeze(1) if idx.dtype == torch.bool else idx.long()
        source = None if self.source_index is None else self.source_index[idx]
        return replace(self, images=self.images[idx], labels=self.labels[idx],
                       index=self.index[idx], source_index=source)

    def to(self, device) -> ImageData:
        """The same data on ``device`` (no copy when it is already there)."""
        source = None if self.source_index is None else self.source_index.to(device)
        return replace(self, images=self.images.to(device), labels=self.labels.to(device),
                       index=self.index.to(device), source_index=source)

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}, {self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, classes={self.num_classes}, "
                f"device={self.images.device})")


def load_dataset(name: str, split: str = "train", *, data_root=None, device="cpu",
                 image_size: int | None = None, channels: int | None = None,
                 download: bool = True, cache_root=None) -> ImageData:
    """Load one split of a dataset as uint8 tensors on ``device``.

    Args:
        name: one of ``DATASETS`` or ``folder:PATH``. A folder is an ImageFolder tree
            (``PATH/<class>/<image>``). If ``PATH/train`` and ``PATH/test`` both exist they are the
            splits; otherwise the whole tree is the train split minus a deterministic stratified
            20 % holdout (seed 0, at least one image of every class with 2+ images) that is the
            test split, and ``index`` is the position in the whole tree (sorted ImageFolder
            order). Images are squashed to ``image_size`` (default 32) squares with bilinear
            resampling and converted to RGB, once: the result is cached as ``.npz`` under
            ``<runs_root>/_data/folder-<hash>/``, the hash covering the path, the size and every
            file's name, size, times and inode, so any edit of the tree (even one that keeps
            sizes and modification times) rebuilds it.
        split: 'train' or 'test'.
        data_root: the offline data root (default $SSLMEM_DATA).
        device: where the tensors live; the conversion below runs there.
        image_size: resize to this square side (bilinear, antialiased), e.g. 28 -> 32 for MNIST.
        channels: 1 or 3; 1 -> 3 repeats the grey channel, 3 -> 1 takes ITU-R 601 luminance.
        download: fetch a missing dataset with torchvision (needs network once).
        cache_root: the run cache root whose ``_data/`` holds decompressed and converted
            copies (default: ``sslmem.io.runs_root()``, i.e. $SSLMEM_RUNS).
    """
    folder = name.startswith("folder:")
    key = name if folder else name.lower()
    if not folder and key not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS + ("folder:PATH",))
    if channels not in (None, 1, 3):
        raise SSLMemError(f"channels must be 1 or 3, got {channels!r}")
    if image_size is not None and (isinstance(image_size, bool) or
                                   not isinstance(image_size, int) or image_size < 1):
        raise SSLMemError(f"image_size must be a positive int, got {image_size!r}")
    if split not in SPLITS:
        if key == "stl10" and split == "unlabeled":
            raise SSLMemError("stl10: the 'unlabeled' split is not offered (it has no labels for "
                              "probing); use split='train' (5,000) or 'test' (8,000)")
        raise unknown_choice(f"split of {name}", split, SPLITS)
    cache = runs_root(cache_root) / "_data"
    if folder:
        raw = _folder(name[len("folder:"):], split, image_size or _FOLDER_SIZE, cache)
    elif key == "digits":
        raw = _digits(split)
    else:
        raw = _stored(key, split, data_root, download, cache)
    if len(raw.labels) == 0:
        raise SSLMemError(f"{name} split {split!r} holds no images")
    native_size, native_channels = _NATIVE.get(key, (None, None))
    images = _convert(torch.from_numpy(raw.images).to(device), image_size or native_size,
                      channels or native_channels)
    mean, std = channel_stats(images)
    source = None if raw.source_index is None else torch.from_numpy(raw.source_index).to(device)
    return ImageData(name=key, split=split, images=images,
                     labels=torch.from_numpy(raw.labels).to(device), classes=raw.classes,
                     index=torch.from_numpy(raw.index).to(device), mean=mean, std=std,
                     source_index=source)


def source_file(name: str, split: str, data_root=None) -> Path | None:
    """The offline file a named dataset split is read from, or None (digits, folders, absent)."""
    folder = _DIRS.get(name.lower())
    if folder is None:
        return None
    path = _data_root(data_root) / folder / f"{split}.npz"
    return path if path.exists() else None


def locate(name: str, split: str = "train", data_root=None) -> Path | None:
    """The offline file of a named dataset split, checked without reading it (no download).

    Returns None for datasets that need no file (digits) and for folder datasets whose folder
    exists. Raises the one-line :class:`SSLMemError` that :func:`load_dataset` would give for a
    missing file or a data root that is not a folder. Why: listing what a plan or a chapter can
    do must not decompress hundreds of MB of data it will not train on.
    """
    if name.startswith("folder:"):
        root = Path(name[len("folder:"):]).expanduser()
        if not root.is_dir():
            raise SSLMemError(f"folder dataset: {root} is not a directory")
        return None
    key = name.lower()
    if key not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS + ("folder:PATH",))
    if key == "digits":
        return None
    path = _offline_path(key, split, data_root)
    if not path.is_file():
        _missing(key, path, data_root, "checked without downloading" if key in _TORCHVISION
                 else _NOT_DOWNLOADABLE)
    return path


def fingerprint(data: ImageData) -> str:
    """SHA-256 of the pixels and labels actually served (after resizing), cached on the object.

    Why: a cache key must cover the data, not its name or path. An image folder edited in place,
    or ``$SSLMEM_DATA`` pointing at another copy of a dataset, changes this hash and so every key
    that depends on it (encoders, scores, probes). ~0.5 s for CIFAR-10 train on one CPU core.
    """
    cached = getattr(data, "_fingerprint", None)
    if cached is not None:
        return cached
    h = hashlib.sha256(f"{data.name}:{data.split}:{tuple(data.images.shape)}".encode())
    h.update(np.ascontiguousarray(data.images.cpu().numpy()))
    h.update(np.ascontiguousarray(data.labels.cpu().numpy().astype(np.int64)))
    data._fingerprint = h.hexdigest()
    return data._fingerprint


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0,1] of uint8 images, from 256-bin histograms.

    Why histograms: exact in int64, no float copy of the data, and ~0.1 s for CIFAR-10 on a CPU.
    """
    values = torch.arange(256, dtype=torch.float64, device=images.device)
    n = images.numel() // images.shape[1]
    mean, std = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        m = float(hist @ values) / n
        var = max(float(hist @ values.square()) / n - m * m, 0.0)
        mean.append(m / 255)
        std.append(var ** 0.5 / 255)
    return tuple(mean), tuple(std)


def _convert(images: torch.Tensor, image_size: int | None, channels: int | None) -> torch.Tensor:
    """Change channels (1<->3) and side length, chunk by chunk so no full float copy exists."""
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
        images = _chunked(images, lambda x: (x.float() * weights).sum(1, keepdim=True), 1)
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        images = _chunked(images, lambda x: F.interpolate(
            x.float(), size=(image_size, image_size), mode="bilinear", align_corners=False,
            antialias=True), images.shape[1], image_size)
    if channels == 3 and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    return images


def _chunked(images: torch.Tensor, fn, channels: int, size: int | None = None) -> torch.Tensor:
    """Apply a float function per chunk and store the rounded result as uint8."""
    size = size or images.shape[-1]
    out = torch.empty((len(images), channels, size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, len(images), _CHUNK):
        out[start:start + _CHUNK] = fn(images[start:start + _CHUNK]).round_().clamp_(0, 255)
    return out


# --- sources ---------------------------------------------------------------------------------


def _digits(split: str) -> _Raw:
    """scikit-learn's digits (0..16 -> 0..255), 8x8 grey; stratified 80/20 split with seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)[:, None]
    train, test = train_test_split(np.arange(len(images)), test_size=0.2,
                                   stratify=digits.target, random_state=0)
    idx = np.sort(train if split == "train" else test)
    return _Raw(images[idx], digits.target[idx].astype(np.int64),
                tuple(str(c) for c in digits.target_names), idx, None)


# --- the .npz reader and its cache -----------------------------------------------------------


# --- folder: datasets ------------------------------------------------------------------------


