import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.train.backbones import BACKBONES, build_backbone
from sslmem.train.methods import build_method


@pytest.mark.parametrize("name,dim", [("resnet9", 256), ("resnet18", 512), ("resnet50", 2048),
                                      ("vit_tiny", 192), ("vit_small", 384)])
def test_feature_dims(name, dim):
    net = build_backbone(name, image_size=16, patch_size=4 if name.startswith("vit") else 0)
    assert net.feature_dim == dim
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, dim)


def test_cifar_stem_for_small_images_imagenet_stem_for_large():
    small = build_backbone("resnet18", image_size=32).net
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    large = build_backbone("resnet18", image_size=96).net
    assert large.conv1.kernel_size == (7, 7) and not isinstance(large.maxpool, torch.nn.Identity)


def test_vit_tiny_matches_authors_mae_encoder():
    vit = build_backbone("vit_tiny", image_size=32)
    assert vit.patch_size == 2 and vit.sequence_length == 257  # 16x16 patches + class token
    assert len(vit.vit.vit.encoder.layers) == 12


def test_single_channel_input():
    net = build_backbone("resnet9", image_size=28, in_channels=1)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 256)


def test_unknown_backbone_lists_choices():
    with pytest.raises(SSLMemError, match="unknown backbone 'resnet7'.*resnet18"):
        build_backbone("resnet7")
    assert set(BACKBONES) >= {"resnet18", "resnet34", "resnet50", "vit_tiny", "vit_small"}


def test_mae_on_a_resnet_is_refused():
    with pytest.raises(SSLMemError, match="mae.*ViT"):
        build_method("mae", "resnet18", image_size=32, channels=3, mean=(0.5,) * 3,
                     std=(0.25,) * 3, num_classes=10)


def test_unknown_method_lists_choices():
    with pytest.raises(SSLMemError, match="unknown method 'moco'.*simclr"):
        build_method("moco", None, image_size=32, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3,
                     num_classes=10)
