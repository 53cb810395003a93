"""The ensemble SSLMem estimator: many encoders on random halves of a pool, scored alike.

Why: SSLMem is an expectation over encoders,
m(x) = E_{g ~ A(S \\ x)} L(g, x) − E_{f ~ A(S)} L(f, x). The paper estimates it with one f/g
pair on a fixed partition, which measures a subset's *average* memorization precisely but one
point's barely: what a fixed partition reproduces per point is which of the two training sets
holds the point's neighbours (its composition), not the point's own inclusion. Feldman and
Zhang (2020) estimate label memorization with many models on random subsets; this module does
the same for SSLMem:

  * member j trains on its own random half of a pool of points (members 2i and 2i+1 take
    complementary halves, so every pool point is "in" for exactly M/2 encoders when M is even);
    a point's neighbours are in or out independently of the point, which separates its own
    inclusion from the composition effect;
  * every member scores every pool point and a *placebo* set (held-out images no member trains
    on, given a fake membership drawn the same way) with the same K augmentation pairs (common
    random numbers): m(x) = mean L over members without x − mean L over members with x, with
    its standard error over the complementary pairs, the independent units
    (:mod:`sslmem.score.reliability`);
  * each member is one unit of work whose result (per point L at K = 1, 2, 4, ... pairs, its
    membership, and for a supervised model the correctness and probability of the true label)
    is stored as it completes, so the estimate is *anytime*: it uses however many members are
    stored, and every added member sharpens it without recomputing the others;
  * members ``repeat`` (optional) retrain members 0 and 1 with other seeds: the paper's one-pair
    estimator measured twice, so its test-retest reliability (and its placebo's) can be shown
    beside the ensemble's.

A supervised ensemble on the same membership matrix gives the literature's per-point measures:
Feldman–Zhang label memorization (accuracy of the models with x − without x) and the C-score's
held-out consistency (accuracy of the models without x; Jiang et al. 2021).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import torch

from sslmem.errors import SSLMemError
from sslmem.pipeline.encoders import snapshot_epochs
from sslmem.pipeline.experiment import SCORE_FIELDS, Experiment, _snapshot
from sslmem.pipeline.store import MissingResult
from sslmem.score.alignment import score_alignment
from sslmem.score.evaluate import as_float_images, eval_mode
from sslmem.score.reliability import ensemble_estimate

K_PREFIXES = (1, 2, 4, 8, 16, 32, 64, 128)
# the one seed of a shared-init ensemble: not 0, so that its member 0 is not the independent
# design's member 0 (the same encoder would be one unit waiting on another's lock)
SHARED_SEED = 10_000
PAIR_SEED = 20_000  # pair i of a pair-init ensemble trains with seed PAIR_SEED + i
DRAW_OFFSET = 100_000  # seeds and views of membership draw s (pair-drawn designs) move by s·this
VIEWS = ("shared", "pair")  # every member scores on the same K pairs, or each pair on its own
DYNAMICS_PAIRS = 4  # alignment loss over training: view pairs per point at each snapshot epoch


class Ensemble:
    """M encoders of one configuration, each trained on a random part of a pool.

    The experiment's split gives the pool (its ``candidate`` set, from the train split) and the
    placebo (its ``extra`` set, from the test split); its other subsets are not used.
    ``fraction``: the part of the pool each member trains on. ``shared_init``: every member
    starts from the same weights and draws the same augmentations and batch order (one seed),
    the common-random-numbers design for training; otherwise member j uses seed j.
    """

    def __init__(self, exp: Experiment, *, fraction: float = 0.5, shared_init: bool = False,
                 membership_seed: int = 0, pair_init: bool = False, views: str = "shared",
                 dynamics: bool = False):
        if not 0 < fraction < 1:
            raise SSLMemError(f"fraction must lie strictly between 0 and 1, got {fraction}")
        if views not in VIEWS:
            raise SSLMemError(f"views must be one of {VIEWS}, got {views!r}")
        if shared_init and pair_init:
            raise SSLMemError("choose shared_init (one seed for all) or pair_init (one per "
                              "complementary pair), not both")
        self.exp = exp
        self.fraction = float(fraction)
        self.shared_init = bool(shared_init)
        self.membership_seed = int(membership_seed)
        # the facets a reliability should count as error (issue: views, seeds, membership):
        # ``pair_init`` draws a new init and augmentation stream per complementary pair,
        # ``views="pair"`` new scoring views per pair; within a pair both are shared, so its
        # in/out difference keeps its common random numbers
        self.pair_init, self.views, self.dynamics = bool(pair_init), views, bool(dynamics)

    def options(self) -> dict:
        """The keyword arguments that rebuild this design on another experiment view."""
        return dict(fraction=self.fraction, shared_init=self.shared_init,
                    membership_seed=self.membership_seed, pair_init=self.pair_init,
                    views=self.views, dynamics=self.dynamics)

    # ---- the design --------------------------------------------------------------------------
    @property
    def pool(self) -> np.ndarray:
        return np.asarray(self.exp.split.candidate)

    @property
    def placebo(self) -> np.ndarray:
        return np.asarray(self.exp.split.extra)

    def _half(self, n: int, j: int, salt: int) -> np.ndarray:
        """Member j's membership over n points: complementary halves per pair at 1/2."""
        k = int(round(self.fraction * n))
        if self.fraction == 0.5:
            perm = np.random.default_rng([self.membership_seed, salt, j // 2]).permutation(n)
            inside = np.zeros(n, bool)
            inside[perm[:k] if j % 2 == 0 else perm[k:]] = True
            return inside
        perm = np.random.default_rng([self.membership_seed, salt, j]).permutation(n)
        inside = np.zeros(n, bool)
        inside[perm[:k]] = True
        return inside

    def membership(self, j: int) -> np.ndarray:
        """Which pool points member j trains on (boolean over ``pool``)."""
        return self._half(len(self.pool), j, 0)

    def placebo_membership(self, j: int) -> np.ndarray:
        """Member j's fake membership of the placebo points (drawn alike, never trained on)."""
        return self._half(len(self.placebo), j, 1)

    def seed(self, j: int, repeat: int = 0) -> int:
        """Training seed of member j (its ``repeat``-th retraining uses another one)."""
        base = SHARED_SEED if self.shared_init else PAIR_SEED + j // 2 if self.pair_init else j
        return base + 1000 * repeat + self._draw_offset()

    def _draw_offset(self) -> int:
        """Another membership draw gets its own seeds and views too (pair-drawn facets only):
        two designs that are to be independent (two methods compared in chapter 3) must not
        share an init, an augmentation stream or the views a point is scored on."""
        return DRAW_OFFSET * self.membership_seed if self.pair_init else 0

    def score_seed(self, j: int) -> int:
        """The seed of member j's K scoring view pairs: the config's for every member, or one
        per complementary pair (``views='pair'``)."""
        c = self.exp.cfg.score_seed
        return c if self.views == "shared" else c + 1 + j // 2 + self._draw_offset()

    def _key(self) -> str:
        facets = {**({"pair_init": True} if self.pair_init else {}),
                  **({"views": self.views} if self.views != "shared" else {}),
                  **({"dynamics": DYNAMICS_PAIRS} if self.dynamics else {})}
        return self.exp.key(*SCORE_FIELDS, fraction=self.fraction, shared_init=self.shared_init,
                            membership_seed=self.membership_seed, ensemble=2, **facets)

    def member_name(self, j: int, repeat: int = 0) -> str:
        return f"member-{self._key()}-{j:03d}" + (f"-r{repeat}" if repeat else "")

    # ---- one member: train, score, store -------------------------------------------------------
    def member(self, j: int, repeat: int = 0) -> pd.DataFrame:
        """Member j's stored per-point table (computed, i.e. trained and scored, if missing)."""
        if j < 0:
            raise SSLMemError(f"member index must be >= 0, got {j}")
        return self.exp._cached(self.member_name(j, repeat), f"ensemble member {j}",
                                lambda: self._compute(j, repeat), table=True)

    def _compute(self, j: int, repeat: int) -> pd.DataFrame:
        exp, c = self.exp, self.exp.cfg
        inside = self.membership(j)
        positions = self.pool[inside]
        tag = f"ens{j}" if not repeat else f"ens{j}r{repeat}"
        method = exp.train_on(positions, seed=self.seed(j, repeat), tag=tag)
        images = torch.cat([exp.train.images[torch.as_tensor(np.array(self.pool))],
                            exp.test.images[torch.as_tensor(np.array(self.placebo))]])
        t0 = time.perf_counter()
        d = score_alignment({"e": exp.scored(method.encoder)}, images, c.n_pairs, exp._augment(),
                            seed=self.score_seed(j), device=exp.device, amp=exp.amp,
                            precision=c.score_precision)["e"].double()
        exp.wall["score"] = time.perf_counter() - t0
        frame = pd.DataFrame({
            "position": np.concatenate([self.pool, self.placebo]),
            "subset": ["pool"] * len(self.pool) + ["placebo"] * len(self.placebo),
            "inside": np.concatenate([inside, self.placebo_membership(j)]),
        })
        for k in (k for k in K_PREFIXES if k <= c.n_pairs):
            frame[f"L{k}"] = d[:, :k].mean(1).numpy()
        if c.n_pairs not in K_PREFIXES:
            frame[f"L{c.n_pairs}"] = d.mean(1).numpy()
        if self.dynamics:
            for epoch, loss in self._dynamics(j, repeat, tag, images).items():
                frame[f"E{epoch:04d}"] = loss
        if c.method == "supervised":
            labels = torch.cat([exp.train.labels[torch.as_tensor(np.array(self.pool))],
                                exp.test.labels[torch.as_tensor(np.array(self.placebo))]])
            frame["p_true"], frame["correct"] = _true_class(method.classifier, images, labels)
        return frame

    def _dynamics(self, j: int, repeat: int, tag: str, images) -> dict:
        """Each point's alignment loss at every snapshot epoch of member j (``DYNAMICS_PAIRS``
        pairs, the member's views): the training dynamics that one-run proxies read."""
        exp = self.exp
        folder = exp.run_dir / f"{tag}-seed{self.seed(j, repeat)}" / "snapshots"
        out = {}
        for epoch in snapshot_epochs(exp.cfg.epochs):
            encoder = exp.build(self.seed(j, repeat)).encoder
            encoder.load_state_dict(_snapshot(folder / f"epoch-{epoch:04d}.pt"))
            scored = exp.scored(encoder.to(exp.device).eval())
            d = score_alignment({"e": scored}, images, DYNAMICS_PAIRS,
                                exp._augment(), seed=self.score_seed(j), device=exp.device,
                                amp=exp.amp)["e"].double()
            out[epoch] = d.mean(1).numpy()
        return out

    # ---- what is stored ----------------------------------------------------------------------
    def stored_members(self, repeat: int = 0) -> list[int]:
        """Indices of the members whose results are in the store (reads names only)."""
        folder = self.exp.store_dir
        pattern = re.compile(re.escape(f"member-{self._key()}-") + r"(\d{3})"
                             + (re.escape(f"-r{repeat}") if repeat else "") + r"\.csv\.gz$")
        found = (pattern.match(p.name) for p in folder.glob("member-*.csv.gz")) if (
            folder.is_dir()) else ()
        return sorted(int(mt.group(1)) for mt in found if mt)

    def complete_members(self, repeat: int = 0) -> list[int]:
        """The stored members that form complete complementary pairs (all stored members when
        the fraction is not 1/2): a balanced ensemble, in which every pool point is in exactly
        half of the encoders, so every split of whole pairs can estimate every point."""
        members = self.stored_members(repeat)
        if self.fraction != 0.5:
            return members
        have = set(members)
        return [j for j in members if (j ^ 1) in have]

    def table(self, members=None, repeat: int = 0) -> pd.DataFrame:
        """Long table of the given (default: all stored) members: one row per member and point."""
        members = self.stored_members(repeat) if members is None else list(members)
        if not members:
            raise MissingResult(
                f"no member of this ensemble is in the results store ({self.exp.store_dir}); "
                f"compute some with `sslmem plan --profile {self.exp.cfg.profile} --run`")
        frames = []
        for j in members:
            frame = self.member(j, repeat).copy()
            frame.insert(0, "member", j)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def matrices(self, subset: str = "pool", k: int | None = None, column: str | None = None,
                 members=None, repeat: int = 0, center: bool = False):
        """(values (M, N), inside (M, N), members, positions) of one subset: the estimator's
        input. ``column``: the stored column (default L at K = ``k`` pairs, all by default).

        ``center``: subtract from each member's values its mean over the placebo points. Why:
        an encoder that aligns *every* image a little better shifts all its losses, and that
        shift is noise for m; the placebo, which no member trained on, measures it without
        touching any point's own memorization.
        """
        whole = self.table(members, repeat)
        long = whole[whole.subset == subset]
        column = column or f"L{k or self.exp.cfg.n_pairs}"
        if column not in long:
            raise SSLMemError(f"column {column!r} is not stored; choose one of "
                              + ", ".join(c for c in long.columns if c.startswith("L")))
        if center:
            shift = whole[whole.subset == "placebo"].groupby("member")[column].mean()
            long = long.assign(**{column: long[column] - long.member.map(shift)})
        values = long.pivot(index="member", columns="position", values=column)
        inside = long.pivot(index="member", columns="position", values="inside")
        return (values.to_numpy(float), inside.to_numpy(bool), values.index.to_numpy(),
                values.columns.to_numpy())

    def scores(self, subset: str = "pool", k: int | None = None, members=None,
               center: bool = True) -> pd.DataFrame:
        """The ensemble estimate per point: position, m, se, L_in, L_out, n_in, n_out
        (losses centred per member on its placebo mean unless ``center=False``)."""
        L, inside, got, positions = self.matrices(subset, k, members=members, center=center)
        frame = ensemble_estimate(L, inside, groups=self.pair_groups(got))  # s.e. over pairs
        frame.insert(0, "position", positions)
        return frame

    def pair_groups(self, members) -> np.ndarray:
        """Encoder groups that split-half keeps together: complementary pairs at 1/2."""
        members = np.asarray(members)
        return members // 2 if self.fraction == 0.5 else members


def _true_class(classifier, images: torch.Tensor, labels: torch.Tensor):
    """Softmax probability of the true label and correctness, on the clean images."""
    probs = []
    with eval_mode(classifier), torch.inference_mode():
        for a in range(0, len(images), 1024):
            logits = classifier(as_float_images(images[a:a + 1024]))
            probs.append(torch.softmax(logits.float(), 1))
    p = torch.cat(probs)
    p_true = p.gather(1, labels.view(-1, 1).long()).squeeze(1)
    return p_true.numpy(), (p.argmax(1) == labels).numpy()


def label_memorization(ensemble: Ensemble, subset: str = "pool", members=None) -> pd.DataFrame:
    """Feldman–Zhang label memorization and held-out consistency (the C-score estimator) of a
    supervised ensemble: per point, accuracy of the models with x − without x, and accuracy of
    the models without x (``consistency``; atypicality = 1 − consistency)."""
    if ensemble.exp.cfg.method != "supervised":
        raise SSLMemError("label memorization needs a supervised ensemble (method='supervised')")
    acc, inside, got, positions = ensemble.matrices(subset, column="correct", members=members)
    # m of the error rate = in − out accuracy; its s.e. over the complementary pairs
    frame = ensemble_estimate(1.0 - acc, inside, groups=ensemble.pair_groups(got))
    return pd.DataFrame({"position": positions, "label_mem": frame.m.to_numpy(),
                         "label_mem_se": frame.se.to_numpy(),
                         "consistency": frame.L_out.mul(-1).add(1).to_numpy(),
                         "n_in": frame.n_in.to_numpy(), "n_out": frame.n_out.to_numpy()})
