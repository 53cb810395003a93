"""Downstream probe sets: which datasets can be probed offline, and how.

Why a module: a downstream probe needs a probe-train and a probe-test split. Most datasets ship
both; CIFAR-100's train split is not in the offline data root (over its size budget), but its
10,000-image test split is. Such a set is probed on **halves of its test split**: a seeded
permutation, stratified by class, sends half of every class to probe-train and the rest to
probe-test. Both halves are unseen by every encoder, so the probe still measures how well
frozen features separate the classes; the record says which protocol gave it.
"""

from __future__ import annotations

import numpy as np

from sslmem.errors import SSLMemError

TRAIN_TEST = "train → test"
TEST_HALVES = "halves of the test split"
HALVES_SEED = 0


def protocol(name: str, data_root=None) -> str:
    """How ``name`` is probed offline (``TRAIN_TEST`` or ``TEST_HALVES``); raises the data
    layer's one-line :class:`SSLMemError` when not even its test split is there.

    Checks files only: listing a plan must not decompress the datasets a probe would load.
    """
    from sslmem.train.data import locate

    locate(name, "test", data_root)
    try:
        locate(name, "train", data_root)
    except SSLMemError:
        return TEST_HALVES
    return TRAIN_TEST


def missing(name: str, data_root=None, *, halves: bool = True) -> str | None:
    """None when ``name`` can be probed offline, else the reason (first sentence).

    ``halves=False``: only a set with both splits counts (the single-pair design of chapter 4,
    whose stored keys predate the halves protocol).
    """
    try:
        how = protocol(name, data_root)
    except SSLMemError as err:
        return str(err).split(". To provide")[0]
    if how == TEST_HALVES and not halves:
        return f"dataset {name!r} has no train split offline"
    return None


def test_halves(labels) -> tuple[np.ndarray, np.ndarray]:
    """(probe-train, probe-test) positions: half of every class each, seeded, disjoint."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(HALVES_SEED)
    first, second = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        first.append(idx[: len(idx) // 2])
        second.append(idx[len(idx) // 2:])
    if not all(len(a) for a in first):
        raise SSLMemError("halves of the test split need at least two images of every class")
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))
