"""Chapter 3's test of the paper's claim on synthetic ensembles with known agreement."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_agreement import _ensemble, _membership

from sslmem.book import consensus
from sslmem.score.agreement import PointScore


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


# ---- the page's tables and texts (moved from the chapter's notebook) ------------------------

def _design(name: str, method: str, members: int = 4):
    cfg = SimpleNamespace(method=method, epochs=800, align_lambda=0.0)
    ens = SimpleNamespace(exp=SimpleNamespace(cfg=cfg), pool=range(128), shared_init=True,
                          complete_members=lambda: list(range(members)))
    return SimpleNamespace(name=name, ensemble=ens)


def test_ensembles_are_named_by_method_unless_a_method_repeats():
    designs = {"simclr-a": _design("simclr-a", "simclr"), "byol-a": _design("byol-a", "byol"),
               "byol-b": _design("byol-b", "byol", members=2)}
    ssl = consensus.by_method(designs)
    assert list(ssl) == ["simclr", "byol-a", "byol-b"]
    sup = _design("sup-a", "supervised", members=6)
    assert consensus.method_list(ssl, designs, sup) == "; ".join(
        f"{m}, 800 epochs, 128-image pool, shared init"
        for m in ("SimCLR", "BYOL", "BYOL", "supervised"))
    counts = consensus.counts(ssl, sup.ensemble)
    assert counts == {"simclr": 4, "byol-a": 4, "byol-b": 2, "supervised": 6}
    note = consensus.missing_note(counts, "laptop")
    assert "missing: byol-b." in note and "--profile laptop" in note
    assert note.startswith(":::{warning}") and note.endswith(":::\n")
    assert consensus.missing_note({"simclr": 4, "supervised": 8}, "laptop") is None


def test_encoder_hours_sum_every_ensembles_minutes(monkeypatch):
    seen = []

    def minutes(ens, members):
        seen.append(list(members))
        return 30.0 * len(members)

    monkeypatch.setattr(consensus.precision, "encoder_minutes", minutes)
    ensembles = [_design("a", "simclr", 4).ensemble, _design("b", "supervised", 2).ensemble]
    assert consensus.encoder_hours(ensembles) == 3.0
    assert seen == [[0, 1, 2, 3], [0, 1]]


def test_the_cost_of_reliability_one_half():
    # measured 0.25 with 4 encoders: one encoder's is 1/13, so 0.5 takes 12 (Spearman–Brown)
    assert consensus.members_for({"pool_rel": 0.25, "members": 4}) == pytest.approx(12)
    assert consensus.members_for({"pool_rel": 0.9, "members": 4}) == 4  # never fewer
    assert consensus.members_for({"pool_rel": -0.1, "members": 4}) == math.inf
    assert math.isnan(consensus.members_for({"members": 1}))
    assert [consensus.count_text(v) for v in (math.inf, math.nan, 1234.4)] == [
        "∞", "–", "1,234"]
    assert consensus.count_text(2.25, 1) == "2.2"
    row = consensus.ensemble_row({
        "design": "simclr-a", "method": "simclr", "members": 4, "epochs": 100,
        "pool_mean": 0.03, "pool_p": 1e-5, "pool_rel": 0.25, "pool_rel_low": 0.1,
        "pool_rel_high": 0.4, "minutes_per_encoder": 10.0})
    assert row["reliability, Pearson [95 %]"] == "0.25 [0.10, 0.40]"
    assert row["M for 0.5"] == pytest.approx(12)
    assert row["encoder-hours for it"] == pytest.approx(2.0)
    assert list(row)[:3] == ["method", "design", "M"]


def test_ensembles_table_has_one_row_per_design(monkeypatch):
    def summarize(name, ens, **kw):
        assert kw == {"n_splits": 100, "n_boot": 300}
        return {"design": name, "method": ens.exp.cfg.method, "members": 1, "epochs": 5}

    monkeypatch.setattr(consensus.precision, "summarize", summarize)
    table = consensus.ensembles_table([_design("a", "simclr"), _design("s", "supervised")])
    assert list(table.design) == ["a", "s"] and list(table.method) == ["simclr", "supervised"]
    assert table["reliability, Pearson [95 %]"].tolist() == ["–", "–"]  # nothing measured yet
    assert table["M for 0.5"].isna().all()


@pytest.fixture(scope="module")
def held() -> dict:
    return consensus.claim(_scores(0.9, 0.0), k=30, n_splits=30, n_boot=300)


def test_claim_carries_its_verdict_or_nothing(held):
    assert held["verdict"] == consensus.verdict(held["tests"], held["table"])
    assert consensus.verdict_markdown(held) == (
        f"**Verdict:** the paper's claim is {held['verdict']}.")
    empty = consensus.claim({"simclr": None}, k=30)
    assert empty["verdict"] is None and not len(empty["table"]) and not len(empty["tests"])
    assert consensus.verdict_markdown(empty) == "**Verdict:** not testable yet."
    assert consensus.paper_table(empty)["this run"].tolist() == [
        "–", "–", "not testable yet", "top-k overlaps in the table above"]


def test_agreement_and_paper_tables_show_every_pair(held):
    table = held["table"]
    shown = consensus.agreement_table(table, 30)
    assert list(shown.columns) == ["pair", "ρ observed [95 %]", "p", "rank reliabilities",
                                   "ρ true-score [95 %]", "top-30 overlap (chance; p)"]
    first = table.iloc[0]
    assert shown.pair.iloc[0] == f"{first.a} / {first.b} (SSL–SSL)"
    mark = "ᶜ" if first.shared_membership else ""  # cross-fitted: one membership draw
    assert shown["ρ observed [95 %]"].iloc[0] == (
        f"{first.r:+.2f}{mark} [{first.r_low:+.2f}, {first.r_high:+.2f}]")
    paper = consensus.paper_table(held)
    assert paper.shape == (4, 4)
    assert paper["this run"].iloc[0].startswith(f"{first.a}/{first.b}: ρ {first.r:+.2f}")
    assert paper["this run"].iloc[1].count(";") == 1  # two SSL–supervised pairs
    assert paper["this run"].iloc[2] == held["verdict"]


def test_placebo_control_fails_a_page_whose_placebo_agrees(held):
    """A control table with a failing pair keeps the claim from holding and says so."""
    control = pd.DataFrame([{"pair": "a / b", "membership": "shared draw",
                             "ρ full ensembles": 0.22, "ρ observed [95 %]": "+0.21 [+0.05, +0.36]",
                             "p": 0.01, "passes": False}])
    text = consensus.control_text(control)
    assert text.startswith("FAILED for 1 of 1") and "+0.22" in text
    passed = control.assign(p=0.6, passes=True)
    assert consensus.control_text(passed).startswith("passed")
    assert consensus.control_text(pd.DataFrame()).startswith("not run")
    from sslmem.book import verdicts

    assert consensus.claim_verdict(held, "scale").word == verdicts.HOLDS
    failed = consensus.claim_verdict(held, "scale", control)
    assert failed.word != verdicts.HOLDS and "FAILED" in failed.note
    assert consensus.claim_verdict(held, "scale", passed).word == verdicts.HOLDS
