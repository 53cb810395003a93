"""The one training loop for every method: fast on a GPU, exact to resume, clear when it fails.

Why these choices:
  * data stays on the device as uint8 and augmentation runs there (``sslmem.train.augment``), so the
    loop never waits for a CPU DataLoader;
  * bf16 autocast + channels_last + ``torch.compile`` on CUDA (the compile falls back to eager
    if it fails); on a CPU, the precision and memory format measured fastest on this host for
    this step (``sslmem.train.calibrate``, cached; each epoch's history row names it);
    ``torch.compile``
    is off on CPUs, where it measured slower (``benchmarks/cpu.py``, ``benchmarks/unit.py``);
  * the batch order and the augmentation draws of epoch ``e`` come from generators seeded by
    ``(seed, e)``, so a run resumed from the checkpoint of epoch ``e`` continues exactly as an
    uninterrupted one (bit-for-bit on CPU);
  * the loss is checked once per epoch (one host sync), and a non-finite loss stops the run
    with a message while the last good checkpoint stays in place;
  * checkpoints are written atomically with the SHA-256 of their contents and loaded with
    ``weights_only=True``: one whose bytes changed is proven corrupt and training starts over
    (with a warning), one that cannot be read stops the run and is left alone.
Multi-GPU: launched by ``torchrun``, the method is wrapped in DistributedDataParallel and each
rank takes its slice of every global batch.

Differential privacy (``spec.dp_epsilon`` set; ``sslmem.train.privacy``): the same loop,
checkpoints,
NaN guard and resume, with Poisson-sampled batches (``N // B`` per epoch, their size varies),
per-sample clipping and noise from Opacus, and the accountant's state in the checkpoint; the
history gains ``epsilon``, ``delta`` and ``noise_multiplier`` columns. Its per-sample gradients
(``torch.func.vmap``) run eagerly (no ``torch.compile``) in one process (no DDP).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from sslmem.errors import CorruptFile, SSLMemError, read_error, signals_deferred, unreadable
from sslmem.io import atomic_path
from sslmem.train.calibrate import Setting, training_setting
from sslmem.train.optim import learning_rate, make_optimizer
from sslmem.train.privacy import DPSGD


@dataclass(frozen=True)
class TrainSpec:
    """The resolved settings of one training run."""

    epochs: int
    batch_size: int
    optimizer: str
    lr: float  # per 256 images
    weight_decay: float
    warmup_epochs: int
    seed: int = 0
    align_lambda: float = 0.0
    align_start_epoch: int = 0
    checkpoint_every: int = 10
    compile: str = "auto"  # auto (CUDA only) | on | off
    progress: bool = True
    dp_epsilon: float | None = None  # DP-SGD to this ε (None = no DP)
    dp_delta: float | None = None  # None = sslmem.train.privacy.default_delta(N)
    dp_max_grad_norm: float = 1.0
    precision: str = "fp32"  # fp32 | bf16 (autocast)

    @classmethod
    def from_config(cls, cfg, seed: int) -> TrainSpec:
        r = cfg.resolved()
        return cls(epochs=r.epochs, batch_size=r.batch_size, optimizer=r.optimizer, lr=r.lr,
                   weight_decay=r.weight_decay, warmup_epochs=r.warmup_epochs, seed=seed,
                   align_lambda=r.align_lambda, align_start_epoch=r.align_start_epoch,
                   checkpoint_every=r.checkpoint_every, compile=r.compile, progress=r.progress,
                   dp_epsilon=r.dp_epsilon, dp_delta=r.dp_delta,
                   dp_max_grad_norm=r.dp_max_grad_norm, precision=r.precision)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' = CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SSLMemError("device 'cuda' was requested but no CUDA GPU is available; use "
                          "device='cpu' or 'auto'")
    return device


def _generator(device: torch.device, *keys: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(hash(tuple(keys)) & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_checkpoint(path: Path, method: nn.Module, optimizer, epoch: int, history: list,
                    fingerprint: str, privacy: dict | None = None) -> None:
    """Atomically write model + optimizer (+ DP accountant) state after ``epoch`` epochs."""
    state = {"fingerprint": fingerprint, "epoch": epoch, "model": method.state_dict(),
             "optimizer": optimizer.state_dict(), "history": history}
    if privacy is not None:
        state["privacy"] = privacy
    save_state(path, state)


def load_checkpoint(path: Path, fingerprint: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint safely; refuse one from another config.

    Raises:
        CorruptFile: its bytes fail their hash or cannot be parsed (the caller may retrain).
        SSLMemError: it cannot be read, is not an sslmem checkpoint, or is another config's.
    """
    state = load_state(path, map_location, what="checkpoint")
    if not isinstance(state, dict) or not {"fingerprint", "epoch", "model"} <= set(state):
        raise SSLMemError(f"checkpoint {path} is not an sslmem checkpoint; move it away to "
                          "retrain")
    if fingerprint is not None and state["fingerprint"] != fingerprint:
        raise SSLMemError(f"checkpoint {path} was written for another configuration "
                          f"({state['fingerprint']} != {fingerprint}); use a fresh run directory "
                          "or delete it")
    return state


