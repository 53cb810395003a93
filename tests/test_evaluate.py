"""Frozen features, linear probe and weighted kNN on synthetic data with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.score.evaluate import eval_mode, extract_features, knn_accuracy, linear_probe


def _clusters(n_per_class=100, classes=5, dim=16, spread=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=gen) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=gen)
    perm = torch.randperm(len(y), generator=gen)
    return x[perm], y[perm]


def _encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 12))


def test_extract_features_shape_dtype_and_batch_invariance():
    images = torch.randint(0, 256, (37, 3, 8, 8), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    enc = _encoder().train()
    feats = extract_features(enc, images, batch_size=8)
    assert feats.shape == (37, 12) and feats.dtype == torch.float32
    assert not feats.is_inference()  # a probe can train on it
    assert enc.training  # mode restored
    torch.testing.assert_close(feats, extract_features(enc, images, batch_size=1024),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats, extract_features(enc, images.float() / 255, batch_size=5),
                               rtol=1e-5, atol=1e-6)
    data = SimpleNamespace(images=images, index=torch.arange(37))
    torch.testing.assert_close(feats, extract_features(enc, data), rtol=1e-5, atol=1e-6)
    # eval mode really is used: BatchNorm with running stats, so a single image's feature does
    # not depend on its batch-mates
    one = extract_features(enc, images[:1])
    torch.testing.assert_close(one, feats[:1], rtol=1e-5, atol=1e-6)
    with pytest.raises(SSLMemError):
        extract_features(enc, images[:0])


def test_eval_mode_restores_mixed_states():
    enc = _encoder().eval()
    enc[1].train()
    with eval_mode(enc):
        assert not any(m.training for m in enc.modules())
    assert enc[1].training and not enc.training and not enc[0].training


def test_linear_probe_separable_and_random_labels():
    x, y = _clusters(spread=0.5)
    res = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert res["accuracy"] > 0.98 and res["train_accuracy"] > 0.98
    assert res["optimizer"] == "lbfgs"
    # random labels: memorized on train, chance (0.2) on test
    rng = np.random.default_rng(0)
    noise = torch.randn(600, 128, generator=torch.Generator().manual_seed(1))
    yr = torch.as_tensor(rng.integers(0, 5, 600))
    rand = linear_probe(noise[:300], yr[:300], noise[300:], yr[300:], weight_decay=0.0)
    assert rand["accuracy"] < 0.33 and rand["train_accuracy"] > 0.9
    # deterministic, numpy labels accepted
    again = linear_probe(noise[:300], yr[:300].numpy(), noise[300:], yr[300:].numpy(),
                         weight_decay=0.0)
    assert again["accuracy"] == rand["accuracy"]


def test_linear_probe_minibatch_adam_path():
    x, y = _clusters(spread=0.5, seed=2)
    a = linear_probe(x[:300], y[:300], x[300:], y[300:], epochs=30, batch_size=64, lr=1e-2)
    b = linear_probe(x[:300], y[:300], x[300:], y[300:], epochs=30, batch_size=64, lr=1e-2)
    assert a["optimizer"] == "adam" and a["accuracy"] > 0.95
    assert a == b
    with pytest.raises(SSLMemError, match="differ in length"):
        linear_probe(x[:300], y[:200], x[300:], y[300:])


def test_knn_accuracy_on_clusters_and_a_hand_case():
    x, y = _clusters(spread=0.5, seed=3)
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:], k=20) > 0.95
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:], k=10_000) > 0.5  # k clipped
    # hand case on the unit circle: two train points per class; with k = 1 the nearest one wins
    ang = torch.tensor([0.0, 0.1, 3.0, 3.1])
    train_x, train_y = torch.stack([ang.cos(), ang.sin()], 1), torch.tensor([0, 0, 1, 1])
    test_ang = torch.tensor([0.05, 3.05, 1.4])
    test_x = torch.stack([test_ang.cos(), test_ang.sin()], 1) * 5  # scale is irrelevant
    assert knn_accuracy(train_x, train_y, test_x, torch.tensor([0, 1, 0]), k=1) == 1.0
    # the weights: a point at angle 1.7 is closer to class 1 (pi) than to class 0 (0)
    far = torch.tensor([[np.cos(1.7), np.sin(1.7)]], dtype=torch.float32)
    assert knn_accuracy(train_x, train_y, far, torch.tensor([1]), k=4) == 1.0


def _trained_resnet9():
    """A ResNet-9 SimCLR encoder whose BatchNorm statistics are not the identity."""
    from sslmem.train.methods import build_method

    torch.manual_seed(0)
    method = build_method("simclr", "resnet9", image_size=16, channels=3, mean=(0.5,) * 3,
                          std=(0.25,) * 3, num_classes=10)
    with torch.no_grad():  # a few forward passes in train mode move the running statistics
        method.encoder.train()
        for _ in range(3):
            method.encoder(torch.rand(64, 3, 16, 16) * 0.8)
    return method.encoder.train()


def test_the_inference_copy_folds_batchnorm_and_leaves_the_scores_as_they_were(
        tmp_path, monkeypatch):
    """The scorer's fast path: per-point scores equal to the eager fp32 path far within their
    Monte-Carlo error (~1e-2 here), the encoder itself untouched."""
    from sslmem.score.alignment import alignment_loss
    from sslmem.score.evaluate import inference_copy

    monkeypatch.setenv("SSLMEM_CALIBRATION", str(tmp_path / "c.json"))
    encoder = _trained_resnet9()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    images = (torch.rand(48, 3, 16, 16) * 255).to(torch.uint8)
    copy = inference_copy(encoder, images[:8].float() / 255)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    assert encoder.training and all(torch.equal(before[k], v)
                                    for k, v in encoder.state_dict().items())
    with torch.inference_mode(), eval_mode(encoder):
        x = images.float() / 255
        assert torch.allclose(copy(x), encoder(x), rtol=1e-4, atol=1e-5)
    fast, se = alignment_loss(encoder, images, n_pairs=4, return_se=True)  # the fast path
    eager = alignment_loss(encoder, images, n_pairs=4, fast=False)  # the eager fp32 path
    assert float((fast - eager).abs().max()) < 1e-3 * float(se.mean())


def test_an_untraceable_encoder_is_only_copied(tmp_path, monkeypatch):
    from sslmem.score.evaluate import inference_copy
    from sslmem.train.methods import build_method

    monkeypatch.setenv("SSLMEM_CALIBRATION", str(tmp_path / "c.json"))
    vit = build_method("mae", "vit_tiny", image_size=16, channels=3, mean=(0.5,) * 3,
                       std=(0.25,) * 3, num_classes=10).encoder.eval()
    x = torch.rand(4, 3, 16, 16)
    copy = inference_copy(vit, x)
    # nothing was fused or replaced: the same modules, the same weights ...
    assert [type(m) for m in copy.module.modules()] == [type(m) for m in vit.modules()]
    for a, b in zip(copy.module.state_dict().values(), vit.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # ... so the same function, up to the order of floating-point sums (a host may run the
    # patch embedding in channels_last, and its kernels may depend on the copy's alignment)
    with torch.inference_mode():
        torch.testing.assert_close(copy(x), vit(x), rtol=1e-5, atol=1e-5)
