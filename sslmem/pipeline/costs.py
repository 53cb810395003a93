"""What a plan unit costs: reference throughputs, and the rates measured in stored histories.

Why a module: a unit's estimate must follow the machine at hand (2-core hosts here differ ~5x),
so the plan reads the training rate of every stored encoder with the same method, backbone,
image size, device and CPU model, and falls back to reference rates only where none is stored.
"""

from __future__ import annotations

import re
import statistics

from sslmem.errors import SSLMemError
from sslmem.io import location
from sslmem.pipeline.encoders import snapshot_epochs
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.store import (
    read_frame,
    read_record,
)

# Training throughput in images per second (one image = all of its views through the method),
# at 32 px, before anything was measured on this machine. ``cuda``: an H100 (NOTES.md: SimCLR
# ResNet-18 bf16 + channels_last + compile 61k img/s; the other methods scaled by their CPU
# ratios). ``cpu``: per core, measured with one thread per process on an Intel Xeon with native
# bf16 (2026-11-23, ResNet-9, batch 128; MAE on ViT-Tiny with 64 patches); without native bf16
# a CPU step is ~0.55x that (benchmarks/cpu.py). Once a unit has run on a device, the rates
# measured in its stored histories replace these estimates.
REFERENCE_RATES = {
    "cuda": {"simclr": 61000, "byol": 40000, "simsiam": 45000, "dino": 13000, "mae": 20000,
             "vicreg": 23000, "barlowtwins": 29000, "supervised": 80000},
    "cpu": {"simclr": 238, "byol": 162, "simsiam": 181, "dino": 55, "mae": 84, "vicreg": 90,
            "barlowtwins": 115, "supervised": 460},
}
BACKBONE_FACTOR = {  # throughput relative to the reference backbone of each table
    "cuda": {"resnet18": 1.0, "resnet9": 2.0, "resnet34": 0.5, "resnet50": 0.35,
             "vit_tiny": 1.0, "vit_small": 0.4},
    "cpu": {"resnet9": 1.0, "resnet18": 0.35, "resnet34": 0.18, "resnet50": 0.12,
            "vit_tiny": 1.0, "vit_small": 0.4},
}
REFERENCE_TOKENS = {"cuda": 256, "cpu": 64}  # ViT patches of each table's MAE rate
DP_SLOWDOWN = {"cuda": 5.0, "cpu": 2.5}  # DP-SGD's per-sample gradients (tests/test_privacy)
INFERENCE_SPEEDUP = 6.0  # frozen one-view forwards per training step of one image (2 views x 3)
# int8 scoring (sslmem.score.quantize) over the fp32 scorer, its quantization included: 1,653
# against
# 949 views/s on a 2-core AVX2 EPYC (benchmarks/unit.py, 2026-11-29)
INT8_SCORING_SPEEDUP = 1.7


_HISTORY = re.compile(r"^history-(?P<encoder>[fg]-seed\d+)$")


def _trained_seconds(view: Experiment, name: str) -> list[tuple[str, float]]:
    """(encoder, training seconds) that stored result ``name`` records: a history's epochs, or
    a chapter-4 retrain's ``train_seconds``; [] for other results."""
    try:
        if match := _HISTORY.match(name):
            found = read_frame(view.store_dir / f"{name}.csv.gz")
            if found is not None and "seconds" in found[0]:
                return [(match["encoder"], float(found[0]["seconds"].sum()))]
        elif name.startswith("retrain-"):
            found = read_record(view.store_dir / f"{name}.json")
            if found is not None and isinstance(found[0], dict):
                record = found[0]
                return [(f"{record.get('tag')}-seed{record.get('seed')}",
                         float(record.get("train_seconds") or 0.0))]
    except (SSLMemError, TypeError, ValueError):
        pass  # the result itself was served: a cost estimate never stops a listing
    return []


def _device_kind(exp: Experiment) -> str:
    return "cuda" if exp.device.type == "cuda" else "cpu"


