"""``folder:PATH`` datasets: your own ImageFolder tree, converted once into the offline format.

Why a module: converting a user's image tree (decoding, resizing, a held-out split when the tree
has no train/ and test/) is its own concern, keyed by a hash of the tree so an edit is noticed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from sslmem.errors import (
    CorruptFile,
    SSLMemError,
    read_error,
    unreadable,
)
from sslmem.train.datastore import SPLITS, _Raw, _read_npz, _write_npz

_FOLDER_SIZE = 32  # default side length for folder: datasets


_HOLDOUT = 0.2  # test fraction of a folder: tree without train/ and test/


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
