"""Training settings chosen by measurement (issue 20): cached, tie-broken toward the contiguous
format, in the configuration's precision (which is part of a result's key), and without any
effect on the training they choose for."""

from __future__ import annotations

import json

import pytest
import torch

from sslmem.errors import SSLMemError
from sslmem.train import calibrate
from sslmem.train.data import load_dataset
from sslmem.train.methods import build_method


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("SSLMEM_CALIBRATION", str(path))
    monkeypatch.delenv("SSLMEM_CALIBRATE", raising=False)
    monkeypatch.setattr(calibrate, "load_average", lambda: 0.0)  # an idle host, whatever runs
    monkeypatch.setattr(calibrate, "_CHOSEN", {})  # a fresh process
    return path


def _method_and_batch(n: int = 16):
    data = load_dataset("digits", image_size=8)
    torch.manual_seed(0)
    method = build_method("simclr", "resnet9", image_size=8, channels=data.channels,
                          mean=data.mean, std=data.std, num_classes=10)
    return method, data.images[:n], data.labels[:n]


def _fake(monkeypatch, seconds: dict):
    calls = []

    def measure(method, images, labels, options, rounds=3):
        calls.append([o.name for o in options])
        return {o.name: seconds[o.name] for o in options}

    monkeypatch.setattr(calibrate, "measure", measure)
    monkeypatch.setattr(calibrate, "cpu_has_native_bf16", lambda: False)
    return calls


def test_the_fastest_setting_is_chosen_once_then_read_from_the_cache(cache, monkeypatch):
    calls = _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 0.7})
    method, x, y = _method_and_batch()
    first = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert (first.name, first.how) == ("fp32 + channels_last", "measured")
    again = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert (again.name, again.how) == ("fp32 + channels_last", "cached")
    assert len(calls) == 1  # measured once per host and shape
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["seconds_per_step"] == {"fp32": 1.0, "fp32 + channels_last": 0.7}
    other = calibrate.training_setting(method, x, y, 8, torch.device("cpu"))  # another shape
    assert other.how == "measured" and len(calls) == 2


def test_a_measurement_on_a_busy_host_is_measured_again_when_it_is_idle(cache, monkeypatch):
    """Timings taken while more ran than the host has cores once chose the slower format for
    good; now such a choice serves until a process finds the host idle, which measures again.
    A process keeps its first choice (its scorings stay bit-identical)."""
    seconds = {"fp32": 1.0, "fp32 + channels_last": 0.7}
    calls = _fake(monkeypatch, seconds)
    monkeypatch.setattr(calibrate, "usable_cores", lambda: 2)
    monkeypatch.setattr(calibrate, "load_average", lambda: 4.1)
    method, x, y = _method_and_batch()
    busy = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert (busy.name, busy.how) == ("fp32 + channels_last", "measured on a busy host")
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["busy"] and entry["load_average"] == 4.1
    monkeypatch.setattr(calibrate, "_CHOSEN", {})  # another process, still busy: the cache
    assert calibrate.training_setting(method, x, y, 16, torch.device("cpu")).how == "cached"
    seconds["fp32 + channels_last"] = 1.3  # the idle host's truth differs
    monkeypatch.setattr(calibrate, "load_average", lambda: 2.3)  # two units on two cores
    kept = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert kept.name == "fp32 + channels_last" and len(calls) == 1  # this process's choice
    monkeypatch.setattr(calibrate, "_CHOSEN", {})  # a new process on the idle host
    idle = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert (idle.name, idle.how) == ("fp32", "measured") and len(calls) == 2
    (entry,) = json.loads(cache.read_text()).values()
    assert not entry["busy"] and entry["load_average"] == 2.3
    monkeypatch.setattr(calibrate, "_CHOSEN", {})
    assert calibrate.training_setting(method, x, y, 16, torch.device("cpu")).how == "cached"


def test_a_gain_within_the_tie_margin_keeps_the_reference(cache, monkeypatch):
    _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 0.97})
    method, x, y = _method_and_batch()
    assert calibrate.training_setting(method, x, y, 16, torch.device("cpu")).name == "fp32"


def test_the_precision_is_the_configurations_and_only_the_memory_format_is_measured(
        cache, monkeypatch):
    calls = _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 0.5,
                                "bf16": 0.2, "bf16 + channels_last": 0.4})
    method, x, y = _method_and_batch()
    cpu = torch.device("cpu")
    assert calibrate.training_setting(method, x, y, 16, cpu).name == "fp32 + channels_last"
    with pytest.warns(UserWarning, match="bf16 is emulated on this CPU"):  # _fake: not native
        bf16 = calibrate.training_setting(method, x, y, 16, cpu, "bf16")
    assert bf16.name == "bf16"  # the faster format in bf16, never a switch to fp32
    assert calls == [["fp32", "fp32 + channels_last"], ["bf16", "bf16 + channels_last"]]
    monkeypatch.setenv("SSLMEM_CALIBRATE", "0")
    skipped = calibrate.training_setting(method, x, y, 8, cpu)
    assert (skipped.name, skipped.how) == ("fp32", "default")
    assert calibrate.training_setting(method, x, y, 16, torch.device("cuda")).name == (
        "fp32 + channels_last")
    assert len(calls) == 2


