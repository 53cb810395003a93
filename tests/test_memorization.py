"""SSLMem estimator checks with known answers (CPU, tiny tensors, hand-written augmentations)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from sslmem.errors import SSLMemError
from sslmem.score import alignment as AL
from sslmem.score import comparison as CMP
from sslmem.score import label_memorization as LM
from sslmem.score import memorization as M
from sslmem.score import significance as SIG

# --------------------------------------------------------------------------- fixtures --

class FlipShift:
    """Per-view horizontal flip and brightness shift (shift=0: flips only)."""

    def __init__(self, shift: float = 0.1):
        self.shift = shift

    def sample(self, n, generator, device):
        return {"flip": torch.rand(n, generator=generator) < 0.5,
                "shift": (torch.rand(n, generator=generator) * 2 - 1) * self.shift}

    def apply(self, images, params):
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        return (x + params["shift"].view(-1, 1, 1, 1)).clamp(0, 1)


class SortEncoder(nn.Module):
    """Sorted pixel values: image-dependent, exactly invariant to any pixel permutation (flips),
    and elementwise (no reductions), so results are bitwise independent of batching."""

    def forward(self, x):
        return x.flatten(1).sort(dim=1).values


class ConstantEncoder(nn.Module):
    def __init__(self, dim: int = 4):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.ones(len(x), self.dim)


class NoiseEncoder(nn.Module):
    """A constant representation plus input-independent N(0, sigma^2 I_D) noise per view."""

    def __init__(self, dim: int, sigma: float, seed: int = 1):
        super().__init__()
        self.dim, self.sigma = dim, sigma
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x):
        return 3.0 + self.sigma * torch.randn(len(x), self.dim, generator=self.gen)


def conv_encoder(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 16))


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (24, 3, 8, 8), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


# ------------------------------------------------------------------ alignment, known values --

def test_invariant_encoders_have_zero_alignment_loss(images):
    loss, se = AL.alignment_loss(SortEncoder(), images, 5, FlipShift(shift=0.0), return_se=True)
    assert loss.shape == (len(images),) and torch.all(loss == 0) and torch.all(se == 0)
    assert torch.all(AL.alignment_loss(ConstantEncoder(), images, 3, FlipShift()) == 0)
    # sanity: the same encoder does see the brightness shift
    assert torch.all(AL.alignment_loss(SortEncoder(), images, 5, FlipShift(0.2)) > 0)


def test_clean_variant_compares_image_with_its_views(images):
    clean = AL.alignment_loss(SortEncoder(), images, 5, FlipShift(0.0), variant="clean")
    assert torch.all(clean == 0)
    assert torch.all(AL.alignment_loss(SortEncoder(), images, 5, FlipShift(0.2),
                                      variant="clean") > 0)


def test_noise_encoder_gives_the_chi_mean():
    """g = c + N(0, s^2 I_D) per view, f constant, unnormalized: E m = E||g(x')-g(x'')||, the
    mean of sigma*sqrt(2) * chi_D = sigma * sqrt2 * sqrt2 * Gamma((D+1)/2) / Gamma(D/2)."""
    dim, sigma, k = 5, 0.7, 40
    imgs = torch.rand(100, 3, 4, 4)
    frame = M.sslmem_score(ConstantEncoder(dim), NoiseEncoder(dim, sigma), imgs, k, FlipShift(),
                           normalize=False)
    expected = sigma * 2 * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))
    assert (frame.L_f == 0).all()
    mc_se = frame.score_raw.std() / math.sqrt(len(frame))
    assert abs(frame.score_raw.mean() - expected) < 4 * mc_se
    assert mc_se < 0.02 * expected  # the check is sharp
    # per-point se over pairs matches the spread of chi draws: sd / sqrt(K)
    chi_sd = sigma * math.sqrt(2) * math.sqrt(dim - (expected / (sigma * math.sqrt(2))) ** 2)
    assert frame.score_se.mean() == pytest.approx(chi_sd / math.sqrt(k), rel=0.1)


# -------------------------------------------------------- estimator design properties --

def test_score_is_exactly_antisymmetric(images):
    f, g = conv_encoder(0), conv_encoder(1)
    fg = M.sslmem_score(f, g, images, 4, FlipShift(), seed=3)
    gf = M.sslmem_score(g, f, images, 4, FlipShift(), seed=3)
    np.testing.assert_array_equal(fg.score_raw, -gf.score_raw)
    np.testing.assert_array_equal(fg.score_ratio, -gf.score_ratio)
    np.testing.assert_array_equal(fg.score_se, gf.score_se)
    assert (fg.score_raw != 0).all()


def test_same_seed_identical_and_other_seed_different(images):
    f, g = conv_encoder(0), conv_encoder(1)
    a = M.sslmem_score(f, g, images, 4, FlipShift(), seed=7)
    b = M.sslmem_score(f, g, images, 4, FlipShift(), seed=7)
    c = M.sslmem_score(f, g, images, 4, FlipShift(), seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.score_raw, c.score_raw)
    gen = torch.Generator().manual_seed(7)
    d = M.sslmem_score(f, g, images, 4, FlipShift(), generator=gen)
    np.testing.assert_array_equal(a.score_raw, d.score_raw)


def test_batch_size_invariance(images):
    aug = FlipShift(0.2)
    small = AL.score_alignment({"s": SortEncoder()}, images, 3, aug, batch_size=1)["s"]
    large = AL.score_alignment({"s": SortEncoder()}, images, 3, aug, batch_size=10_000)["s"]
    odd = AL.score_alignment({"s": SortEncoder()}, images, 3, aug, batch_size=13)["s"]
    assert torch.equal(small, large) and torch.equal(odd, large)
    conv = conv_encoder(0)
    a = AL.score_alignment({"c": conv}, images, 3, aug, batch_size=7)["c"]
    b = AL.score_alignment({"c": conv}, images, 3, aug, batch_size=4096)["c"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_permuting_inputs_permutes_outputs(images):
    index = torch.arange(100, 100 + len(images))
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(1))
    f, g = SortEncoder(), ConstantEncoder(64 * 3)
    base = M.sslmem_score(f, g, images, 3, FlipShift(0.2), index=index)
    moved = M.sslmem_score(f, g, images[perm], 3, FlipShift(0.2), index=index[perm])
    np.testing.assert_array_equal(moved["index"], index[perm].numpy())
    np.testing.assert_array_equal(moved.score_raw, base.score_raw.to_numpy()[perm.numpy()])
    # without an index, positions decide the views: permuted inputs then get other views
    other = M.sslmem_score(f, g, images[perm], 3, FlipShift(0.2))
    assert not np.array_equal(other.score_raw, base.score_raw.to_numpy()[perm.numpy()])


def test_imagedata_like_input_uses_its_index(images):
    data = SimpleNamespace(images=images, index=torch.arange(len(images)) * 2)
    frame = M.sslmem_score(SortEncoder(), ConstantEncoder(), data, 2, FlipShift())
    np.testing.assert_array_equal(frame["index"], np.arange(len(images)) * 2)


def test_multi_encoder_pass_shares_views_and_restores_modes(images):
    f0, f1, g = conv_encoder(0), conv_encoder(1), conv_encoder(2)
    f0.train()
    f1.eval()
    f1[1].train()  # a deliberately mixed state survives
    d = AL.score_alignment({"f0": f0, "f1": f1, "g": g}, images, 4, FlipShift(), seed=5)
    assert f0.training and all(m.training for m in f0.modules())
    assert not f1.training and f1[1].training
    alone = AL.score_alignment({"f0": f0}, images, 4, FlipShift(), seed=5)["f0"]
    torch.testing.assert_close(alone, d["f0"], rtol=1e-5, atol=1e-6)
    # seeds average: E_f over [f0, f1]
    frame = M.sslmem_score([f0, f1], g, images, 4, FlipShift(), seed=5)
    np.testing.assert_allclose(frame.L_f, ((d["f0"] + d["f1"]) / 2).double().mean(1), rtol=1e-6)
    np.testing.assert_allclose(frame.L_g, d["g"].double().mean(1), rtol=1e-12)
    assert frame.attrs["n_f"] == 2 and frame.attrs["n_pairs"] == 4


def test_common_random_numbers_give_the_pairwise_se(images):
    f, g = conv_encoder(0), conv_encoder(1)
    d = AL.score_alignment({"f": f, "g": g}, images, 6, FlipShift(), seed=2)
    frame = M.sslmem_score(f, g, images, 6, FlipShift(), seed=2)
    diff = d["g"].double() - d["f"].double()
    np.testing.assert_allclose(frame.score_se, diff.std(1) / math.sqrt(6), rtol=1e-9)
    # identical encoders: every per-pair difference is 0, so m and its se are exactly 0
    same = M.sslmem_score(f, f, images, 6, FlipShift())
    assert (same.score_raw == 0).all() and (same.score_se == 0).all()


def test_bad_arguments_are_rejected(images):
    with pytest.raises(SSLMemError, match="n_pairs"):
        AL.alignment_loss(SortEncoder(), images, 0, FlipShift())
    with pytest.raises(SSLMemError, match="variant"):
        AL.alignment_loss(SortEncoder(), images, 2, FlipShift(), variant="triplets")
    with pytest.raises(SSLMemError, match="distance"):
        AL.alignment_loss(SortEncoder(), images, 2, FlipShift(), distance="l1")
    with pytest.raises(SSLMemError, match="ViewAug"):
        AL.alignment_loss(SortEncoder(), images, 2, augment=lambda x: x)
    with pytest.raises(SSLMemError, match="index"):
        AL.alignment_loss(SortEncoder(), images, 2, FlipShift(), index=[1, 2])


# ------------------------------------------------------------------- normalizations --

def test_normalizations_on_a_hand_example():
    L_f, L_g = np.array([1.0, 2.0, 0.0, 0.0]), np.array([2.0, 1.0, 2.0, 0.0])
    raw = L_g - L_f  # [1, -1, 2, 0]
    np.testing.assert_allclose(M.normalize_scores(raw, "raw"), raw)
    np.testing.assert_allclose(M.normalize_scores(raw, "ratio", L_f=L_f, L_g=L_g),
                               [1 / 3, -1 / 3, 1.0, 0.0])
    np.testing.assert_allclose(M.normalize_scores(raw, "range"), [1 / 3, -1 / 3, 2 / 3, 0.0])
    np.testing.assert_allclose(M.normalize_scores(raw, "zscore", reference=[0.0, 2.0]),
                               (raw - 1) / math.sqrt(2))
    assert np.isnan(M.normalize_scores([0.5, 0.5], "range")).all()
    with pytest.raises(SSLMemError, match="L_f and L_g"):
        M.normalize_scores(raw, "ratio")
    with pytest.raises(SSLMemError, match="reference"):
        M.normalize_scores(raw, "zscore")
    with pytest.raises(SSLMemError, match="normalization"):
        M.normalize_scores(raw, "minmax")


def test_frame_columns_follow_the_normalizations(images):
    frame = M.sslmem_score(conv_encoder(0), conv_encoder(1), images, 3, FlipShift(),
                           reference=[0.0, 0.1, 0.2])
    assert list(frame.columns) == ["L_f", "L_g", "score_raw", "score_se", "score_ratio",
                                   "score_range", "score_zscore"]
    np.testing.assert_allclose(frame.score_ratio, frame.score_raw / (frame.L_f + frame.L_g))
    assert frame.score_range.max() - frame.score_range.min() == pytest.approx(1.0)
    assert ((frame.L_f >= 0) & (frame.L_f <= 2)).all()  # unit vectors: distances in [0, 2]


# ------------------------------------------------------------------- the four subsets --

def _fake_sets(n_train=40, n_test=20):
    gen = torch.Generator().manual_seed(4)
    train = SimpleNamespace(images=torch.randint(0, 256, (n_train, 3, 8, 8), generator=gen,
                                                 dtype=torch.uint8),
                            labels=torch.arange(n_train) % 3, index=torch.arange(n_train) + 1000)
    test = SimpleNamespace(images=torch.randint(0, 256, (n_test, 3, 8, 8), generator=gen,
                                                dtype=torch.uint8),
                           labels=torch.arange(n_test) % 3, index=torch.arange(n_test) + 5000)
    split = SimpleNamespace(shared=np.arange(0, 20), candidate=np.arange(20, 30),
                            independent=np.arange(30, 40), extra=np.arange(5, 15))
    return train, test, split


def test_memorization_table_layout_and_guards():
    train, test, split = _fake_sets()
    f, g = conv_encoder(0), conv_encoder(1)
    table = M.memorization_table(f, g, train, test, split, 3, FlipShift(),
                                 f_train=np.arange(30), g_train=np.r_[0:20, 30:40],
                                 f_meta={"dataset": "x", "split_fingerprint": "ab", "seed": 0},
                                 g_meta={"dataset": "x", "split_fingerprint": "ab", "seed": 1})
    assert list(table.columns) == ["subset", "position", "index", "label", "L_f", "L_g",
                                   "score_raw", "score_se", "score_ratio", "score_range",
                                   "score_zscore"]
    assert table.subset.value_counts().to_dict() == {"shared": 20, "candidate": 10,
                                                     "independent": 10, "extra": 10}
    extra = table[table.subset == "extra"]
    np.testing.assert_array_equal(extra["index"], np.arange(5, 15) + 5000)
    np.testing.assert_array_equal(extra.label, np.arange(5, 15) % 3)
    cand = table[table.subset == "candidate"]
    np.testing.assert_array_equal(cand["index"], np.arange(20, 30) + 1000)
    assert table.score_range.max() - table.score_range.min() == pytest.approx(1.0)
    assert extra.score_zscore.mean() == pytest.approx(0.0, abs=1e-12)
    assert extra.score_zscore.std() == pytest.approx(1.0)
    swapped = M.memorization_table(g, f, train, test, split, 3, FlipShift())
    np.testing.assert_array_equal(swapped.score_raw, -table.score_raw)

    with pytest.raises(SSLMemError, match="not in f's training set"):
        M.memorization_table(f, g, train, test, split, 3, FlipShift(), f_train=np.arange(25))
    with pytest.raises(SSLMemError, match="in g's training set"):
        M.memorization_table(f, g, train, test, split, 3, FlipShift(), g_train=np.arange(40))
    with pytest.raises(SSLMemError, match="meaningless"):
        M.memorization_table(f, g, train, test, split, 3, FlipShift(),
                             f_meta={"dataset": "cifar10"}, g_meta={"dataset": "cifar100"})
    with pytest.raises(SSLMemError, match="n_pairs"):
        M.memorization_table(f, g, train, test, split, 0, FlipShift())


def _table(shift_c: float, shift_i: float, n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    means = {"shared": 0.0, "candidate": shift_c, "independent": shift_i, "extra": 0.0}
    return pd.DataFrame([{"subset": s, "score_raw": rng.normal(mu, 1.0)}
                         for s, mu in means.items() for _ in range(n)])


def test_significance_tests_find_shifted_sets_and_not_null_ones():
    result = SIG.significance_tests(_table(0.5, -0.5)).set_index("hypothesis")
    assert list(result.columns[:6]) == ["t", "p", "mean_a", "mean_b", "n_a", "n_b"]
    for h in ("S_C > S_S", "S_C > S_E", "S_I < S_S", "S_I < S_E"):
        assert result.loc[h, "p"] < 1e-6
    assert result.loc["S_S != S_E", "p"] > 0.01
    null = SIG.significance_tests(_table(0.0, 0.0)).set_index("hypothesis")
    assert (null.p > 0.01).all()
    # the wrong direction is not significant: a candidate set shifted DOWN
    wrong = SIG.significance_tests(_table(-0.5, 0.5)).set_index("hypothesis")
    assert wrong.loc["S_C > S_S", "p"] > 0.99
    # one-sided p is half the two-sided Student p when t > 0 (Ttest.py's convention)
    t = _table(0.5, -0.5)
    two = stats.ttest_ind(t[t.subset == "candidate"].score_raw, t[t.subset == "shared"].score_raw)
    assert result.loc["S_C > S_S", "p"] == pytest.approx(two.pvalue / 2)


def test_an_empty_subset_says_which_tests_it_leaves_uncomputed(monkeypatch, capsys):
    """A run whose S_I is empty (and S_E of one point) printed NaN t-tests without a word:
    one line now names the subsets, the tests they leave NaN and the field that sizes them."""
    from sslmem import cli
    from sslmem.pipeline import experiment

    assert SIG.why_untested(SIG.significance_tests(_table(0.5, -0.5))) is None
    table = _table(0.5, -0.5)
    table = table[table.subset != "independent"]
    table = table[(table.subset != "extra") | ~table.subset.duplicated()]  # one extra point
    note = SIG.why_untested(SIG.significance_tests(table))
    assert note.count("\n") == 0
    assert note.startswith("S_E (extra) has 1 point, S_I (independent) is empty: the t-test(s) "
                           "S_C > S_E, S_I < S_S, S_I < S_E, S_S != S_E cannot be computed"), note
    assert note.endswith("size the subset(s) with --set extra=N, --set independent=N"), note

    class Run:  # an experiment whose scores are ``table`` (no training)
        def __init__(self, cfg):
            self.store_dir = "store"

        def scores(self):
            return table.assign(L_f=0.0, L_g=0.0, score_ratio=0.0)

        def significance(self):
            return SIG.significance_tests(table)

    monkeypatch.setattr(experiment, "Experiment", Run)
    assert cli.main(["score", "--profile", "tiny"]) == 0
    out, err = capsys.readouterr()
    assert "NaN" in out and err == f"sslmem: warning: {note}\n", err


def test_frac_memorized_with_an_extra_threshold():
    extra = np.arange(1000) / 1000  # 0.000 ... 0.999
    thr = SIG.extra_threshold(extra, 0.99)
    assert thr == pytest.approx(np.quantile(extra, 0.99))
    assert SIG.frac_memorized(extra, thr) == pytest.approx(0.01, abs=1e-3)
    assert SIG.frac_memorized([0.0, 1.0, 2.0, 3.0], 1.5) == 0.5


# --------------------------------------------------------------- label memorization --

class LabelReader(nn.Module):
    """A 'classifier' that reads the label painted into the image (its mean grey level), with an
    offset: offset 0 is always right, 1 always wrong."""

    def __init__(self, offset: int, classes: int = 4):
        super().__init__()
        self.offset, self.classes = offset, classes

    def forward(self, x):
        label = (x.mean(dim=(1, 2, 3)) * 10).round().long()
        return nn.functional.one_hot((label + self.offset) % self.classes, self.classes).float()


def test_label_memorization_on_hand_built_classifiers():
    labels = torch.arange(12) % 4
    imgs = (labels.float() / 10).view(-1, 1, 1, 1).expand(-1, 3, 6, 6).contiguous()
    right, wrong = LabelReader(0), LabelReader(1)
    out = LM.label_memorization(right, wrong, imgs, labels)
    assert list(out.columns) == ["label", "p_f", "p_g", "label_mem"]
    assert (out.p_f == 1).all() and (out.p_g == 0).all() and (out.label_mem == 1).all()
    assert (LM.label_memorization(right, right, imgs, labels).label_mem == 0).all()
    half = LM.label_memorization([right, wrong], [wrong], imgs, labels)
    assert (half.label_mem == 0.5).all()
    flips = LM.label_memorization(right, wrong, imgs, labels, augment=FlipShift(0.0), n_aug=3)
    assert (flips.label_mem == 1).all()
    with pytest.raises(SSLMemError, match="n_aug"):
        LM.label_memorization(right, wrong, imgs, labels, n_aug=2)


# --------------------------------------------------------------------- comparisons --

def test_topk_overlap_and_rank_agreement_on_known_rankings():
    a = np.arange(10.0)
    assert CMP.topk_overlap(a, a, k=3) == 1.0
    assert CMP.topk_overlap(a, -a, k=3) == 0.0
    b = a.copy()
    b[[9, 0]] = b[[0, 9]]  # the best point drops to the bottom
    assert CMP.topk_overlap(a, b, k=5) == pytest.approx(4 / 5)
    assert CMP.topk_overlap(a, a, k=100) == 1.0  # k clipped
    same = CMP.rank_agreement(a, a)
    assert same["kendall_tau"] == pytest.approx(1) and same["spearman_rho"] == pytest.approx(1)
    assert same["kendall_p"] < 1e-5
    rev = CMP.rank_agreement(a, -a)
    assert rev["kendall_tau"] == pytest.approx(-1) and rev["spearman_rho"] == pytest.approx(-1)
    # one adjacent swap out of 45 pairs: tau = (44 - 1) / 45
    c = a.copy()
    c[[3, 4]] = c[[4, 3]]
    assert CMP.rank_agreement(a, c)["kendall_tau"] == pytest.approx(43 / 45)
    # Series align on their index, whatever the order
    sa = pd.Series(a, index=np.arange(10))
    sb = pd.Series(a[::-1], index=np.arange(10)[::-1])
    assert CMP.rank_agreement(sa, sb)["kendall_tau"] == pytest.approx(1)
    with pytest.raises(SSLMemError, match="same points"):
        CMP.topk_overlap(a, a[:5])


# ------------------------------------------------------------- with the real recipe --

def test_score_recipe_end_to_end():
    augment = pytest.importorskip("sslmem.train.augment")
    train, test, split = _fake_sets()
    f, g = conv_encoder(0), conv_encoder(1)
    rec = augment.recipe("score", 8)
    table = M.memorization_table(f, g, train, test, split, 4, rec, seed=1)
    default = M.memorization_table(f, g, train, test, split, 4, seed=1)  # augment=None -> score
    pd.testing.assert_frame_equal(table, default)
    assert table.score_raw.notna().all() and (table.score_se > 0).all()
    # batch-size invariance with the real per-sample augmentation
    a = AL.score_alignment({"f": f}, train.images, 4, rec, batch_size=5)["f"]
    b = AL.score_alignment({"f": f}, train.images, 4, rec, batch_size=4096)["f"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the code variant d(f(x), f(aug(x))) runs on the recipe too, and x' != x'' in "pairs"
    clean = AL.alignment_loss(f, train.images, 3, rec, variant="clean")
    assert clean.shape == (40,) and (clean > 0).all()
    invariant = AL.alignment_loss(ConstantEncoder(), train.images, 3, rec)
    assert (invariant == 0).all()


def test_real_data_split_and_backbone(shared_data):
    """cifar10-mini, a real Split and an (untrained) ResNet-9 Encoder, through the default
    score recipe: the table lines up with the split and the guards read the split's fingerprint."""
    from sslmem.train.backbones import Encoder, build_backbone
    from sslmem.train.data import load_dataset
    from sslmem.train.splits import make_split

    train = load_dataset("cifar10-mini", "train", data_root=shared_data)
    test = load_dataset("cifar10-mini", "test", data_root=shared_data)
    split = make_split(train.labels, test.labels, shared=16, candidate=8, independent=8,
                       extra=8, seed=0)
    torch.manual_seed(0)
    f = Encoder(build_backbone("resnet9"), train.mean, train.std)
    g = Encoder(build_backbone("resnet9"), train.mean, train.std)
    meta = {"dataset": "cifar10-mini", "split_fingerprint": split.fingerprint()}
    table = M.memorization_table(f, g, train, test, split, 2, f_train=split.f_train,
                                 g_train=split.g_train, f_meta=meta, g_meta=dict(meta))
    frame = split.to_frame(train, test)
    np.testing.assert_array_equal(table["index"], frame["index"])
    np.testing.assert_array_equal(table.subset, frame.subset)
    assert table.score_raw.notna().all() and (table.L_f > 0).all()
    assert len(SIG.significance_tests(table)) == 5
    other = make_split(train.labels, test.labels, shared=16, candidate=8, independent=8,
                       extra=8, seed=1)
    with pytest.raises(SSLMemError, match="another split"):
        M.memorization_table(f, g, train, test, split, 2,
                             f_meta={"split_fingerprint": other.fingerprint()})


def test_bootstrap_agreement_known_answers():
    from sslmem.score.comparison import bootstrap_agreement

    rng = np.random.default_rng(0)
    base = rng.normal(size=400)
    frame = pd.DataFrame({"a": base, "b": base + 1e-3 * rng.normal(size=400),
                          "c": rng.normal(size=400), "d": rng.normal(size=400)})
    out = bootstrap_agreement(frame, {"same": [("a", "b")], "independent": [("c", "d")]},
                              k=40, n_boot=100).set_index("comparison")
    same, indep = out.loc["same"], out.loc["independent"]
    assert same.overlap > 0.9 and same.tau > 0.95 and same.overlap_lo > 0.8
    assert indep.overlap_lo <= 0.1 <= indep.overlap_hi  # chance k/n = 0.1 inside the interval
    assert indep.tau_lo < 0 < indep.tau_hi and indep.overlap_chance == pytest.approx(0.1)
    diff = out.loc["same − independent"]
    assert diff.tau_lo > 0.8 and diff.overlap == pytest.approx(same.overlap - indep.overlap)
