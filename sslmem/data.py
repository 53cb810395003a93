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

import contextlib
import hashlib
import lzma
import os
import shutil
import stat
import warnings
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from sslmem.errors import (
    CorruptFile,
    SSLMemError,
    one_line,
    read_error,
    unknown_choice,
    unreadable,
)
from sslmem.io import atomic_path, data_root_origin, file_stamp, runs_root
from sslmem.io import data_root as _data_root

DATASETS = ("cifar10", "cifar100", "svhn", "stl10", "mnist", "fashionmnist", "cifar10-mini",
            "digits")
SPLITS = ("train", "test")
_DIRS = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn", "stl10": "stl10",
         "mnist": "mnist", "fashionmnist": "fashion-mnist", "cifar10-mini": "cifar10-mini"}
_TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10",
                "mnist": "MNIST", "fashionmnist": "FashionMNIST"}
_NATIVE = {"digits": (32, 3)}  # (image_size, channels) served when the caller passes None
_FOLDER_SIZE = 32  # default side length for folder: datasets
_HOLDOUT = 0.2  # test fraction of a folder: tree without train/ and test/
_CHUNK = 4096  # images per step when converting, to bound float memory
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, lzma.LZMAError,
                zlib.error)


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


class _Raw(NamedTuple):
    images: np.ndarray  # (N,C,H,W) uint8
    labels: np.ndarray
    classes: tuple[str, ...]
    index: np.ndarray
    source_index: np.ndarray | None


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


_NOT_DOWNLOADABLE = "it is not downloadable"


def _offline_path(name: str, split: str, data_root) -> Path:
    """``<data root>/<dir>/<split>.npz``; a data root that exists but is no folder is refused."""
    root = _data_root(data_root)
    if root.exists() and not root.is_dir():
        raise SSLMemError(f"the data root {data_root_origin(data_root)}, is a file, not a "
                          f"folder; set SSLMEM_DATA (or data_root=) to the folder that holds "
                          f"{_DIRS[name]}/<split>.npz")
    return root / _DIRS[name] / f"{split}.npz"


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


def _stored(name: str, split: str, data_root, download: bool, cache: Path) -> _Raw:
    """Read ``<root>/<dir>/<split>.npz``, downloading it first if it is absent and allowed."""
    path = _offline_path(name, split, data_root)
    root = path.parent.parent
    if not path.exists():
        if name not in _TORCHVISION:
            _missing(name, path, data_root, _NOT_DOWNLOADABLE)
        if not download:
            _missing(name, path, data_root, "download=False")
        if not _writable(root):
            _missing(name, path, data_root, f"the data root {root} is read-only, so nothing is "
                                            "downloaded into it")
        try:
            _download(name, root)
        except Exception as err:  # noqa: BLE001 - any failure means "not available"; say so once
            _missing(name, path, data_root, f"download failed: {type(err).__name__}: {err}")
    return _read_npz(path, cache / _DIRS[name])


def _missing(name: str, path: Path, data_root, why: str):
    """Stop with where the file was looked for, where that folder came from, and what to do
    (a download is suggested only for a dataset torchvision can fetch)."""
    fetch = (", or run once with network access (download=True, the default of sslmem's "
             "commands) to fetch it with torchvision" if name in _TORCHVISION else
             f"; it ships in the shared data folder: copy ../shared/data/{_DIRS[name]} into "
             "the data root")
    raise SSLMemError(
        f"dataset {name!r} not found: looked for {path} ({why}); the data root is "
        f"{data_root_origin(data_root)}. To provide it, set SSLMEM_DATA (or data_root=) "
        f"to a folder holding {_DIRS[name]}/<split>.npz (arrays images (N,H,W,C) uint8, labels, "
        f"classes; see ../shared/data/README.md){fetch}") from None


def _writable(root: Path) -> bool:
    """Whether a download may write here: the nearest existing folder is writable and not
    marked read-only (the owner-write bit is honoured even for root, who bypasses it)."""
    existing = next(p for p in (root, *root.parents) if p.exists())
    return os.access(existing, os.W_OK) and bool(existing.stat().st_mode & stat.S_IWUSR)


def _download(name: str, root: Path) -> None:
    """Fetch both splits with torchvision and store them as ``<root>/<dir>/{train,test}.npz``."""
    import torchvision.datasets as tvd

    target = root / "_downloads" / _DIRS[name]
    created = [p for p in (root / "_downloads", target) if not p.exists()]
    try:
        target.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            kwargs = ({"split": split} if name in ("svhn", "stl10")
                      else {"train": split == "train"})
            ds = getattr(tvd, _TORCHVISION[name])(str(target), download=True, **kwargs)
            _write_npz(root / _DIRS[name] / f"{split}.npz", compressed=True,
                       **_torchvision_arrays(name, ds))
    except BaseException:
        with contextlib.suppress(OSError):
            (root / _DIRS[name]).rmdir()  # only if empty: nothing was converted
        raise
    finally:
        for p in reversed(created):
            shutil.rmtree(p, ignore_errors=True)


