"""The bootstrap's rounds fitted together (domain/bradley_terry/rounds.py) and its draws made in a
worker thread (resampling.fit_and_bootstrap) give the very floats of the straightforward way: one
multinomial call for all rounds, then :func:`solver.solve` round by round. Pure: no servers."""

from __future__ import annotations

import warnings

import numpy as np
from arbiter.domain import bradley_terry as bt
from arbiter.domain.bradley_terry import resampling, rounds, solver
from arbiter.services.bt_threads import on_two_threads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RUNNERS = (bt.run_in_turn, on_two_threads)
"""Every way the steps run: the floats must not depend on it."""


def straightforward(counts: bt.PairCounts, n_rounds: int, seed: int) -> tuple[np.ndarray, ...]:
    """``(point, samples)`` as the bootstrap was computed before rounds.py: the reference."""
    n = len(counts.competitors)
    half = 0.5 * counts.ties
    theta = solver.solve(
        n, counts.i, counts.j, counts.wins_i + half, counts.wins_j + half,
        solver.DEFAULT_RIDGE, None, solver.DEFAULT_TOL, solver.DEFAULT_MAX_ITER,
    )  # fmt: skip
    point = solver.to_elo(theta, 400.0, 10.0, 1500.0)
    cells = np.stack([counts.wins_i, counts.wins_j, counts.ties], axis=1).reshape(-1)
    nonzero = np.flatnonzero(cells > 0)
    total = float(cells.sum())
    probs = cells[nonzero] / total
    probs /= probs.sum()
    draws = np.random.default_rng(seed).multinomial(round(total), probs, size=n_rounds)
    dense = np.zeros((n_rounds, cells.size))
    dense[:, nonzero] = draws
    dense = dense.reshape(n_rounds, -1, 3)
    samples = np.empty((n_rounds, n))
    start = solver.to_logit(point, 400.0, 10.0, 1500.0)  # the rounds start from the Elo point
    for k in range(n_rounds):
        w_ij = dense[k, :, 0] + 0.5 * dense[k, :, 2]
        w_ji = dense[k, :, 1] + 0.5 * dense[k, :, 2]
        t = solver.solve(
            n, counts.i, counts.j, w_ij, w_ji, solver.DEFAULT_RIDGE, start,
            solver.DEFAULT_TOL, solver.DEFAULT_MAX_ITER,
        )  # fmt: skip
        samples[k] = solver.to_elo(t, 400.0, 10.0, 1500.0)
    return point, samples


@st.composite
def battles(draw: st.DrawFn) -> bt.PairCounts:
    """Random pools: a few to 30 competitors, sparse or dense pairs (so that some rounds draw
    no battle for a pair, and pools fall apart into several components), ties, lopsided
    outcomes (unbeaten competitors) and a competitor with no battles."""
    n = draw(st.integers(2, 30))
    m = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    groups = draw(st.integers(1, 3))  # battles only within a group: several components
    group = rng.integers(0, groups, n)
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    keep = (a != b) & (group[a] == group[b])
    if not keep.any():
        a, b = np.array([0]), np.array([1])
    else:
        a, b = a[keep], b[keep]
    p_tie = draw(st.sampled_from([0.0, 0.2]))
    p_a = draw(st.sampled_from([0.5, 0.95]))
    outcome = rng.choice(
        np.array(["a", "b", "tie"], dtype=object),
        a.size,
        p=[p_a * (1 - p_tie), (1 - p_a) * (1 - p_tie), p_tie],
    )
    names = [f"c{k:02d}" for k in range(n)]
    return bt.PairCounts.from_battles(
        [names[x] for x in a], [names[x] for x in b], list(outcome), competitors=["idle"]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(battles(), st.integers(1, 40), st.integers(0, 2**63 - 1))
def test_rounds_and_point_are_the_straightforward_floats(
    counts: bt.PairCounts, n_rounds: int, seed: int
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # unbeaten competitors: slow Newton
        want_point, want = straightforward(counts, n_rounds, seed)
        for run in RUNNERS:
            point, samples = resampling.fit_and_bootstrap(counts, n_rounds, seed, run=run)
            assert np.array_equal(point, want_point), run
            assert np.array_equal(samples, want), run


def test_a_public_size_pool_is_the_same_floats() -> None:
    """100 competitors, every pair played (4,950 pairs, 100,000 battles), 100 rounds: the
    board's shape, in chunks of 13 rounds, on one thread and on the API's two."""
    rng = np.random.default_rng(7)
    strength = rng.normal(0, 0.5, 100)
    a = rng.integers(0, 100, 100_000)
    b = (a + rng.integers(1, 100, a.size)) % 100
    won = rng.random(a.size) < 1 / (1 + np.exp(strength[b] - strength[a]))
    outcome = np.where(won, 0, np.where(rng.random(a.size) < 0.1, 2, 1))
    names = np.array([f"m{k:03d}" for k in range(100)], dtype=object)
    counts = bt.PairCounts.from_battles(names[a], names[b], outcome)
    assert counts.i.size == 4950
    want_point, want = straightforward(counts, 100, 3)
    for run in RUNNERS:
        point, samples = resampling.fit_and_bootstrap(counts, 100, 3, run=run)
        assert np.array_equal(point, want_point) and np.array_equal(samples, want), run
    assert np.array_equal(bt.fit(counts), want_point)


def test_a_batch_mixes_full_rounds_and_rounds_with_an_unplayed_pair() -> None:
    """Rounds where a pair drew nothing go through solve() itself, the rest together; the
    stack comes back in order."""
    counts = bt.PairCounts.from_rows(
        [("a", "b", 3, 1, 0), ("b", "c", 1, 1, 1), ("a", "c", 0, 1, 0)]
    )
    start = np.zeros(3)
    w_ij = np.array([[3.0, 1.5, 0.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    w_ji = np.array([[1.0, 1.5, 1.0], [1.0, 0.0, 1.0], [2.0, 0.5, 1.0]])
    got = rounds.solve_rounds(3, counts.i, counts.j, w_ij, w_ji, 1e-6, start, 1e-10, 200)
    for k in range(3):
        want = solver.solve(3, counts.i, counts.j, w_ij[k], w_ji[k], 1e-6, start, 1e-10, 200)
        assert np.array_equal(got[k], want)
