"""The memory format of training chosen by measurement on the host at hand, not guessed.

Why: every machine here has 2 cores, but not the same CPU. channels_last ran a ResNet-9 step
1.2x faster than the contiguous format on an AVX512 Xeon; on an AVX2 EPYC between 0.87x and 1.4x
in sequential timings and 1.15-1.2x in interleaved ones, and other hosts differ again. So before
training on a CPU, :func:`training_setting` times a few steps of the real step, at the real
shape, in each memory format (alternating within each round), and keeps the faster; the choice
is cached per host and shape (seconds, once). A measurement taken while more work ran than the
host has cores is marked so and measured again by the first run that finds the host idle: on
2026-11-29 one such measurement (two units beside a test run) picked the contiguous format,
which interleaved timings on the idle host found 1.2x slower, and six ensemble members trained
with it. A process keeps the first choice it made for a shape (two scorings in one process stay
bit-identical). The memory format only changes the order of floating-point sums (as another
ISA or thread count does), so it is not part of a result's key.

The *precision* is not chosen here: it changes the numbers, so it is a configuration field
(``Config.precision``, in the key; bf16 autocast ran 2.1x faster than fp32 on an AMX Xeon,
0.81x on a Xeon with AVX512-BF16 but no AMX, and is emulated, ~30x slower, on an AVX2 EPYC:
:func:`cpu_has_native_bf16` says which). ``$SSLMEM_CALIBRATE=0`` skips the measurement (the
contiguous format; any value but 0 or 1 is refused). CUDA always uses channels_last. A cache
that is not valid JSON, or an entry of the wrong types, is ignored after a one-line warning
naming the file, and measured again.
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
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sslmem.errors import SSLMemError
from sslmem.io import write_json

TIE = 0.05  # a candidate must beat the reference by more than this to be chosen
BUSY = 0.5  # runnable processes beyond the cores (1-min load average) that make a host busy


@dataclass(frozen=True)
class Setting:
    """How training steps run: the autocast precision and the memory format."""

    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    how: str = "default"  # default | measured | measured on a busy host | cached | cuda

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


def candidates(precision: str = "fp32") -> list[Setting]:
    """The settings measured for ``precision``: contiguous (the reference) and channels_last."""
    return [Setting(precision, False), Setting(precision, True)]


def _read_cache(path: Path) -> dict:
    """The cache's entries; absent: none; unreadable or not a JSON object: none, after a
    one-line warning naming the file (it is measured again and rewritten: not a result)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        why = f"cannot be read ({err.strerror or err})" if isinstance(err, OSError) \
            else f"is not valid JSON ({err})"
        warnings.warn(f"calibration cache {path} {why}: ignored, each shape is measured again "
                      "and the file rewritten", stacklevel=2)
        return {}
    if not isinstance(data, dict):
        warnings.warn(f"calibration cache {path} holds {type(data).__name__}, not an object of "
                      "entries: ignored, each shape is measured again and the file rewritten",
                      stacklevel=2)
        return {}
    return data


def _damage(entry) -> str | None:
    """What is wrong with a cache entry (None: it is sound)."""
    if not isinstance(entry, dict):
        return f"a {type(entry).__name__}, not an object"
    if entry.get("precision") not in ("fp32", "bf16"):
        return f"precision {entry.get('precision')!r}"
    for key, kind in (("channels_last", bool), ("busy", bool), ("seconds_per_step", dict),
                      ("load_average", (int, float)), ("measured", str)):
        if key in entry and not isinstance(entry[key], kind):
            return f"{key} {entry[key]!r}"
    steps = entry.get("seconds_per_step") or {}
    if not isinstance(entry.get("channels_last"), bool):
        return "no channels_last"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in steps.values()):
        return f"seconds_per_step {steps!r}"
    return None


