"""Known-answer tests of the Déjà vu test (sslmem.score.dejavu): crops, embeddings, kNN, the
test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.score.dejavu import (
    CATEGORIES,
    corner_crop,
    default_public,
    dejavu_test,
    embed,
    embedding_network,
    knn_confidence,
    knn_label_inference,
    most_confident,
    projector,
)
from sslmem.train.data import ImageData
from sslmem.train.methods import build_method
from sslmem.train.splits import make_split

H1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # entropy of a 3:1 histogram
H5 = 1.5 * math.log(2)  # entropy of a 1:1:2 histogram


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


# ---------------------------------------------------------------------------- the test --
# A hand-made world: 10x10 images; an encoder maps the colour of an image's centre pixel to a
# one-hot "group". The public set has 6 groups of 4 uniform images (colour 20 + 10 * group) with
# known label histograms; with k = 4 a query's neighbours are exactly its group. Candidate i is
# colour 250 ("object") except its lower-left 3x3 corner (colour 100 + 10 * i), so only the
# resized lower-left crop shows that colour at its centre. f and g send candidate colours to
# different groups: f "remembers" more of the candidates' labels than g.

GROUP_LABELS = [[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 0, 0], [2, 2, 2, 1],
                [0, 1, 2, 2]]
# group -> (prediction, entropy): G3 is a 2:2 tie -> the smaller label
GROUP_ANSWER = [(0, 0.0), (1, 0.0), (0, H1), (0, math.log(2)), (2, H1), (2, H5)]
CAND_LABELS = [0, 1, 2, 0, 1]
F_GROUPS = [0, 1, 5, 4, 3]
G_GROUPS = [2, 3, 2, 2, 0]


class CentreColour(nn.Module):
    """One-hot group of the colour (red channel) at the image centre, via a lookup table."""

    def __init__(self, candidate_groups):
        super().__init__()
        table = torch.full((256,), 3, dtype=torch.long)  # the object colour 250 -> G3
        for g in range(6):
            table[20 + 10 * g] = g
        for i, g in enumerate(candidate_groups):
            table[100 + 10 * i] = g
        self.register_buffer("table", table)

    def forward(self, x):
        h, w = x.shape[-2:]
        colour = (x[:, 0, h // 2, w // 2] * 255).round().long()
        return F.one_hot(self.table[colour], 6).float()


def _world():
    pub = torch.cat([torch.full((4, 3, 10, 10), 20 + 10 * g, dtype=torch.uint8)
                     for g in range(6)])
    pub_labels = torch.tensor(sum(GROUP_LABELS, []))
    cand = torch.full((5, 3, 10, 10), 250, dtype=torch.uint8)
    for i in range(5):
        cand[i, :, 7:, :3] = 100 + 10 * i
    data = ImageData("toy", "train", cand, torch.tensor(CAND_LABELS), ("a", "b", "c"),
                     torch.arange(40_000, 40_005), (0.5,) * 3, (0.25,) * 3)
    return data, pub, pub_labels


def _run(f_groups=F_GROUPS, g_groups=G_GROUPS, **kw):
    data, pub, pub_labels = _world()
    kw.setdefault("fractions", (0.2, 0.6, 1.0))
    return dejavu_test(CentreColour(f_groups), CentreColour(g_groups), data, pub,
                       public_labels=pub_labels, k=4, embedding="backbone", **kw)


def test_dejavu_known_answer_per_point():
    points, _ = _run()
    assert points["index"].tolist() == [40_000 + i for i in range(5)]
    assert points["position"].tolist() == list(range(5))
    assert points["label"].tolist() == CAND_LABELS
    for name, groups in (("f", F_GROUPS), ("g", G_GROUPS)):
        assert points[f"pred_{name}"].tolist() == [GROUP_ANSWER[g][0] for g in groups]
        assert points[f"conf_{name}"].to_numpy() == pytest.approx(
            [-GROUP_ANSWER[g][1] for g in groups], abs=1e-12)
    assert points["correct_f"].tolist() == [True, True, True, False, False]
    assert points["correct_g"].tolist() == [True, False, False, True, False]
    assert points["category"].tolist() == ["correlated", "memorized", "memorized",
                                           "misrepresented", "unassociated"]
    assert list(points["category"].cat.categories) == list(CATEGORIES)
    # graded votes: the share of each candidate's 4 neighbours (its group) with its true label
    for name, groups in (("f", F_GROUPS), ("g", G_GROUPS)):
        expected = [GROUP_LABELS[g].count(y) / 4 for g, y in zip(groups, CAND_LABELS)]
        assert points[f"p_true_{name}"].tolist() == pytest.approx(expected)


def test_dejavu_known_answer_summary_ranks_each_model_by_its_own_confidence():
    _, summary = _run()
    assert summary["fraction"].tolist() == [0.2, 0.6, 1.0]
    assert summary["n"].tolist() == [1, 3, 5]
    # f's order: c0, c1 (tied at entropy 0: position order), c3, c4, c2
    assert summary["acc_f"].to_numpy() == pytest.approx([1.0, 2 / 3, 3 / 5])
    # g's order: c4, c0, c2, c3 (tied at H1: position order), c1. Ranking both models by one
    # model's confidence would give acc_f = 0 (by g) or acc_g = 1, 2/3 (by f) instead.
    assert summary["acc_g"].to_numpy() == pytest.approx([0.0, 1 / 3, 2 / 5])
    assert summary["gap"].to_numpy() == pytest.approx([1.0, 1 / 3, 0.2])
    assert summary.attrs["k"] == 4 and summary.attrs["corner"] == "lower_left"


def test_dejavu_swapping_f_and_g_mirrors_the_answer():
    points, summary = _run(F_GROUPS, G_GROUPS)
    back, back_summary = _run(G_GROUPS, F_GROUPS)
    assert back_summary["gap"].iloc[-1] == pytest.approx(-summary["gap"].iloc[-1])
    swap = {"memorized": "misrepresented", "misrepresented": "memorized"}
    assert back["category"].tolist() == [swap.get(c, c) for c in points["category"]]


def test_dejavu_reads_the_crop_not_the_whole_image():
    # the upper-right corner is object colour: both models see G3 and predict 0 everywhere
    points, summary = _run(corner="upper_right")
    assert points["pred_f"].tolist() == [0] * 5 and points["pred_g"].tolist() == [0] * 5
    assert summary["gap"].tolist() == [0.0, 0.0, 0.0]


def test_dejavu_tensors_need_labels_and_chunks_change_nothing():
    data, pub, pub_labels = _world()
    f, g = CentreColour(F_GROUPS), CentreColour(G_GROUPS)
    with pytest.raises(SSLMemError, match="public_labels="):
        dejavu_test(f, g, data, pub, k=4, embedding="backbone")
    a = dejavu_test(f, g, data.images, pub, candidates_labels=data.labels.tolist(),
                    public_labels=pub_labels, k=4, embedding="backbone", chunk_size=1,
                    fractions=(0.2, 0.6, 1.0))
    b = _run(chunk_size=None)
    assert "index" not in a[0]
    pd_cols = ["pred_f", "pred_g", "conf_f", "conf_g", "category"]
    assert a[0][pd_cols].equals(b[0][pd_cols]) and a[1].equals(b[1])


def test_most_confident_counts_and_order():
    conf = np.array([0.0, -1.0, 0.0, -0.5, -2.0, -0.1, -0.3, -0.7, -0.9, -1.5])
    assert most_confident(conf, 1.0).tolist() == [0, 2, 5, 6, 3, 7, 8, 1, 9, 4]
    assert most_confident(conf, 0.3).tolist() == [0, 2, 5]  # int(0.3 * 10) = 3, not 2
    assert most_confident(conf, 0.05).tolist() == [0]  # at least one point
    assert len(most_confident(np.zeros(100), 0.05)) == 5
    with pytest.raises(SSLMemError, match="fraction"):
        most_confident(conf, 1.5)


def test_default_public_is_test_minus_extra():
    train_labels, test_labels = np.arange(100) % 5, np.arange(40) % 5
    split = make_split(train_labels, test_labels, candidate=10, extra=8, seed=0)
    test = ImageData("toy", "test", torch.zeros(40, 3, 4, 4, dtype=torch.uint8),
                     torch.as_tensor(test_labels), tuple("abcde"), torch.arange(40) + 1000,
                     (0.5,) * 3, (0.25,) * 3)
    public = default_public(test, split)
    assert len(public) == 32
    assert set(public.index.tolist()) == set(range(1000, 1040)) - set((split.extra + 1000))
    with pytest.raises(SSLMemError, match="test images"):
        default_public(test.subset(range(30)), split)


@pytest.mark.parametrize("embedding", ["projector", "backbone"])
def test_dejavu_smoke_real_method(embedding):
    method = _method("simclr")
    gen = torch.Generator().manual_seed(0)
    cand = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=gen)
    pub = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8, generator=gen)
    cand_y, pub_y = torch.arange(12) % 10, torch.arange(20) % 10
    points, summary = dejavu_test(method, method, cand, pub, candidates_labels=cand_y,
                                  public_labels=pub_y, k=5, embedding=embedding, batch_size=8)
    assert len(points) == 12 and summary["n"].tolist() == [1, 2, 12]
    assert (points["conf_f"] <= 0).all() and (points["conf_f"] >= -math.log(5) - 1e-9).all()
    # f is g: identical predictions, so no gap and no memorized/misrepresented points
    assert points["pred_f"].equals(points["pred_g"])
    assert summary["gap"].tolist() == [0.0, 0.0, 0.0]
    assert set(points["category"]) <= {"correlated", "unassociated"}
