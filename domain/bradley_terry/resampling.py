"""The bootstrap: resampled fits, their percentile intervals, and ranks from intervals. Pure.

Resampling the battles is one multinomial draw over the distinct (pair, outcome) cells, seeded,
so a seed gives the same intervals on every run; the resamples are fitted in batches by
:mod:`.rounds` (the floats of :func:`.solver.solve`, round by round), warm-started from the point
estimate.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE
from .pair_counts import FloatArray, IntArray, PairCounts
from .point import fit
from .rounds import BATCH_BYTES, solve_rounds
from .solver import (
    DEFAULT_MAX_ITER,
    DEFAULT_RIDGE,
    DEFAULT_TOL,
    check_settings,
    to_elo,
    to_logit,
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_ROUNDS",
    "bootstrap",
    "bootstrap_samples",
    "fit_and_bootstrap",
    "intervals",
    "rank_with_intervals",
]

DEFAULT_ROUNDS = 100
DEFAULT_LEVEL = 0.95


def bootstrap_samples(
    counts: PairCounts,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    point: FloatArray | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> FloatArray:
    """Ratings fitted on ``rounds`` resamples of the battles: an array ``(rounds, n)``.

    Resampling N battles with replacement is one multinomial draw of N over the distinct
    (pair, outcome) cells with probabilities ``count / N``; all rounds are drawn in order from
    ``numpy.random.default_rng(seed)``, so a seed gives the same samples on every run. Each
    round is fitted warm-started from ``point`` (the full-data fit; computed when not given).
    N is the rounded total count; with non-integer counts (weights) the resample is of that
    many battles in the counts' proportions. Raises ValueError when ``rounds < 1``.
    """
    return fit_and_bootstrap(
        counts, rounds, seed, scale=scale, base=base, initial=initial, ridge=ridge,
        point=point, tol=tol, max_iter=max_iter,
    )[1]  # fmt: skip


def fit_and_bootstrap(
    counts: PairCounts,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    point: FloatArray | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> tuple[FloatArray, FloatArray]:
    """``(point, samples)``: :func:`.point.fit` (unless ``point`` is given) and
    :func:`bootstrap_samples`.

    Two threads share the work when the host has two cores or more: the chunks of rounds are
    drawn one after the other from the one generator (under a lock, so the draws are exactly
    those of a single ``size=rounds`` call) and each thread fits the chunks it drew. The draws
    are about a third of a cold board's CPU for 100 competitors and 100,000 battles, and bound
    to stay so (the same seed must give the same draws); numpy draws and fits without the GIL
    for most of the time, so while this thread fits the point estimate the other draws, and
    then both fit. The result does not depend on which thread fitted what."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    check_settings(scale, base, ridge)
    n = len(counts.competitors)
    cells = np.stack([counts.wins_i, counts.wins_j, counts.ties], axis=1).reshape(-1)
    nonzero = np.flatnonzero(cells > 0)
    total = float(cells.sum())
    n_draw = round(total)
    if nonzero.size == 0 or n_draw == 0:
        if point is None:
            point = fit(counts, scale=scale, base=base, initial=initial, ridge=ridge, tol=tol)
        return point, np.broadcast_to(np.asarray(point, dtype=np.float64), (rounds, n)).copy()
    probs = cells[nonzero] / total
    probs /= probs.sum()
    chunk = max(1, BATCH_BYTES // (8 * counts.i.size))
    rng = np.random.default_rng(seed)
    out = np.empty((rounds, n))
    starts = list(range(0, rounds, chunk))
    lock = threading.Lock()
    taken = [0]  # chunks drawn so far
    theta0: list[FloatArray] = []  # the point on the logit scale, once fitted
    ready = threading.Event()
    failed: list[BaseException] = []

    def work() -> None:
        while True:
            with lock:
                k = taken[0]
                if k == len(starts) or failed:
                    return
                taken[0] = k + 1
                size = min(chunk, rounds - starts[k])
                drawn = rng.multinomial(n_draw, probs, size=size).astype(np.float64)
            ready.wait()
            if not theta0:
                return  # the point fit failed: its error is raised by the caller's thread
            dense = np.zeros((size, cells.size))
            dense[:, nonzero] = drawn
            dense = dense.reshape(size, -1, 3)
            w_ij = dense[:, :, 0] + 0.5 * dense[:, :, 2]
            w_ji = dense[:, :, 1] + 0.5 * dense[:, :, 2]
            theta = solve_rounds(n, counts.i, counts.j, w_ij, w_ji, ridge, theta0[0], tol, max_iter)
            out[starts[k] : starts[k] + size] = to_elo(theta, scale, base, initial)

    def helper() -> None:
        try:
            work()
        except BaseException as exc:  # raised in the caller's thread
            failed.append(exc)

    other = None
    if len(starts) > 1 and (os.cpu_count() or 1) > 1:
        other = threading.Thread(target=helper, name="bt-bootstrap", daemon=True)
        other.start()
    try:
        if point is None:
            point = fit(counts, scale=scale, base=base, initial=initial, ridge=ridge, tol=tol)
        theta0.append(to_logit(point, scale, base, initial))
    finally:
        ready.set()
    try:
        work()
    finally:
        if other is not None:
            other.join()
    if failed:
        raise failed[0]
    return point, out


def intervals(samples: FloatArray, level: float = DEFAULT_LEVEL) -> tuple[FloatArray, FloatArray]:
    """Percentile interval per competitor (column) of bootstrap ``samples``."""
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    q = 50 * (1 - level)
    lower, upper = np.percentile(samples, [q, 100 - q], axis=0)
    return lower, upper


def bootstrap(
    counts: PairCounts,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    *,
    level: float = DEFAULT_LEVEL,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    point: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """``(lower, upper)``: the 2.5 and 97.5 percentiles (``level`` 0.95) of the bootstrap.

    See :func:`bootstrap_samples`. Percentile intervals usually contain the point estimate, but
    nothing forces them to on very skewed data (e.g. a competitor with two battles).
    """
    samples = bootstrap_samples(
        counts, rounds, seed, scale=scale, base=base, initial=initial, ridge=ridge, point=point
    )
    return intervals(samples, level)


def rank_with_intervals(rating: FloatArray, lower: FloatArray, upper: FloatArray) -> IntArray:
    """Rank = 1 + the number of competitors whose lower bound is strictly above this upper bound.

    The rule of public arena leaderboards: a competitor is ranked below only those that are
    better beyond doubt, so several may share a rank and ranks may skip. ``rating`` is not used
    by the rule; it is taken so that callers pass the three aligned arrays (their lengths are
    checked). O(n log n).
    """
    rating, lower, upper = (np.asarray(x, dtype=np.float64) for x in (rating, lower, upper))
    if not (rating.shape == lower.shape == upper.shape) or rating.ndim != 1:
        raise ValueError("rating, lower and upper must be one-dimensional and of equal length")
    ordered = np.sort(lower)
    above = ordered.size - np.searchsorted(ordered, upper, side="right")
    return 1 + above.astype(np.int64)
