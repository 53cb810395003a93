"""Training settings chosen by measurement on the host at hand, not guessed from a CPU flag.

Why: every machine here has 2 cores, but not the same CPU. bf16 autocast ran a ResNet-9 step 2.1x
faster than fp32 on an AMX Xeon, 0.81x on a Xeon with AVX512-BF16 but no AMX (where ``fit``,
choosing bf16 from the flag, was slower than the PIL pipeline), and is emulated (~25x slower) on
an AVX2 EPYC; channels_last helps some hosts and not others. So before training on a CPU,
:func:`training_setting` times a few steps of the real step, at the real shape, under each
candidate, and keeps the fastest; the choice is cached per host and shape (seconds, once).

Candidates: fp32 contiguous (the reference), fp32 channels_last, and where bf16 is native (or
``$SSLMEM_CPU_BF16=1``) bf16 autocast + channels_last. Memory format only changes the order of
floating-point sums (as another ISA does); precision changes the numbers, so the chosen precision
is in every result's provenance. ``$SSLMEM_CPU_BF16=0|1`` restricts the candidates to one
precision; ``$SSLMEM_CALIBRATE=0`` skips the measurement (fp32 contiguous, or bf16 +
channels_last where native: the choice before calibration existed). CUDA always uses bf16 +
channels_last.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sslmem.io import write_json

TIE = 0.05  # a candidate must beat the reference by more than this to be chosen


@dataclass(frozen=True)
class Setting:
    """How training steps run: the autocast precision and the memory format."""

    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    how: str = "default"  # default | measured | cached | cuda | env

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def name(self) -> str:
        return self.precision + (" + channels_last" if self.channels_last else "")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU flags (Linux ``/proc/cpuinfo``) include avx512_bf16 or amx_bf16."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def host_signature() -> str:
    """CPU model and flags, torch version and thread count: what makes a measurement valid."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = [platform.processor()]
    text = "|".join([*lines, torch.__version__, str(torch.get_num_threads())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path() -> Path:
    """``$SSLMEM_CALIBRATION``, else ``$XDG_CACHE_HOME/sslmem/calibration.json``."""
    env = os.environ.get("SSLMEM_CALIBRATION")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sslmem" / "calibration.json"


def _env_bf16() -> bool | None:
    """``$SSLMEM_CPU_BF16``: True (1), False (0) or None (unset: measure)."""
    env = os.environ.get("SSLMEM_CPU_BF16", "").strip()
    return env == "1" if env in ("0", "1") else None


def candidates() -> list[Setting]:
    forced = _env_bf16()
    fp32 = [Setting("fp32", False), Setting("fp32", True)]
    bf16 = [Setting("bf16", True)]
    if forced is not None:
        return bf16 if forced else fp32
    return fp32 + (bf16 if cpu_has_native_bf16() else [])


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or unreadable: measure again (the cache is not a result)


def training_setting(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     batch: int, device: torch.device) -> Setting:
    """The setting ``fit`` trains ``method`` with on ``device`` (measured once per host and
    shape on a CPU, then cached).

    Under ``torch.distributed`` every process must train alike (DDP checks parameter strides),
    and the losses gather across processes, so the processes measure together, step for step,
    and all take rank 0's choice (and rank 0's view of the cache)."""
    if device.type == "cuda":
        return Setting("bf16", True, "cuda")
    options = candidates()
    if len(options) == 1:
        return Setting(options[0].precision, options[0].channels_last, "env")
    if os.environ.get("SSLMEM_CALIBRATE", "").strip() == "0":
        native = cpu_has_native_bf16()
        return Setting("bf16" if native else "fp32", native, "default")
    shape = (type(method).__name__, type(method.encoder.backbone).__name__,
             tuple(images.shape[1:]), batch, [c.name for c in options])
    key = f"{host_signature()}:{json.dumps(shape)}"
    path = cache_path()
    cached = _read_cache(path).get(key)
    cached = _from_rank0(Setting(cached["precision"], cached["channels_last"], "cached")
                         if cached else None)
    if cached is not None:
        return cached
    timings = measure(method, images[:batch], labels[:batch], options)
    best = min(options, key=lambda c: timings[c.name])
    if timings[best.name] > timings[options[0].name] * (1 - TIE):
        best = options[0]  # within the tie margin: the reference
    chosen = _from_rank0(Setting(best.precision, best.channels_last, "measured"))
    if _rank() == 0:
        entries = _read_cache(path)
        entries[key] = {**asdict(chosen), "seconds_per_step": timings,
                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with contextlib.suppress(OSError):  # a read-only home: measure again next time
            write_json(path, entries)
    return chosen


def _rank() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_rank() if distributed else 0


def _from_rank0(value):
    """``value`` as rank 0 has it (itself outside ``torch.distributed``)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def measure(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
            options: list[Setting], rounds: int = 3) -> dict[str, float]:
    """Median seconds per training step of a copy of ``method`` under each setting.

    Candidates alternate within each round, so a change of load hits all of them alike; the
    copy, its optimizer and the RNG state are thrown away (training is unchanged by this).
    """
    from sslmem.train import make_optimizer

    runs = {}
    with torch.random.fork_rng(devices=[]):
        for option in options:
            model = copy.deepcopy(method).train()
            if option.channels_last:
                model.to(memory_format=torch.channels_last)
            optimizer = make_optimizer(model, "sgd", 1e-3, 0.0)
            runs[option.name] = (model, optimizer, option)
        generator = torch.Generator().manual_seed(0)

        def step(model, optimizer, option) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=option.bf16):
                loss = model(images, labels, generator, 0.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        times: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(rounds + 1):
            for name, run in runs.items():
                t0 = time.perf_counter()
                step(*run)
                if r:  # round 0 warms up (allocations, oneDNN primitive creation)
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def likely_bf16(device: torch.device) -> bool:
    """Whether training on ``device`` will most likely run in bf16 (for cost estimates, before
    anything is measured): on CUDA; as ``$SSLMEM_CPU_BF16`` says; else as this host's cached
    measurements chose; else where bf16 is native."""
    if device.type == "cuda":
        return True
    forced = _env_bf16()
    if forced is not None:
        return forced
    prefix = host_signature() + ":"
    chosen = [v.get("precision") for k, v in _read_cache(cache_path()).items()
              if k.startswith(prefix) and isinstance(v, dict)]
    return "bf16" in chosen if chosen else cpu_has_native_bf16()
