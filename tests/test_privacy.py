"""DP-SGD: the noise is the one Opacus computes, clipping holds, the accountant survives a resume,
and methods whose loss couples the samples of a batch are refused in one line."""

import math

import numpy as np
import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.pipeline.config import DP_FIELDS, RUNTIME_FIELDS, TRAIN_FIELDS, Config
from sslmem.train.data import load_dataset
from sslmem.train.fit import TrainSpec, fit, load_checkpoint
from sslmem.train.methods import METHODS, build_method
from sslmem.train.optim import make_optimizer
from sslmem.train.privacy import (
    DPSGD,
    check_model,
    default_delta,
    draw_inputs,
    inputs_loss,
    noise_multiplier,
)

# tiny runs sample a large fraction of the data per step, where RDP's best order is the largest
pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: a DP step is hundreds of small ops, and on a shared 2-core machine
    two OpenMP threads waiting on each other made it ~30x slower (9.7 s against 0.33 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", image_size=16)


def make(name, data, backbone="vit_tiny"):
    return build_method(name, backbone, image_size=16, channels=3, mean=data.mean, std=data.std,
                        num_classes=data.num_classes, patch_size=4)


def spec(name="mae", **kw):
    d = METHODS[name].defaults
    base = dict(epochs=2, batch_size=8, optimizer=d.optimizer, lr=1e-3,
                weight_decay=d.weight_decay, warmup_epochs=0, progress=False, dp_epsilon=8.0)
    return TrainSpec(**{**base, **kw})


def _weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


# ------------------------------------------------------------------------------------ accounting
def _hand_epsilon(sigma, q, steps, delta, orders=range(2, 64)):
    """RDP of the Poisson-subsampled Gaussian at integer orders (Mironov et al. 2019, Sec. 3.3),
    converted to (ε, δ) as Balle et al. 2020, Thm 21; written out here independently of Opacus."""
    best = math.inf
    for a in orders:
        terms = [math.lgamma(a + 1) - math.lgamma(k + 1) - math.lgamma(a - k + 1)
                 + (a - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma ** 2)
                 for k in range(a + 1)]
        top = max(terms)
        log_a = top + math.log(sum(math.exp(t - top) for t in terms))
        rdp = steps * log_a / (a - 1)
        best = min(best, rdp - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a))
    return best


def test_noise_and_epsilon_match_opacus_and_a_hand_computation():
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    # Opacus' own test values (accountants_test.py): q = 0.04, 90 epochs = 2250 steps, δ = 1e-5
    sigma = noise_multiplier(8.0, 1e-5, 0.04, 2250)
    assert sigma == pytest.approx(1.416, abs=1e-4)
    assert sigma == get_noise_multiplier(target_epsilon=8.0, target_delta=1e-5, sample_rate=0.04,
                                         steps=2250, accountant="rdp")
    acc = RDPAccountant()
    acc.history = [(1.5, 0.04, 2250)]
    assert acc.get_epsilon(delta=1e-5) == pytest.approx(7.32911117143)
    # the same accountant at integer orders agrees with the formula written out by hand
    ints = list(range(2, 64))
    assert acc.get_epsilon(delta=1e-5, alphas=ints) == pytest.approx(
        _hand_epsilon(1.5, 0.04, 2250, 1e-5), rel=1e-9)
    # and the σ found for ε = 8 spends at most ε = 8 (within the search tolerance)
    acc.history = [(sigma, 0.04, 2250)]
    assert 8.0 - 0.01 <= acc.get_epsilon(delta=1e-5) <= 8.0


def test_default_delta_is_the_largest_power_of_ten_below_one_over_n():
    assert [default_delta(n) for n in (45000, 50000, 750, 100, 99)] == [
        1e-5, 1e-5, 1e-3, 1e-3, 1e-2]


def test_poisson_batches_draw_each_point_with_probability_q(digits):
    m = make("mae", digits)
    dp = DPSGD(m, make_optimizer(m, "adamw", 1e-3, 0.0), example=digits.images[:1], n=1000,
               batch_size=100, steps=10, epsilon=8.0, delta=None, max_grad_norm=1.0)
    g = torch.Generator().manual_seed(0)
    sizes = [len(dp.sample(g)) for _ in range(200)]
    assert len(set(sizes)) > 5  # the batch size varies
    assert abs(np.mean(sizes) - 100) < 3  # sd of the mean: sqrt(90 / 200) ~ 0.7


