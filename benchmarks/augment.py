"""Throughput of SimCLR view generation: sslmem.train.augment vs the PIL/DataLoader pipeline vs
kornia.

Claim checked: batched per-sample tensor augmentation (sslmem.train.augment) where the data lives is
faster than the conventional pipeline (PIL images + torchvision.transforms in a DataLoader with
one worker per core, batch 512, two views per item as lightly/solo-learn do).

What is counted: augmented views per second ("images/s"). Every source image yields 2 views
(SimCLR: RandomResizedCrop(scale 0.08-1) + flip 0.5 + ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8 +
grayscale 0.2), so images/s = 2 x source images/s. All pipelines augment the same uint8 images;
each is warmed up first (DataLoader: worker start-up and the first batch are not timed), then
timed for --seconds. The DataLoader pipeline stops at CPU tensors (no host-to-GPU copy counted).

    .venv/bin/python benchmarks/augment.py                      # CPU, ~30 s on 2 cores
    .venv/bin/python benchmarks/augment.py --device cuda --out runs/bench_augment.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sslmem.io import data_root, device_name, provenance, write_json
from sslmem.train.augment import recipe

MINI = Path("/work/shared/data/cifar10-mini/train.npz")


def load_images(root: str | None, n: int) -> tuple[np.ndarray, str]:
    """CIFAR-10 train (N, 32, 32, 3) uint8 from the data root, else cifar10-mini, else noise."""
    for path in (data_root(root) / "cifar10" / "train.npz", MINI):
        if path.exists():
            with np.load(path) as z:
                return z["images"][:n], str(path)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), "random uint8 (no data found)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_tensor(images: np.ndarray, device: torch.device, batch: int, seconds: float) -> float:
    """(a) sslmem.train.augment on `device`: views/s."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    aug = recipe("simclr", 32)
    starts = itertools.cycle(range(0, max(1, len(x) - batch + 1), batch))
    for _ in range(3):  # warm-up (allocator, kernels, thread pools)
        aug(x[:batch])
    _sync(device)
    views, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = next(starts)
        out = aug(x[s:s + batch])
        views += sum(len(v) for v in out)
    _sync(device)
    return views / (time.perf_counter() - t0)


class _PILPairs(torch.utils.data.Dataset):
    """Items are two independently augmented views of one PIL image (lightly/solo-learn style)."""

    def __init__(self, images: np.ndarray, length: int):
        import torchvision.transforms as T

        self.images, self.length = images, length
        self.transform = T.Compose([
            T.RandomResizedCrop(32), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2), T.ToTensor()])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i % len(self.images)])
        return self.transform(img), self.transform(img)


def bench_dataloader(images: np.ndarray, workers: int, seconds: float) -> float:
    """(b) PIL + torchvision.transforms in a DataLoader, batch 512: views/s."""
    loader = torch.utils.data.DataLoader(
        _PILPairs(images, length=10**7), batch_size=512, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0, drop_last=True)
    it = iter(loader)
    next(it)  # warm-up: worker start-up and the first batch
    views, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        v1, v2 = next(it)
        views += len(v1) + len(v2)
    rate = views / (time.perf_counter() - t0)
    del it
    return rate


def bench_kornia(images: np.ndarray, device: torch.device, batch: int, seconds: float):
    """(c) kornia's equivalent augmentation on `device`: views/s, or None if not installed."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    aug = K.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.08, 1.0)), K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    starts = itertools.cycle(range(0, max(1, len(x) - batch + 1), batch))
    for _ in range(2):
        aug(x[:batch].float() / 255)
    _sync(device)
    views, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = next(starts)
        xb = x[s:s + batch].float() / 255
        views += len(aug(xb)) + len(aug(xb))
    _sync(device)
    return views / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=10000, help="source images to load")
    ap.add_argument("--batch", type=int, default=512, help="source images per tensor batch")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="DataLoader workers")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per pipeline")
    ap.add_argument("--data-root", default=None, help="default: $SSLMEM_DATA")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    load = os.getloadavg()
    device = torch.device(args.device)
    images, source = load_images(args.data_root, args.n)
    print(f"images: {len(images)} from {source}")
    dev_name = device_name(device)
    rows = [("sslmem.train.augment (batched tensor ops)", dev_name,
             bench_tensor(images, device, args.batch, args.seconds)),
            (f"PIL + torchvision.transforms, DataLoader({args.workers} workers, batch 512)",
             device_name("cpu"), bench_dataloader(images, args.workers, args.seconds))]
    kornia_rate = bench_kornia(images, device, args.batch, args.seconds)
    if kornia_rate is None:
        print("kornia not installed")
    else:
        rows.append(("kornia.augmentation", dev_name, kornia_rate))

    base = rows[1][2]
    machine = (f"machine: {dev_name}; {os.cpu_count()} CPU cores "
               f"({platform.processor() or platform.machine()}); torch {torch.__version__}, "
               f"{torch.get_num_threads()} intra-op threads; load average before the run "
               f"{load[0]:.2f} (other processes share these cores when > 0)")
    print(f"\n{machine}\ncounted: augmented 32x32 views/s (2 SimCLR views per source image)\n")
    print("| pipeline | device | images/s | vs (b) |\n|---|---|---:|---:|")
    for name, dev, rate in rows:
        print(f"| {name} | {dev} | {rate:,.0f} | {rate / base:.2f}x |")

    result = {
        "counted": "augmented 32x32 views per second; 2 SimCLR views per source image",
        "images_source": source,
        "machine": machine,
        "results": [{"pipeline": n, "device": d, "images_per_s": r, "ratio_vs_dataloader": r / base}
                    for n, d, r in rows],
        "kornia": "installed" if kornia_rate is not None else "not installed",
    }
    if args.out:
        result["provenance"] = provenance(vars(args), device, time.perf_counter() - t_start)
        write_json(args.out, result)
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