def _rate(exp: Experiment, measured: dict | None, kind: str | None = None,
          dp: bool = True) -> float:
    """Training images/s of ``exp`` here (or on ``kind``); ``dp=False``: as if without DP-SGD
    (the speed of its frozen forward passes). Measured rates of this device and CPU model come
    first; a rate recorded before provenance named the CPU model serves when none does."""
    c = exp.cfg
    here = kind is None or kind == _device_kind(exp)
    private = dp and c.dp_epsilon is not None
    slowdown = DP_SLOWDOWN[kind or _device_kind(exp)]
    exact, scaled = {}, {}
    for (device, cpu, method, backbone, size, *was_private), rate in (measured or {}).items():
        if (method, backbone, size) != (c.method, c.backbone, exp.train.image_size):
            continue
        was_private = bool(was_private and was_private[0])
        # a rate measured with(out) DP-SGD stands for the other through DP_SLOWDOWN
        (exact if was_private == private else scaled)[(device, cpu)] = (
            rate if was_private == private else rate / slowdown if private else rate * slowdown)
    matches = {**scaled, **exact}
    if here:
        where = location(exp.device)
        device, cpu = where["device"], where["cpu"]
        for wanted in ((device, cpu), (device, None)):
            if wanted in matches:
                return matches[wanted]
    else:
        for (device, _), rate in matches.items():
            if "H100" in str(device):
                return rate
    kind = kind or _device_kind(exp)
    rate = REFERENCE_RATES[kind].get(c.method, 50.0)
    rate *= BACKBONE_FACTOR[kind].get(c.backbone, 1.0)
    if c.backbone.startswith("vit"):
        from sslmem.train.backbones import default_patch_size

        size = exp.train.image_size
        tokens = (size // (c.patch_size or default_patch_size(size))) ** 2
        rate *= REFERENCE_TOKENS[kind] / tokens
    else:
        rate *= (32 / exp.train.image_size) ** 2
    if dp and c.dp_epsilon is not None:
        rate /= DP_SLOWDOWN[kind]
    if kind == "cpu":  # the CPU references were measured in bf16 on a host where it is native
        from sslmem.train.calibrate import cpu_has_native_bf16

        rate *= 1.0 if c.precision == "bf16" and cpu_has_native_bf16() else 0.55
    return rate


def measured_rates(units: list) -> dict:
    """Training images/s per (device, CPU model, method, backbone, size, DP-SGD): the median
    over the stored histories, each one encoder's rate. Why the median of rates, not pooled
    seconds: a few members trained beside other work (4 BYOL members at 22-31 min where 10
    later ones took 10.5) pulled a pooled estimate 45 % above what a unit takes on the idle host."""
    rates: dict = {}
    seen = set()
    for unit in units:
        exp = unit.exp
        if exp.store_dir in seen or not exp.store_dir.exists():
            continue
        seen.add(exp.store_dir)
        for path in exp.store_dir.glob("history-*.csv.gz"):
            try:
                found = read_frame(path)
            except SSLMemError:
                continue
            if found is None or found[0].empty:
                continue
            frame, meta = found
            prov = meta.get("provenance", {})
            cfg = prov.get("config") or {}
            seconds = float(frame["seconds"].sum())
            if seconds <= 0:
                continue
            key = (prov.get("device"), prov.get("cpu"), cfg.get("method"), cfg.get("backbone"),
                   exp.train.image_size, cfg.get("dp_epsilon") is not None)
            rates.setdefault(key, []).append(_train_size(exp, path.name) * len(frame) / seconds)
    return {k: statistics.median(v) for k, v in rates.items()}


def _train_size(exp: Experiment, name: str) -> int:
    if name.startswith("history-f-"):
        return len(exp.split.f_train)
    if name.startswith("history-g-"):
        return len(exp.split.g_train)
    if name.startswith("history-ens"):  # an ensemble member: its half of the pool
        return (len(exp.split.candidate) + 1) // 2
    return len(exp.split.candidate)  # a retrain of chapter 4 (about the scored half)


def _pair_cost(exp: Experiment, epoch_points: int | None = None) -> tuple[int, int]:
    c, split = exp.cfg, exp.split
    seeds = len(c.seeds)
    images = c.epochs * seeds * (len(split.f_train) + len(split.g_train))
    n_scored = sum(len(getattr(split, s)) for s in ("shared", "candidate", "independent",
                                                     "extra"))
    scored = n_scored * c.n_pairs * 2 * 2 * seeds
    monitor = (min(len(split.f_train), 10_000) + len(exp.test)) * 2
    snaps = len(snapshot_epochs(c.epochs))
    scored += snaps * monitor
    if epoch_points:
        scored += snaps * 4 * min(epoch_points, n_scored) * c.n_pairs * 2 * 2
    return images, scored
