"""Experiments: ask for a result; it is read from the results store, or computed and stored.

Two places, two lifetimes:

    results store  (``sslmem.pipeline.store``, committed)
        <results>/<profile>/<dataset>/<method>-<key>/
        run.json, history-*, scores-*, epochs-*, probe-*, retrain-*, labelmem-*
    run cache      (``$SSLMEM_RUNS``, ephemeral)
        <runs>/<dataset>/<method>-<key>/
        f-seed0/checkpoint.pt, f-seed0/snapshots/epoch-0010.pt, g-seed0/..., removal-*/...

``<key>`` hashes every field that changes an encoder (not the scoring fields, so rescoring reuses
the encoders) *and the fingerprint of the data actually loaded*, so editing a dataset or pointing
``$SSLMEM_DATA`` at another copy never serves old encoders or scores. Each result's name adds the
hash of the fields it depends on. Everything a chapter shows is a result; encoders are only loaded
or trained for what the store lacks. With ``results_only`` (``$SSLMEM_RESULTS_ONLY=1``, the book
build) a missing result stops with a message instead of training.

Concurrency: a result is computed under a lock of its own and an encoder is trained under the
lock of its checkpoint folder, and both are re-checked once the lock is held, so processes that
share the store and the run cache (a scheduler's array of ``sslmem plan --run`` commands) never
compute the same thing twice or leave a half-written file.
"""

from __future__ import annotations

import hashlib
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sslmem.errors import CorruptFile, SSLMemError
from sslmem.io import data_root, file_stamp, runs_root
from sslmem.pipeline import datacard
from sslmem.pipeline.config import TRAIN_FIELDS, Config
from sslmem.pipeline.encoders import EncoderCache, _hash_positions, snapshot_epochs
from sslmem.pipeline.store import (
    read_frame,
    results_only_default,
    results_root,
)
from sslmem.score.evaluate import atypicality, extract_features, knn_accuracy, linear_probe
from sslmem.score.label_memorization import label_memorization
from sslmem.score.memorization import STORED_SCORE_COLUMNS, derive_scores, memorization_table
from sslmem.score.representation import scored
from sslmem.score.significance import significance_tests
from sslmem.train import downstream
from sslmem.train.augment import recipe
from sslmem.train.data import ImageData, fingerprint, load_dataset, source_file
from sslmem.train.fit import (
    load_state,
    resolve_device,
)
from sslmem.train.splits import Split, make_split

SCORE_FIELDS = ("seeds", "n_pairs", "score_variant", "score_augment", "score_seed",
                "score_precision", "representation")
ATYPICALITY_K = 10  # neighbours of the atypicality measure stored with every score table


_DATA_CACHE: dict[tuple, ImageData] = {}


def _load(name: str, split: str, *, root, device, image_size, channels=None,
          cache_root=None) -> ImageData:
    """``load_dataset`` with a per-process cache keyed by the source file's stamp (``file_stamp``:
    path, size, times, inode — any edit changes it).

    Why: a chapter or a plan builds many experiments on one dataset; each would otherwise decode
    and fingerprint it again. Folder datasets are not cached here (the data layer caches them).
    """
    if name.startswith("folder:"):
        return load_dataset(name, split, data_root=root, device=device, image_size=image_size,
                            channels=channels, cache_root=cache_root)
    source = source_file(name, split, root)
    stamp = None if source is None else file_stamp(source)
    key = (name, split, str(data_root(root)), str(device), image_size, channels, stamp)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(name, split, data_root=root, device=device,
                                        image_size=image_size, channels=channels,
                                        cache_root=cache_root)
    return _DATA_CACHE[key]


