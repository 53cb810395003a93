"""The offline store of datasets: ``<data_root>/<dir>/<split>.npz`` files, their decompressed
caches, downloads.

Why a module: reading a dataset by name (:mod:`sslmem.train.data`) is one concept; where its bytes
live, how a compressed archive is decompressed once and checked on every read, and how a download
is converted into the same format is another, and the one that fails in ways a user must act on
(a missing file, a damaged cache, a read-only root).
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
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sslmem.errors import (
    CorruptFile,
    SSLMemError,
    one_line,
    read_error,
    signals_deferred,
    unreadable,
)
from sslmem.io import atomic_path, data_root_origin, file_stamp
from sslmem.io import data_root as _data_root

_DIRS = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn", "stl10": "stl10",
         "mnist": "mnist", "fashionmnist": "fashion-mnist", "cifar10-mini": "cifar10-mini"}


_TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10",
                "mnist": "MNIST", "fashionmnist": "FashionMNIST"}


_CHUNK = 4096  # images per step when converting, to bound float memory


_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, lzma.LZMAError,
                zlib.error)


class _Raw(NamedTuple):
    images: np.ndarray  # (N,C,H,W) uint8
    labels: np.ndarray
    classes: tuple[str, ...]
    index: np.ndarray
    source_index: np.ndarray | None


_NOT_DOWNLOADABLE = "it is not downloadable"


def _offline_path(name: str, split: str, data_root) -> Path:
    """``<data root>/<dir>/<split>.npz``; a data root that exists but is no folder is refused."""
    root = _data_root(data_root)
    if root.exists() and not root.is_dir():
        raise SSLMemError(f"the data root {data_root_origin(data_root)}, is a file, not a "
                          f"folder; set SSLMEM_DATA (or data_root=) to the folder that holds "
                          f"{_DIRS[name]}/<split>.npz")
    return root / _DIRS[name] / f"{split}.npz"


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
    # zipfile's close refuses an open member, so a Ctrl-C mid-member would surface as a
    # ValueError: the signal waits for the write instead
    with signals_deferred(), atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


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


SPLITS = ("train", "test")
