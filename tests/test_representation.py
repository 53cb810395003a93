"""What SSLMem compares: pooled features, or every token of a ViT (the authors' MAE scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble
from sslmem.pipeline.experiment import Experiment
from sslmem.score.alignment import score_alignment
from sslmem.score.representation import Tokens, scored
from sslmem.train.augment import recipe
from sslmem.train.backbones import Encoder, build_backbone

SIZES = dict(shared=0, candidate=16, independent=0, extra=8)


def vit_encoder(seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return Encoder(build_backbone("vit_tiny", 16, 3, patch_size=4), [0.5] * 3, [0.25] * 3).eval()


def test_tokens_are_every_token_and_the_class_token_is_the_pooled_feature():
    encoder = vit_encoder()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        tokens, pooled = scored(encoder, "tokens")(x), scored(encoder, "pooled")(x)
    assert tokens.shape == (3, 1 + 16, 192)  # class token + (16 / 4)^2 patches
    torch.testing.assert_close(tokens[:, 0], pooled)
    assert scored(encoder, "pooled") is encoder


def test_scoring_compares_every_token():
    """The distance of a view pair is the one of the flattened, L2-normalised token sequence."""
    encoder = vit_encoder()
    x = torch.rand(4, 3, 16, 16)
    d = score_alignment({"t": Tokens(encoder), "p": encoder}, x, 2, recipe("mae", 16), seed=0)
    assert d["t"].shape == d["p"].shape == (4, 2) and torch.isfinite(d["t"]).all()
    assert not torch.allclose(d["t"], d["p"])
    assert ((d["t"] >= 0) & (d["t"] <= 2)).all()  # unit vectors: d in [0, 2]


def test_tokens_refuse_an_encoder_without_them():
    resnet = Encoder(build_backbone("resnet9", 16, 3), [0.5] * 3, [0.25] * 3)
    with pytest.raises(SSLMemError, match="needs a ViT encoder"):
        scored(resnet, "tokens")
    with pytest.raises(SSLMemError, match="representation"):
        scored(resnet, "cls")


def test_config_refuses_tokens_without_a_vit_and_keeps_old_keys():
    with pytest.raises(SSLMemError, match="representation='tokens'"):
        chapters.config("tiny", method="simclr", representation="tokens")
    vit = dict(method="mae", backbone="vit_tiny", patch_size=4)
    with pytest.raises(SSLMemError, match="representation"):
        chapters.config("tiny", representation="patches", **vit)
    plain = chapters.config("tiny", **vit)
    same = chapters.config("tiny", representation="pooled", **vit)
    tokens = chapters.config("tiny", representation="tokens", **vit)
    assert plain.key() == same.key() != tokens.key()  # the default stays out of every key


@pytest.mark.slow
def test_a_tokens_design_rescores_the_pooled_designs_encoders(tmp_path, monkeypatch,
                                                              shared_data):
    """Scoring is not training: the tokens design reads the same checkpoints (one run folder)
    and stores its members under its own names."""
    monkeypatch.setenv("SSLMEM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("SSLMEM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SSLMEM_DATA", str(shared_data))
    monkeypatch.delenv("SSLMEM_RESULTS_ONLY", raising=False)

    def design(representation):
        cfg = chapters.config("tiny", method="mae", backbone="vit_tiny", patch_size=4, epochs=1,
                              batch_size=8, n_pairs=2, monitor_points=8, sizes=SIZES,
                              split_protocol="random", representation=representation)
        return Ensemble(Experiment(cfg), pair_init=True, views="pair")

    pooled, tokens = design("pooled"), design("tokens")
    assert pooled.exp.run_dir == tokens.exp.run_dir
    assert pooled.member_name(0) != tokens.member_name(0)
    a = pooled.member(0)
    checkpoints = sorted(tokens.exp.run_dir.rglob("checkpoint.pt"))
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    b = tokens.member(0)
    assert [p.stat().st_mtime_ns for p in sorted(tokens.exp.run_dir.rglob("checkpoint.pt"))] \
        == stamps  # not retrained
    assert (a.position.to_numpy() == b.position.to_numpy()).all()
    assert not np.allclose(a.L2, b.L2)  # another representation, other distances
    assert tokens.stored_members() == [0]
