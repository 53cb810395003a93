"""The ensemble estimator on real (tiny) encoders: design, storage, anytime growth, plan units."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from sslmem.errors import SSLMemError
from sslmem.pipeline import chapters
from sslmem.pipeline.ensemble import Ensemble, label_memorization
from sslmem.pipeline.experiment import Experiment
from sslmem.pipeline.store import MissingResult, read_frame
from sslmem.pipeline.units import book_units, complete_profiles, ensemble_units, removal_units

pytestmark = pytest.mark.slow
SIZES = dict(shared=0, candidate=24, independent=0, extra=12)


def tiny(method="simclr", **kw) -> Experiment:
    cfg = chapters.config("tiny", method=method, epochs=2, batch_size=8, n_pairs=4,
                          monitor_points=16, sizes=SIZES, split_protocol="random", **kw)
    return Experiment(cfg)


@pytest.fixture(scope="module")
def roots(tmp_path_factory, shared_data):
    runs, results = tmp_path_factory.mktemp("ens-runs"), tmp_path_factory.mktemp("ens-res")
    patch = pytest.MonkeyPatch()
    patch.setenv("SSLMEM_RUNS", str(runs))
    patch.setenv("SSLMEM_RESULTS", str(results))
    patch.setenv("SSLMEM_DATA", str(shared_data))
    patch.delenv("SSLMEM_RESULTS_ONLY", raising=False)
    yield runs, results
    patch.undo()


def test_membership_is_complementary_per_pair(roots):
    ens = Ensemble(tiny())
    a, b = ens.membership(0), ens.membership(1)
    assert a.sum() == b.sum() == 12 and not (a & b).any() and (a | b).all()
    assert not (ens.membership(2) == a).all()  # another pair draws another partition
    p0, p1 = ens.placebo_membership(0), ens.placebo_membership(1)
    assert p0.sum() == 6 and not (p0 & p1).any()
    third = Ensemble(tiny(), fraction=0.25)
    assert third.membership(0).sum() == 6
    shared = Ensemble(tiny(), shared_init=True)
    assert shared.seed(5) == shared.seed(0) != ens.seed(0) and ens.seed(5) == 5
    assert ens.seed(1, repeat=1) != ens.seed(1)
    with pytest.raises(SSLMemError, match="fraction"):
        Ensemble(tiny(), fraction=1.0)


E_PAIR_SEED = 20_000  # sslmem.pipeline.ensemble.PAIR_SEED: the stored members' seeds


def test_the_all_facet_design_draws_init_and_views_per_pair_and_stores_dynamics(roots):
    """Pair i's two members share one init and one set of scoring views (their in/out
    difference keeps its common random numbers); the next pair draws new ones; each member
    stores every point's alignment loss at each snapshot epoch."""
    from sslmem.pipeline.encoders import snapshot_epochs
    from sslmem.pipeline.ensemble import DYNAMICS_PAIRS

    plain = Ensemble(tiny())
    facets = Ensemble(tiny(), pair_init=True, views="pair", dynamics=True)
    assert facets.seed(0) == facets.seed(1) != facets.seed(2) == facets.seed(3)
    assert facets.score_seed(0) == facets.score_seed(1) != facets.score_seed(2)
    assert plain.score_seed(0) == plain.score_seed(5)
    assert facets.member_name(0) != plain.member_name(0)  # other results, other keys
    rebuilt = Ensemble(tiny(results_only=True), **facets.options())
    assert rebuilt.member_name(3) == facets.member_name(3)
    # another membership draw (chapter 3's second method) draws its own seeds and views too
    other = Ensemble(tiny(), pair_init=True, views="pair", membership_seed=1)
    mine = {facets.seed(j) for j in range(8)} | {facets.score_seed(j) for j in range(8)}
    assert not mine & ({other.seed(j) for j in range(8)} | {other.score_seed(j) for j in range(8)})
    assert facets.seed(0) == E_PAIR_SEED  # the stored draw 0 keeps its seeds
    with pytest.raises(SSLMemError, match="views"):
        Ensemble(tiny(), views="fresh")
    with pytest.raises(SSLMemError, match="not both"):
        Ensemble(tiny(), shared_init=True, pair_init=True)
    import sslmem.pipeline.ensemble as E

    seeds, real = [], E.score_alignment
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(E, "score_alignment", lambda *a, seed, **k: seeds.append(seed)
                      or real(*a, seed=seed, **k))
        first = facets.member(0)
        facets.member(2)
    # every scoring of member j (the final one, and one per snapshot) used its pair's views
    assert set(seeds[: len(seeds) // 2]) == {facets.score_seed(0)}
    assert set(seeds[len(seeds) // 2:]) == {facets.score_seed(2)}
    epochs = snapshot_epochs(2)
    assert len(seeds) == 2 * (1 + len(epochs))
    assert [c for c in first.columns if c.startswith("E")] == [f"E{e:04d}" for e in epochs]
    assert np.isfinite(first[f"E{epochs[-1]:04d}"]).all() and DYNAMICS_PAIRS == 4


def test_members_accumulate_and_the_estimate_uses_what_is_stored(roots):
    ens = Ensemble(tiny())
    reader = Ensemble(tiny(results_only=True))
    with pytest.raises(MissingResult, match="no member"):
        reader.scores()
    first = ens.member(0)
    assert list(first.columns) == ["position", "subset", "inside", "L1", "L2", "L4"]
    assert (first.subset == "pool").sum() == 24 and (first.subset == "placebo").sum() == 12
    assert (first.L4 > 0).all() and np.isfinite(first.L1).all()
    ens.member(1)
    assert reader.stored_members() == [0, 1]
    two = reader.scores()
    assert (two.n_in == 1).all() and (two.n_out == 1).all() and two.se.isna().all()
    ens.member(2)  # half a pair: stored, but not part of the balanced ensemble
    assert reader.stored_members() == [0, 1, 2] and reader.complete_members() == [0, 1]
    ens.member(3)
    assert reader.complete_members() == [0, 1, 2, 3]
    four = reader.scores()
    assert reader.stored_members() == [0, 1, 2, 3]
    assert (four.n_in == 2).all() and np.isfinite(four.se).all()
    # the membership stored with each member is the one the design draws
    stored = reader.matrices("pool")[1]
    assert (stored == np.stack([ens.membership(j) for j in range(4)])).all()
    # asking again reads the store: identical, nothing retrained
    again = Ensemble(tiny()).member(2)
    assert again.equals(ens.member(2))
    placebo = reader.scores("placebo")
    assert len(placebo) == 12 and np.isfinite(placebo.m).all()
    assert (reader.scores(k=1).m != four.m).any()  # K = 1 is another estimate


def test_supervised_ensemble_gives_label_memorization_and_consistency(roots):
    ens = Ensemble(tiny("supervised"))
    for j in range(4):
        ens.member(j)
    table = ens.member(0)
    assert {"p_true", "correct"} <= set(table.columns)
    assert table.p_true.between(0, 1).all()
    lm = label_memorization(ens)
    assert len(lm) == 24 and lm.consistency.between(0, 1).all()
    assert lm.label_mem.between(-1, 1).all() and (lm.n_in == 2).all()
    with pytest.raises(SSLMemError, match="supervised"):
        label_memorization(Ensemble(tiny()))


def test_plan_lists_members_as_optional_round_robin(roots):
    units = ensemble_units("tiny")
    names = [u.name for u in units]
    assert names[:2] == ["ens-simclr-e6-000", "ens-supervised-e6-000"]
    assert "ens-simclr-e6-001-r1" in names and all(u.optional for u in units)
    removal = [u.name for u in removal_units("tiny")]  # chapter 4's arms and member probes
    assert removal and all(u.optional for u in removal_units("tiny"))
    assert {u.name for u in book_units("tiny") if u.optional} == set(names) | set(removal)
    # members are not needed for a profile to be complete (the estimate is anytime)
    assert "tiny" not in complete_profiles()


def test_concurrent_member_units_keep_the_store_consistent(roots, tmp_path, shared_data):
    """Two processes on the same two units: each member is computed once, stored whole."""
    env = {**os.environ, "SSLMEM_DATA": str(shared_data), "OMP_NUM_THREADS": "1",
           "SSLMEM_RESULTS": str(tmp_path / "res"), "SSLMEM_RUNS": str(tmp_path / "runs")}
    cmd = [sys.executable, "-m", "sslmem", "plan", "--profile", "tiny", "--run", "--units",
           "ens-supervised-e6-000,ens-supervised-e6-001"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    members = sorted((tmp_path / "res").rglob("member-*.csv.gz"))
    assert len(members) == 2
    for path in members:
        frame, _ = read_frame(path)  # hash-checked
        assert len(frame) == 64 + 32
    histories = sorted((tmp_path / "res").rglob("history-ens*.csv.gz"))
    assert len(histories) == 2


def test_precision_summary_reads_the_stored_members(roots):
    from sslmem.book import precision

    ens = Ensemble(tiny())
    for j in range(4):
        ens.member(j)
    ens.member(0, 1), ens.member(1, 1)
    row = precision.summarize("tiny", ens, n_splits=10, n_boot=20)
    assert row["members"] == 4 and row["minutes_per_encoder"] > 0
    each = [precision.encoder_minutes(ens, [j]) for j in range(4)]
    # the median member's minutes (a member trained beside other work does not inflate it)
    assert row["minutes_per_encoder"] == pytest.approx(float(np.median(each)))
    assert sum(each) == pytest.approx(precision.encoder_minutes(ens, range(4)))
    for key in ("pool_rel", "placebo_rel", "pool_sd", "pool_mean", "placebo_p"):
        assert np.isfinite(row[key])
    assert row["pool_rel_low"] <= row["pool_rel_high"]
    pair = precision.one_pair(ens)
    assert pair is not None and -1 <= pair["placebo_retest"] <= 1
    assert pair["pool_n"] == 24 and pair["placebo_n"] == 12
    curve = precision.curves(ens, n_splits=4, n_boot=8)
    assert set(curve.subset) == {"pool", "placebo"} and curve.members.max() == 4
    assert list(precision.k_curve(ens, n_splits=4, n_boot=8).K) == [1, 2, 4]
    assert precision.one_pair(Ensemble(tiny(), membership_seed=9)) is None
    # the multi-seed f/g estimator: seeds 0, 1, 2 of the fixed partition of members 0 and 1
    ens.member(0, 2), ens.member(1, 2)
    fixed = precision.fixed_partition(ens, n_splits=6, n_boot=20)
    assert fixed["seeds"] == 3 and fixed["encoders"] == 6 and fixed["ensemble_members"] == 4
    for key in ("pool_rel", "placebo_rel", "ensemble_pool_rel"):
        assert np.isfinite(fixed[key]), key
    assert precision.fixed_partition(Ensemble(tiny(), membership_seed=9)) is None


def test_dejavu_votes_per_member_and_their_ensemble_score(roots):
    """Each member's Déjà vu votes are stored once, served without a checkpoint, and give a
    per-point score on the same points and membership as SSLMem."""
    import shutil

    from sslmem.pipeline import dejavu_ensemble as dv

    ens = Ensemble(tiny())
    for j in range(4):
        ens.member(j)
        votes = dv.member_votes(ens, j, k=10)
        assert len(votes) == 24 and votes.p_true.between(0, 1).all()
        assert (votes.inside.to_numpy() == ens.membership(j)).all()
        assert (votes.confidence <= 0).all()  # a negative entropy
    assert dv.stored_members(ens, k=10) == [0, 1, 2, 3]
    assert dv.stored_members(ens, k=20) == []  # other settings, other results
    runs, _ = roots
    shutil.rmtree(runs)  # no encoder left: the votes come from the store
    reader = Ensemble(tiny(results_only=True))
    score = dv.score(reader, k=10)
    assert len(score.positions) == 24 and score.values.shape == (4, 24)
    est = score.estimate()
    assert np.isfinite(est).all() and (np.abs(est) <= 1).all()
    gaps = dv.average_gap(reader, k=10)
    assert list(gaps.fraction) == [0.2, 1.0] and gaps.acc_in.between(0, 1).all()
    units = [u for u in ensemble_units("tiny") if u.name.startswith("dv-")]
    assert [u.name for u in units][:2] == ["dv-simclr-e6-000", "dv-simclr-e6-001"]
    assert all(u.optional and u.depends == [u.name.replace("dv-", "ens-")] for u in units)
