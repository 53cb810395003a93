"""Cached experiments: ask for a result, and only what is missing is trained or scored.

Layout of a run directory (``$SSLMEM_RUNS/<dataset>/<method>-<training key>/``):

    run.json                     version + the training configuration (refused if incompatible)
    f-seed0/checkpoint.pt        encoder f (trained on S_S ∪ S_C), resumable
    f-seed0/snapshots/epoch-0010.pt   encoder-only snapshots for memorization-vs-epochs
    g-seed0/...                  encoder g (trained on S_S ∪ S_I)
    scores-<key>.csv/.json       the memorization table + provenance
    probe-<key>.json             downstream probe results

The training key hashes every field that changes an encoder (not the scoring fields), so
rescoring with other settings reuses the encoders. Every result is written atomically with its
provenance (config, commit, versions, device, wall time). A cache entry that cannot be read back
is reported and rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sslmem.augment import recipe
from sslmem.config import CONFIG_VERSION, TRAIN_FIELDS, Config
from sslmem.data import ImageData, load_dataset
from sslmem.errors import SSLMemError
from sslmem.evaluate import extract_features, knn_accuracy, linear_probe
from sslmem.io import atomic_path, provenance, runs_root, write_json
from sslmem.memorization import label_memorization, memorization_table, significance_tests
from sslmem.methods import Method, build_method
from sslmem.splits import Split, make_split
from sslmem.train import TrainSpec, fit, load_checkpoint, resolve_device

SNAPSHOT_EPOCHS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 800, 1000)
SCORE_FIELDS = ("seeds", "n_pairs", "score_variant", "score_augment", "score_seed")


def snapshot_epochs(epochs: int) -> list[int]:
    """Epochs at which an encoder snapshot (and a kNN monitor value) is kept: log-spaced + last."""
    return sorted({e for e in SNAPSHOT_EPOCHS if e < epochs} | {epochs})


def _hash_positions(positions) -> str:
    return hashlib.sha256(np.asarray(positions, dtype=np.int64).tobytes()).hexdigest()[:12]


def read_cached_frame(path: Path) -> pd.DataFrame | None:
    """A cached CSV with its JSON sidecar, or None (with a message) when missing or unreadable."""
    meta = path.with_suffix(".json")
    if not path.exists():
        return None
    try:
        info = json.loads(meta.read_text())
        frame = pd.read_csv(path)
        if len(frame) != info["rows"]:
            raise ValueError(f"{len(frame)} rows, expected {info['rows']}")
        return frame
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as err:
        warnings.warn(f"cache entry {path} is corrupt ({err}); rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return None


def write_cached_frame(path: Path, frame: pd.DataFrame, info: dict) -> None:
    """Write CSV then its sidecar, each atomically (the sidecar is the commit marker)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    write_json(path.with_suffix(".json"), {**info, "rows": len(frame)})


