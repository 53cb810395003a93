"""One ensemble unit on this CPU: the kernel ceiling, FLOPs, MFU, and which settings pay.

Why: with no GPU every result of the book is computed on 2 CPU cores, and the ensemble estimator
is made of units that each train one encoder on half of a small pool and score the pool with K
pairs. The book's chosen design (``simclr-e800-n128-shared``: SimCLR, ResNet-9, CIFAR-10 at
16 px, 64 images per member, batch 64, 800 epochs, 256 points scored with 16 pairs) is therefore
800 training steps of 128 views plus 8,192 scoring views. This script measures, in one run, on
the host at hand (hosts differ: an AMX Xeon ran bf16 2.1x faster than fp32, another Xeon 0.81x,
this EPYC has no native bf16):

* the ceiling: ``F.conv2d`` at each of ResNet-9's layer shapes at the unit's batch, fp32 and
  bf16, best of several rounds, and a 1024^3 fp32 matmul; the ISA that oneDNN dispatches to
  (from ``ONEDNN_VERBOSE``) and ATen's CPU capability;
* FLOPs per training step and per scoring view (``torch.utils.flop_counter``);
* a training step (exactly the SimCLR step ``fit`` takes) under each candidate setting: fp32
  eager (what ``fit`` does on a CPU without native bf16), channels_last, bf16 autocast, bf16 +
  channels_last, ``torch.compile``; with 1 thread (a unit of ``--jobs 2``) and 2 threads;
* scoring (``score_alignment`` through one encoder, 256 points x 16 pairs): fp32 eager (the
  scorer before issue 20), BatchNorm folded into the convolutions (``sslmem.evaluate``'s
  ``fold_batchnorm``), + channels_last, the scorer itself (``inference_copy``),
  ``torch.compile`` (inductor), bf16 where it is native (emulated bf16 is measured once, on a
  training step); each row's largest per-point change of L_align against the fp32 path on the
  same views, in units of the per-point Monte-Carlo standard error (usable if that is << 1);
* the per-op profile of one training step (``torch.profiler``): where the time goes.

Every row: median of --repeats timings, views/s, GFLOP/s and the fraction of the measured
ceiling at the same thread count (MFU). The load average before and after is recorded: a number
measured while other work shared the cores says so.

Measured (2026-11-29, 21:32, AMD EPYC, AVX2 + FMA, oneDNN dispatching AVX2, no native bf16;
otherwise idle: load average 1.7 before, 1.8 after; torch 2.14.1; ``results/benchmarks/unit.json``;
10.4 min). SimCLR, ResNet-9, 16 px, batch 64: 18.9 GFLOP per training step, 47.6 MFLOP per
scoring view. Ceiling = the best kernel rate measured (ResNet-9's convolutions in either memory
format, or the matmul): 77 GFLOP/s on 1 thread, 126 on 2.

| row | 1 thread views/s | MFU | 2 threads views/s | MFU |
|---|---:|---:|---:|---:|
| train: fp32 eager | 287 | 55 % | 345 | 40 % |
| train: fp32 channels_last | 250 | 48 % | 440 | 52 % |
| train: fp32 torch.compile | 287 | 55 % | 408 | 48 % |
| train: bf16 autocast / + channels_last (emulated) | 9 / 27 | 2 / 5 % | – | – |
| score: fp32 eager (before issue 20) | 501 | 31 % | 832 | 32 % |
| score: BatchNorm folded | 615 | 38 % | 1,010 | 38 % |
| score: folded + channels_last | 1,011 | 62 % | 1,656 | 63 % |
| score: folded + torch.compile | 1,095 | 67 % | 2,125 | 81 % |
| score: **the scorer** (``inference_copy``: folded, measured format) | 930 | 57 % | 1,690 | 64 % |

Every scoring path changed no per-point L_align by more than 0.001 Monte-Carlo s.e. What this
says, with the previous run of this script (same host, 2026-11-29 afternoon: 1 thread eager 251,
channels_last 347 views/s):

* the scorer is 1.9x (1 thread) and 2.0x (2 threads) the eager fp32 path it replaced; compiled,
  2.2x and 2.6x. The ceiling bounds any fp32 scorer here at 1,626 views/s on 1 thread: **3.2x
  eager at most**, so issue 20's 4x cannot be reached on this CPU;
* training: channels_last was 1.4x faster on 1 thread in the afternoon and 0.87x in this run
  (2 threads: 1.28x); ``sslmem.calibrate``'s interleaved measurement (alternating formats within
  each round) found 1.15-1.2x for channels_last in 8 repetitions the same day. On this host the
  memory format's effect at 1 thread is of the size of the run-to-run variation of sequential
  timings, which is why the calibration interleaves and re-measures choices made on a busy host.
  A step's ceiling is 526 views/s (1 thread); eager reaches 55 % of it, so a 2x faster unit
  (training is ~96 % of it) would need over 100 % of the measured kernel rate: not possible here;
* where the time of a training step goes (1 thread, fp32 eager, ``torch.profiler``, earlier run):
  convolution backward ~49 %, convolution forward ~24 %, BatchNorm ~9 %, max-pool ~5 %, the
  projection head's matmuls 3 %, the optimizer 3 %, augmentation (elementwise ops) ~2 %; Python
  overhead is negligible;
* two single-threaded processes (``--jobs 2``) train 2 x 287 = 574 views/s against 440 for one
  process with 2 threads: the plan's default stays;
* bf16 is emulated and ~30x slower: never on this host.

    .venv/bin/python benchmarks/unit.py --out results/benchmarks/unit.json     # ~12 min
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from common import load_images, save
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sslmem.calibrate import cpu_has_native_bf16
from sslmem.evaluate import fold_batchnorm
from sslmem.memorization import score_alignment
from sslmem.methods import build_method
from sslmem.train import make_optimizer


# ---------------------------------------------------------------------------------- host --
def host() -> dict:
    """CPU model, the flags that matter, ATen's capability and oneDNN's ISA."""
    flags = ""
    try:
        text = open("/proc/cpuinfo").read()
        flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("model name")), platform.processor())
    except OSError:
        model = platform.processor()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    code = ("import torch;x=torch.rand(8,16,8,8);w=torch.rand(16,16,3,3);"
            "torch.nn.functional.conv2d(x,w,padding=1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ONEDNN_VERBOSE": "1"}, timeout=120).stdout
    isa = re.search(r"isa:([^,\n]+)", out)
    return {"cpu": model, "flags": [f for f in wanted if f" {f}" in flags],
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_isa": isa.group(1).strip() if isa else "unknown (no oneDNN verbose line)",
            "torch": torch.__version__, "cores": os.cpu_count()}


def timed(fn, repeats: int, min_s: float = 0.3) -> float:
    """Median seconds per call over ``repeats`` rounds of at least ``min_s`` each."""
    fn()
    rounds = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while n < 1 or time.perf_counter() - t0 < min_s:
            fn()
            n += 1
        rounds.append((time.perf_counter() - t0) / n)
    return statistics.median(rounds)


# ------------------------------------------------------------------------------ ceiling --
def conv_shapes(net: nn.Module, x: torch.Tensor) -> list[tuple]:
    """(input shape, weight shape, padding) of every Conv2d in a forward pass of ``x``."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(
        (tuple(i[0].shape), tuple(m.weight.shape), m.padding)))
        for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return shapes