def _sound(path: Path, key: str, entry):
    """``entry`` if sound; None after a one-line warning if damaged (measured again)."""
    damage = None if entry is None else _damage(entry)
    if damage:
        warnings.warn(f"calibration cache {path}: the entry {key.split(':', 1)[-1]} is damaged "
                      f"({damage}): measured again and rewritten", stacklevel=3)
        return None
    return entry


def calibrating() -> bool:
    """``$SSLMEM_CALIBRATE``: 1 or unset measures, 0 skips (the contiguous format); anything
    else is refused in one line."""
    value = os.environ.get("SSLMEM_CALIBRATE", "").strip()
    if value not in ("", "0", "1"):
        raise SSLMemError(f"SSLMEM_CALIBRATE must be 0 (skip the measurement: contiguous "
                          f"format) or 1 (measure once per host and shape, the default), got "
                          f"{value!r}")
    return value != "0"


def training_setting(method: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     batch: int, device: torch.device, precision: str = "fp32") -> Setting:
    """The setting ``fit`` trains ``method`` with on ``device`` in ``precision`` (the memory
    format measured once per host and shape on a CPU, then cached).

    Under ``torch.distributed`` every process must train alike (DDP checks parameter strides),
    and the losses gather across processes, so the processes measure together, step for step,
    and all take rank 0's choice (and rank 0's view of the cache)."""
    measuring = calibrating()  # a wrong $SSLMEM_CALIBRATE is refused on every device
    if device.type == "cuda":
        return Setting(precision, True, "cuda")
    if precision == "bf16" and not cpu_has_native_bf16():
        warnings.warn("bf16 is emulated on this CPU (no AVX512-BF16 or AMX): training runs "
                      "many times slower than in fp32; set precision=fp32", stacklevel=3)
    options = candidates(precision)
    if not measuring:
        return Setting(precision, False, "default")
    shape = (type(method).__name__, type(method.encoder.backbone).__name__,
             tuple(images.shape[1:]), batch, [c.name for c in options])
    return _chosen(shape, options, lambda: measure(method, images[:batch], labels[:batch],
                                                   options), agree=True)


def inference_setting(encoder: torch.nn.Module, batch: torch.Tensor) -> Setting:
    """The memory format a frozen fp32 ``encoder`` runs ``batch``-shaped inputs fastest in
    (measured once per host and shape on a CPU, then cached; channels_last on CUDA)."""
    measuring = calibrating()
    if batch.is_cuda:
        return Setting("fp32", True, "cuda")
    if not measuring:
        return Setting("fp32", False, "default")
    options = candidates("fp32")
    shape = ("inference", type(encoder).__name__, tuple(batch.shape))
    return _chosen(shape, options, lambda: measure_inference(encoder, batch, options))


_CHOSEN: dict[str, Setting] = {}  # this process's choices, by cache file and key