class Experiment:
    """One configuration's encoders, scores and probes, cached under a run directory."""

    def __init__(self, cfg: Config | None = None, **overrides):
        cfg = (cfg or Config.paper()).replace(**overrides) if overrides else (cfg or Config.paper())
        self.cfg = cfg.resolved()
        self.device = resolve_device(self.cfg.device)
        slug = self.cfg.dataset.replace("folder:", "folder-").replace("/", "_")[-60:]
        self.run_dir = (runs_root(self.cfg.runs_root) / slug
                        / f"{self.cfg.method}-{self.cfg.key(*TRAIN_FIELDS)}")
        self.wall: dict[str, float] = {}

    # ---- data ------------------------------------------------------------------------------
    @cached_property
    def train(self) -> ImageData:
        return load_dataset(self.cfg.dataset, "train", data_root=self.cfg.data_root,
                            device=self.device, image_size=self.cfg.image_size)

    @cached_property
    def test(self) -> ImageData:
        return load_dataset(self.cfg.dataset, "test", data_root=self.cfg.data_root,
                            device=self.device, image_size=self.cfg.image_size)

    @cached_property
    def split(self) -> Split:
        c = self.cfg
        return make_split(self.train.labels.cpu().numpy(), self.test.labels.cpu().numpy(),
                          shared=c.shared, candidate=c.candidate, independent=c.independent,
                          extra=c.extra, seed=c.split_seed, protocol=c.split_protocol)

    def _check_run_dir(self) -> None:
        """Create run.json, or refuse a directory written by an incompatible version."""
        info_path = self.run_dir / "run.json"
        if info_path.exists():
            try:
                version = json.loads(info_path.read_text()).get("version")
            except (OSError, ValueError):
                version = None
            if version != CONFIG_VERSION:
                raise SSLMemError(
                    f"run directory {self.run_dir} was written by an incompatible sslmem version "
                    f"({version} != {CONFIG_VERSION}); delete it or set SSLMEM_RUNS elsewhere")
            return
        write_json(info_path, {"version": CONFIG_VERSION, "config": self.cfg.to_dict(),
                               "split_fingerprint": self.split.fingerprint()})

    # ---- training ---------------------------------------------------------------------------
    def build(self, seed: int) -> Method:
        """A freshly initialized method for this config (weights depend only on ``seed``)."""
        c = self.cfg
        torch.manual_seed(seed)
        return build_method(c.method, c.backbone, image_size=self.train.image_size,
                            channels=self.train.channels, mean=self.train.mean,
                            std=self.train.std, num_classes=self.train.num_classes,
                            patch_size=c.patch_size)

    def train_on(self, positions, *, seed: int, tag: str) -> Method:
        """The encoder trained on ``train[positions]`` (trained now only if not cached)."""
        self._check_run_dir()
        positions = np.asarray(positions, dtype=np.int64)
        folder = self.run_dir / f"{tag}-seed{seed}"
        ckpt = folder / "checkpoint.pt"
        fingerprint = f"{self.cfg.key(*TRAIN_FIELDS)}:{tag}:{seed}:{_hash_positions(positions)}"
        method = self.build(seed)
        spec = TrainSpec.from_config(self.cfg, seed)
        if ckpt.exists():
            state = load_checkpoint(ckpt, fingerprint)
            if state["epoch"] >= spec.epochs:
                method.load_state_dict(state["model"])
                return method.to(self.device).eval()
        idx = torch.as_tensor(positions, device=self.train.images.device)
        images, labels = self.train.images[idx], self.train.labels[idx]
        keep = set(snapshot_epochs(spec.epochs))
        monitor_train = self.train.subset(positions[: min(len(positions), 10_000)])

        def on_epoch(epoch: int, m: Method) -> dict:
            if epoch not in keep:
                return {}
            with atomic_path(folder / "snapshots" / f"epoch-{epoch:04d}.pt") as tmp:
                torch.save(m.encoder.state_dict(), tmp)
            ftr = extract_features(m.encoder, monitor_train.images)
            fte = extract_features(m.encoder, self.test.images)
            return {"knn": knn_accuracy(ftr, monitor_train.labels, fte, self.test.labels)}

        t0 = time.perf_counter()
        fit(method, images, labels, spec, checkpoint=ckpt, fingerprint=fingerprint,
            device=self.device, on_epoch=on_epoch)
        self.wall[f"train {tag}-seed{seed}"] = time.perf_counter() - t0
        return method.eval()

    def encoder(self, which: str, seed: int | None = None) -> Method:
        """Encoder f (trained with the candidates) or g (with the independent set instead)."""
        if which not in ("f", "g"):
            raise SSLMemError(f"which must be 'f' or 'g', got {which!r}")
        seed = self.cfg.seeds[0] if seed is None else seed
        positions = self.split.f_train if which == "f" else self.split.g_train
        return self.train_on(positions, seed=seed, tag=which)

    def history(self, which: str = "f", seed: int | None = None) -> pd.DataFrame:
        """Per-epoch loss, learning rate, seconds and kNN monitor of a trained encoder."""
        self.encoder(which, seed)
        seed = self.cfg.seeds[0] if seed is None else seed
        state = load_checkpoint(self.run_dir / f"{which}-seed{seed}" / "checkpoint.pt")
        return pd.DataFrame(state["history"])

    # ---- scoring ----------------------------------------------------------------------------
    def _augment(self):
        name = self.cfg.method if self.cfg.score_augment == "train" else "score"
        return recipe(name if name != "supervised" else "score", self.train.image_size)

    def _score_kwargs(self) -> dict:
        c = self.cfg
        return dict(n_pairs=c.n_pairs, augment=self._augment(), variant=c.score_variant,
                    seed=c.score_seed, device=self.device)

    def _meta(self, which: str) -> dict:
        return {"dataset": self.cfg.dataset, "split_fingerprint": self.split.fingerprint(),
                "method": self.cfg.method, "trained_on": which}

    def _result_path(self, stem: str, *fields: str) -> Path:
        return self.run_dir / f"{stem}-{self.cfg.key(*TRAIN_FIELDS, *fields)}.csv"

    def scores(self) -> pd.DataFrame:
        """The memorization table of all four subsets (S_S, S_C, S_I, S_E), over cfg.seeds."""
        path = self._result_path("scores", *SCORE_FIELDS)
        cached = read_cached_frame(path)
        if cached is not None:
            return cached
        fs = [self.encoder("f", s).encoder for s in self.cfg.seeds]
        gs = [self.encoder("g", s).encoder for s in self.cfg.seeds]
        t0 = time.perf_counter()
        table = memorization_table(fs, gs, self.train, self.test, self.split,
                                   f_train=self.split.f_train, g_train=self.split.g_train,
                                   f_meta={k: v for k, v in self._meta("f").items()
                                           if k != "trained_on"},
                                   g_meta={k: v for k, v in self._meta("g").items()
                                           if k != "trained_on"},
                                   **self._score_kwargs())
        self.wall["score"] = time.perf_counter() - t0
        write_cached_frame(path, table, self.provenance())
        return table

    def significance(self) -> pd.DataFrame:
        """The paper's one-sided t-tests (S_C above S_S and S_E; S_I below them) on raw scores."""
        return significance_tests(self.scores())

    def scores_over_epochs(self, subsets=("candidate", "independent", "shared", "extra"),
                           max_points: int = 1000) -> pd.DataFrame:
        """Mean raw score per subset for each snapshot epoch (the first seed's f/g pair)."""
        path = self.run_dir / "epochs-{}.csv".format(self.cfg.key(
            *TRAIN_FIELDS, *SCORE_FIELDS, max_points=max_points, subsets=sorted(subsets)))
        cached = read_cached_frame(path)
        if cached is not None:
            return cached
        seed = self.cfg.seeds[0]
        f_method, g_method = self.encoder("f", seed), self.encoder("g", seed)
        split = self.split
        rows = []
        for epoch in snapshot_epochs(self.cfg.epochs):
            f_enc, g_enc = self.build(seed).encoder, self.build(seed).encoder
            for enc, which in ((f_enc, "f"), (g_enc, "g")):
                snap = self.run_dir / f"{which}-seed{seed}" / "snapshots" / f"epoch-{epoch:04d}.pt"
                enc.load_state_dict(torch.load(snap, map_location="cpu", weights_only=True))
                enc.to(self.device).eval()
            table = memorization_table(f_enc, g_enc, self.train, self.test,
                                       _subsample(split, max_points), **self._score_kwargs())
            for subset, group in table.groupby("subset"):
                if subset in subsets:
                    rows.append({"epoch": epoch, "subset": subset,
                                 "score_raw": float(group.score_raw.mean()),
                                 "sem": float(group.score_raw.sem()), "n": len(group)})
        del f_method, g_method
        frame = pd.DataFrame(rows)
        write_cached_frame(path, frame, self.provenance())
        return frame

    # ---- probes and label memorization --------------------------------------------------------
    def probe(self, which: str = "f", seed: int | None = None, dataset: str | None = None,
              max_train: int | None = None) -> dict:
        """Linear-probe and kNN accuracy of a frozen encoder on a downstream dataset.

        ``dataset=None`` probes on this experiment's dataset (train -> test); another name loads
        that dataset at this experiment's image size and channel count.
        """
        seed = self.cfg.seeds[0] if seed is None else seed
        name = dataset or self.cfg.dataset
        path = self.run_dir / f"probe-{which}-seed{seed}-{name.replace('/', '_')}.json"
        if path.exists():
            try:
                return json.loads(path.read_text())["result"]
            except (OSError, ValueError, KeyError) as err:
                warnings.warn(f"cache entry {path} is corrupt ({err}); rebuilding", stacklevel=2)
        method = self.encoder(which, seed)
        return self.probe_encoder(method.encoder, name, path=path, max_train=max_train)

    def probe_encoder(self, encoder, dataset: str, *, path: Path | None = None,
                      max_train: int | None = None) -> dict:
        """Probe any encoder on ``dataset`` (train split -> test split)."""
        if dataset == self.cfg.dataset:
            tr, te = self.train, self.test
        else:
            kw = dict(data_root=self.cfg.data_root, device=self.device,
                      image_size=self.train.image_size, channels=self.train.channels)
            tr, te = load_dataset(dataset, "train", **kw), load_dataset(dataset, "test", **kw)
        if max_train is not None and len(tr) > max_train:
            tr = tr.subset(np.random.default_rng(0).permutation(len(tr))[:max_train])
        ftr, fte = extract_features(encoder, tr.images), extract_features(encoder, te.images)
        result = {"dataset": dataset, "n_train": len(tr), "n_test": len(te),
                  "linear": linear_probe(ftr, tr.labels, fte, te.labels)["accuracy"],
                  "knn": knn_accuracy(ftr, tr.labels, fte, te.labels)}
        if path is not None:
            write_json(path, {"result": result, "provenance": self.provenance()})
        return result

    def label_memorization(self) -> pd.DataFrame:
        """Feldman's label memorization of the candidates (method must be 'supervised')."""
        if self.cfg.method != "supervised":
            raise SSLMemError("label memorization needs method='supervised' "
                              f"(this experiment trains {self.cfg.method!r})")
        path = self._result_path("labelmem", "seeds")
        cached = read_cached_frame(path)
        if cached is not None:
            return cached
        fs = [self.encoder("f", s).classifier for s in self.cfg.seeds]
        gs = [self.encoder("g", s).classifier for s in self.cfg.seeds]
        cand = self.train.subset(self.split.candidate)
        frame = label_memorization(fs, gs, cand.images, cand.labels, index=cand.index,
                                   device=self.device)
        frame.insert(0, "position", self.split.candidate)
        write_cached_frame(path, frame, self.provenance())
        return frame

    def provenance(self) -> dict:
        return provenance(self.cfg.to_dict(), self.device, wall_s=dict(self.wall),
                          run_dir=str(self.run_dir), split_fingerprint=self.split.fingerprint())


def _subsample(split: Split, n: int) -> Split:
    """The same split with at most ``n`` points per subset (first ``n`` of each, sorted)."""
    d = split.to_dict()
    d.pop("fingerprint")
    for name in ("shared", "candidate", "independent", "extra"):
        d[name] = list(d[name])[:n]
    return Split.from_dict(d)