def ceiling(shapes: list[tuple], dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of ResNet-9's convolutions at their best: the FLOPs of all layer shapes over the
    sum of each shape's best time, in either memory format (the model's forward at kernel
    speed, no other op)."""
    flops, seconds = 0.0, 0.0
    for xs, ws, pad in dict.fromkeys(shapes):
        x, w = torch.randn(xs, dtype=dtype), torch.randn(ws, dtype=dtype)
        xl, wl = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
        flops += 2 * xs[0] * ws[0] * ws[1] * ws[2] * ws[3] * xs[2] * xs[3] * shapes.count(
            (xs, ws, pad))
        seconds += min(timed(lambda a=a, b=b: F.conv2d(a, b, padding=pad), 1, 0.1)
                       for _ in range(repeats) for a, b in ((x, w), (xl, wl))
                       ) * shapes.count((xs, ws, pad))
    return flops / seconds / 1e9


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return 2 * 1024**3 / min(timed(lambda: a @ b, 1, 0.2) for _ in range(repeats)) / 1e9


# ----------------------------------------------------------------------------- training --
def simclr(mean, std, image_size: int):
    torch.manual_seed(0)
    return build_method("simclr", "resnet9", image_size=image_size, channels=3, mean=mean,
                        std=std, num_classes=10)


def step_fn(method, images, batch: int, *, bf16: bool, channels_last: bool, compile_: bool,
            labels=None):
    """A closure taking one training step as ``fit`` does (views, loss, backward, optimizer);
    ``labels`` default to zeros (an SSL step never reads them)."""
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    if compile_:
        method.encoder.backbone.compile(dynamic=False)
    d = method.defaults
    optimizer = make_optimizer(method, d.optimizer, d.lr * batch / 256, d.weight_decay)
    generator = torch.Generator().manual_seed(0)
    labels = torch.zeros(len(images), dtype=torch.long) if labels is None else labels
    method.train()
    state = {"i": 0}

    def step() -> None:
        s = (state["i"] * batch) % (len(images) - batch + 1)
        state["i"] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method(images[s:s + batch], labels[s:s + batch], generator, 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(mean, std, images, batch: int) -> float:
    method = simclr(mean, std, images.shape[-1])
    with FlopCounterMode(display=False) as counter:
        method(images[:batch], torch.zeros(batch, dtype=torch.long),
               torch.Generator().manual_seed(0), 0.0).backward()
    return counter.get_total_flops()


def profile_step(step, rows: int = 14) -> str:
    """The per-op table of a few training steps, sorted by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