def test_bf16_results_have_their_own_key_and_fp32_keys_are_unchanged():
    """Precision changes the numbers: a bf16 result must never be served as an fp32 one, and
    adding the field must not re-key the stores written before it existed."""
    from sslmem.pipeline.config import TRAIN_FIELDS, Config

    tiny = Config.tiny()
    before = [f for f in TRAIN_FIELDS if f != "precision"]
    assert tiny.precision == "fp32" and tiny.key(*TRAIN_FIELDS) == tiny.key(*before)
    assert tiny.replace(precision="bf16").key(*TRAIN_FIELDS) != tiny.key(*TRAIN_FIELDS)
    assert Config.paper().precision == "bf16"  # the GPU profile
    with pytest.raises(SSLMemError, match="unknown precision .fp16.; choose one of: bf16, fp32"):
        Config.tiny(precision="fp16")


def test_fit_trains_in_the_configured_precision(cache, monkeypatch):
    from sslmem.train.fit import TrainSpec, fit

    monkeypatch.setenv("SSLMEM_CALIBRATE", "0")
    method, x, y = _method_and_batch(32)
    d = method.defaults
    spec = TrainSpec(epochs=1, batch_size=16, optimizer=d.optimizer, lr=d.lr,
                     weight_decay=d.weight_decay, warmup_epochs=0, progress=False,
                     precision="bf16")
    with pytest.warns(UserWarning) if not calibrate.cpu_has_native_bf16() else _nothing():
        (row,) = fit(method, x, y, spec, device="cpu")
    assert row["setting"] == "bf16" and method.train_setting == "bf16"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_an_unreadable_cache_is_measured_again_not_an_error(cache, monkeypatch):
    """Garbage in the cache: one warning naming the file, then measured and rewritten."""
    calls = _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 2.0})
    cache.write_text("{not json")
    method, x, y = _method_and_batch()
    with pytest.warns(UserWarning, match=f"calibration cache {cache} is not valid JSON"):
        assert calibrate.training_setting(method, x, y, 16, torch.device("cpu")).name == "fp32"
    assert len(calls) == 1 and json.loads(cache.read_text())  # rewritten whole


def test_the_cli_warns_in_one_line_about_a_garbage_cache(cache, capsys):
    from sslmem.cli import main

    cache.write_text("\x00garbage")
    assert main(["calibration"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"sslmem: warning: calibration cache {cache} is not valid "
                                   "JSON"), captured.err
    assert "measured again" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("entry", ["fp32", 3, {"precision": "fp32", "channels_last": "yes"},
                                   {"precision": "fp32", "channels_last": True,
                                    "seconds_per_step": {"fp32": "fast"}, "busy": False},
                                   {"precision": "fp32", "channels_last": True,
                                    "load_average": "high"}])
def test_a_damaged_entry_is_measured_again_with_a_warning(cache, monkeypatch, capsys, entry):
    """Entries of the wrong types (a str, a number, a str where a number belongs) crashed
    ``sslmem train`` and ``sslmem calibration``: now each is one warning, then measured."""
    from sslmem.cli import main

    calls = _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 0.7})
    method, x, y = _method_and_batch()
    calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    monkeypatch.setattr(calibrate, "_CHOSEN", {})  # a new process
    (key,) = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: entry}))
    assert main(["calibration"]) == 0  # the report: a warning, no traceback
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "is damaged" in captured.err, captured.err
    assert str(cache) in captured.err and "nothing measured" in captured.out
    with pytest.warns(UserWarning, match="is damaged .*measured again"):
        chosen = calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert (chosen.name, chosen.how, len(calls)) == ("fp32 + channels_last", "measured", 2)
    assert json.loads(cache.read_text())[key]["seconds_per_step"]["fp32"] == 1.0  # rewritten


def test_a_wrong_calibrate_switch_is_refused_in_one_line(cache, monkeypatch, capsys):
    from sslmem.cli import main

    monkeypatch.setenv("SSLMEM_CALIBRATE", "banana")
    method, x, y = _method_and_batch()
    with pytest.raises(SSLMemError, match="SSLMEM_CALIBRATE must be 0 .* or 1 .*'banana'"):
        calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    with pytest.raises(SSLMemError, match="SSLMEM_CALIBRATE"):
        calibrate.inference_setting(method.encoder, x)
    assert main(["calibration"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sslmem: error: SSLMEM_CALIBRATE"), err
    for value, how in (("0", "default"), (" 1 ", "measured")):
        monkeypatch.setenv("SSLMEM_CALIBRATE", value)
        _fake(monkeypatch, {"fp32": 1.0, "fp32 + channels_last": 2.0})
        assert calibrate.training_setting(method, x, y, 8, torch.device("cpu")).how == how


def test_measuring_leaves_the_method_and_the_random_state_untouched(cache):
    method, x, y = _method_and_batch()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = calibrate.measure(method, x, y, calibrate.candidates(), rounds=1)
    assert set(seconds) == {"fp32", "fp32 + channels_last"}
    assert all(s > 0 for s in seconds.values())
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_the_cli_says_what_was_chosen_and_why(cache, monkeypatch, capsys):
    from sslmem.cli import main

    assert main(["calibration"]) == 0
    assert "nothing measured on this host yet" in capsys.readouterr().out
    _fake(monkeypatch, {"fp32": 0.010, "fp32 + channels_last": 0.007})
    method, x, y = _method_and_batch()
    calibrate.training_setting(method, x, y, 16, torch.device("cpu"))
    assert main(["calibration"]) == 0
    out = capsys.readouterr().out
    assert "bf16 emulated" in out and str(cache) in out
    assert '"SimCLR", "ResNet9", [3, 8, 8], 16' in out
    assert "fp32 + channels_last (fp32 10.0 ms, fp32 + channels_last 7.0 ms" in out
