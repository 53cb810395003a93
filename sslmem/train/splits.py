"""The paper's split protocol: S_S, S_C, S_I from the training set and S_E from the test set.

SSLMem compares an encoder f trained on S_S ∪ S_C with an encoder g trained on S_S ∪ S_I; the
score is reported on the candidates S_C, and S_S (seen by both), S_I (seen by g only) and S_E
(seen by neither: drawn from the test split) are the controls (spec §1.7, §2.1).

A :class:`Split` holds *positions* (sorted int64 arrays) into the train ImageData (and into the
test ImageData for ``extra``), not original indices: a split is then valid for any view of the
same data (device, resized, grey). Where an original index is needed (C-scores, figures), map
at use time: ``train.index[split.candidate]``; :meth:`Split.to_frame` does it for saving.

``protocol="random"``: class-stratified draws, deterministic by seed. Every subset gets, per class,
its proportional share rounded down or up (largest remainder, corrected jointly over the subsets
so that no class is over-drawn), so each per-class count is within 1 of proportional and a valid
allocation always exists once the sizes fit the set (a rare class simply gets 0 in a tiny subset).
``protocol="paper"``: the authors' CIFAR-10 split by index (S_S = 0-39,999, S_C = 40,000-44,999,
S_I = 45,000-49,999 of the 50,000 training images, as in their code); their S_E source is not
documented (spec §2.1: unverified), so S_E is our choice: a stratified random draw of 5,000 test
images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sslmem.errors import SSLMemError, unknown_choice

PROTOCOLS = ("random", "paper")
TRAIN_SUBSETS = ("shared", "candidate", "independent")
SUBSETS = TRAIN_SUBSETS + ("extra",)
DEFAULT_SIZES = {"shared": 0.8, "candidate": 0.1, "independent": 0.1}  # REV3: 80 / 10 / 10 %
PAPER_RANGES = {"shared": (0, 40_000), "candidate": (40_000, 45_000),
                "independent": (45_000, 50_000)}
PAPER_TRAIN = 50_000
PAPER_EXTRA = 5_000


@dataclass(frozen=True, eq=False)
class Split:
    """Positions of S_S, S_C, S_I in the train split and of S_E in the test split.

    Arrays are stored sorted, int64 and read-only; construction checks that they are in range,
    free of repeats, that the three train subsets are disjoint and that S_C is not empty.
    """

    shared: np.ndarray
    candidate: np.ndarray
    independent: np.ndarray
    extra: np.ndarray
    n_train: int
    n_test: int
    protocol: str = "random"
    seed: int | None = None

    def __post_init__(self):
        for name in SUBSETS:
            n = self.n_test if name == "extra" else self.n_train
            object.__setattr__(self, name, _positions(getattr(self, name), name, n))
        if len(self.candidate) == 0:
            raise SSLMemError("the candidate set S_C is empty: nothing would be scored")
        for i, a in enumerate(TRAIN_SUBSETS):
            for b in TRAIN_SUBSETS[i + 1:]:
                both = np.intersect1d(getattr(self, a), getattr(self, b))
                if len(both):
                    raise SSLMemError(f"{a} and {b} overlap in {len(both)} positions (first: "
                                      f"{both[:5].tolist()}); the subsets must be disjoint")

    @property
    def f_train(self) -> np.ndarray:
        """Training positions of f, the encoder that sees the candidates: S_S ∪ S_C."""
        return np.union1d(self.shared, self.candidate)

    @property
    def g_train(self) -> np.ndarray:
        """Training positions of g, the reference encoder: S_S ∪ S_I."""
        return np.union1d(self.shared, self.independent)

    def subsets(self):
        """Yield (name, positions, split_name) for shared, candidate, independent, extra."""
        for name in SUBSETS:
            yield name, getattr(self, name), "test" if name == "extra" else "train"

    def check(self, train, test) -> None:
        """Raise unless ``train``/``test`` (anything with a length) have the sizes this split
        was made for; catches applying e.g. a CIFAR-10 split to cifar10-mini."""
        if (len(train), len(test)) != (self.n_train, self.n_test):
            raise SSLMemError(f"this split was made for {self.n_train} train / {self.n_test} "
                              f"test images, got {len(train)} / {len(test)}")

    def fingerprint(self) -> str:
        """SHA-256 of the four position arrays and the set sizes: equal iff the same split."""
        h = hashlib.sha256(f"{self.n_train},{self.n_test}".encode())
        for name, positions, _ in self.subsets():
            h.update(name.encode())
            h.update(positions.tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict:
        """A JSON-ready dict (positions as lists) including the fingerprint."""
        out = {"protocol": self.protocol, "seed": self.seed, "n_train": self.n_train,
               "n_test": self.n_test, "fingerprint": self.fingerprint()}
        out.update({name: positions.tolist() for name, positions, _ in self.subsets()})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        """Inverse of :meth:`to_dict`; a stored fingerprint must match the arrays."""
        missing = sorted({*SUBSETS, "n_train", "n_test"} - set(d))
        if missing:
            raise SSLMemError(f"split record lacks {missing}")
        split = cls(**{k: d[k] for k in (*SUBSETS, "n_train", "n_test")},
                    protocol=d.get("protocol", "random"), seed=d.get("seed"))
        if d.get("fingerprint") not in (None, split.fingerprint()):
            raise SSLMemError("split record does not match its fingerprint (edited or corrupt); "
                              "re-create it with make_split")
        return split

    def to_frame(self, train=None, test=None):
        """One row per point: subset, split, position, and the original ``index`` when the
        train/test ImageData are given (mapped through their ``index``)."""
        import pandas as pd

        frames = []
        for name, positions, split_name in self.subsets():
            frame = pd.DataFrame({"subset": name, "split": split_name, "position": positions})
            data = train if split_name == "train" else test
            if data is not None:
                frame["index"] = data.index.cpu().numpy()[positions]
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def __eq__(self, other) -> bool:
        return isinstance(other, Split) and self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(p)}" for name, p, _ in self.subsets())
        return (f"Split(protocol={self.protocol!r}, seed={self.seed}, {sizes}, "
                f"fingerprint={self.fingerprint()[:12]})")


def make_split(train_labels, test_labels, *, shared=None, candidate=None, independent=None,
               extra=None, seed: int = 0, protocol: str = "random") -> Split:
    """Draw the four subsets; sizes are int counts or float fractions.

    Fractions are of the train set for S_S/S_C/S_I and of the test set for S_E. Defaults: the
    paper's 80/10/10 % of the train set, and as many extra points as candidates (capped at the
    test set) so the scored sets match in size; for ``protocol="paper"`` the index ranges and
    5,000 extra points. The train subsets do not depend on the size of ``extra``.
    """
    train_labels = _labels(train_labels, "train_labels")
    test_labels = _labels(test_labels, "test_labels")
    n, m = len(train_labels), len(test_labels)
    if protocol not in PROTOCOLS:
        raise unknown_choice("split protocol", protocol, PROTOCOLS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SSLMemError(f"seed must be a non-negative int, got {seed!r}")
    requested = {"shared": shared, "candidate": candidate, "independent": independent}

    if protocol == "paper":
        if n != PAPER_TRAIN:
            raise SSLMemError(f"protocol 'paper' is the CIFAR-10 split by index (S_S = 0-39,999, "
                              f"S_C = 40,000-44,999, S_I = 45,000-49,999) and needs the 50,000 "
                              f"training images; this train set has {n}: use protocol='random'")
        for name, (lo, hi) in PAPER_RANGES.items():
            size = requested[name]
            if size is not None and _count(size, n, name, "train") != hi - lo:
                raise SSLMemError(f"protocol 'paper' fixes {name} = positions {lo}-{hi - 1} "
                                  f"({hi - lo} images); got {name}={size!r} (leave it unset)")
        train_sets = [np.arange(lo, hi) for lo, hi in PAPER_RANGES.values()]
        n_extra = _count(PAPER_EXTRA if extra is None else extra, m, "extra", "test")
    else:
        counts = [_count(DEFAULT_SIZES[k] if v is None else v, n, k, "train")
                  for k, v in requested.items()]
        if counts[1] == 0:
            raise SSLMemError(f"candidate size must be > 0 (got {candidate!r} of {n} train "
                              f"images): S_C holds the points that are scored")
        if sum(counts) > n:
            raise SSLMemError(f"shared + candidate + independent = {counts[0]} + {counts[1]} + "
                              f"{counts[2]} = {sum(counts)} exceeds the {n} training images")
        train_sets = _stratified(train_labels, counts, np.random.default_rng([seed, 0]))
        n_extra = min(counts[1], m) if extra is None else _count(extra, m, "extra", "test")
    (extra_set,) = _stratified(test_labels, [n_extra], np.random.default_rng([seed, 1]))
    return Split(*train_sets, extra_set, n_train=n, n_test=m, protocol=protocol, seed=int(seed))


def _labels(labels, what: str) -> np.ndarray:
    if hasattr(labels, "cpu"):  # a torch tensor, possibly on a GPU
        labels = labels.cpu()
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise SSLMemError(f"{what} must be a 1-D integer array, got {labels.dtype} "
                          f"{labels.shape}")
    if labels.size and labels.min() < 0:
        raise SSLMemError(f"{what} has negative labels (min {labels.min()})")
    return labels.astype(np.int64)


def _count(size, total: int, name: str, where: str) -> int:
    """An int count or a float fraction of ``total``, checked; returns the count."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, float, np.number)):
        raise SSLMemError(f"{name} size must be an int count or a float fraction, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0 <= size <= 1:
            raise SSLMemError(f"{name} fraction must be in [0, 1], got {size} (an int is a count)")
        return int(np.floor(size * total + 0.5))  # half up
    if size < 0:
        raise SSLMemError(f"{name} size must be >= 0, got {size}")
    if size > total:
        raise SSLMemError(f"{name} = {size} is larger than the {total} {where} images")
    return int(size)


def _positions(values, name: str, n: int) -> np.ndarray:
    """Sorted, unique, in-range int64 positions (read-only)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise SSLMemError(f"{name} must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    arr = np.sort(arr.astype(np.int64))
    if arr.size and (arr[0] < 0 or arr[-1] >= n):
        raise SSLMemError(f"{name} positions must lie in 0..{n - 1}, got {arr[0]}..{arr[-1]}")
    if np.any(arr[1:] == arr[:-1]):
        raise SSLMemError(f"{name} repeats positions (e.g. {arr[1:][arr[1:] == arr[:-1]][0]})")
    arr.setflags(write=False)
    return arr


def _stratified(labels: np.ndarray, sizes: list[int], rng) -> list[np.ndarray]:
    """Disjoint class-stratified draws of the given sizes; per class, shuffle then cut."""
    if len(labels) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in sizes]
    _, inverse, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    rows = np.array([*sizes, len(labels) - sum(sizes)], dtype=np.int64)  # last row: unused
    alloc = _round_matrix(rows, class_counts)
    groups = np.split(np.argsort(inverse, kind="stable"), np.cumsum(class_counts)[:-1])
    parts = [[] for _ in sizes]
    for k, members in enumerate(groups):
        cut = np.split(rng.permutation(members), np.cumsum(alloc[:, k])[:-1])
        for i in range(len(sizes)):
            parts[i].append(cut[i])
    return [np.sort(np.concatenate(p)) for p in parts]


def _round_matrix(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Integer matrix A with row sums ``rows``, column sums ``cols`` and every entry the floor or
    ceiling of the proportional share rows[i] * cols[k] / N (exact integer arithmetic).

    Each row first takes its largest remainders; columns left over- or under-full are then
    repaired along augmenting paths that move a rounded-up unit to another class within a row.
    Such a rounding always exists (controlled rounding of a matrix with integer margins).
    """
    base, rem = np.divmod(np.outer(rows, cols), cols.sum())
    up = np.zeros(base.shape, dtype=bool)
    for i in range(len(rows)):
        up[i, np.argsort(-rem[i], kind="stable")[:rows[i] - base[i].sum()]] = True
    excess = (base + up).sum(0) - cols
    while (excess > 0).any():
        start = int(np.flatnonzero(excess > 0)[0])
        prev, queue, end = {start: None}, [start], None
        while queue and end is None:  # breadth-first over classes
            k = queue.pop(0)
            for i in np.flatnonzero(up[:, k]):
                for j in np.flatnonzero((rem[i] > 0) & ~up[i]):
                    if j not in prev:
                        prev[j] = (i, k)
                        queue.append(j)
                        if excess[j] < 0:
                            end = j
        if end is None:
            raise AssertionError("no stratified rounding found")  # impossible by construction
        j = end
        while prev[j] is not None:
            i, k = prev[j]
            up[i, k], up[i, j] = False, True
            j = k
        excess[start] -= 1
        excess[end] += 1
    return base + up
