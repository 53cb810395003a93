"""The one-run proxies (sslmem.score.proxies): known answers on synthetic cases, and the
library functions on a tiny encoder and a folder dataset."""

import numpy as np
import pytest
from test_data import make_tree

from sslmem.errors import SSLMemError
from sslmem.score import proxies


def test_the_pair_estimate_takes_the_encoder_without_the_point_minus_the_one_with_it():
    L_f, L_g = np.array([0.2, 0.5, 0.4]), np.array([0.6, 0.3, 0.4])
    got = proxies.pair_estimate(L_f, L_g, [True, False, True])
    assert np.allclose(got, [0.4, 0.2, 0.0])
    assert np.argmax(got) == 0  # the planted memorized point first
    with pytest.raises(SSLMemError):
        proxies.pair_estimate(L_f, L_g, [True, False])


def test_learning_speed_ranks_the_point_learned_last_first():
    epochs = np.array([1, 2, 5, 10, 20, 50, 100])
    fast = np.exp(-np.log(epochs) * 2)[:, None] * np.ones((1, 5))
    slow = np.where(epochs < 50, 1.0, 0.05)[:, None]  # stays high until late, then fits
    curves = np.hstack([fast, slow])
    speed = proxies.learning_speed(curves, epochs)
    assert np.argmax(speed) == 5 and np.allclose(speed[:5], speed[0])
    with pytest.raises(SSLMemError, match="increasing"):
        proxies.learning_speed(curves, epochs[::-1])


def test_heldout_contrast_finds_the_point_training_helped_beyond_its_neighbourhood():
    """Loss follows a smooth typicality field; one trained point sits far below its held-out
    neighbours: it is ranked first, and held-out points centre on zero."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 2))
    loss = 0.5 + 0.1 * feats[:, 0] + rng.normal(0, 0.005, 300)
    trained = rng.random(300) < 0.5
    planted = np.flatnonzero(trained)[3]
    loss[planted] -= 0.2
    got = proxies.heldout_contrast(loss, trained, feats, k=5)
    assert np.argmax(got) == planted
    assert abs(np.median(got[~trained])) < 0.01


def test_knn_distance_ranks_the_outlier_first_in_pixels():
    rng = np.random.default_rng(1)
    images = rng.integers(100, 140, (40, 3, 8, 8), dtype=np.uint8)
    images[17] = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)  # the atypical one
    d = proxies.knn_distance(proxies.pixel_features(images), k=3)
    assert np.argmax(d) == 17
    with pytest.raises(SSLMemError):
        proxies.knn_distance(np.zeros((3, 2)), k=3)


def test_encoder_proxies_on_a_tiny_encoder_and_a_folder_dataset(tmp_path, tmp_runs):
    """Any encoder the library builds and any folder: dataset it loads (nothing trained)."""
    from sslmem.train.augment import recipe
    from sslmem.train.backbones import build_backbone
    from sslmem.train.data import load_dataset

    tree = make_tree(tmp_path / "tree", per_class=12)
    data = load_dataset(f"folder:{tree}", image_size=16)
    encoder = build_backbone("resnet9", image_size=16).eval()
    trained = np.arange(len(data.images)) % 2 == 0
    got = proxies.encoder_proxies(encoder, data.images, trained, augment=recipe("simclr", 16),
                                  n_pairs=2, k=3)
    assert list(got.columns) == ["loss", "trained", "heldout_contrast", "knn_embedding",
                                 "knn_pixels"]
    assert len(got) == len(data.images) and np.isfinite(got.drop(columns="trained")).all().all()
    with pytest.raises(SSLMemError, match="flag each"):
        proxies.encoder_proxies(encoder, data.images, trained[:3], augment=recipe("simclr", 16))
