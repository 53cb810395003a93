"""Shared fixtures: the read-only shared data root, private runs and results roots per test."""

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
    """No test writes into the checkout's runs/ or results/: one folder each per test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSLMEM_RUNS", str(tmp_path_factory.mktemp("session-runs")))
        patch.setenv("SSLMEM_RESULTS", str(tmp_path_factory.mktemp("session-results")))
        patch.delenv("SSLMEM_RESULTS_ONLY", raising=False)
        yield


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch) -> Path:
    """Fresh $SSLMEM_RUNS and $SSLMEM_RESULTS folders of this test (to inspect or corrupt)."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("SSLMEM_RUNS", str(runs))
    monkeypatch.setenv("SSLMEM_RESULTS", str(tmp_path / "results"))
    return runs


@pytest.fixture
def tmp_results(tmp_runs) -> Path:
    """The results store of this test (beside ``tmp_runs``)."""
    return tmp_runs.parent / "results"
