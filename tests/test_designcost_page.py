"""Chapter 7's design-cost section (sslmem.book.designcost) on synthetic ensembles: the ranking's
all-facet design against an alternative with more signal per pair on the same halves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sslmem.book import designcost
from sslmem.score import synthetic


@dataclass
class _Cfg:
    method: str = "simclr"
    epochs: int = 800
    augment_strength: float = 1.0


class _Ensemble:
    """An ensemble as the page reads it, from a planted one."""

    def __init__(self, planted, members: int, cfg: _Cfg, positions=None):
        self.p, self.members, self.exp = planted, members, type("E", (), {"cfg": cfg})()
        self.positions = np.arange(planted.pool) if positions is None else positions

    def complete_members(self):
        return list(range(self.members))

    def pair_groups(self, members):
        return np.asarray(members) // 2

    def matrices(self, subset, k=None, members=None, center=False):
        L, inside, _ = self.p.subset(subset)
        rows = np.asarray(members)
        return L[rows], inside[rows], rows, self.positions


@pytest.fixture()
def profile(monkeypatch):
    ranking = {"facets": "base", "alternatives": ["weak"]}
    monkeypatch.setattr(designcost.chapters, "settings", lambda _p: {"ranking": ranking})
    return ranking


def _designs(weak_members=10, weak_cfg=None, positions=None):
    w = synthetic.world(160, 8, seed=5)
    t = synthetic.truth(w, 0.01, seed=5)
    kw = dict(pairs=8, composition_sd=0.02, noise_sd=0.012)
    base = synthetic.planted(w, t, seed=1, **kw)
    weak = synthetic.planted(w, 1.6 * t, seed=2, **kw)  # same halves, more signal per pair
    return {"base": _Ensemble(base, 16, _Cfg()),
            "weak": _Ensemble(weak, weak_members, weak_cfg or _Cfg(augment_strength=0.5),
                              positions)}


def test_an_alternative_with_more_signal_per_pair_is_called_cheaper(profile):
    found = designcost.rows("laptop", _designs(), {"weak": "weak views"}, n_boot=400)
    (r,) = found
    assert r["members"] == 10 and r["groups"] == (5, 5)  # only the encoders both have
    assert r["cost_per_encoder"] == 1.0 and "only the views differ" in r["cost_source"]
    assert r["shared_halves"] and r["separated"] and r["ratio_high"] < 1
    text = designcost.text(found, minutes=5.0)
    assert "**cheaper**" in text and "the same halves" in text and "h on 2 cores" in text
    assert designcost.values(found)["alt_verdict"] == "cheaper"
    table = designcost.table(found)
    assert list(table["design"]) == ["base", "weak views"]
    assert table["cost vs the ranking's"].iloc[0] == "1"


def test_a_costlier_encoder_enters_the_ratio_from_measured_minutes(profile, monkeypatch):
    minutes = {"base": 1.0, "weak": 4.0}
    designs = _designs(weak_cfg=_Cfg(epochs=1600, augment_strength=0.5))
    by_ens = {id(e): minutes[n] for n, e in designs.items()}
    monkeypatch.setattr(designcost, "encoder_minutes", lambda ens, _j: by_ens[id(ens)])
    cheap = designcost.rows("laptop", _designs(), n_boot=200)[0]
    (r,) = designcost.rows("laptop", designs, n_boot=200)
    assert r["cost_per_encoder"] == pytest.approx(4.0) and "measured" in r["cost_source"]
    assert r["ratio"] == pytest.approx(4 * cheap["ratio"])


def test_too_few_common_pairs_or_another_pool_say_so(profile):
    few = designcost.rows("laptop", _designs(weak_members=4))
    assert "rho" not in few[0] and "needs 3 complementary pairs" in designcost.text(few)
    assert designcost.values(few)["alt_verdict"] == "not compared yet"
    other = designcost.rows("laptop", _designs(positions=np.arange(160) + 1000))
    assert "another pool" in designcost.text(other)
    assert designcost.table(other).empty


def test_a_profile_without_alternatives_says_so(monkeypatch):
    monkeypatch.setattr(designcost.chapters, "settings", lambda _p: {"ranking": {}})
    assert designcost.rows("paper", {}) == []
    assert "compares no other" in designcost.text([])


def test_the_section_shows_its_table_and_text_and_returns_the_glue(profile, monkeypatch):
    shown = []
    monkeypatch.setattr("sslmem.book.notebook.show_table", lambda frame, *a: shown.append(frame))
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    found = designcost.rows("laptop", _designs(), n_boot=200)
    glued = designcost.show(found, {"values": {"facets_minutes": 6.0}})
    assert glued["alt_verdict"] == "cheaper" and len(shown[0]) == 2
    assert "at 6.0 min each" in shown[1]
    designcost.show([], None)  # nothing compared: text only
    assert shown[-1].startswith("This profile compares no other")