def _chosen(shape: tuple, options: list[Setting], timings_of, agree: bool = False) -> Setting:
    """The cached choice for ``shape`` on this host, else the fastest of ``options`` by
    ``timings_of()`` (the first unless another beats it by more than ``TIE``), cached. A
    choice measured on a busy host is measured again when the host is idle.

    ``agree``: every process of a ``torch.distributed`` job takes rank 0's cache entry and
    choice (the processes measure together: the training losses gather across them)."""
    share = _from_rank0 if agree else (lambda value: value)
    key = f"{host_signature()}:{json.dumps(shape)}"
    path = cache_path()
    memo = f"{path}|{key}"
    if memo in _CHOSEN:
        return _CHOSEN[memo]
    entry = _sound(path, key, _read_cache(path).get(key))
    if entry and entry.get("busy") and not _busy(load_average()):
        entry = None  # measured while the host was busy, and it is idle now: measure again
    cached = share(Setting(entry["precision"], entry["channels_last"], "cached")
                   if entry else None)
    if cached is not None:
        _CHOSEN[memo] = cached
        return cached
    load = max(load_average(), 0.0)
    timings = timings_of()
    load = max(load, load_average())
    best = min(options, key=lambda c: timings[c.name])
    if timings[best.name] > timings[options[0].name] * (1 - TIE):
        best = options[0]  # within the tie margin: the reference
    busy = _busy(load)
    chosen = share(Setting(best.precision, best.channels_last,
                           "measured on a busy host" if busy else "measured"))
    if not agree or _rank() == 0:
        entries = _read_cache(path)
        entries[key] = {**asdict(chosen), "busy": chosen.how != "measured",
                        "seconds_per_step": timings, "load_average": round(load, 2),
                        "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with contextlib.suppress(OSError):  # a read-only home: measure again next time
            write_json(path, entries)
    _CHOSEN[memo] = Setting(chosen.precision, chosen.channels_last, "cached")
    return chosen


def _busy(load: float) -> bool:
    """More runnable work than cores (beyond ``BUSY``): timings taken now may mislead."""
    return load > usable_cores() + BUSY


def load_average() -> float:
    """The 1-minute load average (-1 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return -1.0


def usable_cores() -> int:
    """The cores this process may run on (its affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank() -> int:
    return torch.distributed.get_rank() if _distributed() else 0


def _from_rank0(value):
    """``value`` as rank 0 has it (itself outside ``torch.distributed``)."""
    if not _distributed():
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
    from sslmem.train.optim import make_optimizer

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

        return _median_seconds({name: (lambda run=run: step(*run)) for name, run in runs.items()},
                               rounds)


def measure_inference(encoder: torch.nn.Module, batch: torch.Tensor, options: list[Setting],
                      rounds: int = 3) -> dict[str, float]:
    """Median seconds per frozen forward pass of ``batch`` through ``encoder`` in each memory
    format (alternating within each round, as :func:`measure`)."""
    runs = {o.name: (copy.deepcopy(encoder).eval().to(memory_format=torch.channels_last),
                     batch.contiguous(memory_format=torch.channels_last)) if o.channels_last
            else (encoder, batch) for o in options}
    with torch.inference_mode():
        return _median_seconds({name: (lambda m=m, x=x: m(x)) for name, (m, x) in runs.items()},
                               rounds)


def _median_seconds(calls: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each call over ``rounds`` rounds after one warm-up round (allocations,
    oneDNN primitive creation); the calls alternate within each round, so a change of load
    hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds + 1):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if r:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def report() -> str:
    """This host's measured choices, one line each, and what decided them (``sslmem
    calibration``)."""
    measuring = calibrating()  # a wrong $SSLMEM_CALIBRATE: one line, here too
    path = cache_path()
    prefix = host_signature() + ":"
    native = "native" if cpu_has_native_bf16() else "emulated (no AVX512-BF16 or AMX)"
    lines = [f"host {host_signature()} ({torch.get_num_threads()} threads), bf16 {native}; "
             f"cache {path}"]
    entries = {k[len(prefix):]: v for k, v in _read_cache(path).items()
               if k.startswith(prefix) and _sound(path, k, v) is not None}
    if not measuring:
        lines.append("SSLMEM_CALIBRATE=0: nothing is measured, training and scoring use the "
                     "contiguous format")
    elif not entries:
        lines.append("nothing measured on this host yet: the first training or scoring run "
                     "measures its shape (seconds, once)")
    for shape, entry in sorted(entries.items()):
        seconds = ", ".join(f"{name} {1000 * s:.1f} ms"
                            for name, s in (entry.get("seconds_per_step") or {}).items())
        chosen = entry.get("precision", "?") + (" + channels_last"
                                                if entry.get("channels_last") else "")
        load = entry.get("load_average")
        load = (f", load average {load}" if load is not None else "") + (
            ", on a busy host: measured again when it is idle" if entry.get("busy") else "")
        lines.append(f"{shape}: {chosen} ({seconds}; measured {entry.get('measured', '?')}{load})")
    return "\n".join(lines)
