"""Chapter 7's facets section (sslmem.book.facets) on synthetic ensembles: a fixed-view
design whose views carry per-point luck, and an all-facet design on the same truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sslmem.book import facets, precision
from sslmem.score import synthetic

K = 8


class _Ensemble:
    """An ensemble as the page reads it, from a planted one plus per-view luck: every
    encoder's in/out contrast gets w(x, v) for each of its K view pairs, the same w for all
    encoders (``shared``) or drawn per complementary pair."""

    def __init__(self, planted, *, shared: bool, seed: int, view_sd: float = 0.03):
        rng = np.random.default_rng(seed)
        m, n = planted.L.shape
        luck = (np.broadcast_to(rng.normal(0, view_sd, (1, n, K)), (m, n, K)) if shared else
                np.repeat(rng.normal(0, view_sd, (m // 2, n, K)), 2, axis=0))
        self.views = planted.L[..., None] - planted.inside[..., None] * luck
        self.inside, self.groups, self.pool_n = planted.inside, planted.groups, planted.pool
        self.exp = SimpleNamespace(cfg=SimpleNamespace(n_pairs=K))
        self.shared_init, self.views_kind = shared, "shared" if shared else "pair"

    def complete_members(self):
        return list(range(len(self.inside)))

    def pair_groups(self, members):
        return np.asarray(members) // 2

    def matrices(self, subset, k=None, members=None, center=False):
        cut = slice(0, self.pool_n) if subset == "pool" else slice(self.pool_n, None)
        L = self.views[:, cut, : k or K].mean(-1)
        return L, self.inside[:, cut], np.arange(len(L)), np.arange(L.shape[1])


@pytest.fixture(scope="module")
def designs():
    w = synthetic.world(200, 60, seed=3)
    t = synthetic.truth(w, 0.01, seed=3)
    kw = dict(pairs=10, noise_sd=0.01, composition_sd=0.01)
    fixed = _Ensemble(synthetic.planted(w, t, membership_seed=1, seed=1, **kw), shared=True,
                      seed=1)
    drawn = _Ensemble(synthetic.planted(w, t, membership_seed=2, seed=2, **kw), shared=False,
                      seed=2)
    return fixed, drawn


def test_facet_rows_rank_the_ways_of_counting_error(designs, monkeypatch):
    fixed, drawn = designs
    rows = facets.facet_rows(fixed, drawn, n_splits=40, n_boot=40)
    assert list(rows["error counts"]) == ["membership", "membership, views",
                                          "membership, seeds, views", "membership, seeds, views"]
    # the fixed views' luck reproduces across encoder halves, not across view halves
    assert rows.pool_pearson[0] - rows.pool_pearson[1] > 0.1
    # the all-facet design counts it as error; more of its own views average it away
    assert rows.pool_pearson[0] > rows.pool_pearson[2]
    assert rows.pool_pearson[3] >= rows.pool_pearson[2] - 0.02
    shown = facets.facet_table(rows)
    assert list(shown.columns) == ["design and split", "error counts", "M", "pool, Pearson",
                                   "pool, rank", "placebo, Pearson"]
    monkeypatch.setattr(facets, "encoder_minutes", lambda ens, members: 6.0)
    comps = facets.component_rows(fixed, drawn)
    assert comps.loc[0, "true SD"] > comps.loc[1, "true SD"]  # views' luck looked like signal
    found = facets.values(rows, comps, drawn)
    assert 0 < float(found["facet_share"]) < 100
    assert found["facets_minutes"] == 6.0 and found["facets_members"] == 20
    text = facets.text(found)
    assert found["fixed_rel"] in text and found["facets_rel"] in text
    assert ("is reached" in text) == (found["facets_rel_value"] >= precision.TARGET)


def test_compare_needs_both_designs_of_the_profile(designs):
    fixed, drawn = designs
    assert facets.compare("laptop", {"simclr-e800-n128-shared": fixed}) is None
    assert facets.compare("tiny", {}) is None
