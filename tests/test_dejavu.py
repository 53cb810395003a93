"""Known-answer tests of the Déjà vu test (sslmem.dejavu): crops, embeddings, kNN, the test."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslmem.dejavu import (
    corner_crop,
    embed,
    embedding_network,
    knn_confidence,
    knn_label_inference,
    projector,
)
from sslmem.errors import SSLMemError
from sslmem.methods import build_method

H1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # entropy of a 3:1 histogram


def _method(name: str, backbone: str = "resnet9"):
    torch.manual_seed(0)
    return build_method(name, backbone, image_size=16, channels=3, mean=(0.5,) * 3,
                        std=(0.25,) * 3, num_classes=10)


# ------------------------------------------------------------------------------- crops --

@pytest.mark.parametrize("corner, rows, cols", [
    ("lower_left", slice(7, 10), slice(0, 3)), ("lower_right", slice(7, 10), slice(7, 10)),
    ("upper_left", slice(0, 3), slice(0, 3)), ("upper_right", slice(0, 3), slice(7, 10))])
def test_corner_crop_takes_exactly_the_corner_pixels(corner, rows, cols):
    x = torch.arange(2 * 3 * 100, dtype=torch.int64).remainder(251).to(torch.uint8)
    x = x.reshape(2, 3, 10, 10)
    out = corner_crop(x, 0.3, corner, size=3)  # 0.3 * 10 = 3 px; no resize at size 3
    assert out.dtype == torch.uint8
    assert torch.equal(out, x[:, :, rows, cols])


def test_corner_crop_resizes_back_and_keeps_dtype():
    x = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    x[:, :, 23:, :9] = 17  # int(0.3 * 32) = 9: exactly the lower-left crop
    out = corner_crop(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, torch.full_like(x, 17))
    xf = corner_crop(x.float() / 255)
    assert xf.dtype == torch.float32
    assert torch.allclose(xf, torch.full(x.shape, 17 / 255))
    assert corner_crop(x[:, :, :, :], size=(8, 12)).shape == (1, 3, 8, 12)


def test_corner_crop_rejects_bad_arguments():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(SSLMemError, match="corner"):
        corner_crop(x, corner="centre")
    with pytest.raises(SSLMemError, match="fraction"):
        corner_crop(x, frac=0.0)


# -------------------------------------------------------------------------- embeddings --

@pytest.mark.parametrize("name, attr", [("simclr", "projection"), ("vicreg", "projection"),
                                        ("barlowtwins", "projection"), ("byol", "projection"),
                                        ("simsiam", "projection"), ("dino", "head")])
def test_projector_is_the_methods_projection_head(name, attr):
    method = _method(name)
    assert projector(method) is getattr(method, attr)
    net = embedding_network(method, "projector")
    assert net[0] is method.encoder and net[1] is getattr(method, attr)
    assert embedding_network(method, "backbone") is method.encoder


@pytest.mark.parametrize("name, backbone, why", [("mae", "vit_tiny", "MAE"),
                                                 ("supervised", "resnet9", "classifier")])
def test_methods_without_projector_say_so_in_one_line(name, backbone, why):
    method = _method(name, backbone)
    with pytest.raises(SSLMemError, match=f"no projector.*{why}.*embedding='backbone'") as err:
        embedding_network(method, "projector")
    assert "\n" not in str(err.value)
    assert embedding_network(method, "backbone") is method.encoder


def test_plain_modules_are_encoders_and_have_no_projector():
    module = nn.Flatten()
    assert embedding_network(module, "backbone") is module
    with pytest.raises(SSLMemError, match="no projector"):
        embedding_network(module)
    with pytest.raises(SSLMemError, match="embedding"):
        embedding_network(module, "logits")


def test_embed_real_method_both_choices():
    method = _method("simclr")
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    method.train()
    z_proj = embed(method, images, "projector", batch_size=4)
    z_back = embed(method, images, "backbone", batch_size=4)
    assert z_proj.shape == (6, 128) and z_back.shape == (6, method.encoder.feature_dim)
    assert method.training  # modes restored
    assert torch.allclose(z_proj, method.projection.eval()(z_back), atol=1e-5)


# -------------------------------------------------------------------------------- kNN --

def test_knn_k1_is_the_nearest_label_with_full_confidence():
    bank = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    queries = torch.tensor([[1.0, 1.0], [9.0, 1.0], [1.0, 8.0], [6.0, 0.0]])
    pred, conf = knn_label_inference(queries, bank, [0, 1, 2], k=1)
    assert pred.tolist() == [0, 1, 2, 1]
    assert conf.tolist() == [0.0] * 4


def test_knn_k3_votes_and_entropy():
    bank = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    queries = torch.tensor([[0.4], [10.6], [5.0]])
    pred, conf = knn_label_inference(queries, bank, torch.tensor([0, 0, 1, 1, 1]), k=3)
    # 0.4 -> {0, 1, 2}: labels 0, 0, 1; 10.6 -> {10, 11, 2}: 1, 1, 1; 5.0 -> {2, 1, 0}: 1, 0, 0
    assert pred.tolist() == [0, 1, 0]
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert conf.tolist() == pytest.approx([-h, 0.0, -h], abs=1e-12)


def test_knn_default_is_euclidean_on_unnormalized_embeddings():
    bank = torch.tensor([[1.0, 0.0], [10.0, 1.0]])
    q = torch.tensor([[10.0, 0.0]])
    assert knn_label_inference(q, bank, [0, 1], k=1)[0].tolist() == [1]  # L2: (10, 1) is nearer
    assert knn_label_inference(q, bank, [0, 1], k=1, metric="cosine")[0].tolist() == [0]
    with pytest.raises(SSLMemError, match="metric"):
        knn_label_inference(q, bank, [0, 1], metric="manhattan")


def test_knn_ties_smallest_label_and_k_clipped():
    bank = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    pred, conf = knn_label_inference(torch.tensor([[1.5]]), bank, [1, 0, 1, 0], k=10)
    assert pred.tolist() == [0]  # 2 votes each: the smaller label
    assert conf.tolist() == pytest.approx([-math.log(2)])


def test_knn_confidence_orders_histograms_and_ignores_label_order():
    counts = torch.tensor([[4, 0, 0], [3, 1, 0], [2, 2, 0], [2, 1, 1], [0, 1, 3]])
    conf = knn_confidence(counts)
    assert conf[0] == 0.0 and conf[1] == pytest.approx(-H1)
    assert bool((conf[:4].diff() < 0).all())  # more spread -> less confident
    assert conf[4].item() == conf[1].item()  # a permutation is an exact tie


def test_knn_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(0)
    bank = torch.randn(300, 16, generator=gen)
    labels = torch.randint(0, 7, (300,), generator=gen)
    queries = torch.cat([torch.randn(50, 16, generator=gen), bank[:20]])  # exact hits too
    for metric in ("l2", "cosine"):
        whole = knn_label_inference(queries, bank, labels, k=9, metric=metric, chunk_size=10**6)
        for chunk in (1, 7, None):
            part = knn_label_inference(queries, bank, labels, k=9, metric=metric,
                                       chunk_size=chunk)
            assert torch.equal(whole[0], part[0]) and torch.equal(whole[1], part[1])


def test_knn_exact_distance_ties_follow_bank_order_in_every_chunking():
    gen = torch.Generator().manual_seed(1)
    ints = torch.randint(-3, 4, (120, 5), generator=gen).float()  # exact L2, many ties
    labels = torch.randint(0, 7, (120,), generator=gen)
    runs = [knn_label_inference(ints[:40], ints, labels, k=5, chunk_size=c) for c in (1, 3, None)]
    assert all(torch.equal(r[0], runs[0][0]) and torch.equal(r[1], runs[0][1]) for r in runs)
    # two equidistant bank points: the earlier one is the neighbour
    bank = torch.tensor([[-1.0], [1.0], [-1.0]])
    assert knn_label_inference(torch.zeros(1, 1), bank, [2, 0, 1], k=1)[0].tolist() == [2]
