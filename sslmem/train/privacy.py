"""Differentially private training (DP-SGD) for methods whose loss is a mean of per-sample terms.

The paper reports that a DP-trained encoder memorizes less (and is less useful); the follow-up
trains MAE encoders with ε = ∞, 20 and 8. How it works here, and why:

  * DP-SGD (Abadi et al. 2016) clips every sample's gradient to norm ``C`` and adds Gaussian noise
    of std ``σC`` to their sum. That bounds one point's influence only if the loss is a mean of
    per-sample terms. SimCLR's negatives, VICReg's/Barlow Twins' batch statistics, DINO's centre
    and every BatchNorm let one point move the others' terms, so DP is refused for them
    (``Method.per_sample_loss`` / ``batch_coupling``) and for BatchNorm backbones: with DP, use
    ``mae`` or ``supervised`` on a ViT;
  * per-sample gradients come from ``torch.func`` (``vmap`` of ``grad`` of the method's loss on one
    sample) rather than Opacus' module hooks: they cover every parameter of lightly's masked ViT
    (class token, MAE mask token, ``nn.MultiheadAttention``, none of which Opacus' hooks handle
    without replacing modules), so a private encoder has the same state dict as any other;
  * clipping, noise and the step are Opacus' ``DPOptimizer``; the batch is cut into chunks whose
    per-sample gradients fit in ``CHUNK_BYTES`` (Opacus' virtual steps: clip and accumulate per
    chunk, noise once per batch);
  * batches are Poisson samples (each point independently with probability q = B/N, so the batch
    size varies), which the accountant's analysis assumes; there are ``N // B`` steps per epoch;
  * σ is the smallest noise (Opacus' ``get_noise_multiplier``, tolerance 0.01) for which the RDP
    accountant gives ε ≤ ``dp_epsilon`` after all steps at (q, δ); RDP is Opacus' default and
    the accountant of most published DP-SGD results (PRV is slightly tighter);
  * δ defaults to the largest power of ten below 1/N (N = training-set size, e.g. 1e-5 for
    CIFAR-10's 45,000/50,000 training images), the usual "δ < 1/N" rule;
  * everything random (Poisson batches, views, masks, noise) comes from the training loop's
    generators seeded per (seed, epoch), and the accountant's history is checkpointed, so a
    resumed run equals an uninterrupted one. The noise is not Opacus' ``secure_mode``: fine for
    measuring memorization, not for releasing a model trained on sensitive data. The training
    loss in the history is not privatized either (it is a diagnostic).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from numbers import Real

import torch
from torch import nn

from sslmem.errors import SSLMemError

ACCOUNTANT = "rdp"  # Opacus' Rényi-DP accountant
EPSILON_TOLERANCE = 0.01  # get_noise_multiplier's binary search stops within this below target
CHUNK_BYTES = 2 << 30  # per-sample gradients held at once (fp32); more samples = faster, not other


# ---------------------------------------------------------------------------- settings and checks
def check_settings(dp_epsilon=None, dp_delta=None, dp_max_grad_norm=1.0) -> None:
    """Refuse out-of-range DP settings with one line naming the field, value and what is allowed."""

    def number(v) -> bool:
        return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

    if dp_epsilon is not None and not (number(dp_epsilon) and dp_epsilon > 0):
        raise SSLMemError(f"dp_epsilon must be a positive finite number (None or inf = no DP), "
                          f"got {dp_epsilon!r}")
    if dp_delta is not None and not (number(dp_delta) and 0 < dp_delta < 1):
        raise SSLMemError(f"dp_delta must be a number in (0, 1) (None = the largest power of ten "
                          f"below 1/N), got {dp_delta!r}")
    if not (number(dp_max_grad_norm) and dp_max_grad_norm > 0):
        raise SSLMemError(f"dp_max_grad_norm must be a positive finite number, got "
                          f"{dp_max_grad_norm!r}")


def private_methods() -> tuple[str, ...]:
    """Names of the methods DP-SGD can train (their loss is a mean of per-sample terms)."""
    from sslmem.train.methods import METHODS

    return tuple(name for name, cls in METHODS.items() if cls.per_sample_loss)


def _coupled(cls) -> SSLMemError:
    return SSLMemError(
        f"DP-SGD cannot train {cls.name}: {cls.batch_coupling}, so clipping each sample's gradient "
        f"does not bound its influence; DP works with {', '.join(private_methods())} (a loss that "
        "is a mean of per-sample terms) on a ViT backbone")


def check_method_name(method: str, backbone: str | None = None) -> None:
    """Refuse DP for a method with a batch-coupled loss or a BatchNorm backbone (by name)."""
    from sslmem.train.backbones import VITS
    from sslmem.train.methods import method_class

    cls = method_class(method)
    if not cls.per_sample_loss:
        raise _coupled(cls)
    backbone = backbone or cls.defaults.backbone
    if backbone not in VITS:
        raise SSLMemError(f"DP-SGD with {method} needs a backbone without BatchNorm ("
                          f"{', '.join(VITS)}): {backbone} normalizes each sample with its "
                          "batch's statistics")


def check_model(method: nn.Module) -> None:
    """Refuse DP for a built method whose loss couples samples (method kind or BatchNorm layers).

    Opacus' ``ModuleValidator`` is not used: it checks compatibility with Opacus' hooks (and so
    flags ``nn.MultiheadAttention``, which ``torch.func`` handles); what matters here is only
    whether one sample's loss depends on the others, and BatchNorm is the layer that does that.
    """
    if not getattr(method, "per_sample_loss", False):
        raise _coupled(type(method))
    norms = [name for name, m in method.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        raise SSLMemError(f"DP-SGD cannot train a model with BatchNorm ({len(norms)} layers, e.g. "
                          f"{norms[0]}): it normalizes each sample with its batch's statistics; "
                          "use a ViT backbone")


@contextlib.contextmanager
def _quiet_rdp():
    """Silence Opacus' "Optimal order is the largest alpha" warning.

    With few points and large sampling rates the best RDP order is the largest one tried, so
    the bound is valid but not the tightest: worth knowing (said here), not worth printing at
    every epoch of a small run.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