def save_state(path: Path, state: dict) -> None:
    """``torch.save`` a dict atomically, with the SHA-256 of its contents under ``"sha256"``.

    Why a hash: ``torch.load`` happily loads a file whose tensor bytes were flipped on disk, and
    a checkpoint or snapshot is trusted for the rest of the project's life. A Ctrl-C or SIGTERM
    during the write waits for it to finish (:func:`signals_deferred`).
    """
    with (signals_deferred(), atomic_path(path) as tmp,
          open(tmp, "wb") as f):  # Python I/O: a full disk is OSError
        out = _KeepsWriteError(f)
        try:
            torch.save({**state, "sha256": state_digest(state)}, out)
        except RuntimeError:
            # torch's zip writer turns a failed write (a full disk, ENOSPC; the file-size
            # limit, EFBIG) into "RuntimeError: [enforce fail at inline_container.cc...]":
            # give atomic_path the OSError itself, which it reports in one line
            if out.error is not None:
                raise out.error from None
            raise


class _KeepsWriteError:
    """A binary file for ``torch.save`` that keeps the ``OSError`` of a failed write."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def load_state(path: Path, map_location="cpu", what: str = "file") -> dict:
    """A dict written by :func:`save_state`, its hash checked (files without one are trusted).

    Raises:
        CorruptFile: the bytes cannot be parsed or fail their hash.
        SSLMemError: the file cannot be read (nothing is touched).
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 — any unpickling/zip error means a corrupt file
        if unreadable(err):
            raise read_error(path, err) from None
        raise CorruptFile(f"{what} {path} is corrupt ({type(err).__name__})") from None
    if isinstance(state, dict) and "sha256" in state:
        expected = state.pop("sha256")
        if state_digest(state) != expected:
            raise CorruptFile(f"{what} {path} is corrupt (its contents fail their SHA-256)")
    return state


