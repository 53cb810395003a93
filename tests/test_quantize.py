"""int8 scoring: the quantized copy really is int8, scores like fp32 within Monte-Carlo error,
is keyed apart from fp32, and refuses what it cannot do in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.pipeline.config import TRAIN_FIELDS, Config
from sslmem.pipeline.experiment import SCORE_FIELDS
from sslmem.score.alignment import score_alignment
from sslmem.score.quantize import int8_copy
from sslmem.train.backbones import Encoder, build_backbone

PAIRS = 8


@pytest.fixture(scope="module")
def pool(shared_data):
    from sslmem.train.data import load_dataset

    images = load_dataset("cifar10-mini", "train", data_root=shared_data).images[:96]
    return F.interpolate(images.float(), size=(16, 16), mode="area").round().to(torch.uint8)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(build_backbone("resnet9", 16, 3), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)).eval()


def test_int8_copy_runs_quantized_convolutions(encoder, pool):
    copy = int8_copy(encoder, pool[:32].float() / 255)
    kinds = {type(m).__module__ for m in copy.modules()}
    assert any(k.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized"))
               for k in kinds), kinds
    assert not any(isinstance(m, nn.Conv2d) for m in copy.modules())  # no fp32 conv left
    assert copy(pool[:4].float() / 255).dtype == torch.float32
    assert not encoder.training  # the encoder itself is untouched


def test_int8_scores_equal_fp32_within_their_monte_carlo_error(encoder, pool):
    fp32 = score_alignment({"e": encoder}, pool, PAIRS, fast=False)["e"].double()
    int8 = score_alignment({"e": encoder}, pool, PAIRS, precision="int8")["e"].double()
    se = fp32.std(1) / PAIRS**0.5
    shift = (int8.mean(1) - fp32.mean(1)) / se
    assert not torch.equal(int8, fp32)  # really another arithmetic
    # measured on this untrained encoder: RMS 0.1 s.e., max 0.5 (a trained one: 0.06, 0.17)
    assert shift.pow(2).mean().sqrt() < 0.3 and shift.abs().max() < 1.0, shift
    assert torch.corrcoef(torch.stack([int8.mean(1), fp32.mean(1)]))[0, 1] > 0.98
    again = score_alignment({"e": encoder}, pool, PAIRS, precision="int8")["e"].double()
    assert torch.equal(again, int8)  # deterministic: the ranges come from the seeded views


def test_int8_is_part_of_the_score_key_and_fp32_keys_are_unchanged():
    base = Config.tiny()
    assert "score_precision" in SCORE_FIELDS
    assert base.key(*SCORE_FIELDS) == base.replace(score_precision="fp32").key(*SCORE_FIELDS)
    assert base.key(*SCORE_FIELDS) != base.replace(score_precision="int8").key(*SCORE_FIELDS)
    # the encoders trained for fp32 scores serve int8 scoring: training's key ignores it
    assert base.key(*TRAIN_FIELDS) == base.replace(score_precision="int8").key(*TRAIN_FIELDS)


def test_what_int8_cannot_do_is_refused_in_one_line(encoder, pool):
    with pytest.raises(SSLMemError, match="precision"):
        score_alignment({"e": encoder}, pool, 2, precision="int4")
    with pytest.raises(SSLMemError, match="fp32, int8"):
        Config.tiny().replace(score_precision="bf16")

    class Untraceable(nn.Module):
        def forward(self, x):
            return x.flatten(1) if x.sum() > 0 else -x.flatten(1)  # data-dependent control flow

    with pytest.raises(SSLMemError, match="cannot be traced.*score_precision=fp32") as err:
        int8_copy(Untraceable(), pool[:4].float() / 255)
    assert "\n" not in str(err.value)
