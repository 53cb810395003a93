"""Shared fixtures: the read-only shared data root and a private runs root per test."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline data root ``../shared/data`` beside the checkout (present in CI)."""
    if not (SHARED_DATA / "cifar10-mini" / "train.npz").exists():
        pytest.skip(f"shared data root absent: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_runs(tmp_path_factory):
    """No test writes into the checkout's runs/: caches go to one folder per test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSLMEM_RUNS", str(tmp_path_factory.mktemp("session-runs")))
        yield


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch) -> Path:
    """Point $SSLMEM_RUNS at a fresh folder of this test (to inspect or corrupt its caches)."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("SSLMEM_RUNS", str(runs))
    return runs
