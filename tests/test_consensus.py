"""Chapter 3's test of the paper's claim on synthetic ensembles with known agreement."""

from __future__ import annotations

import numpy as np
from test_agreement import _ensemble, _membership

from sslmem import consensus
from sslmem.agreement import PointScore


def _scores(rho_ssl: float, rho_sup: float, seed: int = 0) -> dict:
    """SimCLR and BYOL with true correlation ``rho_ssl``; a supervised score correlated
    ``rho_sup`` with both; all on one membership matrix (as in the book)."""
    rng = np.random.default_rng(seed)
    n, m = 300, 16
    cov = np.array([[1, rho_ssl, rho_sup], [rho_ssl, 1, rho_sup], [rho_sup, rho_sup, 1]])
    z = 0.01 * rng.multivariate_normal(np.zeros(3), cov, n)
    inside = _membership(m, n, rng)
    out = {name: _ensemble(name, z[:, i], inside, rng, noise=0.01)
           for i, name in enumerate(["simclr", "byol"])}
    sup = _ensemble(consensus.SUP_SSLMEM, z[:, 2], inside, rng, noise=0.01)
    out[consensus.SUP_SSLMEM] = PointScore(consensus.SUP_SSLMEM, sup.positions, sup.values,
                                           sup.inside, sup.groups)
    return out


def test_the_claim_holds_when_ssl_methods_agree_and_supervised_differs():
    result = consensus.compare(_scores(0.9, 0.0), k=30, n_splits=30, n_boot=300)
    table, tests = result["table"], result["tests"]
    assert list(table.kind) == ["SSL–SSL", "SSL–supervised", "SSL–supervised"]
    assert len(tests) == 2 and (tests["low"] > 0).all()
    assert consensus.verdict(tests, table).startswith("held")
    ssl_row = table.iloc[0]
    assert ssl_row.overlap > ssl_row.chance and ssl_row.overlap_p < 0.01


def test_the_claim_is_not_shown_when_all_methods_agree_alike():
    result = consensus.compare(_scores(0.6, 0.6, seed=1), k=30, n_splits=30, n_boot=300)
    verdict = consensus.verdict(result["tests"], result["table"])
    assert not verdict.startswith("held"), verdict


def test_verdict_says_what_is_missing():
    import pandas as pd

    empty = pd.DataFrame({"kind": []})
    assert consensus.verdict(pd.DataFrame(), empty).startswith("not testable")
