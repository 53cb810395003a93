"""The run cache of encoders: each trained once, under a lock, resumed from its checkpoint.

Why a class of its own: an encoder is the expensive, machine-local thing (minutes to hours, never
committed); a result is the cheap, committed one. Training an encoder for a set of positions,
keeping its per-epoch snapshots and writing its history to the store as soon as training ends is
one concern, shared by the f/g pair, the ensemble's members and chapter 4's retrains.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from sslmem.errors import CorruptFile, SSLMemError
from sslmem.pipeline.cache import ResultCache
from sslmem.pipeline.store import (
    lock,
    read_frame,
    write_frame,
)
from sslmem.score.evaluate import extract_features, knn_accuracy
from sslmem.train.fit import (
    TrainSpec,
    fit,
    load_checkpoint,
    save_state,
)
from sslmem.train.methods import Method, build_method

SNAPSHOT_EPOCHS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 800, 1000)


def snapshot_epochs(epochs: int) -> list[int]:
    """Epochs at which an encoder snapshot (and a kNN monitor value) is kept: log-spaced + last."""
    return sorted({e for e in SNAPSHOT_EPOCHS if e < epochs} | {epochs})


def _hash_positions(positions) -> str:
    return hashlib.sha256(np.asarray(positions, dtype=np.int64).tobytes()).hexdigest()[:12]


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class EncoderCache(ResultCache):
    """Encoders of one configuration (``self.cfg``, ``self.train``, ``self.run_dir``), trained
    when the run cache lacks them; their histories go to the store."""

    # ---- training ------------------------------------------------------------------------------
    def build(self, seed: int) -> Method:
        """A freshly initialized method for this config (weights depend only on ``seed``)."""
        c = self.cfg
        torch.manual_seed(seed)
        return build_method(c.method, c.backbone, image_size=self.train.image_size,
                            channels=self.train.channels, mean=self.train.mean,
                            std=self.train.std, num_classes=self.train.num_classes,
                            patch_size=c.patch_size, augment_strength=c.augment_strength)

    def _history_name(self, tag: str, seed: int, positions) -> str:
        if tag in ("f", "g"):
            return f"history-{tag}-seed{seed}"
        return f"history-{tag}-seed{seed}-{_hash_positions(positions)}"

    def train_on(self, positions, *, seed: int, tag: str) -> Method:
        """The encoder trained on ``train[positions]`` (trained now only if not cached).

        Its training history goes to the store as soon as training ends, so the curves of a
        chapter survive the checkpoint.
        """
        positions = np.asarray(positions, dtype=np.int64)
        folder = self.run_dir / f"{tag}-seed{seed}"
        self._require_compute(f"encoder {tag} (seed {seed}) of {self.cfg.method}", folder)
        spec = TrainSpec.from_config(self.cfg, seed)
        if spec.batch_size > len(positions):  # refused before a run folder is made
            raise SSLMemError(f"batch_size {spec.batch_size} is larger than the {len(positions)} "
                              f"images encoder {tag} trains on; lower batch_size")
        method = self.build(seed)  # a backbone that does not fit the images fails here too
        self._check_dir(self.run_dir)
        ckpt = folder / "checkpoint.pt"
        fingerprint_ = f"{self.key()}:{tag}:{seed}:{_hash_positions(positions)}"
        # under torchrun the ranks train together: one lock for them all (rank 0's), else
        # rank 1 would wait for the lock while rank 0 waits for rank 1 in DistributedDataParallel
        rank = _rank()
        with lock(folder / ".lock") if rank == 0 else contextlib.nullcontext():
            try:
                state = load_checkpoint(ckpt, fingerprint_) if ckpt.exists() else None
            except CorruptFile:
                state = None  # proven corrupt: retrained (fit says so)
            if state is not None and state["epoch"] >= spec.epochs:
                method.load_state_dict(state["model"])
                history = state["history"]
            else:
                history = self._fit(method, positions, spec, folder, fingerprint_)
        name = self._history_name(tag, seed, positions)
        path = self.store_dir / f"{name}.csv.gz"
        if rank == 0 and self._read(read_frame, path) is None:  # rank 0's has the kNN monitor
            self._check_dir(self.store_dir)
            write_frame(path, pd.DataFrame(history), self.provenance())
        return method.to(self.device).eval()

    def _fit(self, method: Method, positions: np.ndarray, spec: TrainSpec, folder: Path,
             fingerprint_: str) -> list[dict]:
        idx = torch.as_tensor(positions, device=self.train.images.device)
        images, labels = self.train.images[idx], self.train.labels[idx]
        keep = set(snapshot_epochs(spec.epochs))
        n = self.cfg.monitor_points
        monitor_train = self.train.subset(positions[: min(len(positions), n)])
        monitor_test = self.test.subset(np.arange(min(len(self.test), n)))

        def on_epoch(epoch: int, m: Method) -> dict:
            if epoch not in keep:
                return {}
            save_state(folder / "snapshots" / f"epoch-{epoch:04d}.pt",
                       {"encoder": m.encoder.state_dict()})
            ftr = extract_features(m.encoder, monitor_train.images, amp=self.amp)
            fte = extract_features(m.encoder, monitor_test.images, amp=self.amp)
            return {"knn": knn_accuracy(ftr, monitor_train.labels, fte, monitor_test.labels)}

        t0 = time.perf_counter()
        history = fit(method, images, labels, spec, checkpoint=folder / "checkpoint.pt",
                      fingerprint=fingerprint_, device=self.device, on_epoch=on_epoch)
        self.wall[f"train {folder.name}"] = time.perf_counter() - t0
        self.train_settings[folder.name] = getattr(method, "train_setting", "unknown")
        return history

    def encoder(self, which: str, seed: int | None = None) -> Method:
        """Encoder f (trained with the candidates) or g (with the independent set instead)."""
        if which not in ("f", "g"):
            raise SSLMemError(f"which must be 'f' or 'g', got {which!r}")
        seed = self.cfg.seeds[0] if seed is None else seed
        positions = self.split.f_train if which == "f" else self.split.g_train
        return self.train_on(positions, seed=seed, tag=which)

    def history(self, which: str = "f", seed: int | None = None) -> pd.DataFrame:
        """Per-epoch loss, learning rate, seconds and kNN monitor of encoder f or g."""
        seed = self.cfg.seeds[0] if seed is None else seed

        def compute():
            self.encoder(which, seed)  # trains if needed and stores the history
            found = read_frame(self.store_dir / f"history-{which}-seed{seed}.csv.gz")
            return found[0]

        return self._cached(f"history-{which}-seed{seed}", f"training history of {which}",
                            compute, table=True)

    def training_seconds(self) -> float:
        """Seconds spent training f and g over every seed, from the stored histories."""
        return float(sum(self.history(w, s)["seconds"].sum()
                         for s in self.cfg.seeds for w in ("f", "g")))
