import pytest

from sslmem.config import TRAIN_FIELDS, Config
from sslmem.errors import SSLMemError


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
