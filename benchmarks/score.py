"""Scoring throughput: SSLMem of 5,000 candidates with 32 augmentation pairs through f and g.

Goal: at most 3 s on one H100 for ``sslmem.score.memorization.sslmem_score(f, g, images,
n_pairs=32)``
on 5,000 32 px images with two ResNet-18 encoders, augmentation included: 5,000 x 32 pairs x
2 views x 2 encoders = 640,000 encoder forwards, i.e. >= 213k forwards/s (>= 237 TFLOP/s at
1.11 GFLOP per forward, ~30 % of the H100's measured bf16 matmul peak, NOTES.md). The encoders
are untrained (speed does not depend on the weights), in eval mode and channels_last on CUDA,
as ``sslmem.train.fit.fit`` leaves them; ``sslmem_score`` runs bf16 autocast on CUDA itself.

What is timed: the whole call (parameter draws on the CPU, on-device augmentation, both encoders,
distances, the result table), after one warm-up call (a full one when compiled, so every chunk
shape is compiled; ``dynamic=False``), as the median of --repeats calls. Phases, timed apart:
"augment" = ``score_alignment`` with a zero-cost encoder (augmentation and bookkeeping only),
"forward" = the two encoders alone on the same batch shapes. images/s = encoder forwards per
second; the "s @ 5000x32" column scales the measured rate to the full job.

Measured: only the CPU smoke defaults so far (2-core AMD EPYC shared with other jobs, load ~7,
``--threads 1``; ResNet9, 128 candidates x 4 pairs = 2,048 forwards): 11.8 s, 174 forwards/s
(augment 0.07 s, forward 9.8 s). No GPU number yet. On a GPU:

    python benchmarks/score.py --device cuda --out results.json          # eager and compiled
    python benchmarks/score.py --device cuda --batch 2048 4096 8192 --compile on
    .venv/bin/python benchmarks/score.py --threads 1                     # CPU smoke, ~40 s
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import torch
from common import forward_flops, load_images, matmul_peak, sync
from torch import nn

from sslmem.io import device_name, provenance, write_json
from sslmem.score.alignment import score_alignment
from sslmem.score.evaluate import eval_mode, forward_features
from sslmem.score.memorization import sslmem_score
from sslmem.train.backbones import Encoder, build_backbone
from sslmem.train.fit import resolve_device

GOAL_S = 3.0  # seconds for 5,000 x 32 pairs, ResNet-18, one H100


def make_encoders(backbone: str, mean, std, device: torch.device, compile_: bool,
                  mode: str | None) -> list[nn.Module]:
    """Untrained f and g (seeds 0, 1), eval, channels_last on CUDA, optionally compiled."""
    encoders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        enc = Encoder(build_backbone(backbone, 32, 3), mean, std).to(device).eval()
        if device.type == "cuda":
            enc.to(memory_format=torch.channels_last)
        if compile_:
            enc.compile(dynamic=False, mode=mode)  # one static graph per chunk shape
        encoders.append(enc)
    return encoders


class _Null(nn.Module):
    """A zero-cost 'encoder' (per-channel means): times everything in scoring but the encoders."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def chunk_shapes(n: int, pairs: int, batch: int) -> list[int]:
    """Views per forward call of score_alignment: chunks of batch // (2K) points, 2K views each."""
    chunk = max(1, batch // (2 * pairs))
    return [min(chunk, n - a) * 2 * pairs for a in range(0, n, chunk)]


def median_time(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """(median, min) seconds of ``fn()`` over ``repeats`` calls, each ending in a sync."""
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def bench(images, f, g, pairs: int, batch: int, device: torch.device, *, repeats: int,
          compiled: bool, phases: bool) -> dict:
    """One configuration: warm-up, the timed calls, then the phases."""
    n = len(images)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm = images if compiled else images[:max(1, batch // (2 * pairs))]
    sslmem_score(f, g, warm, pairs, batch_size=batch, device=device)
    total, best = median_time(
        lambda: sslmem_score(f, g, images, pairs, batch_size=batch, device=device), repeats,
        device)
    out = {"seconds": total, "seconds_min": best,
           "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30
           if device.type == "cuda" else None}
    if not phases:
        return out
    null = {"none": _Null()}
    score_alignment(null, images[:1], pairs, batch_size=batch, device=device)
    out["augment_s"] = median_time(
        lambda: score_alignment(null, images, pairs, batch_size=batch, device=device), repeats,
        device)[0]
    shapes = chunk_shapes(n, pairs, batch)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = torch.rand(shapes[0], *images.shape[1:], device=device).contiguous(memory_format=fmt)

    def forwards():
        with eval_mode(f, g), torch.inference_mode():
            for m in shapes:
                for enc in (f, g):
                    forward_features(enc, x[:m])

    out["forward_s"] = median_time(forwards, repeats, device)[0]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cuda or cpu")
    ap.add_argument("--data", default="cifar10", help="dataset name, or 'random'")
    ap.add_argument("--data-root", default=None, help="default: $SSLMEM_DATA, then ../shared/data")
    ap.add_argument("--candidates", type=int, default=None,
                    help="points scored (CUDA 5000, CPU 128)")
    ap.add_argument("--pairs", type=int, default=None, help="augmentation pairs K (CUDA 32, CPU 4)")
    ap.add_argument("--backbone", default=None, help="default: resnet18 on CUDA, resnet9 on CPU")
    ap.add_argument("--batch", type=int, nargs="+", default=None,
                    help="views per forward call, one row each (CUDA 4096, CPU 512)")
    ap.add_argument("--compile", choices=("auto", "both", "on", "off"), default="auto",
                    help="torch.compile the encoders; auto = both rows on CUDA, off on CPU")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls (CUDA 5, CPU 1)")
    ap.add_argument("--no-phases", action="store_true", help="skip the augment/forward split")
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
    n = args.candidates or (5000 if cuda else 128)
    pairs = args.pairs or (32 if cuda else 4)
    backbone = args.backbone or ("resnet18" if cuda else "resnet9")
    batches = args.batch or [4096 if cuda else 512]
    repeats = args.repeats or (5 if cuda else 1)
    modes = {"auto": [False, True] if cuda else [False], "both": [False, True], "on": [True],
             "off": [False]}[args.compile]

    images, _, mean, std, source = load_images(args.data, args.data_root, n)
    images = images.to(device)
    forwards = n * pairs * 2 * 2
    peak, peak_what = matmul_peak(device)
    flops = forward_flops(backbone)
    dev = device_name(device)
    counting = (f"{n} candidates x {pairs} pairs x 2 views x 2 encoders = {forwards:,} forwards of "
                f"{backbone} ({flops / 1e9:.3f} GFLOP each, flop_counter); peak = {peak:.3g} "
                f"TFLOP/s ({peak_what})")
    print(f"images: {tuple(images.shape)} from {source}\n{counting}", flush=True)

    rows = []
    for compiled in modes:
        f, g = make_encoders(backbone, mean, std, device, compiled, args.compile_mode)
        for batch in batches:
            label = f"{'compiled' if compiled else 'eager'}, batch {batch}"
            try:
                r = bench(images, f, g, pairs, batch, device, repeats=repeats, compiled=compiled,
                          phases=not args.no_phases)
            except Exception as err:
                if not compiled:
                    raise
                warnings.warn(f"{label} failed ({type(err).__name__}: {err})", stacklevel=1)
                rows.append({"config": label, "compiled": compiled, "batch": batch,
                             "error": f"{type(err).__name__}: {err}"})
                continue
            rate = forwards / r["seconds"]
            r.update(config=label, compiled=compiled, batch=batch, images_per_s=rate,
                     tflops=rate * flops / 1e12, fraction_of_peak=rate * flops / 1e12 / peak,
                     seconds_full_job=5000 * 32 * 2 * 2 / rate)
            rows.append(r)
            print(f"  {label}: {r['seconds']:.3f} s", flush=True)
        del f, g

    machine = (f"machine: {dev}; {os.cpu_count()} CPU cores "
               f"({platform.processor() or platform.machine()}); torch {torch.__version__}, "
               f"{torch.get_num_threads()} intra-op threads; load average before the run "
               f"{load[0]:.2f}; bf16 autocast {'on' if cuda else 'off (CPU: fp32)'}")
    print(f"\n{machine}\n{counting}\ntimed: median of {repeats} call(s) after a warm-up\n")
    print("| config | seconds | images/s | TFLOP/s | % of peak | augment s | forward s | "
          "s @ 5000x32 | peak mem GiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['config']} | failed: {r['error'][:60]} | | | | | | | |")
            continue
        mem = "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f}"
        aug, fwd = (f"{r[k]:.3f}" if k in r else "-" for k in ("augment_s", "forward_s"))
        print(f"| {r['config']} | {r['seconds']:.3f} | {r['images_per_s']:,.0f} | "
              f"{r['tflops']:.3g} | {100 * r['fraction_of_peak']:.1f} | {aug} | {fwd} | "
              f"{r['seconds_full_job']:,.1f} | {mem} |")
    done = [r for r in rows if "error" not in r]
    full = cuda and n == 5000 and pairs == 32 and backbone == "resnet18"
    if full and done:
        best = min(done, key=lambda r: r["seconds"])
        verdict = "met" if best["seconds"] <= GOAL_S else "NOT met"
        print(f"\ngoal <= {GOAL_S:g} s on an H100: {verdict} on {dev} (best: {best['config']}, "
              f"{best['seconds']:.2f} s)")

    result = {"goal": __doc__.split("\n\n")[1], "counting": counting, "machine": machine,
              "images_source": source, "peak_tflops": peak, "peak_measured_with": peak_what,
              "forward_gflop": flops / 1e9, "results": rows}
    if args.out:
        result["provenance"] = provenance(vars(args), device, time.perf_counter() - t_start)
        write_json(args.out, result)
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