class Experiment(EncoderCache):
    """One configuration's encoders and results: stored results first, computing what is missing."""

    def __init__(self, cfg: Config | None = None, **overrides):
        cfg = cfg or Config.paper()
        cfg = cfg.replace(**overrides) if overrides else cfg
        self.cfg = cfg.resolved()
        self.device = resolve_device(self.cfg.device)
        self.results_only = (results_only_default() if self.cfg.results_only is None
                             else bool(self.cfg.results_only))
        self.wall: dict[str, float] = {}
        self.sources: dict[str, dict] = {}  # result name -> provenance of what was served
        self.train_settings: dict[str, str] = {}  # run folder -> how fit ran (calibrated)
        self.data_checked = True  # False: served from the data cards, the data itself absent

    # ---- data and keys ---------------------------------------------------------------------
    @cached_property
    def train(self) -> ImageData:
        return self._data("train")

    @cached_property
    def test(self) -> ImageData:
        return self._data("test")

    def card_stem(self, split: str) -> Path:
        """Where the data card of ``split`` lives (:mod:`sslmem.pipeline.datacard`)."""
        c = self.cfg
        return datacard.stem(c.results_root, c.profile, c.dataset, split, c.image_size)

    def _data(self, split: str) -> ImageData:
        """The split as loaded; reading only results where its files are absent, as its data
        card stores it (``data_checked`` then says the data itself was not checked)."""
        c = self.cfg
        where = self.card_stem(split)
        if self.results_only and datacard.absent(c.dataset, split, c.data_root):
            stored = datacard.read(where)
            if stored is not None:
                self.data_checked = False
                return stored
        data = _load(c.dataset, split, root=c.data_root, device=self.device,
                     image_size=c.image_size, cache_root=c.runs_root)
        if self.results_only:
            datacard.check(data, where)
        return data

    @cached_property
    def split(self) -> Split:
        c = self.cfg
        return make_split(self.train.labels.cpu().numpy(), self.test.labels.cpu().numpy(),
                          shared=c.shared, candidate=c.candidate, independent=c.independent,
                          extra=c.extra, seed=c.split_seed, protocol=c.split_protocol)

    @cached_property
    def data_fingerprint(self) -> str:
        """Hash of the train and test pixels and labels as loaded (part of every key)."""
        return hashlib.sha256((fingerprint(self.train) + fingerprint(self.test)).encode()
                              ).hexdigest()[:16]

    def key(self, *fields: str, **extra) -> str:
        """Hash of the training fields, the data, the named extra ``fields`` and ``extra``."""
        return self.cfg.key(*TRAIN_FIELDS, *fields, data=self.data_fingerprint, **extra)

    @property
    def slug(self) -> str:
        return self.cfg.dataset.replace("folder:", "folder-").replace("/", "_")[-60:]

    @cached_property
    def run_dir(self) -> Path:
        """Where this configuration's checkpoints and snapshots live (machine-local, ephemeral)."""
        return runs_root(self.cfg.runs_root) / self.slug / f"{self.cfg.method}-{self.key()}"

    @cached_property
    def store_dir(self) -> Path:
        """Where this configuration's results live in the store (small, committed)."""
        return (results_root(self.cfg.results_root) / self.cfg.profile / self.slug
                / f"{self.cfg.method}-{self.key()}")


    # ---- scoring ----------------------------------------------------------------------------
    def _augment(self):
        name = self.cfg.method if self.cfg.score_augment == "train" else "score"
        if name == "supervised":
            return recipe("score", self.train.image_size)
        # scored on the views the encoder trained on (at their strength)
        return recipe(name, self.train.image_size,
                      self.cfg.augment_strength if name == self.cfg.method else 1.0)

    def scored(self, encoder):
        """What SSLMem compares for ``encoder``: its pooled feature or a ViT's every token."""
        return scored(encoder, self.cfg.representation)

    def _score_kwargs(self) -> dict:
        c = self.cfg
        return dict(n_pairs=c.n_pairs, augment=self._augment(), variant=c.score_variant,
                    seed=c.score_seed, device=self.device, amp=self.amp,
                    precision=c.score_precision)

    @property
    def amp(self) -> bool:
        """bf16 autocast for frozen forward passes on CUDA: as the configured precision."""
        return self.cfg.precision == "bf16"

    def _meta(self) -> dict:
        return {"dataset": self.cfg.dataset, "split_fingerprint": self.split.fingerprint(),
                "method": self.cfg.method}

    def scores(self) -> pd.DataFrame:
        """The memorization table of all four subsets (S_S, S_C, S_I, S_E), over cfg.seeds.

        Besides the scores, each point's ``atypicality`` in g's representation (mean distance to
        its ``ATYPICALITY_K`` nearest training images of g, itself excluded) is computed here,
        while the encoders exist, so chapter 2 needs no encoder.
        """
        name = f"scores-{self.key(*SCORE_FIELDS, atypicality_k=ATYPICALITY_K)}"
        return derive_scores(self._cached(name, "the scores", self._compute_scores, table=True))

    def _compute_scores(self) -> pd.DataFrame:
        fs = [self.encoder("f", s).encoder for s in self.cfg.seeds]
        gs = [self.encoder("g", s).encoder for s in self.cfg.seeds]
        t0 = time.perf_counter()
        table = memorization_table([self.scored(e) for e in fs], [self.scored(e) for e in gs],
                                   self.train, self.test, self.split,
                                   f_train=self.split.f_train, g_train=self.split.g_train,
                                   f_meta=self._meta(), g_meta=self._meta(),
                                   **self._score_kwargs())
        self.wall["score"] = time.perf_counter() - t0
        table["atypicality"] = self._atypicality(table, gs[0]).numpy()
        return table[[*STORED_SCORE_COLUMNS, "atypicality"]]

    def _atypicality(self, table: pd.DataFrame, g) -> torch.Tensor:
        reference_pos = self.split.g_train
        reference = self.train.images[torch.as_tensor(reference_pos,
                                                      device=self.train.images.device)]
        is_test = (table.subset == "extra").to_numpy()
        pos = table.position.to_numpy()
        queries = torch.empty((len(table), *reference.shape[1:]), dtype=torch.uint8,
                              device=reference.device)
        for mask, data in ((~is_test, self.train), (is_test, self.test)):
            if mask.any():
                rows = torch.as_tensor(np.flatnonzero(mask), device=reference.device)
                queries[rows] = data.images[torch.as_tensor(pos[mask],
                                                            device=data.images.device)]
        slot = np.searchsorted(reference_pos, pos)
        inside = (~is_test) & (slot < len(reference_pos))
        inside[inside] = reference_pos[slot[inside]] == pos[inside]
        exclude = np.where(inside, slot, -1)
        return atypicality(g, reference, queries, k=ATYPICALITY_K, exclude=exclude)

    def significance(self) -> pd.DataFrame:
        """The paper's one-sided t-tests (S_C above S_S and S_E; S_I below them) on raw scores."""
        return significance_tests(self.scores())

    def scores_over_epochs(self, subsets=("candidate", "independent", "shared", "extra"),
                           max_points: int = 1000) -> pd.DataFrame:
        """Mean raw score per subset for each snapshot epoch (the first seed's f/g pair)."""
        name = "epochs-" + self.key(*SCORE_FIELDS, max_points=max_points,
                                    subsets=sorted(subsets))

        def compute():
            seed = self.cfg.seeds[0]
            self.encoder("f", seed), self.encoder("g", seed)
            t0 = time.perf_counter()
            rows = []
            for epoch in snapshot_epochs(self.cfg.epochs):
                f_enc, g_enc = self.build(seed).encoder, self.build(seed).encoder
                for enc, which in ((f_enc, "f"), (g_enc, "g")):
                    snap = (self.run_dir / f"{which}-seed{seed}" / "snapshots"
                            / f"epoch-{epoch:04d}.pt")
                    if not snap.exists():
                        raise SSLMemError(f"snapshot {snap} is missing (the checkpoint was kept "
                                          "but its snapshots were deleted); delete "
                                          f"{snap.parent.parent} to retrain")
                    enc.load_state_dict(_snapshot(snap))
                    enc.to(self.device).eval()
                table = memorization_table(self.scored(f_enc), self.scored(g_enc),
                                           self.train, self.test,
                                           _subsample(self.split, max_points),
                                           **self._score_kwargs())
                for subset, group in table.groupby("subset"):
                    if subset in subsets:
                        rows.append({"epoch": epoch, "subset": subset,
                                     "score_raw": float(group.score_raw.mean()),
                                     "sem": float(group.score_raw.sem()), "n": len(group)})
            self.wall["score over epochs"] = time.perf_counter() - t0
            return pd.DataFrame(rows)

        return self._cached(name, "the scores over epochs", compute, table=True)

    # ---- probes and label memorization --------------------------------------------------------
    def probe(self, which: str = "f", seed: int | None = None, dataset: str | None = None,
              max_train: int | None = None, max_test: int | None = None) -> dict:
        """Linear-probe and kNN accuracy of a frozen encoder on a downstream dataset.

        ``dataset=None`` probes on this experiment's dataset (train -> test); another name loads
        that dataset at this experiment's image size and channel count.
        """
        seed = self.cfg.seeds[0] if seed is None else seed
        name = dataset or self.cfg.dataset
        caps = {"max_train": max_train} | ({"max_test": max_test} if max_test else {})
        key = self.key(which=which, seed=seed, probe=name, **caps)
        return self._cached(f"probe-{key}", f"the probe of {which} on {name}",
                            lambda: self.probe_encoder(self.encoder(which, seed).encoder, name,
                                                       max_train=max_train, max_test=max_test),
                            table=False)

    def probe_encoder(self, encoder, dataset: str, *, max_train: int | None = None,
                      max_test: int | None = None) -> dict:
        """Probe any encoder on ``dataset`` (train split -> test split); not stored.

        ``max_train``/``max_test`` cap the images used (a seeded random subset), which is what
        makes a probe per retrained encoder affordable on a CPU.
        """
        how = downstream.TRAIN_TEST
        if dataset == self.cfg.dataset:
            tr, te = self.train, self.test
        else:
            kw = dict(root=self.cfg.data_root, device=self.device,
                      image_size=self.train.image_size, channels=self.train.channels,
                      cache_root=self.cfg.runs_root)
            how = downstream.protocol(dataset, self.cfg.data_root)
            te = _load(dataset, "test", **kw)
            if how == downstream.TEST_HALVES:
                first, second = downstream.test_halves(te.labels.cpu().numpy())
                tr, te = te.subset(first), te.subset(second)
            else:
                tr = _load(dataset, "train", **kw)
        if max_train is not None and len(tr) > max_train:
            tr = tr.subset(np.random.default_rng(0).permutation(len(tr))[:max_train])
        if max_test is not None and len(te) > max_test:
            te = te.subset(np.random.default_rng(1).permutation(len(te))[:max_test])
        ftr = extract_features(encoder, tr.images, amp=self.amp)
        fte = extract_features(encoder, te.images, amp=self.amp)
        extra = {} if how == downstream.TRAIN_TEST else {"protocol": how}
        return {"dataset": dataset, "n_train": len(tr), "n_test": len(te), **extra,
                "linear": linear_probe(ftr, tr.labels, fte, te.labels)["accuracy"],
                "knn": knn_accuracy(ftr, tr.labels, fte, te.labels)}

    def retrain(self, keep, *, seed: int, tag: str, probe_sets, max_train=None,
                max_test=None) -> dict:
        """Pre-train one encoder on ``train[keep]`` and probe it on each of ``probe_sets``.

        Chapter 4's removal experiments: the stored record holds the probes and the size of the
        pre-training set, and the encoder's history is stored beside it.
        """
        keep = np.sort(np.asarray(keep, dtype=np.int64))
        probe_sets = list(probe_sets)
        caps = {"max_train": max_train} | ({"max_test": max_test} if max_test else {})
        key = self.key(positions=_hash_positions(keep), seed=seed, probe_sets=probe_sets,
                       **caps)

        def compute():
            encoder = self.train_on(keep, seed=seed, tag=tag).encoder
            history = read_frame(self.store_dir / f"{self._history_name(tag, seed, keep)}.csv.gz")
            return {"tag": tag, "seed": seed, "n_pretrain": len(keep),
                    "train_seconds": float(history[0]["seconds"].sum()),
                    "probes": {name: self.probe_encoder(encoder, name, max_train=max_train,
                                                        max_test=max_test)
                               for name in probe_sets}}

        return self._cached(f"retrain-{key}", f"the retrained encoder {tag}", compute,
                            table=False)

    def label_memorization(self) -> pd.DataFrame:
        """Feldman's label memorization of the candidates (method must be 'supervised')."""
        if self.cfg.method != "supervised":
            raise SSLMemError("label memorization needs method='supervised' "
                              f"(this experiment trains {self.cfg.method!r})")

        def compute():
            fs = [self.encoder("f", s).classifier for s in self.cfg.seeds]
            gs = [self.encoder("g", s).classifier for s in self.cfg.seeds]
            cand = self.train.subset(self.split.candidate)
            frame = label_memorization(fs, gs, cand.images, cand.labels, index=cand.index,
                                       device=self.device, amp=self.amp)
            frame.insert(0, "position", self.split.candidate)
            return frame

        return self._cached(f"labelmem-{self.key('seeds')}", "the label memorization", compute,
                            table=True)


def _snapshot(path: Path) -> dict:
    """An encoder snapshot's state dict (hash-checked; a corrupt one says how to retrain)."""
    try:
        state = load_state(path, "cpu", what="snapshot")
    except CorruptFile as err:
        raise SSLMemError(f"{err}; delete {path.parent.parent} to retrain this encoder") from None
    return state.get("encoder", state)  # snapshots before hashing held the state dict itself


def _subsample(split: Split, n: int) -> Split:
    """The same split with at most ``n`` points per subset (first ``n`` of each, sorted)."""
    d = split.to_dict()
    d.pop("fingerprint")
    for name in ("shared", "candidate", "independent", "extra"):
        d[name] = list(d[name])[:n]
    return Split.from_dict(d)
