"""Tests for sslmem.train.augment: exact geometry, torchvision parity of colour ops, per-sample
params."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from sslmem.errors import SSLMemError
from sslmem.train import augment as A


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def rgb() -> torch.Tensor:
    return torch.rand(6, 3, 32, 32, generator=_gen(1))


@pytest.fixture
def digits() -> torch.Tensor:
    """uint8 digits-like images: dark background with a bright stroke."""
    x = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    x[:, :, 8:24, 14:18] = 255
    x[:, 0] //= 2
    return x


# ----------------------------------------------------------------------------- geometry
def test_full_box_without_flip_is_identity(rgb):
    box = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(6, 4)
    assert torch.allclose(A.resized_crop(rgb, box, 32), rgb, atol=1e-5)


def test_flip_reverses_columns_exactly(rgb):
    box = torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(6, 4)
    flip = torch.tensor([True, False] * 3)
    out = A.resized_crop(rgb, box, 32, flip)
    assert torch.allclose(out[flip], rgb[flip].flip(-1), atol=1e-6)
    assert torch.allclose(out[~flip], rgb[~flip], atol=1e-6)


def test_quadrant_crop_gives_that_quadrant():
    x = torch.zeros(4, 3, 32, 32)
    for q, (i, j) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        x[:, :, i:i + 16, j:j + 16] = torch.arange(16.0).view(1, 1, 1, 16) / 16 + q
    boxes = torch.tensor([[0, 0, .5, .5], [0, .5, .5, .5], [.5, 0, .5, .5], [.5, .5, .5, .5]])
    out = A.resized_crop(x, boxes, 16)
    for q, (i, j) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        assert torch.allclose(out[q], x[q, :, i:i + 16, j:j + 16], atol=1e-5)


@pytest.mark.parametrize("top,left,h,w,size", [(3, 5, 20, 17, 32), (0, 0, 32, 32, 16),
                                                (2, 1, 10, 30, 16), (1, 1, 7, 9, 32),
                                                (5, 5, 13, 13, 24)])
def test_resized_crop_matches_torchvision_antialiased(rgb, top, left, h, w, size):
    box = torch.tensor([top, left, h, w]).div(32).expand(6, 4)
    ref = TF.resized_crop(rgb, top, left, h, w, [size, size], antialias=True)
    assert torch.allclose(A.resized_crop(rgb, box, size), ref, atol=1e-5)


def test_padded_crop_matches_torchvision_pad_then_crop(rgb):
    view = A.ViewAug(32, crop="padded", flip_p=0.0)
    params = view.sample(6, _gen(3))
    out = view.apply(rgb, params)
    padded = TF.pad(rgb, [4])
    shifts = (params["box"][:, :2] * 32).round().long()
    assert shifts.abs().max() <= 4 and len({tuple(s.tolist()) for s in shifts}) > 1
    for k, (dy, dx) in enumerate(shifts.tolist()):
        ref = TF.crop(padded[k], 4 + dy, 4 + dx, 32, 32)
        assert torch.allclose(out[k], ref, atol=1e-6)


def test_crop_areas_and_ratios_follow_requested_ranges():
    view = A.ViewAug(32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    box = view.sample(20000, _gen())["box"]
    top, left, h, w = box.unbind(1)
    area, ratio = h * w, w / h
    assert area.min() >= 0.08 - 1e-6 and area.min() < 0.081 and area.max() > 0.95
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert ratio.min() < 0.76 and ratio.max() > 1.32
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 1 + 1e-6).all() and (left + w <= 1 + 1e-6).all()
    # log-uniform aspect ratio: its log has mean ~0 (symmetric range)
    assert abs(ratio.log().mean()) < 0.01


def test_impossible_crop_falls_back_to_torchvision_centre_crop():
    view = A.ViewAug(32, scale=(0.9, 1.0), ratio=(3.0, 4.0))  # never fits a square image
    box = view.sample(50, _gen())["box"]
    expected = torch.tensor([(1 - 1 / 3) / 2, 0.0, 1 / 3, 1.0])
    assert torch.allclose(box, expected.expand(50, 4), atol=1e-6)


# ----------------------------------------------------------------------------- colour ops
@pytest.mark.parametrize("ours,theirs,values", [
    (A.adjust_brightness, TF.adjust_brightness, (0.3, 1.0, 1.4)),
    (A.adjust_contrast, TF.adjust_contrast, (0.2, 1.0, 1.8)),
    (A.adjust_saturation, TF.adjust_saturation, (0.0, 0.6, 1.8)),
    (A.adjust_hue, TF.adjust_hue, (-0.5, -0.2, 0.0, 0.1, 0.5)),
    (A.solarize, TF.solarize, (0.5,)),
])
def test_colour_op_matches_torchvision(rgb, ours, theirs, values):
    x = rgb.clone()
    x[0] = x[0, :1]  # a grey image (hue undefined)
    x[1, 0] = x[1, 1]  # ties between channels
    factors = torch.tensor([values[k % len(values)] for k in range(6)])
    before = x.clone()
    out = ours(x, factors)
    ref = torch.stack([theirs(x[k], float(f)) for k, f in enumerate(factors)])
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.equal(x, before)  # input left untouched


def test_grayscale_matches_torchvision(rgb):
    assert torch.allclose(A.rgb_to_grayscale(rgb), TF.rgb_to_grayscale(rgb), atol=1e-6)


@pytest.mark.parametrize("kernel", [3, 5, 9])
def test_gaussian_blur_per_sample_sigma_matches_torchvision(rgb, kernel):
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.0, 1.5])
    out = A.gaussian_blur(rgb, sigma, kernel)
    for k, s in enumerate(sigma.tolist()):
        ref = rgb[k] if s == 0 else TF.gaussian_blur(rgb[k], [kernel, kernel], [s, s])
        assert torch.allclose(out[k], ref, atol=1e-5)


def test_blur_kernel_is_odd_and_about_ten_percent():
    assert [A.blur_kernel_size(s) for s in (16, 32, 96, 224)] == [3, 3, 9, 23]


def test_solarize_threshold_inf_leaves_sample_unchanged(rgb):
    out = A.solarize(rgb, torch.tensor([0.5, math.inf] * 3))
    assert torch.equal(out[1::2], rgb[1::2])
    assert torch.allclose(out[0], torch.where(rgb[0] >= 0.5, 1 - rgb[0], rgb[0]))


def test_single_channel_colour_ops():
    x = torch.rand(4, 1, 28, 28, generator=_gen(2))
    f = torch.tensor([0.5, 1.5, 0.9, 1.1])
    assert torch.equal(A.adjust_saturation(x, f), x)
    assert torch.equal(A.adjust_hue(x, f - 1), x)
    assert torch.equal(A.rgb_to_grayscale(x), x)
    ref = torch.stack([TF.adjust_contrast(x[k], float(v)) for k, v in enumerate(f)])
    assert torch.allclose(A.adjust_contrast(x, f), ref, atol=1e-6)
    view = A.ViewAug(28, jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                     gray_p=1.0, blur_p=1.0, solarize_p=0.5)
    out = view(x, _gen())
    assert out.shape == (4, 1, 28, 28) and 0 <= out.min() and out.max() <= 1


# ----------------------------------------------------------------------------- random views
def test_parameters_differ_per_sample():
    params = A.recipe("byol", 32).views[1].sample(256, _gen())
    assert set(params) == set(A.PARAM_KEYS) and all(len(v) == 256 for v in params.values())
    assert params["box"].unique(dim=0).shape[0] == 256
    for key in ("flip", "gray", "solarize"):
        assert 0 < params[key].float().mean() < 1, key
    jittered = params["brightness"] != 1
    assert 0.7 < jittered.float().mean() < 0.9  # jitter_p = 0.8
    assert params["brightness"][jittered].unique().numel() == jittered.sum()
    assert (params["hue"][~jittered] == 0).all() and params["hue"].abs().max() <= 0.1
    assert (params["blur_sigma"] > 0).float().mean() < 0.25  # blur_p = 0.1


def test_values_shapes_and_dtypes(digits):
    for images in (digits, digits.float() / 255):
        views = A.recipe("byol", 32)(images, _gen())
        for v in views:
            assert v.shape == (8, 3, 32, 32) and v.dtype == torch.float32
            assert v.min() >= 0 and v.max() <= 1


def test_same_seed_same_views_and_different_seed_different_views(digits):
    r = A.recipe("simclr", 32)
    a, b, c = r(digits, _gen(7)), r(digits, _gen(7)), r(digits, _gen(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # the two views of a pair differ


def test_none_recipe_is_identity(digits):
    (out,) = A.recipe("none", 32)(digits)
    assert torch.allclose(out, digits.float() / 255, atol=1e-6)


@pytest.mark.parametrize("name", A.RECIPES)
@pytest.mark.parametrize("shape", [(8, 3, 32, 32), (8, 1, 28, 28)])
def test_every_recipe_runs_on_uint8(name, shape):
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=_gen())
    size = shape[-1]
    views = A.recipe(name, size)(images, _gen())
    expected = {"simclr": 2, "byol": 2, "simsiam": 2, "vicreg": 2, "barlowtwins": 2, "score": 2,
                "dino": 8, "mae": 1, "supervised": 1, "none": 1}[name]
    assert len(views) == expected
    sizes = [v.shape[-1] for v in views]
    assert sizes[:2] == [size] * min(2, expected)
    if name == "dino":
        assert sizes[2:] == [size // 2] * 6
    for v in views:
        assert v.shape[:2] == shape[:2] and v.shape[-2] == v.shape[-1]
        assert v.dtype == torch.float32 and 0 <= v.min() and v.max() <= 1


def test_score_recipe_is_the_authors_scoring_augmentation():
    view = A.recipe("score", 32).views[0]
    assert (view.scale, view.flip_p, view.jitter_p, view.gray_p) == ((0.08, 1.0), 0.5, 0.8, 0.2)
    assert (view.brightness, view.contrast, view.saturation, view.hue) == (0.8, 0.8, 0.8, 0.2)
    assert view.blur_p == 0 and view.solarize_p == 0


def test_params_sampled_once_apply_in_any_batching(digits):
    view = A.recipe("byol", 32).views[1]
    params = view.sample(8, _gen(5))
    whole = view.apply(digits, params)
    idx = torch.tensor([6, 0, 3])
    parts = torch.cat([view.apply(digits[:3], A.index_params(params, slice(0, 3))),
                       view.apply(digits[3:], A.index_params(params, slice(3, None)))])
    assert torch.allclose(parts, whole, atol=1e-6)
    picked = view.apply(digits[idx], A.index_params(params, idx))
    assert torch.allclose(picked, whole[idx], atol=1e-6)


def test_input_tensor_is_not_modified(rgb):
    before = rgb.clone()
    A.recipe("byol", 32)(rgb, _gen())
    assert torch.equal(rgb, before)


# ----------------------------------------------------------------------------- errors
def test_unknown_recipe_lists_choices():
    with pytest.raises(SSLMemError, match="augmentation recipe 'simclrr'.*barlowtwins.*simclr"):
        A.recipe("simclrr", 32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(flip_p=1.5), "flip_p"),
    (dict(jitter_p=-0.1), "jitter_p"),
    (dict(scale=(0.5, 0.2)), "scale"),
    (dict(scale=(0.0, 1.0)), "scale"),
    (dict(scale=(0.5, 1.2)), "scale"),
    (dict(size=0), "size"),
    (dict(hue=0.7), "hue"),
    (dict(brightness=-1.0), "brightness"),
    (dict(blur_sigma=(0.0, 1.0)), "blur_sigma"),
    (dict(crop="random"), "crop mode.*choose one of.*full.*padded.*resized"),
])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(SSLMemError, match=match):
        A.ViewAug(**{"size": 32, **kwargs})


def test_bad_inputs_raise(digits):
    view = A.ViewAug(32)
    with pytest.raises(SSLMemError, match="C = 1 or 3"):
        view(torch.zeros(2, 4, 32, 32))
    with pytest.raises(SSLMemError, match="parameter sets"):
        view.apply(digits, view.sample(3))
    with pytest.raises(SSLMemError, match="image_size"):
        A.recipe("simclr", 0)


def test_weaker_augmentation_moves_every_knob_towards_the_identity():
    from sslmem.train.augment import recipe, weaken

    full = recipe("byol", 16)
    assert recipe("byol", 16, 1.0) == full  # strength 1 is the method's recipe itself
    half = recipe("byol", 16, 0.5)
    for a, b in zip(full.views, half.views):
        assert b.scale[0] == pytest.approx(1 - 0.5 * (1 - a.scale[0]))
        for knob in ("jitter_p", "brightness", "contrast", "saturation", "hue", "gray_p",
                     "blur_p", "solarize_p"):
            assert getattr(b, knob) == pytest.approx(0.5 * getattr(a, knob))
        assert b.flip_p == a.flip_p
    x = torch.rand(64, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    spread_full = (full.views[0](x, g) - x).abs().mean()
    g = torch.Generator().manual_seed(0)
    spread_weak = (weaken(full.views[0], 0.1)(x, g) - x).abs().mean()
    assert spread_weak < spread_full  # weaker views stay closer to the image
    with pytest.raises(SSLMemError, match="strength"):
        weaken(full.views[0], 0.0)


def test_augment_strength_enters_the_key_only_when_changed():
    from sslmem.pipeline.config import Config

    base = Config(profile="tiny")
    assert base.key() == Config(profile="tiny", augment_strength=1.0).key()
    assert base.key() != Config(profile="tiny", augment_strength=0.5).key()
