"""Pieces the benchmark scripts share: the images, device sync, the matmul peak, FLOP counts."""

from __future__ import annotations

import time

import torch

from sslmem.errors import SSLMemError
from sslmem.io import data_root, repo_dir
from sslmem.train.backbones import build_backbone
from sslmem.train.data import load_dataset

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def load_images(name: str, root: str | None, n: int):
    """uint8 (N, 3, 32, 32) CPU images, labels, mean, std and their source.

    Looks in the data root ($SSLMEM_DATA) and in ../shared/data; else random uint8 images of the
    same shape (throughput does not depend on the pixels).
    """
    if name != "random":
        for r in dict.fromkeys([data_root(root), repo_dir().parent / "shared" / "data"]):
            try:
                d = load_dataset(name, "train", data_root=r, download=False)
            except SSLMemError:
                continue
            if d.image_size == 32 and d.channels == 3:
                return d.images[:n], d.labels[:n], d.mean, d.std, f"{name} train from {r}"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images, labels, *CIFAR10_STATS, f"random uint8 ({name} not found)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device) -> tuple[float, str]:
    """Measured matmul TFLOP/s, best of 5 rounds: bf16 8192^3 on CUDA, fp32 1024^3 on CPU."""
    cuda = device.type == "cuda"
    n, dtype = (8192, torch.bfloat16) if cuda else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):  # a peak: the best round, so a busy moment does not lower it
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while reps < 10 or time.perf_counter() - t0 < 0.2:
            for _ in range(10):
                a @ b
            reps += 10
            sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12)
    return best, f"{'bf16' if cuda else 'fp32'} {n}x{n}x{n} matmul, best of 5 rounds"


def forward_flops(backbone: str, image_size: int = 32) -> float:
    """Forward FLOPs of one image through the backbone (conv + matmul, 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = build_backbone(backbone, image_size, 3).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(2, 3, image_size, image_size))
    return counter.get_total_flops() / 2


def save(result: dict, args, t_start: float, device: str = "cpu") -> dict:
    """Attach provenance (the arguments, device, versions, wall time) and write ``args.out``."""
    if args.out:
        from sslmem.io import provenance, write_json

        result["provenance"] = provenance(vars(args), device, time.perf_counter() - t_start)
        write_json(args.out, result)
        print(f"\nwrote {args.out}")
    return result