# ------------------------------------------------------------------------------ scoring --
def score_rows(encoder, images, pairs: int, repeats: int, threads: int,
               compile_: bool = True, bf16: bool = True) -> list[dict]:
    """Scoring paths: views/s and the largest per-point change against fp32 eager, in s.e."""
    encoder = encoder.eval()

    def run(enc, bf16=False, fast=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return score_alignment({"e": enc}, images, pairs, seed=0, fast=fast)["e"].double()

    reference = run(encoder)
    se = reference.std(1) / pairs ** 0.5
    cl = fold_batchnorm(encoder).to(memory_format=torch.channels_last)
    paths = [("fp32 eager (before)", encoder, False, False),
             ("BatchNorm folded", fold_batchnorm(encoder), False, False),
             ("folded + channels_last", cl, False, False),
             ("the scorer (inference_copy: folded, measured format)", encoder, False, True)]
    if bf16:
        paths.append(("bf16 autocast", encoder, True, False))
    if compile_:
        compiled = fold_batchnorm(encoder)
        compiled.compile(dynamic=False)
        paths.insert(3, ("folded + torch.compile", compiled, False, False))
    views = len(images) * pairs * 2
    rows = []
    for name, enc, bf16, fast in paths:
        try:
            d = run(enc, bf16, fast)
            s = timed(lambda enc=enc, bf16=bf16, fast=fast: run(enc, bf16, fast), repeats, 0.5)
        except Exception as err:  # noqa: BLE001 — a path this torch/CPU cannot run is a row
            rows.append({"row": f"score: {name}", "threads": threads, "error": str(err)[:200]})
            continue
        shift = ((d.mean(1) - reference.mean(1)).abs() / se).max().item()
        rows.append({"row": f"score: {name}", "threads": threads, "seconds": s,
                     "views_per_s": views / s, "max_shift_in_se": shift})
    return rows


# --------------------------------------------------------------------------------- main --
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--pool", type=int, default=256, help="points scored per unit")
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=800, help="steps of the unit (1 per epoch)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t_start, load_before = time.perf_counter(), os.getloadavg()[0]
    info = host()
    print(f"host: {info}", flush=True)
    raw, _, mean, std, source = load_images(args.data, args.data_root, 1024)
    size = args.image_size
    images = F.interpolate(raw.float(), size=(size, size), mode="area").round().to(torch.uint8)
    flops_step = step_flops(mean, std, images, args.batch)
    probe = simclr(mean, std, size).encoder.backbone.eval()
    x = torch.rand(2 * args.batch, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        probe(x[:1])
    flops_view = counter.get_total_flops()
    shapes = conv_shapes(probe, x)
    rows, ceilings, profile_table = [], {}, ""
    settings = [("fp32 eager (fit today)", dict(bf16=False, channels_last=False, compile_=False)),
                ("fp32 channels_last", dict(bf16=False, channels_last=True, compile_=False)),
                ("bf16 autocast", dict(bf16=True, channels_last=False, compile_=False)),
                ("bf16 + channels_last", dict(bf16=True, channels_last=True, compile_=False))]
    if not args.no_compile:
        settings.append(("fp32 torch.compile", dict(bf16=False, channels_last=False,
                                                     compile_=True)))
    threads_default = torch.get_num_threads()
    native = cpu_has_native_bf16()
    first = int(args.threads.split(",")[0])
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        ceilings[threads] = {"conv_fp32": ceiling(shapes, torch.float32, args.repeats),
                             "conv_bf16": ceiling(shapes, torch.bfloat16, args.repeats),
                             "matmul_fp32": matmul_gflops(args.repeats)}
        print(f"{threads} thread(s): ceiling {ceilings[threads]}", flush=True)
        peak = max(ceilings[threads].values())  # the best kernel rate measured here
        for name, kw in settings:
            if kw["bf16"] and not native and threads != first:
                continue  # emulated bf16 (~25x slower): measured once, at the first count
            try:
                step = step_fn(simclr(mean, std, size), images, args.batch, **kw)
                s = timed(step, args.repeats, 1.0)
            except Exception as err:  # noqa: BLE001 — e.g. a compiler this host lacks
                rows.append({"row": f"train: {name}", "threads": threads,
                             "error": str(err)[:200]})
                print(f"  train {name}: failed ({err})", flush=True)
                continue
            rows.append({"row": f"train: {name}", "threads": threads, "seconds": s,
                         "views_per_s": 2 * args.batch / s, "gflops": flops_step / s / 1e9,
                         "mfu": flops_step / s / 1e9 / peak,
                         "unit_train_min": args.epochs * s / 60})
            print(f"  train {name}: {s * 1e3:.0f} ms/step, {rows[-1]['mfu']:.0%} of the ceiling",
                  flush=True)
            if not profile_table and threads == 1 and not any(kw.values()):
                profile_table = profile_step(step)
        pool = images[:args.pool]
        encoder = simclr(mean, std, size).encoder
        for r in score_rows(encoder, pool, args.pairs, args.repeats, threads,
                            not args.no_compile, native):
            if "seconds" in r:
                r["gflops"] = r["views_per_s"] * flops_view / 1e9
                r["mfu"] = r["gflops"] / peak
            rows.append(r)
            print(f"  {r['row']}: " + (f"{r['views_per_s']:,.0f} views/s, shift "
                                        f"{r['max_shift_in_se']:.3f} s.e." if "seconds" in r
                                        else r["error"]), flush=True)
    torch.set_num_threads(threads_default)
    load_after = os.getloadavg()[0]
    print(f"\nper-op profile of a training step (1 thread, fp32 eager):\n{profile_table}")
    print(f"{info['cpu']} ({', '.join(info['flags'])}; oneDNN {info['onednn_isa']}); load "
          f"average {load_before:.2f} before, {load_after:.2f} after; {flops_step / 1e9:.1f} "
          f"GFLOP per step, {flops_view / 1e6:.1f} MFLOP per view\n")
    print("| row | threads | views/s | GFLOP/s | MFU | unit min |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "seconds" in r:
            print(f"| {r['row']} | {r['threads']} | {r['views_per_s']:,.0f} | {r['gflops']:.1f} "
                  f"| {r['mfu']:.0%} | {r.get('unit_train_min', float('nan')):.1f} |")
    result = {"claim": __doc__.split("\n\n")[1], "host": info, "images_source": source,
              "load_average": [load_before, load_after], "flops_per_step": flops_step,
              "flops_per_view": flops_view, "ceilings_gflops": ceilings, "rows": rows,
              "profile": profile_table}
    return save(result, args, t_start)


if __name__ == "__main__":
    main()
