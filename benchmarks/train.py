"""Training throughput: sslmem's on-device pipeline vs the same model fed by a PIL DataLoader.

Claim checked: SimCLR with a ResNet-18 on CIFAR-10-sized data (50,000 32 px images, batch 512)
trains faster when the uint8 images live on the device and ``sslmem.train.augment`` makes the views
there ((a), what ``sslmem.train.fit.fit`` does) than when the conventional pipeline feeds the very
same bf16 + channels_last + torch.compile model ((b): PIL images, torchvision RandomResizedCrop /
flip / ColorJitter / grayscale / ToTensor / Normalize, two views per item, one DataLoader worker
per core, pinned memory, non_blocking copies). Goal on one H100: (a) within ~10 % of the model
step alone ((c), views made once and reused: the ceiling) and a few times faster than (b), which
NOTES.md expects to be bound by its ~31k views/s of PIL augmentation.

Rows: (a) a timing loop that repeats ``fit``'s step verbatim (``Method.forward`` under bf16
autocast, zero_grad, backward, optimizer step, ``on_step``; same optimizer, schedule, compile
call); (a, fit) ``sslmem.train.fit.fit`` itself, its own timer of epoch 2 of 2 on steps x batch
images; (b) the DataLoader pipeline; (c) the model step alone. Every row is warmed up first
(compilation and DataLoader start-up are not timed) and timed over --steps steps ending in a host
sync. (b) is timed over whole rounds of its workers (warm-up and timed steps rounded up to
multiples of --workers), since a DataLoader delivers batches in bursts of one per worker.

Counting: images/s = source images/s (each gives 2 views); s/epoch = (50,000 // batch) steps x
s/step, as ``fit`` drops the last partial batch. TFLOP/s = images/s x 3 x 2 views x F, F = the
backbone's forward FLOPs per image counted by torch.utils.flop_counter (conv + matmul, 2 per MAC;
ResNet-18 CIFAR stem: 1.11 GFLOP), i.e. a training step = 3 forwards; projection head, loss,
augmentation and optimizer are not counted (< 1 %). Peak: a large bf16 matmul on CUDA (fp32 on
CPU) measured in the same run. ``--methods all`` adds one row per method at its paper settings
(backbone, batch, optimizer from ``Method.defaults``; on CPU resnet9 / batch 32 unless given)
with FLOPs counted over one real training step (all views, teacher forwards, backward).

Measured: only the CPU smoke defaults so far (2-core AMD EPYC shared with other jobs, load ~6,
``--threads 1``; ResNet9, batch 64): (a) 73, (a, fit) 76, (b) 75, (c) 82 images/s, (a)/(b) 0.97x.
On a CPU the model is the bottleneck and (b)'s workers use the core the model leaves idle, so
this says nothing about the claim; with the default 2 threads on these busy cores the rows scatter
by 3x (thread oversubscription). No GPU number yet. On a GPU:

    python benchmarks/train.py --device cuda --out results.json          # minutes (compiling)
    python benchmarks/train.py --device cuda --methods all --profile --out results.json
    .venv/bin/python benchmarks/train.py --threads 1                      # CPU smoke, ~30 s
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import forward_flops, load_images, matmul_peak, sync
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.io import device_name, provenance, write_json
from sslmem.train.backbones import VITS
from sslmem.train.fit import TrainSpec, compile_backbone, fit, resolve_device
from sslmem.train.methods import METHODS, build_method
from sslmem.train.optim import learning_rate, make_optimizer

EPOCH = 50_000  # CIFAR-10 train images
# ----------------------------------------------------------------------------------- setup --
def fresh_memory(device: torch.device) -> None:
    """Free what the previous row left and restart the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def step_flops(name: str, backbone: str, mean, std, image_size: int = 32) -> float:
    """FLOPs per sample of one real training step of ``name`` (all views, forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    method = build(name, backbone, mean, std, image_size)
    x = torch.randint(0, 256, (4, 3, image_size, image_size), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        method(x, torch.arange(4) % 10, torch.Generator().manual_seed(0), 0.0).backward()
    return counter.get_total_flops() / 4


def build(name: str, backbone: str, mean, std, image_size: int = 32):
    return build_method(name, backbone, image_size=image_size, channels=3, mean=mean, std=std,
                        num_classes=10)


# ----------------------------------------------------------------------------------- loops --
class ProjectLoop:
    """(a): one training step exactly as ``sslmem.train.fit.fit`` takes it (single process).

    Setup as fit's: channels_last on CUDA, ``make_optimizer`` with the method's paper optimizer
    and linearly scaled lr, ``compile_backbone(encoder, images[:batch])`` (static shapes at the
    training shape), the warmup+cosine schedule set per step, a device generator for the views,
    the loss summed on the device.
    """

    def __init__(self, method, images, labels, batch: int, device: torch.device, *,
                 compile_: bool):
        self.cuda = device.type == "cuda"
        self.method, self.batch, self.device = method.to(device), batch, device
        if self.cuda:
            method.to(memory_format=torch.channels_last)
        d = method.defaults
        self.peak_lr = d.lr * batch / 256
        self.optimizer = make_optimizer(method, d.optimizer, self.peak_lr, d.weight_decay)
        per_epoch = EPOCH // batch
        self.total, self.warm = per_epoch * d.epochs, per_epoch * d.warmup_epochs
        self.images, self.labels = images.to(device), labels.to(device)
        self.compiled = compile_ and compile_backbone(method.encoder, self.images[:batch], device)
        method.train()
        n = len(images)
        self.usable = n // batch * batch
        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(device)
        self.generator = torch.Generator(device=device).manual_seed(0)
        self.loss_sum = torch.zeros((), device=device)
        self.fixed_views = None

    def _batch(self, i: int):
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(i, self.total, self.warm, self.peak_lr)
        s = (i * self.batch) % self.usable
        idx = self.order[s:s + self.batch]
        return self.images[idx], self.labels[idx]

    def _update(self, loss, i: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.method.on_step((i + 1) / self.total)
        self.loss_sum += loss.detach().float()

    def step(self, i: int) -> None:
        x, y = self._batch(i)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            loss = self.method(x, y, self.generator, 0.0)
        self._update(loss, i)

    def model_step(self, i: int) -> None:
        """(c): the same step on views made once (no augmentation, no indexing): the ceiling."""
        x, y = self._batch(0)
        if self.fixed_views is None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
                self.fixed_views = self.method.views(x, self.generator)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            loss = self.method.views_loss(self.fixed_views, y)[0]
        self._update(loss, i)

    def phase_step(self, i: int, mark) -> None:
        """``step`` split at its phases (Method.forward = views + views_loss when not aligning)."""
        x, y = self._batch(i)
        mark("index+lr")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda):
            views = self.method.views(x, self.generator)
            mark("augment")
            loss = self.method.views_loss(views, y)[0]
        mark("forward+loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        self.optimizer.step()
        self.method.on_step((i + 1) / self.total)
        self.loss_sum += loss.detach().float()
        mark("optimizer")

    def timed(self, step, warmup: int, steps: int) -> float:
        """Seconds per step over ``steps`` steps after ``warmup`` (ends in a host sync)."""
        for i in range(warmup):
            step(i)
        self.loss_sum.item()
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            step(i)
        loss = self.loss_sum.item()
        dt = time.perf_counter() - t0
        if not math.isfinite(loss):
            raise SSLMemError(f"{type(self.method).__name__}: the loss became {loss} while timing")
        return dt / steps


class PILPairs(torch.utils.data.Dataset):
    """(b)'s dataset: two independently augmented, normalized views of one PIL image + label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, length: int):
        import torchvision.transforms as T

        self.images, self.labels, self.length = images, labels, length
        self.transform = T.Compose([
            T.RandomResizedCrop(images.shape[1]), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        from PIL import Image

        j = i % len(self.images)
        img = Image.fromarray(self.images[j])
        return self.transform(img), self.transform(img), int(self.labels[j])


def time_dataloader(method, images, labels, mean, std, batch: int, device: torch.device, *,
                    warmup: int, steps: int, workers: int, compile_: bool):
    """(b): the same model and step fed by PIL transforms in a DataLoader. -> (s/step, wait)."""
    cuda = device.type == "cuda"
    method.encoder.normalize = nn.Identity()  # T.Normalize did it on the CPU
    loop = ProjectLoop(method, images[:batch], labels[:batch], batch, device,
                       compile_=compile_)  # (a)'s setup, only its data unused
    fmt = torch.channels_last if cuda else torch.contiguous_format
    for i in range(2):  # compile for the training shape now, before the workers fill the queue
        fake = [torch.rand(batch, 3, *images.shape[2:], device=device).contiguous(memory_format=fmt)
                for _ in range(2)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loop._update(method.views_loss(fake, loop.labels)[0], i)
    rounds = max(1, workers)
    warmup, steps = -(-max(1, warmup) // rounds) * rounds, -(-steps // rounds) * rounds
    nhwc = images.permute(0, 2, 3, 1).numpy()
    loader = torch.utils.data.DataLoader(
        PILPairs(nhwc, labels.numpy(), mean, std, batch * (warmup + steps)), batch_size=batch,
        shuffle=True, num_workers=workers, pin_memory=cuda, drop_last=True)
    it, wait, t0 = iter(loader), 0.0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            loop.loss_sum.item()
            t0, wait = time.perf_counter(), 0.0
        tw = time.perf_counter()
        v1, v2, y = next(it)
        wait += time.perf_counter() - tw
        views = [v.to(device, non_blocking=True).contiguous(memory_format=fmt) for v in (v1, v2)]
        y = y.to(device, non_blocking=True)
        for group in loop.optimizer.param_groups:
            group["lr"] = learning_rate(i, loop.total, loop.warm, loop.peak_lr)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = method.views_loss(views, y)[0]
        loop._update(loss, i)
    loop.loss_sum.item()
    dt = time.perf_counter() - t0
    del it
    return dt / steps, wait / dt, loop.compiled, steps


def time_fit(method, images, labels, batch: int, steps: int, device: torch.device,
             compile_: bool) -> float:
    """(a, fit): ``sslmem.train.fit.fit`` for 2 epochs of ``steps`` steps; its timer of epoch 2."""
    d = method.defaults
    spec = TrainSpec(epochs=2, batch_size=batch, optimizer=d.optimizer, lr=d.lr,
                     weight_decay=d.weight_decay, warmup_epochs=0, checkpoint_every=10**9,
                     compile="on" if compile_ else "off", progress=False)
    n = batch * steps
    history = fit(method, images[:n], labels[:n], spec, device=device)
    return history[1]["seconds"] / steps


# ------------------------------------------------------------------------------- profiling --
def profile_loop(loop: ProjectLoop, start: int, steps: int, out: str | None) -> dict:
    """Phase times (CUDA events / wall clock) and a torch.profiler summary of (a)'s step."""
    device, cuda = loop.device, loop.cuda
    marks: list = []

    def mark(name: str) -> None:
        if cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            marks.append((name, event))
        else:
            marks.append((name, time.perf_counter()))

    phases: dict[str, float] = {}
    for i in range(start, start + steps):
        marks.clear()
        mark("start")
        loop.phase_step(i, mark)
        sync(device)
        for (_, a), (name, b) in itertools.pairwise(marks):
            ms = a.elapsed_time(b) if cuda else (b - a) * 1e3
            phases[name] = phases.get(name, 0.0) + ms / steps
    result = {"steps": steps, "phase_ms_per_step": phases,
              "phase_clock": "CUDA events (GPU timeline)" if cuda else "wall clock"}

    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof, record_function("profiled_steps"):
        for i in range(start + steps, start + 2 * steps):
            loop.step(i)
        sync(device)
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    result["top_ops"] = prof.key_averages().table(sort_by=sort, row_limit=15,
                                                  max_name_column_width=60)
    trace = Path(out).with_suffix(".trace.json") if out else None
    with tempfile.TemporaryDirectory() as tmp:
        path = trace or Path(tmp) / "trace.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(path))
        try:
            result.update(_trace_busy(json.loads(path.read_text()), steps))
        except (OSError, KeyError, ValueError, TypeError, StopIteration) as err:
            result["busy_error"] = f"{type(err).__name__}: {err}"
    if trace:
        result["trace"] = str(trace)
    return result


def _trace_busy(trace: dict, steps: int) -> dict:
    """Wall ms/step of the profiled steps and the fraction of it the GPU ran kernels/copies."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    span = next(e for e in events if e.get("name") == "profiled_steps" and e.get("ph") == "X"
                and e.get("cat") == "user_annotation")
    lo, hi = float(span["ts"]), float(span["ts"]) + float(span["dur"])
    kinds = ("kernel", "gpu_memcpy", "gpu_memset")
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in events
                   if e.get("ph") == "X" and e.get("cat") in kinds)
    busy, end = 0.0, -math.inf
    for a, b in spans:  # union of intervals: overlapping streams are not double counted
        a = max(a, end)
        if b > a:
            busy, end = busy + b - a, b
    out = {"wall_ms_per_step": (hi - lo) / 1e3 / steps}
    if spans:
        out["gpu_busy_fraction"] = busy / (max(hi, end) - lo)
    return out


# ------------------------------------------------------------------------------------ main --
def row(name: str, dev: str, backbone: str, batch: int, s_step: float, flops: float,
        peak: float, mem, **extra) -> dict:
    images_s = batch / s_step
    return {"pipeline": name, "device": dev, "backbone": backbone, "batch": batch,
            "s_per_step": s_step, "images_per_s": images_s, "views_per_s": 2 * images_s,
            "s_per_epoch": EPOCH // batch * s_step, "tflops": images_s * flops / 1e12,
            "fraction_of_peak": images_s * flops / 1e12 / peak, "peak_mem_gib": mem, **extra}


def method_rows(names, args, device, images, labels, mean, std, peak, compile_) -> list[dict]:
    """One row per method at its paper settings (CPU: resnet9, batch 32 unless given)."""
    cuda, rows = device.type == "cuda", []
    steps = args.method_steps or (max(3, args.steps // 3) if args.steps else (20 if cuda else 2))
    warmup = max(1, (args.warmup or (10 if cuda else 1)) // 2)
    for name in names:
        d = METHODS[name].defaults
        backbone = args.backbone or (d.backbone if cuda else "resnet9")
        if name == "mae" and backbone not in VITS:
            backbone = d.backbone
        batch = args.batch or (d.batch_size if cuda else 32)
        fresh_memory(device)
        flops = step_flops(name, backbone, mean, std)
        torch.manual_seed(0)
        method = build(name, backbone, mean, std)
        views = len(method.views.views)
        loop = ProjectLoop(method, images, labels, batch, device, compile_=compile_)
        s_step = loop.timed(loop.step, warmup, steps)
        r = row(name, device_name(device), backbone, batch, s_step, flops, peak,
                peak_memory_gib(device), optimizer=d.optimizer, views=views, timed_steps=steps,
                gflop_per_sample=flops / 1e9, compiled=loop.compiled)
        r["views_per_s"] = views * r["images_per_s"]
        rows.append(r)
        print(f"  {name}: {s_step * 1e3:.1f} ms/step", flush=True)
        del loop, method
    return rows


def fmt_mem(m) -> str:
    return "-" if m is None else f"{m:.2f}"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cuda or cpu")
    ap.add_argument("--data", default="cifar10", help="dataset name, or 'random'")
    ap.add_argument("--data-root", default=None, help="default: $SSLMEM_DATA, then ../shared/data")
    ap.add_argument("--backbone", default=None, help="default: resnet18 on CUDA, resnet9 on CPU")
    ap.add_argument("--batch", type=int, default=None, help="default: 512 on CUDA, 64 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (CUDA 50, CPU 3)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (CUDA 10, CPU 1)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="(b)'s DataLoader workers")
    ap.add_argument("--no-compile", action="store_true", help="no torch.compile (CUDA only anyway)")
    ap.add_argument("--methods", default="",
                    help="'all' or a comma list: add the per-method table (paper settings)")
    ap.add_argument("--method-steps", type=int, default=None, help="timed steps per method")
    ap.add_argument("--profile", action="store_true", help="phase times + torch.profiler of (a)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default torch's; 1 helps on a busy CPU)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    load = os.getloadavg()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    backbone = args.backbone or ("resnet18" if cuda else "resnet9")
    batch = args.batch or (512 if cuda else 64)
    steps = args.steps or (50 if cuda else 3)
    warmup = args.warmup or (10 if cuda else 1)
    compile_ = cuda and not args.no_compile
    names = [] if not args.methods else (list(METHODS) if args.methods == "all"
                                         else args.methods.split(","))
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SSLMemError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)} or 'all'")

    images, labels, mean, std, source = load_images(args.data, args.data_root, EPOCH)
    print(f"images: {tuple(images.shape)} from {source}", flush=True)
    peak, peak_what = matmul_peak(device)
    f_fwd = forward_flops(backbone)
    flops = 3 * 2 * f_fwd
    flops_step = step_flops("simclr", backbone, mean, std)
    dev = device_name(device)
    counting = (f"images/s = source images/s (2 views each); s/epoch = {EPOCH // batch} steps x "
                f"s/step; FLOPs/image = 3 x 2 views x {f_fwd / 1e9:.3f} GFLOP ({backbone} forward,"
                f" flop_counter) = {flops / 1e9:.2f} GFLOP (one measured SimCLR step: "
                f"{flops_step / 1e9:.2f} GFLOP/image); peak = {peak:.3g} TFLOP/s ({peak_what})")
    print(counting, flush=True)

    rows, prof = [], None
    fresh_memory(device)
    torch.manual_seed(0)
    loop = ProjectLoop(build("simclr", backbone, mean, std), images, labels, batch, device,
                       compile_=compile_)
    s_a = loop.timed(loop.step, warmup, steps)
    rows.append(row("(a) sslmem: uint8 on device + sslmem.train.augment, fit's step", dev, backbone,
                    batch, s_a, flops, peak, peak_memory_gib(device), compiled=loop.compiled))
    print(f"(a) {s_a * 1e3:.1f} ms/step", flush=True)
    if args.profile:
        prof = profile_loop(loop, warmup + steps, max(3, min(steps, 10)), args.out)
    fresh_memory(device)
    s_c = loop.timed(loop.model_step, warmup, steps)
    rows.append(row("(c) model step alone (views made once: the ceiling)", dev, backbone, batch,
                    s_c, flops, peak, peak_memory_gib(device), compiled=loop.compiled))
    print(f"(c) {s_c * 1e3:.1f} ms/step", flush=True)
    del loop

    fresh_memory(device)
    torch.manual_seed(0)
    s_fit = time_fit(build("simclr", backbone, mean, std), images, labels, batch, steps, device,
                     compile_)
    rows.append(row("(a, fit) sslmem.train.fit.fit, its timer of epoch 2 of 2", dev, backbone,
                    batch, s_fit, flops, peak, peak_memory_gib(device), compiled=compile_))
    print(f"(a, fit) {s_fit * 1e3:.1f} ms/step", flush=True)

    fresh_memory(device)
    torch.manual_seed(0)
    s_b, wait, compiled, steps_b = time_dataloader(
        build("simclr", backbone, mean, std), images, labels, mean, std, batch, device,
        warmup=warmup, steps=steps, workers=args.workers, compile_=compile_)
    loader = f"DataLoader({args.workers} workers{', pinned' if cuda else ''})"
    rows.append(row(f"(b) PIL + torchvision.transforms, {loader}",
                    dev, backbone, batch, s_b, flops, peak, peak_memory_gib(device),
                    compiled=compiled, loader_wait_fraction=wait, timed_steps=steps_b))
    print(f"(b) {s_b * 1e3:.1f} ms/step (waiting for the loader {wait:.0%} of it)", flush=True)
    base = rows[-1]["images_per_s"]
    for r in rows:
        r["ratio_vs_b"] = r["images_per_s"] / base

    mrows = method_rows(names, args, device, images, labels, mean, std, peak, compile_) \
        if names else []

    machine = (f"machine: {dev}; {os.cpu_count()} CPU cores "
               f"({platform.processor() or platform.machine()}); torch {torch.__version__}, "
               f"{torch.get_num_threads()} intra-op threads; load average before the run "
               f"{load[0]:.2f}; compile {'on' if compile_ else 'off'}"
               "; bf16 autocast "
               f"{'on' if cuda else 'off (CPU: fp32, as fit)'}")
    print(f"\n{machine}\n{counting}\ntimed: {steps} steps after {warmup} warm-up steps"
          f" ((b): {steps_b}, whole worker rounds)\n")
    print("| pipeline | images/s | views/s | s/epoch (50k) | TFLOP/s | % of peak | peak mem GiB "
          "| vs (b) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pipeline']} | {r['images_per_s']:,.0f} | {r['views_per_s']:,.0f} | "
              f"{r['s_per_epoch']:,.1f} | {r['tflops']:.3g} | {100 * r['fraction_of_peak']:.1f} | "
              f"{fmt_mem(r['peak_mem_gib'])} | {r['ratio_vs_b']:.2f}x |")
    if mrows:
        print("\nper method (FLOPs counted over one real training step):\n")
        print("| method | backbone | batch | optimizer | views | images/s | s/epoch (50k) | "
              "GFLOP/image | TFLOP/s | % of peak | peak mem GiB |\n"
              "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in mrows:
            print(f"| {r['pipeline']} | {r['backbone']} | {r['batch']} | {r['optimizer']} | "
                  f"{r['views']} | {r['images_per_s']:,.0f} | {r['s_per_epoch']:,.1f} | "
                  f"{r['gflop_per_sample']:.2f} | {r['tflops']:.3g} | "
                  f"{100 * r['fraction_of_peak']:.1f} | {fmt_mem(r['peak_mem_gib'])} |")
    if prof:
        clock = prof["phase_clock"]
        print(f"\nprofile of (a), {prof['steps']} steps; phases in ms/step ({clock}):")
        print(" | ".join(f"{k} {v:.2f}" for k, v in prof["phase_ms_per_step"].items()))
        if "gpu_busy_fraction" in prof:
            print(f"GPU busy {prof['gpu_busy_fraction']:.0%} of {prof['wall_ms_per_step']:.2f} "
                  "ms/step under the profiler (the rest: launch gaps and host work)")
        elif "wall_ms_per_step" in prof:
            print(f"{prof['wall_ms_per_step']:.2f} ms/step under the profiler")
        print(prof["top_ops"])

    result = {"claim": __doc__.split("\n\n")[1], "counting": counting, "machine": machine,
              "images_source": source, "peak_tflops": peak, "peak_measured_with": peak_what,
              "forward_gflop_per_image": f_fwd / 1e9,
              "measured_simclr_step_gflop_per_image": flops_step / 1e9,
              "results": rows, "methods": mrows, "profile": prof}
    if args.out:
        result["provenance"] = provenance(vars(args), device, time.perf_counter() - t_start)
        write_json(args.out, result)
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