# ---------------------------------------------------------------------------- per-sample clipping
@pytest.mark.parametrize("name,align", [("mae", 0.0), ("supervised", 0.5)])
def test_per_sample_gradients_are_exact_and_clipped(name, align, digits):
    torch.manual_seed(0)
    m = make(name, digits).train()
    c, b = 0.01, 6
    opt = make_optimizer(m, "sgd", 1.0, 0.0)  # first SGD step: update = -lr * grad
    dp = DPSGD(m, opt, example=digits.images[:1], n=60, batch_size=4, steps=1, epsilon=8.0,
               delta=None, max_grad_norm=c, chunk_size=4)  # two chunks: 4 + 2
    dp.noise_multiplier = dp.optimizer.noise_multiplier = 0.0
    x, y = digits.images[:b], digits.labels[:b]
    torch.manual_seed(1)
    inputs = draw_inputs(m, x, y, torch.Generator().manual_seed(1), align)
    grads, losses = dp.per_sample_gradients(inputs, align)
    # each per-sample gradient is that sample's own autograd gradient
    for i in (0, b - 1):
        m.zero_grad()
        loss = inputs_loss(m, tuple(t[i:i + 1] for t in inputs), align)
        loss.backward()
        assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
        for k, p in dp.params.items():
            torch.testing.assert_close(grads[k][i], p.grad, rtol=1e-4, atol=1e-6)
    m.zero_grad()
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
    assert (norms > c).all()  # every sample is clipped...
    factor = (c / (norms + 1e-6)).clamp(max=1.0)
    clipped = {k: torch.einsum("i,i...->i...", factor, g) for k, g in grads.items()}
    clipped_norms = torch.stack([g.flatten(1).norm(dim=1) for g in clipped.values()], 1).norm(dim=1)
    assert (clipped_norms <= c * (1 + 1e-5)).all()  # ...to norm <= C
    # the step applies (sum of clipped gradients) / expected batch size, chunk by chunk
    before = {k: p.detach().clone() for k, p in dp.params.items()}
    torch.manual_seed(1)
    dp.step(x, y, torch.Generator().manual_seed(1), align)
    for k, p in dp.params.items():
        torch.testing.assert_close(before[k] - p.detach(), clipped[k].sum(0) / 4,
                                   rtol=1e-3, atol=2e-7)
    assert len(dp.accountant.history) == 1 and dp.accountant.history[0][2] == 1


def test_an_empty_poisson_batch_is_a_noise_only_step(digits):
    m = make("mae", digits)
    dp = DPSGD(m, make_optimizer(m, "sgd", 1.0, 0.0), example=digits.images[:1], n=100,
               batch_size=10, steps=5, epsilon=8.0, delta=None, max_grad_norm=1.0)
    before = _weights(m)
    dp.step(digits.images[:0], digits.labels[:0], None)
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoder.backbone.vit.vit.class_token" in changed
    assert "encoder.backbone.vit.mask_token" not in changed  # no loss term reaches it
    assert dp.accountant.history == [(dp.noise_multiplier, 0.1, 1)]


# ----------------------------------------------------------------------------- the training loop
def test_dp_mae_trains_reports_epsilon_and_resumes_exactly(digits, tmp_path, monkeypatch):
    import sslmem.train.fit as T

    x, y = digits.images[:32], digits.labels[:32]
    s = spec(checkpoint_every=1)
    torch.manual_seed(0)
    straight = make("mae", digits)
    init = _weights(straight)
    hist = fit(straight, x, y, s, checkpoint=tmp_path / "a.pt", fingerprint="dp", device="cpu")
    trained = _weights(straight)
    assert any(not torch.equal(trained[k], init[k]) for k in init)
    eps = [h["epsilon"] for h in hist]
    assert 0 < eps[0] < eps[1] and 8.0 - 0.01 <= eps[1] <= 8.0
    assert {h["delta"] for h in hist} == {1e-2}  # 32 points: the largest power of ten < 1/32
    assert all(math.isfinite(h["loss"]) for h in hist)
    state = load_checkpoint(tmp_path / "a.pt")
    assert state["privacy"]["history"] == [(hist[0]["noise_multiplier"], 8 / 32, 8)]

    save = T.save_checkpoint

    def save_then_interrupt(*args, **kw):
        save(*args, **kw)
        if args[3] == 1:
            raise KeyboardInterrupt  # Ctrl-C right after the checkpoint of epoch 1

    monkeypatch.setattr(T, "save_checkpoint", save_then_interrupt)
    interrupted = make("mae", digits)
    interrupted.load_state_dict(init)
    ckpt = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, x, y, s, checkpoint=ckpt, fingerprint="dp", device="cpu")
    assert load_checkpoint(ckpt)["privacy"]["history"][0][2] == 4  # one epoch = 32 // 8 steps
    monkeypatch.setattr(T, "save_checkpoint", save)
    fresh = make("mae", digits)  # a new process: starts from scratch and loads the file
    resumed = fit(fresh, x, y, s, checkpoint=ckpt, fingerprint="dp", device="cpu")
    assert [h["epsilon"] for h in resumed] == eps
    for k, v in _weights(fresh).items():
        assert torch.equal(v, trained[k]), k


def test_a_checkpoint_without_privacy_state_is_refused(digits, tmp_path):
    x, y = digits.images[:16], digits.labels[:16]
    ckpt = tmp_path / "plain.pt"
    fit(make("mae", digits), x, y, spec(epochs=1, dp_epsilon=None), checkpoint=ckpt,
        fingerprint="same", device="cpu")
    with pytest.raises(SSLMemError, match="no privacy accountant state"):
        fit(make("mae", digits), x, y, spec(epochs=2), checkpoint=ckpt, fingerprint="same",
            device="cpu")