def default_delta(n: int) -> float:
    """The largest power of ten below 1/n: 1e-5 for 45,000 or 50,000 points, 1e-3 for 750."""
    return float(f"1e-{len(str(int(n)))}")


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest σ (within ``EPSILON_TOLERANCE`` of ε) for which ``steps`` Poisson-sampled
    steps at rate ``sample_rate`` are (ε, δ)-DP by the RDP accountant."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with _quiet_rdp():
            return float(get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                steps=steps, accountant=ACCOUNTANT, epsilon_tolerance=EPSILON_TOLERANCE))
    except ValueError as err:  # "The privacy budget is too low."
        raise SSLMemError(f"no noise level reaches dp_epsilon={epsilon} at delta={delta} over "
                          f"{steps} steps of sampling rate {sample_rate:.4g} ({err}); raise "
                          "dp_epsilon or lower epochs/batch_size") from None


# ----------------------------------------------------------------------------- per-sample losses
def draw_inputs(method: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None, align_weight: float) -> tuple[torch.Tensor, ...]:
    """Every random draw of a step as per-sample tensors, in the order ``Method.forward`` draws.

    The alignment regularizer is per-sample (the cosine of one image's two views), so it is
    supported with DP: its SimCLR-style pair joins the inputs.
    """
    inputs = tuple(method.sample_inputs(method.views(images, generator), labels))
    if align_weight:
        inputs += tuple(method.pair_views(images, generator))
    return inputs