def state_digest(obj) -> str:
    """SHA-256 of nested dicts/lists/tuples of tensors and plain values (what torch.save keeps).

    Computed over the tensors' bytes, dtypes and shapes and the other values' reprs, so it is
    the same before saving and after loading (on any device).
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def compile_backbone(encoder: nn.Module, example: torch.Tensor, device: torch.device) -> bool:
    """``torch.compile`` the backbone in place; fall back to eager if compiling fails.

    A probe forward/backward on a batch of the training shape triggers the compilation now (not
    in the middle of an epoch); the module's state (e.g. BatchNorm statistics) is restored
    afterwards so the probe leaves no trace.
    """
    backbone = encoder.backbone
    saved = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.compile(dynamic=False)  # static shapes: one graph per view size (e.g. DINO's two)
    try:
        x = encoder.normalize(example.float().div(255))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            backbone(x).float().sum().backward()
        return True
    except Exception as err:  # noqa: BLE001 — any compiler failure: train eagerly instead
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); training without it",
                      stacklevel=2)
        backbone._compiled_call_impl = None
        torch._dynamo.reset()
        return False
    finally:
        backbone.load_state_dict(saved)
        backbone.zero_grad(set_to_none=True)


def _resume_state(path: Path | None, fingerprint: str, device) -> dict | None:
    """The checkpoint to resume from; ``None`` when there is none or it is proven corrupt."""
    if path is None or not path.exists():
        return None
    try:
        return load_checkpoint(path, fingerprint, map_location=device)
    except CorruptFile as err:
        warnings.warn(f"{err}; training from scratch (it is replaced at the next checkpoint)",
                      stacklevel=3)
        return None


def fit(method: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: TrainSpec, *,
        checkpoint: str | Path | None = None, fingerprint: str = "", device="auto",
        on_epoch=None) -> list[dict]:
    """Train ``method`` on uint8 ``images`` (N, C, H, W) with ``labels``; return the history.

    Args:
        checkpoint: file to resume from and to write every ``spec.checkpoint_every`` epochs and
            at the end (``None``: no checkpoints).
        fingerprint: identifies the configuration; a checkpoint with another one is refused.
        on_epoch: optional callback ``(epoch, method) -> dict`` whose values join the history
            (e.g. a kNN monitor); it runs on rank 0 after each epoch.

    With ``spec.dp_epsilon`` set (finite), trains with DP-SGD (``sslmem.train.privacy``).
    """
    device = resolve_device(device)
    rank, world = _world()
    n = images.shape[0]
    if spec.batch_size > n:
        raise SSLMemError(f"batch size {spec.batch_size} is larger than the training set "
                          f"({n} images); lower batch_size")
    if spec.batch_size % world:
        raise SSLMemError(f"batch size {spec.batch_size} is not divisible by {world} processes")
    cuda = device.type == "cuda"
    images, labels = images.to(device), labels.to(device)
    method.to(device)
    if spec.dp_epsilon is not None and spec.dp_epsilon != math.inf and not cuda:
        if spec.precision != "fp32":
            raise SSLMemError("DP-SGD on a CPU trains in fp32 (per-sample gradients run "
                              "eagerly); set precision=fp32")
        setting = Setting("fp32", False, "dp")
    else:
        setting = training_setting(method, images, labels, spec.batch_size // world, device,
                                   spec.precision)
    amp = setting.bf16
    if setting.channels_last:
        method.to(memory_format=torch.channels_last)
    method.train_setting = setting.name
    steps_per_epoch = n // spec.batch_size
    total_steps = steps_per_epoch * spec.epochs
    warmup_steps = steps_per_epoch * spec.warmup_epochs
    peak_lr = spec.lr * spec.batch_size / 256
    optimizer = make_optimizer(method, spec.optimizer, peak_lr, spec.weight_decay)
    dp = None
    if spec.dp_epsilon is not None and spec.dp_epsilon != math.inf:  # ε = ∞: no privacy
        if world > 1:
            raise SSLMemError("DP training runs in one process; launch it without torchrun")
        dp = DPSGD(method, optimizer, example=images[:1], n=n, batch_size=spec.batch_size,
                   steps=total_steps, epsilon=spec.dp_epsilon, delta=spec.dp_delta,
                   max_grad_norm=spec.dp_max_grad_norm)
        optimizer = dp.optimizer

    start, history = 0, []
    path = Path(checkpoint) if checkpoint else None
    state = _resume_state(path, fingerprint, device)
    if state is not None:
        if dp is not None:  # before the weights: a checkpoint without DP state is refused
            dp.load_state_dict(state.get("privacy"), f"checkpoint {path}")
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["epoch"], list(state["history"])
    saved = start if state is not None else None  # epoch of the last good checkpoint
    if start >= spec.epochs:
        if dp is not None:
            dp.close()
        return history

    model = method
    local_batch = spec.batch_size // world
    if world > 1:
        if cuda:  # global BatchNorm statistics, as SimCLR/BYOL do across devices
            nn.SyncBatchNorm.convert_sync_batchnorm(method)
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if cuda else None)
    if dp is not None:
        if spec.compile == "on":
            warnings.warn("compile='on' is ignored with DP: per-sample gradients run eagerly",
                          stacklevel=2)
    elif spec.compile == "on" or (spec.compile == "auto" and cuda):
        compile_backbone(method.encoder, images[:local_batch], device)

    from tqdm import tqdm  # plain bars: tqdm.auto needs ipywidgets inside notebooks

    for epoch in range(start, spec.epochs):
        t0 = time.perf_counter()
        method.train()
        torch.manual_seed(hash((spec.seed, epoch, rank)) & 0x7FFF_FFFF)  # e.g. MAE masking
        order = torch.randperm(n, generator=_generator(torch.device("cpu"), spec.seed, epoch))
        order = order.to(device)
        aug_gen = _generator(device, spec.seed, epoch, rank)
        align = spec.align_lambda if epoch >= spec.align_start_epoch else 0.0
        loss_sum = torch.zeros((), device=device)
        if dp is not None:  # Poisson batches and the noise, seeded like everything else
            sample_gen = _generator(torch.device("cpu"), spec.seed, epoch, -1)
            dp.optimizer.generator = _generator(device, spec.seed, epoch, -2)
            seen = 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{spec.epochs}",
                   disable=not spec.progress or rank != 0, leave=False)
        for step in bar:
            global_step = epoch * steps_per_epoch + step
            lr = learning_rate(global_step, total_steps, warmup_steps, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if dp is not None:
                idx = dp.sample(sample_gen).to(device)
                loss_sum += dp.step(images[idx], labels[idx], aug_gen, align, autocast=cuda)
                seen += len(idx)
                method.on_step((global_step + 1) / total_steps)
                continue
            idx = order[step * spec.batch_size + rank * local_batch:][:local_batch]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = model(images[idx], labels[idx], aug_gen, align)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.on_step((global_step + 1) / total_steps)
            loss_sum += loss.detach().float()
        # DP: the mean per-sample loss of the points drawn this epoch
        mean_loss = (loss_sum / (steps_per_epoch if dp is None else max(1, seen))).item()
        if not math.isfinite(mean_loss):
            if path is None:
                kept = "This run writes no checkpoints."
            elif saved is None:
                kept = (f"No checkpoint had been written yet (one is written every "
                        f"{spec.checkpoint_every} epochs), so a rerun starts from scratch.")
            else:
                kept = f"The last good checkpoint ({path}, epoch {saved}) was kept."
            raise SSLMemError(
                f"the training loss became {mean_loss} in epoch {epoch + 1} "
                f"({type(method).__name__}, lr {peak_lr:g}); lower the learning rate or check "
                f"the data. {kept}")
        record = {"epoch": epoch + 1, "loss": mean_loss, "lr": lr,
                  "seconds": time.perf_counter() - t0, "setting": setting.name}
        if dp is not None:
            record.update(dp.report())
        if on_epoch is not None and rank == 0:
            record.update(on_epoch(epoch + 1, method) or {})
        history.append(record)
        done = epoch + 1 == spec.epochs
        if path is not None and rank == 0 and (done or (epoch + 1) % spec.checkpoint_every == 0):
            if dp is None:
                save_checkpoint(path, method, optimizer, epoch + 1, history, fingerprint)
            else:
                save_checkpoint(path, method, optimizer, epoch + 1, history, fingerprint,
                                privacy=dp.state_dict())
            saved = epoch + 1
    if world > 1:  # BatchNorm running statistics are per rank: take rank 0's everywhere
        for buffer in method.buffers():
            dist.broadcast(buffer, 0)
    if dp is not None:
        dp.close()
    method.eval()
    return history