def test_experiment_trains_privately_from_the_config(tmp_runs):
    from sslmem.pipeline.experiment import Experiment

    cfg = Config.tiny(method="mae", backbone="vit_tiny", patch_size=4, shared=24, candidate=8,
                      independent=8, extra=8, epochs=1, batch_size=8, dp_epsilon=20)
    exp = Experiment(cfg)
    assert exp.run_dir != Experiment(cfg.replace(dp_epsilon=None)).run_dir
    history = exp.history("f")
    assert history.epsilon.iloc[-1] == pytest.approx(20, abs=0.01)
    assert history.delta.iloc[-1] == 1e-2  # 32 training points


# ------------------------------------------------------------------------------ refusals, config
def _one_line(err):
    assert "\n" not in str(err.value)
    return str(err.value)


def test_dp_is_refused_for_batch_coupled_methods_in_one_line(digits):
    with pytest.raises(SSLMemError) as err:
        Config.tiny(method="simclr", dp_epsilon=8)
    msg = _one_line(err)
    assert "simclr" in msg and "negatives" in msg and "mae, supervised" in msg
    with pytest.raises(SSLMemError) as err:
        fit(make("simclr", digits, "resnet9"), digits.images[:16], digits.labels[:16],
            spec("simclr"), device="cpu")
    assert _one_line(err) == msg
    # ε = ∞ is ordinary training, for fit as for Config
    fit(make("simclr", digits, "resnet9"), digits.images[:16], digits.labels[:16],
        spec("simclr", epochs=1, dp_epsilon=math.inf), device="cpu")
    for name in ("byol", "simsiam", "dino", "vicreg", "barlowtwins"):
        with pytest.raises(SSLMemError, match=f"cannot train {name}: its "):
            Config.paper(method=name, dp_epsilon=8)


def test_dp_is_refused_for_batchnorm_backbones(digits):
    with pytest.raises(SSLMemError, match="supervised needs a backbone without BatchNorm"):
        Config.tiny(method="supervised", dp_epsilon=8)  # tiny's backbone is resnet9
    with pytest.raises(SSLMemError, match="cannot train a model with BatchNorm") as err:
        check_model(make("supervised", digits, "resnet9"))
    _one_line(err)
    Config.tiny(method="supervised", backbone="vit_tiny", dp_epsilon=8)  # fine


@pytest.mark.parametrize("field,value,allowed", [
    ("dp_epsilon", 0, "positive finite"), ("dp_epsilon", -1.0, "positive finite"),
    ("dp_epsilon", float("nan"), "positive finite"), ("dp_epsilon", "eight", "positive finite"),
    ("dp_delta", 0.0, r"in \(0, 1\)"), ("dp_delta", 1.5, r"in \(0, 1\)"),
    ("dp_max_grad_norm", 0.0, "positive finite"), ("dp_max_grad_norm", math.inf, "positive")])
def test_bad_privacy_settings_are_refused(field, value, allowed):
    kw = {"method": "mae", "dp_epsilon": 8.0, field: value}
    with pytest.raises(SSLMemError, match=f"{field} must be .*{allowed}.*got") as err:
        Config.tiny(**kw)
    _one_line(err)


def test_infinite_epsilon_is_no_dp_and_keeps_the_old_cache_keys():
    mae = Config.tiny(method="mae", backbone="vit_tiny")
    before = [f for f in TRAIN_FIELDS if f not in DP_FIELDS]  # the fields before DP existed
    for cfg in (Config.tiny(), Config.paper(), mae):  # non-private runs keep their caches
        assert cfg.key(*TRAIN_FIELDS) == cfg.key(*before)
        assert cfg.key() == cfg.key(*(f for f in cfg.to_dict() if f not in RUNTIME_FIELDS
                                       and f not in DP_FIELDS))
    for off in (dict(dp_epsilon=math.inf), dict(dp_epsilon="inf", dp_delta=1e-5),
                dict(dp_epsilon=None, dp_max_grad_norm=3.0)):
        cfg = mae.replace(**off)
        assert (cfg.dp_epsilon, cfg.dp_delta, cfg.dp_max_grad_norm) == (None, None, 1.0)
        assert cfg.key(*TRAIN_FIELDS) == mae.key(*TRAIN_FIELDS)
    keys = {mae.replace(**kw).key(*TRAIN_FIELDS) for kw in (
        dict(dp_epsilon=8), dict(dp_epsilon=20), dict(dp_epsilon=8, dp_delta=1e-6),
        dict(dp_epsilon=8, dp_max_grad_norm=0.5))}
    assert len(keys) == 4 and mae.key(*TRAIN_FIELDS) not in keys
    assert mae.replace(dp_epsilon=8).key(*TRAIN_FIELDS) == mae.replace(dp_epsilon=8.0).key(
        *TRAIN_FIELDS)
