"""CPU training throughput: which settings speed up a training step on a laptop-class CPU.

Claim checked (issue: the laptop profile): on 2 CPU cores, sslmem's training step (uint8 images
in memory, per-sample batched augmentation, the model under the settings ``sslmem.train.fit.fit``
picks) is at least 1.5x faster than the usual pipeline, in the same run: PIL images augmented by
torchvision transforms in a ``DataLoader`` (one worker per core) feeding the same model in eager
fp32. Rows, each the same SimCLR step (two views, forward, backward, optimizer) on the same
images, timed over --steps steps after --warmup:

    (b)  the usual pipeline: PIL + torchvision.transforms + DataLoader, eager fp32
    (a0) ours, fp32 eager (what ``fit`` did on a CPU before this benchmark)
    (a1) ours, channels_last
    (a2) ours, bf16 autocast
    (a3) ours, bf16 autocast + channels_last
    (a4) ours, bf16 autocast + channels_last + torch.compile
    (a5) ours, bf16 autocast + channels_last, 1 intra-op thread
    (fit) ``sslmem.train.fit.fit`` itself (its own timer of epoch 2 of 2), whatever it picks here

bf16 pays only where the CPU has it natively (AVX512-BF16 or AMX); elsewhere it is emulated.
It changes the numbers, so ``fit`` trains in the configuration's ``precision`` (fp32 unless a
profile or the user says bf16; it is part of a result's key) in the memory format that
``sslmem.train.calibrate`` measured fastest on the host, and never compiles on a CPU.

Measured (2026-11-24, 2 cores of an Intel Xeon with AMX, otherwise idle; ResNet-9, 32 px,
batch 128): ``fit`` 474 images/s against 171 for (b), 2.8x; bf16 alone 2.1x, channels_last
alone 1.2x, compile slower than without.

Measured again (2026-11-29, 23:10, 2 cores of an AMD EPYC, AVX2 only, no native bf16; load
average 1.5 before; 4.6 min; ``results/benchmarks/cpu.json``): (b) 63 images/s, (a0) 66
(1.05x), (a1) channels_last 73 (1.16x), (a4) fp32 compiled 70, emulated bf16 4-6, (a5) one
thread 45 (two such processes: 90), ``fit`` 68 (**1.07x**, 93 % of the fastest row). Here the
ResNet-9 step itself is the cost (its convolutions run at ~60 % of this CPU's fp32 kernel rate
in both pipelines), so the data pipeline cannot buy 1.5x; only faster arithmetic (native bf16,
a GPU) can. README.md has both runs.

    .venv/bin/python benchmarks/cpu.py --out results/benchmarks/cpu.json    # 1-5 min
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from common import load_images, save
from train import build, time_dataloader, time_fit
from unit import step_fn

from sslmem.io import device_name
from sslmem.train.calibrate import cpu_has_native_bf16


def time_ours(method, images, labels, batch: int, *, bf16: bool, channels_last: bool,
              compile_: bool, warmup: int, steps: int) -> float:
    """Seconds per training step of ``method`` on uint8 ``images`` with the given settings."""
    step = step_fn(method, images, batch, labels=labels, bf16=bf16,
                   channels_last=channels_last, compile_=compile_)
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--backbone", default="resnet9")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    t_start, load = time.perf_counter(), os.getloadavg()
    threads = torch.get_num_threads()
    images, labels, mean, std, source = load_images(args.data, args.data_root, 4096)
    print(f"images: {tuple(images.shape)} from {source}; {threads} threads; native bf16: "
          f"{cpu_has_native_bf16()}", flush=True)

    def fresh():
        torch.manual_seed(0)
        return build(args.method, args.backbone, mean, std)

    rows = []

    def add(name: str, seconds: float, **extra) -> None:
        rows.append({"pipeline": name, "s_per_step": seconds,
                     "images_per_s": args.batch / seconds, **extra})
        print(f"{name}: {args.batch / seconds:,.0f} images/s", flush=True)

    s_b, wait, _, _ = time_dataloader(fresh(), images, labels, mean, std, args.batch,
                                      torch.device("cpu"), warmup=args.warmup, steps=args.steps,
                                      workers=args.workers, compile_=False)
    add(f"(b) PIL + torchvision.transforms, DataLoader({args.workers} workers), eager fp32", s_b,
        loader_wait_fraction=wait)
    variants = [("(a0) ours, fp32 eager", dict(bf16=False, channels_last=False, compile_=False)),
                ("(a1) ours, channels_last", dict(bf16=False, channels_last=True, compile_=False)),
                ("(a2) ours, bf16 autocast", dict(bf16=True, channels_last=False, compile_=False)),
                ("(a3) ours, bf16 + channels_last",
                 dict(bf16=True, channels_last=True, compile_=False)),
                ("(a4) ours, bf16 + channels_last + torch.compile",
                 dict(bf16=True, channels_last=True, compile_=True))]
    native = cpu_has_native_bf16()
    if not native:  # emulated bf16 (~15x slower): (a2), (a3) show it; compiling it takes minutes
        variants[-1] = ("(a4) ours, fp32 + torch.compile (bf16 is emulated here)",
                        dict(bf16=False, channels_last=False, compile_=True))
    for name, kw in variants:
        few = kw["bf16"] and not native  # an emulated bf16 step takes seconds: 2 of them
        add(name, time_ours(fresh(), images, labels, args.batch, warmup=1 if few else args.warmup,
                            steps=2 if few else args.steps, **kw), **kw)
    torch.set_num_threads(1)
    add(f"(a5) ours, {'bf16 + ' if native else 'fp32 '}channels_last, 1 thread",
        time_ours(fresh(), images, labels, args.batch, bf16=native, channels_last=True,
                  compile_=False, warmup=args.warmup, steps=args.steps), threads=1)
    torch.set_num_threads(threads)
    add("(fit) sslmem.train.fit.fit (fp32, the memory format it measured fastest)",
        time_fit(fresh(), images, labels, args.batch, args.steps, torch.device("cpu"), False))
    base = rows[0]["images_per_s"]
    for r in rows:
        r["vs_b"] = r["images_per_s"] / base
    machine = (f"{device_name('cpu')}, {platform.processor() or platform.machine()}, torch "
               f"{torch.__version__}, {threads} threads, native bf16 {cpu_has_native_bf16()}, "
               f"load average before the run {load[0]:.2f}")
    print(f"\n{machine}; {args.method} {args.backbone} batch {args.batch}, 32 px, "
          f"{args.steps} timed steps\n")
    print("| pipeline | images/s | vs (b) |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['pipeline']} | {r['images_per_s']:,.0f} | {r['vs_b']:.2f}x |")
    result = {"claim": __doc__.split("\n\n")[1], "machine": machine, "images_source": source,
              "results": rows}
    return save(result, args, t_start)


if __name__ == "__main__":
    main()
