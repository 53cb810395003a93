"""int8 scoring: a statically quantized copy of a frozen encoder for the CPU scorer.

Why: scoring runs every point's K view pairs through every encoder, and on a CPU without native
bf16 the fp32 scorer is bounded by the fp32 kernel ceiling (about 3x the eager path on the AVX2
EPYC this project measures on). 8-bit integer convolutions (fbgemm) do more multiply-adds per
instruction. On that EPYC a quantized ResNet-9 scored 3.2x as many views per second as the
eager fp32 path on one thread with the quantization timed in (3.6x once the copy is made; the
fp32 ceiling bounds any fp32 scorer at 2.8-3.2x there), and it moved no point's L_align by more
than 0.11 Monte-Carlo standard errors (RMS 0.04) on an encoder trained as the book's ensemble
members are (``benchmarks/unit.py``, which measures it again on the host at hand). It is opt-in
(``Config.score_precision = "int8"``, part of a result's key): the numbers differ from fp32
within their error, never bit for bit.

How: BatchNorm is folded into the convolutions (:func:`sslmem.score.evaluate.fold_batchnorm`), then
``torch.ao``'s FX graph mode quantization inserts histogram observers, runs a few of the views
being scored through them to fix each activation's range, and converts every convolution and
linear layer to int8 (per-channel symmetric weights). Activations use 7 bits
(``reduce_range``): on CPUs without VNNI the 8 x 8-bit products are summed in 16 bits, which
saturates with 8-bit activations. This is why the engine is fbgemm: the onednn engine's default
configuration uses 8-bit activations and shifted scores by up to 5 s.e. on the AVX2 EPYC.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.score.evaluate import fold_batchnorm, module_device

PRECISIONS = ("fp32", "int8")
ENGINE = "fbgemm"
# measured on a trained and an untrained ResNet-9, two pools: 32 views fixed the ranges as well
# as 64-2,048 (largest per-point change 0.11-0.39 s.e. against 0.10-0.52), at a fraction of the
# time (the histogram observers cost ~2 ms a view)
CALIBRATION_VIEWS = 32


@contextlib.contextmanager
def engine(name: str = ENGINE):
    """torch's quantized engine set to ``name`` for the block (it is process-global)."""
    if name not in torch.backends.quantized.supported_engines:
        raise SSLMemError(f"int8 scoring needs torch's {name} engine, which this build lacks "
                          f"(it has {', '.join(torch.backends.quantized.supported_engines)}); "
                          "set score_precision=fp32")
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def calibration_views(batch: torch.Tensor, n: int = CALIBRATION_VIEWS) -> torch.Tensor:
    """``n`` views spread over ``batch`` (a chunk of views is ordered by point, then view)."""
    return batch[:: max(1, len(batch) // n)][:n]


class Int8Encoder(nn.Module):
    """A quantized encoder that runs under the engine it was converted with."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with engine():
            return self.module(x)


def int8_copy(encoder: nn.Module, views: torch.Tensor) -> Int8Encoder:
    """An int8 copy of the frozen fp32 ``encoder``, its activation ranges fixed on ``views``
    (float [0, 1] images, as the encoder takes them)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if module_device(encoder).type != "cpu" or views.device.type != "cpu":
        raise SSLMemError("int8 scoring runs on the CPU only; set score_precision=fp32 "
                          "(on a GPU the scorer uses bf16 autocast)")
    with engine(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices (moved to torchao)
        try:
            prepared = prepare_fx(fold_batchnorm(encoder), get_default_qconfig_mapping(ENGINE),
                                  example_inputs=(views[:2],))
        except Exception as err:  # noqa: BLE001 - fx cannot trace it (e.g. a ViT)
            raise SSLMemError(f"int8 scoring needs an encoder torch.fx can trace (the ResNets); "
                              f"this one cannot be traced ({type(err).__name__}); set "
                              "score_precision=fp32") from None
        with torch.inference_mode():
            prepared(views)
        return Int8Encoder(convert_fx(prepared).eval())