def _torchvision_arrays(name: str, ds) -> dict[str, np.ndarray]:
    """A torchvision dataset's arrays in the shared .npz layout (channel-last)."""
    images = np.asarray(ds.data)
    if name in ("svhn", "stl10"):
        images = images.transpose(0, 2, 3, 1)
    elif images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels, dtype=np.int64)
    classes = getattr(ds, "classes", None) or [str(k) for k in range(int(labels.max()) + 1)]
    return {"images": np.ascontiguousarray(images, dtype=np.uint8), "labels": labels,
            "classes": np.asarray(classes, dtype=str)}


def _write_npz(path: Path, compressed: bool, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


# --- the .npz reader and its cache -----------------------------------------------------------


def _read_npz(path: Path, cache_dir: Path) -> _Raw:
    """Read and check an .npz; a compressed ``images`` member is served from a plain .npy cache.

    Raises:
        CorruptFile: the archive was read but is damaged or not in the expected format.
        SSLMemError: it cannot be read at all (permissions, I/O): nothing is touched.
    """
    cache = images = None
    try:
        with _open_npz(path) as z:
            missing = sorted({"images", "labels", "classes"} - set(z.files))
            if missing:
                raise ValueError(f"missing arrays {missing}")
            labels, classes = z["labels"], z["classes"]
            index = z["index"] if "index" in z.files else np.arange(len(labels))
            source_index = z["source_index"] if "source_index" in z.files else None
            _check_labels(labels, classes, index, source_index)
            if z.zip.getinfo("images.npy").compress_type != zipfile.ZIP_STORED:
                cache = cache_dir / f"{path.stem}-{file_stamp(path)}.npy"
                images = _read_cache(cache, len(labels))
            if images is None:
                images = z["images"]
                if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
                    raise ValueError(f"images must be uint8 (N,H,W,C) with C in (1,3), got "
                                     f"{images.dtype} {images.shape}")
                if len(images) != len(labels):
                    raise ValueError(f"{len(images)} images but {len(labels)} labels")
                images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
            else:
                cache = None  # served from the cache: nothing to write
    except _READ_ERRORS as err:
        if unreadable(err):
            raise read_error(path, err) from None
        raise CorruptFile(f"{path} is corrupt or truncated ({type(err).__name__}: {err}); "
                          f"delete it and download or copy it again") from None
    if cache is not None:
        _write_cache(cache, images, path)
    return _Raw(images, labels.astype(np.int64), tuple(str(c) for c in classes),
                index.astype(np.int64),
                None if source_index is None else source_index.astype(np.int64))


def _open_npz(path: Path):
    z = np.load(path)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    return z


def _check_labels(labels: np.ndarray, classes: np.ndarray, index, source_index) -> None:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if classes.ndim != 1:
        raise ValueError(f"classes must be 1-D, got shape {classes.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels outside 0..{len(classes) - 1}")
    for what, arr in (("index", index), ("source_index", source_index)):
        if arr is not None and arr.shape != labels.shape:
            raise ValueError(f"{what} has shape {arr.shape}, labels {labels.shape}")


def _pixels_sha256(images: np.ndarray) -> str:
    h = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    h.update(np.ascontiguousarray(images))
    return h.hexdigest()


def _sidecar(cache: Path) -> Path:
    return cache.with_name(cache.name + ".sha256")


def _read_cache(cache: Path, n: int) -> np.ndarray | None:
    """The cached images if whole and unchanged (their hash matches the sidecar), else None.

    A cache without its sidecar was never completed; one that fails its hash is rebuilt (with a
    warning); one that cannot be read stops with a message and is left alone.
    """
    try:
        expected = _sidecar(cache).read_text().strip()
        images = np.load(cache, mmap_mode="c")  # copy-on-write map: pages come from the OS cache
        ok = (images.ndim == 4 and images.dtype == np.uint8 and len(images) == n
              and _pixels_sha256(images) == expected)
    except FileNotFoundError:
        return None  # absent, or its writer stopped before the sidecar (the commit marker)
    except (OSError, ValueError, EOFError) as err:
        if unreadable(err):
            raise read_error(err.filename or cache, err) from None
        ok = False
    if ok:
        return images
    warnings.warn(f"rebuilding damaged cache file {cache} (its pixels fail their hash)",
                  stacklevel=4)
    return None


def _write_cache(cache: Path, images: np.ndarray, source: Path) -> None:
    """Write the cache and then its sidecar (the commit marker); a cache is an optimization, so a
    folder that refuses it costs a warning (and time), not the run."""
    try:
        with contextlib.suppress(FileNotFoundError):
            _sidecar(cache).unlink()  # invalid until the new hash is written
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.save(f, images)
        with atomic_path(_sidecar(cache)) as tmp:
            tmp.write_text(_pixels_sha256(images) + "\n")
    except (OSError, SSLMemError) as err:
        warnings.warn(f"{one_line(err)}; {source} is decompressed on every load until the "
                      "cache can be written", stacklevel=4)


# --- folder: datasets ------------------------------------------------------------------------


def _folder(spec: str, split: str, image_size: int, cache: Path) -> _Raw:
    """An ImageFolder tree, converted once to .npz under the runs root (see load_dataset)."""
    if not spec:
        raise SSLMemError("folder: needs a path, e.g. 'folder:/data/my_images'")
    root = Path(spec).expanduser().resolve()
    if not root.is_dir():
        raise SSLMemError(f"folder dataset: {root} is not a directory; expected an ImageFolder "
                          f"tree {root}/<class>/<image> (optionally with train/ and test/)")
    out = cache / f"folder-{_folder_hash(root, image_size)}"
    path = out / f"{split}.npz"
    if path.exists():
        try:
            return _read_npz(path, out)
        except CorruptFile:  # a damaged cache file (zip CRCs cover its pixels): convert again
            warnings.warn(f"rebuilding damaged cache file {path}", stacklevel=3)
    for name, arrays in _convert_folder(root, image_size).items():
        _write_npz(out / f"{name}.npz", compressed=False, **arrays)
    return _read_npz(path, out)


def _folder_hash(root: Path, image_size: int) -> str:
    h = hashlib.sha256(f"{root}\n{image_size}\n".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fname in sorted(filenames):
            st = os.stat(os.path.join(dirpath, fname))
            rel = os.path.relpath(os.path.join(dirpath, fname), root)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n"
                     .encode())
    return h.hexdigest()[:16]


def _convert_folder(root: Path, image_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Decode, resize and label every image; returns the train and test arrays."""
    from torchvision.datasets import ImageFolder

    has = [(root / s).is_dir() for s in SPLITS]
    if any(has) and not all(has):
        raise SSLMemError(f"folder dataset {root}: found only {SPLITS[has.index(True)]}/; "
                          f"provide both train/ and test/, or neither (then 20 % is held out)")
    try:
        trees = {s: ImageFolder(str(root / s)) for s in SPLITS} if all(has) else None
        whole = None if trees else ImageFolder(str(root))
    except FileNotFoundError as err:
        raise SSLMemError(f"folder dataset {root}: {err} Expected {root}/<class>/<image> "
                          f"(optionally with train/ and test/)") from None
    if trees:
        classes = trees["train"].classes
        extra = sorted(set(trees["test"].classes) - set(classes))
        if extra:
            raise SSLMemError(f"folder dataset {root}: test/ has classes {extra} not in train/")
        parts = {}
        for s, t in trees.items():  # label by class name: test/ may have fewer class folders
            samples = [(p, classes.index(t.classes[y])) for p, y in t.samples]
            parts[s] = (samples, np.arange(len(samples)), t.root)
    else:
        classes = whole.classes
        test = _holdout(np.array(whole.targets))
        train = np.setdiff1d(np.arange(len(whole.samples)), test)
        parts = {s: ([whole.samples[i] for i in idx], idx, whole.root)
                 for s, idx in (("train", train), ("test", test))}
    return {s: _decode(samples, idx, Path(base), classes, image_size)
            for s, (samples, idx, base) in parts.items()}


def _holdout(targets: np.ndarray) -> np.ndarray:
    """Sorted test positions: ~20 % of each class (at least 1 of a class with 2+ images), seed 0."""
    rng = np.random.default_rng(0)
    test = []
    for k in np.unique(targets):
        members = np.flatnonzero(targets == k)
        n = len(members)
        take = 0 if n < 2 else min(n - 1, max(1, round(_HOLDOUT * n)))
        test.append(rng.permutation(members)[:take])
    return np.sort(np.concatenate(test)).astype(np.int64)


def _decode(samples, index, base: Path, classes, image_size: int) -> dict[str, np.ndarray]:
    from PIL import Image

    images = np.empty((len(samples), image_size, image_size, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images[i] = np.asarray(rgb)
        except OSError as err:  # PIL.UnidentifiedImageError is an OSError
            if unreadable(err):
                raise read_error(path, err) from None
            raise SSLMemError(f"folder dataset: cannot read image {path} ({err}); fix or remove "
                              f"it") from None
    return {"images": images, "labels": np.array([y for _, y in samples], dtype=np.int64),
            "classes": np.asarray(classes, dtype=str), "index": np.asarray(index, dtype=np.int64),
            "filenames": np.array([os.path.relpath(p, base) for p, _ in samples], dtype=str)}
