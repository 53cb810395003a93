"""Synthetic ensembles with planted components of known size: the estimators' known answers.

Why: a reliability, a standard error or a cross-method correlation can only be trusted once it
has recovered a truth it did not see. This module draws per-encoder losses L (M, N) as the
ensemble estimator sees them, from a world whose parts are known:

    L_j(x) = base(x) + ε_j(x) + κ_j(x) − I_j(x) · [μ + t(x) + S_s(j)(x) + W_v(j)(x)]

* t(x): the point's true memorization (the estimand, 0 on the placebo);
* S_s(x): a seed-specific part (the init and augmentation stream s of the encoder);
* W_v(x): a view-specific part (the v-th set of scoring view pairs);
* κ_j(x) = Σ_y A(x, y) (2 I_j(y) − 1): composition, which of x's neighbours y the encoder
  trained on; complementary members see it with opposite signs, and two methods trained on
  the same halves share it (the placebo, never trained on, has neighbours in the pool too);
* ε_j(x): residual noise of one encoder.

A design draws seeds and views per complementary pair (``"pair"``) or shares one for all
(``"shared"``); membership comes from ``membership_seed``, so two methods can share halves or
not. Every SD is the part's contribution to one pair's in/out difference d_g(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslmem.errors import SSLMemError

FACETS = ("pair", "shared")


@dataclass(frozen=True)
class World:
    """The points: how many in the pool and the placebo, and who neighbours whom."""

    pool: int
    placebo: int
    neighbours: np.ndarray  # (pool + placebo, pool): A(x, y), composition weights

    @property
    def n(self) -> int:
        return self.pool + self.placebo


def world(pool: int = 128, placebo: int = 128, *, neighbours: int = 8, seed: int = 0) -> World:
    """Every point gets ``neighbours`` random pool neighbours of unit weight (never itself)."""
    rng = np.random.default_rng([seed, 7])
    A = np.zeros((pool + placebo, pool))
    for x in range(pool + placebo):
        choices = np.setdiff1d(np.arange(pool), [x]) if x < pool else np.arange(pool)
        A[x, rng.choice(choices, neighbours, replace=False)] = 1.0
    return World(pool, placebo, A / np.sqrt(neighbours))


@dataclass(frozen=True)
class Planted:
    """A synthetic ensemble: the estimator's input and the truth."""

    L: np.ndarray  # (M, N) per-encoder values, pool then placebo
    inside: np.ndarray  # (M, N) membership (fake on the placebo)
    groups: np.ndarray  # (M,) complementary pair of each encoder
    truth: np.ndarray  # (N,) μ + t(x) on the pool, 0 on the placebo
    pool: int

    def subset(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(L, inside, truth) of the ``pool`` or the ``placebo`` columns."""
        cut = slice(0, self.pool) if name == "pool" else slice(self.pool, None)
        return self.L[:, cut], self.inside[:, cut], self.truth[cut]


def truth(w: World, sd: float = 0.01, *, seed: int = 0, like=None, rho: float = 1.0) -> np.ndarray:
    """A true per-point memorization t(x) for the pool (SD ``sd``); with ``like`` (another
    truth), correlated with it at ``rho``: two methods that memorize partly the same points."""
    z = np.random.default_rng([seed, 11]).standard_normal(w.pool)
    if like is not None:
        base = (like - like.mean()) / like.std()
        z = rho * base + np.sqrt(max(1 - rho ** 2, 0.0)) * z
    return sd * z


def planted(w: World, t: np.ndarray, *, pairs: int, mean: float = 0.03,
            seed_sd: float = 0.0, view_sd: float = 0.0, composition_sd: float = 0.0,
            noise_sd: float = 0.01, seeds: str = "pair", views: str = "pair",
            membership_seed: int = 0, seed: int = 0) -> Planted:
    """An ensemble of ``pairs`` complementary pairs on the world's pool (see the module)."""
    if seeds not in FACETS or views not in FACETS:
        raise SSLMemError(f"seeds and views must be one of {FACETS}")
    if pairs < 2 or len(t) != w.pool:
        raise SSLMemError(f"need 2 or more pairs and a truth per pool point ({w.pool})")
    rng = np.random.default_rng([seed, 13])
    n, half = w.n, w.pool // 2
    base = rng.normal(0.0, 0.05, n)
    # a complementary pair's d_g gets each facet once and composition twice (±κ), noise twice
    kappa_scale = composition_sd / 2
    eps_sd = noise_sd / np.sqrt(2)
    shared_S, shared_W = rng.standard_normal(n), rng.standard_normal(n)
    L, inside, groups = [], [], []
    true = np.concatenate([mean + np.asarray(t, float), np.zeros(w.placebo)])
    for g in range(pairs):
        member = np.random.default_rng([membership_seed, g, 3])
        perm = member.permutation(w.pool)
        fake = member.permutation(w.placebo)
        S = seed_sd * (rng.standard_normal(n) if seeds == "pair" else shared_S)
        W = view_sd * (rng.standard_normal(n) if views == "pair" else shared_W)
        for side in (0, 1):
            pool_in = np.zeros(w.pool, bool)
            pool_in[perm[:half] if side == 0 else perm[half:]] = True
            plac_in = np.zeros(w.placebo, bool)
            plac_in[fake[: w.placebo // 2] if side == 0 else fake[w.placebo // 2:]] = True
            trained = np.concatenate([pool_in, plac_in])
            kappa = kappa_scale * (w.neighbours @ (2.0 * pool_in - 1.0))
            effect = true + S + W
            effect[w.pool:] = 0.0  # the placebo: never trained on, its membership is fake
            L.append(base + rng.normal(0.0, eps_sd, n) + kappa - trained * effect)
            inside.append(trained)
            groups.append(g)
    return Planted(np.stack(L), np.stack(inside), np.asarray(groups), true, w.pool)
