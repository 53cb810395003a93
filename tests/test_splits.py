"""sslmem.train.splits: the S_S / S_C / S_I / S_E protocol, its guarantees and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.train.splits import Split, _round_matrix, make_split

CIFAR_TRAIN = np.repeat(np.arange(10), 5000)
CIFAR_TEST = np.repeat(np.arange(10), 1000)
RNG = np.random.default_rng(0)
SKEWED = RNG.choice(7, size=3001, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.04, 0.01])  # uneven classes
SKEWED_TEST = RNG.choice(7, size=777, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.04, 0.01])


def test_disjoint_and_sizes():
    split = make_split(SKEWED, SKEWED_TEST, shared=0.5, candidate=300, independent=0.1, extra=100)
    sizes = [len(p) for _, p, _ in split.subsets()]
    assert sizes == [1501, 300, 300, 100]  # fractions round half up: 0.5 * 3001 -> 1501
    train = np.concatenate([split.shared, split.candidate, split.independent])
    assert len(np.unique(train)) == len(train) and train.max() < 3001 and split.extra.max() < 777
    for _, positions, _ in split.subsets():
        assert positions.dtype == np.int64 and np.all(np.diff(positions) > 0)  # sorted, unique
    assert np.array_equal(split.f_train, np.sort(np.r_[split.shared, split.candidate]))
    assert np.array_equal(split.g_train, np.sort(np.r_[split.shared, split.independent]))
    assert [(n, s) for n, _, s in split.subsets()] == [
        ("shared", "train"), ("candidate", "train"), ("independent", "train"), ("extra", "test")]
    with pytest.raises(ValueError):
        split.candidate[0] = 5  # read-only


def test_defaults_are_the_paper_fractions():
    split = make_split(CIFAR_TRAIN, CIFAR_TEST)
    assert [len(p) for _, p, _ in split.subsets()] == [40_000, 5_000, 5_000, 5_000]
    assert len(make_split(SKEWED, SKEWED_TEST[:50]).extra) == 50  # capped at the test set


def test_determinism_and_fingerprint():
    a = make_split(SKEWED, SKEWED_TEST, seed=3)
    b = make_split(torch.from_numpy(SKEWED), list(SKEWED_TEST), seed=3)
    c = make_split(SKEWED, SKEWED_TEST, seed=4)
    assert a == b and a.fingerprint() == b.fingerprint() and hash(a) == hash(b)
    assert not np.array_equal(a.candidate, c.candidate) and a.fingerprint() != c.fingerprint()
    # the extra size does not move the train subsets
    d = make_split(SKEWED, SKEWED_TEST, seed=3, extra=10)
    assert np.array_equal(a.candidate, d.candidate) and a.fingerprint() != d.fingerprint()


@pytest.mark.parametrize("labels,test", [(SKEWED, SKEWED_TEST), (CIFAR_TRAIN, CIFAR_TEST)])
def test_stratified_within_one(labels, test):
    split = make_split(labels, test, shared=0.6, candidate=0.2, independent=0.2, extra=0.3)
    for _, positions, name in split.subsets():
        source = labels if name == "train" else test
        counts = np.bincount(source[positions], minlength=source.max() + 1)
        expected = len(positions) * np.bincount(source) / len(source)
        assert np.all(np.abs(counts - expected) < 1), (name, counts, expected)


def test_round_matrix_many_shapes():
    rng = np.random.default_rng(1)
    for _ in range(300):
        cols = rng.integers(1, 40, rng.integers(1, 12))
        cuts = np.sort(rng.integers(0, cols.sum() + 1, 3))
        rows = np.diff(np.r_[0, cuts, cols.sum()])
        alloc = _round_matrix(rows, cols)
        share = np.outer(rows, cols) / cols.sum()
        assert np.array_equal(alloc.sum(1), rows) and np.array_equal(alloc.sum(0), cols)
        assert np.all(np.abs(alloc - share) < 1)


def test_paper_protocol():
    split = make_split(CIFAR_TRAIN, CIFAR_TEST, protocol="paper", seed=1)
    assert np.array_equal(split.shared, np.arange(40_000))
    assert np.array_equal(split.candidate, np.arange(40_000, 45_000))
    assert np.array_equal(split.independent, np.arange(45_000, 50_000))
    assert len(split.extra) == 5_000 and np.all(np.bincount(CIFAR_TEST[split.extra]) == 500)
    same = make_split(CIFAR_TRAIN, CIFAR_TEST, protocol="paper", seed=1,
                      shared=40_000, candidate=0.1, independent=5_000)
    assert same == split
    with pytest.raises(SSLMemError, match="needs the 50,000 training images; .* has 2000"):
        make_split(CIFAR_TRAIN[:2000], CIFAR_TEST, protocol="paper")
    with pytest.raises(SSLMemError, match="fixes candidate = positions 40000-44999"):
        make_split(CIFAR_TRAIN, CIFAR_TEST, protocol="paper", candidate=1000)
    with pytest.raises(SSLMemError, match="unknown split protocol 'papers'"):
        make_split(CIFAR_TRAIN, CIFAR_TEST, protocol="papers")


@pytest.mark.parametrize("kwargs,message", [
    ({"candidate": 0}, "candidate size must be > 0"),
    ({"shared": -5}, "shared size must be >= 0, got -5"),
    ({"independent": 1.5}, r"independent fraction must be in \[0, 1\], got 1.5"),
    ({"shared": 3002}, "shared = 3002 is larger than the 3001 train images"),
    ({"shared": 0.9, "candidate": 0.1, "independent": 0.1},
     r"2701 \+ 300 \+ 300 = 3301 exceeds the 3001 training images"),
    ({"extra": 778}, "extra = 778 is larger than the 777 test images"),
    ({"candidate": "10"}, "must be an int count or a float fraction"),
    ({"candidate": True}, "must be an int count or a float fraction"),
    ({"seed": -1}, "seed must be a non-negative int"),
])
def test_bad_sizes(kwargs, message):
    with pytest.raises(SSLMemError, match=message):
        make_split(SKEWED, SKEWED_TEST, **kwargs)


def test_bad_labels():
    with pytest.raises(SSLMemError, match="1-D integer"):
        make_split(np.zeros((4, 2), dtype=int), CIFAR_TEST)
    with pytest.raises(SSLMemError, match="negative labels"):
        make_split(np.array([0, -1, 1] * 10), CIFAR_TEST)


def test_explicit_split_validation():
    ok = Split([0, 1], [3, 2], [4], [0], n_train=6, n_test=2)
    assert ok.candidate.tolist() == [2, 3]  # stored sorted
    with pytest.raises(SSLMemError, match=r"shared and candidate overlap in 1 positions"):
        Split([0, 2], [2, 3], [4], [0], n_train=6, n_test=2)
    with pytest.raises(SSLMemError, match="candidate set S_C is empty"):
        Split([0], [], [4], [0], n_train=6, n_test=2)
    with pytest.raises(SSLMemError, match=r"extra positions must lie in 0..1, got 0..2"):
        Split([0], [1], [4], [0, 2], n_train=6, n_test=2)
    with pytest.raises(SSLMemError, match="independent repeats positions"):
        Split([0], [1], [4, 4], [0], n_train=6, n_test=2)
    with pytest.raises(SSLMemError, match="made for 6 train / 2 test images, got 5 / 2"):
        ok.check(range(5), range(2))
    ok.check(range(6), range(2))


def test_round_trip_and_frame():
    split = make_split(SKEWED, SKEWED_TEST, seed=2)
    record = json.loads(json.dumps(split.to_dict()))
    back = Split.from_dict(record)
    assert back == split and back.seed == 2 and back.protocol == "random"
    record["candidate"][0] = record["shared"][0]
    with pytest.raises(SSLMemError, match="overlap"):
        Split.from_dict(record)
    record = split.to_dict()
    record["extra"] = record["extra"][1:]
    with pytest.raises(SSLMemError, match="does not match its fingerprint"):
        Split.from_dict(record)
    with pytest.raises(SSLMemError, match=r"lacks \['extra'\]"):
        Split.from_dict({k: v for k, v in split.to_dict().items() if k != "extra"})

    class Data:  # the part of ImageData that to_frame reads
        def __init__(self, n):
            self.index = torch.arange(n) + 1000

    frame = split.to_frame(Data(3001), Data(777))
    assert len(frame) == sum(len(p) for _, p, _ in split.subsets())
    cand = frame[frame.subset == "candidate"]
    assert cand["index"].tolist() == (split.candidate + 1000).tolist()
    assert set(frame.split) == {"train", "test"}
