import pytest

from sslmem.errors import SSLMemError
from sslmem.pipeline.config import TRAIN_FIELDS, Config


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(SSLMemError, match=r"config field\(s\) epoch; valid fields: .*epochs"):
        Config.tiny(epoch=3)


def test_profiles():
    paper, tiny = Config.paper(), Config.tiny()
    assert (paper.dataset, paper.split_protocol, paper.candidate) == ("cifar10", "paper", 5000)
    assert tiny.dataset == "digits" and tiny.backbone == "resnet9"
    with pytest.raises(SSLMemError, match="unknown profile"):
        Config.for_profile("huge")


def test_resolved_fills_method_defaults():
    r = Config.paper(method="mae").resolved()
    assert (r.backbone, r.optimizer, r.batch_size) == ("vit_tiny", "adamw", 2048)
    assert Config.paper(method="mae", epochs=5).resolved().epochs == 5


def test_training_key_ignores_scoring_and_runtime_fields():
    base = Config.tiny()
    k = base.key(*TRAIN_FIELDS)
    assert base.replace(n_pairs=32, device="cpu", progress=False).key(*TRAIN_FIELDS) == k
    assert base.replace(epochs=9).key(*TRAIN_FIELDS) != k
    assert base.replace(n_pairs=32).key() != base.key()
    assert base.replace(device="cpu").key() == base.key()


@pytest.mark.parametrize("bad", [dict(n_pairs=0), dict(epochs=0), dict(score_variant="x"),
                                 dict(seeds=())])
def test_bad_values_are_refused(bad):
    with pytest.raises(SSLMemError):
        Config.tiny(**bad)


def test_every_field_has_a_spec():
    """Adding a Config field means adding its line to FIELDS (what it accepts)."""
    from dataclasses import fields

    from sslmem.pipeline.config import FIELDS

    assert sorted(f.name for f in fields(Config)) == sorted(FIELDS)


@pytest.mark.parametrize("field,bad,allowed", [
    ("epochs", 2.5, "an int >= 1"), ("epochs", True, "an int >= 1"), ("n_pairs", "3", "an int"),
    ("lr", 0, "positive finite"), ("lr", float("nan"), "positive finite"),
    ("lr", "1e-3", "in YAML"), ("weight_decay", -1.0, ">= 0"), ("align_lambda", None, ">= 0"),
    ("progress", "yes", "True or False"), ("progress", 1, "True or False"),
    ("seeds", (0, 0), "distinct"), ("seeds", (-1,), "non-negative"), ("seeds", "0", "ints"),
    ("shared", -1, "count >= 0"), ("candidate", 0, "count >= 1"), ("extra", 1.5, r"\(0, 1\]"),
    ("method", "moco", "choose one of"), ("backbone", "resnet7", "resnet18"),
    ("optimizer", "adamx", "lars"), ("device", "gpu", "cuda:N"), ("compile", True, "auto"),
    ("dataset", "folder:", "needs a path"), ("dataset", "cifar11", "folder:PATH"),
    ("runs_root", "", "non-empty path"), ("image_size", 4, ">= 8"),
    ("checkpoint_every", 0, ">= 1"), ("results_only", "1", "True or False"),
])
def test_a_bad_value_names_the_field_the_value_and_what_is_allowed(field, bad, allowed):
    with pytest.raises(SSLMemError, match=allowed) as err:
        Config.tiny(**{field: bad})
    message = str(err.value)
    assert field in message and repr(bad) in message and "\n" not in message


def test_values_are_normalized_so_equal_settings_share_keys():
    from pathlib import Path

    import numpy as np

    a = Config.tiny(lr=1, seeds=[0, 1], epochs=np.int64(3), data_root=Path("/d"), shared=0)
    b = Config.tiny(lr=1.0, seeds=(0, 1), epochs=3, data_root="/d", shared=0)
    assert a == b and a.key() == b.key() and type(a.epochs) is int and type(a.lr) is float
    assert Config.tiny(seeds=3).seeds == (3,) and Config.tiny(candidate=0.5).candidate == 0.5


def test_combinations_are_checked():
    with pytest.raises(SSLMemError, match="patch_size=5 does not divide image_size=16"):
        Config.tiny(method="mae", backbone="vit_tiny", patch_size=5, image_size=16)
    with pytest.raises(SSLMemError, match="resnet9 needs views of at least 8 px; dino at "
                                          "image_size=8 makes 4-px views"):
        Config.tiny(method="dino")
    Config.tiny(method="dino", image_size=16)
    with pytest.raises(SSLMemError, match="mae' needs a ViT"):
        Config.tiny(method="mae", backbone="resnet9")
    Config.tiny(method="mae", backbone="vit_tiny", patch_size=4)