def inputs_loss(method: nn.Module, inputs: tuple[torch.Tensor, ...],
                align_weight: float) -> torch.Tensor:
    """The batch loss (mean of per-sample terms) from ``draw_inputs``' tensors."""
    if not align_weight:
        return method.inputs_loss(*inputs)
    *inputs, v1, v2 = inputs
    penalty = method.alignment_penalty(method.encoder(v1), method.encoder(v2), None, None)
    return method.inputs_loss(*inputs) + align_weight * penalty


class _InputsLoss(nn.Module):
    """``inputs_loss`` as a module's forward, for ``torch.func.functional_call``."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, *inputs: torch.Tensor, align_weight: float = 0.0) -> torch.Tensor:
        return inputs_loss(self.method, inputs, align_weight)


def _reached_parameters(method: nn.Module, example: torch.Tensor) -> set[int]:
    """ids of the parameters the loss reaches, from a probe on a blank image (no data is read).

    Those it never reaches (lightly's own MAE mask token) would get noise only; they stay out of
    the optimizer, as a gradient of None keeps them out of a non-private step.
    """
    params = [p for p in method.parameters() if p.requires_grad]
    devices = [example.device] if example.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        blank = torch.zeros_like(example[:1])
        labels = torch.zeros(1, dtype=torch.long, device=blank.device)
        generator = torch.Generator(device=blank.device).manual_seed(0)
        loss = inputs_loss(method, draw_inputs(method, blank, labels, generator, 1.0), 1.0)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return {id(p) for p, g in zip(params, grads) if g is not None}


# ------------------------------------------------------------------------------------ the trainer
class DPSGD:
    """One private run's state: the Opacus optimizer, σ, the sampling rate and the accountant.

    Args:
        method: a ``per_sample_loss`` method without BatchNorm.
        optimizer: its ordinary optimizer; parameters the loss never reaches leave its groups.
        example: one training image (shape, dtype and device only).
        n, batch_size, steps: training-set size, expected batch size, total optimizer steps.
        epsilon, delta, max_grad_norm: the privacy target (``delta=None``: ``default_delta(n)``)
            and the clipping bound C.
        chunk_size: samples per ``vmap`` chunk (None: as many as fit in ``CHUNK_BYTES``).
    """

    def __init__(self, method: nn.Module, optimizer: torch.optim.Optimizer, *,
                 example: torch.Tensor, n: int, batch_size: int, steps: int, epsilon: float,
                 delta: float | None, max_grad_norm: float, chunk_size: int | None = None):
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer

        check_settings(epsilon, delta, max_grad_norm)
        check_model(method)
        self.method, self.n = method, n
        self.sample_rate = batch_size / n
        self.delta = default_delta(n) if delta is None else float(delta)
        self.target_epsilon, self.max_grad_norm = float(epsilon), float(max_grad_norm)
        self.noise_multiplier = noise_multiplier(epsilon, self.delta, self.sample_rate, steps)
        reached = _reached_parameters(method, example)
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) in reached]
        self.params = {name: p for name, p in method.named_parameters() if id(p) in reached}
        numel = sum(p.numel() for p in self.params.values())
        self.chunk_size = chunk_size or max(1, CHUNK_BYTES // (4 * numel))
        self.optimizer = DPOptimizer(optimizer, noise_multiplier=self.noise_multiplier,
                                     max_grad_norm=self.max_grad_norm,
                                     expected_batch_size=batch_size, loss_reduction="mean")
        self.accountant = create_accountant(mechanism=ACCOUNTANT)
        self.optimizer.attach_step_hook(
            self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        self._loss = _InputsLoss(method)

    # ---- sampling and one step
    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """A Poisson batch: the indices of the points drawn, each with probability q (CPU)."""
        return torch.nonzero(torch.rand(self.n, generator=generator) < self.sample_rate)[:, 0]

    def per_sample_gradients(self, inputs: tuple[torch.Tensor, ...], align_weight: float = 0.0,
                             autocast: bool = False):
        """Each sample's gradient (name -> (b, *shape)) and loss (b,), for one chunk of inputs."""
        from torch.func import functional_call, grad_and_value, vmap
        from torch.nn.attention import SDPBackend, sdpa_kernel

        buffers = {f"method.{k}": v for k, v in self.method.named_buffers()}

        def sample_loss(params, *sample):
            # no weight tying: a shared submodule (Supervised.classifier.encoder is .encoder) is
            # swapped once under its one name; tying swapped it twice and left plain tensors
            batch = tuple(t.unsqueeze(0) for t in sample)
            return functional_call(self._loss, (params, buffers), batch,
                                   {"align_weight": align_weight}, tie_weights=False)

        params = {f"method.{k}": p.detach() for k, p in self.params.items()}
        device = inputs[0].device
        # the math attention kernel: the fused ones have no vmap rule (a slow per-sample loop)
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            grads, losses = vmap(grad_and_value(sample_loss),
                                 in_dims=(None, *[0] * len(inputs)))(params, *inputs)
        return {k[len("method."):]: g for k, g in grads.items()}, losses

    def step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None,
             align_weight: float = 0.0, autocast: bool = False) -> torch.Tensor:
        """One DP-SGD step on a Poisson batch; returns the sum of its per-sample losses.

        Chunks are clipped and accumulated one at a time; noise is added once, at the last.
        """
        opt = self.optimizer
        loss_sum = torch.zeros((), device=images.device)
        if len(images) == 0:  # an empty Poisson batch is still a (noise-only) step
            for p in self.params.values():
                p.grad_sample = p.new_zeros((0, *p.shape))
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss_sum
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
            inputs = draw_inputs(self.method, images, labels, generator, align_weight)
        chunks = list(zip(*(t.split(self.chunk_size) for t in inputs)))
        for i, chunk in enumerate(chunks):
            grads, losses = self.per_sample_gradients(chunk, align_weight, autocast)
            for name, p in self.params.items():
                p.grad_sample = grads[name]
            opt.signal_skip_step(do_skip=i < len(chunks) - 1)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += losses.detach().float().sum()
        return loss_sum

    def close(self) -> None:
        """Remove the per-sample attributes Opacus leaves on the parameters."""
        for p in self.params.values():
            for attr in ("grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)

    # ---- accounting and checkpoints
    def epsilon(self) -> float:
        """ε spent so far at ``delta`` (0 before the first step)."""
        with _quiet_rdp():
            return float(self.accountant.get_epsilon(delta=self.delta))

    def report(self) -> dict:
        """The privacy columns of a history row."""
        return {"epsilon": self.epsilon(), "delta": self.delta,
                "noise_multiplier": self.noise_multiplier}

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue the accounting (plain types: weights_only)."""
        return {"mechanism": self.accountant.mechanism(),
                "history": [tuple(h) for h in self.accountant.history],
                "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate,
                "delta": self.delta, "max_grad_norm": self.max_grad_norm,
                "target_epsilon": self.target_epsilon, "epsilon": self.epsilon()}

    def load_state_dict(self, state: dict | None, source: str = "the checkpoint") -> None:
        """Continue the accountant of ``state``; refuse a state of other privacy settings."""
        if not state:
            raise SSLMemError(f"{source} has no privacy accountant state (written without DP); "
                              "delete it to retrain privately")
        mine = {"mechanism": self.accountant.mechanism(), "sample_rate": self.sample_rate,
                "delta": self.delta, "max_grad_norm": self.max_grad_norm,
                "target_epsilon": self.target_epsilon}
        other = {k: v for k, v in mine.items() if state.get(k) != v}
        if other:
            raise SSLMemError(f"{source} was written with other privacy settings ("
                              + ", ".join(f"{k} {state.get(k)} != {mine[k]}" for k in other)
                              + "); delete it to retrain")
        # keep the checkpoint's σ: the accountant's history was spent at it
        self.noise_multiplier = self.optimizer.noise_multiplier = state["noise_multiplier"]
        self.accountant.history = [tuple(h) for h in state["history"]]
