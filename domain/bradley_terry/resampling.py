"""The bootstrap: resampled fits, their percentile intervals, and ranks from intervals. Pure.

Resampling the battles is one multinomial draw over the distinct (pair, outcome) cells, seeded,
so a seed gives the same intervals on every run; the resamples are fitted in batches by
:mod:`.rounds` (the floats of :func:`.solver.solve`, round by round), warm-started from the point
estimate.
"""

from __future__ import annotations

from collections.abc import Callable

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
    "Resamples",
    "Runner",
    "bootstrap",
    "bootstrap_samples",
    "cell_draw",
    "fit_and_bootstrap",
    "intervals",
    "outcome_cells",
    "rank_with_intervals",
    "run_in_turn",
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


def outcome_cells(wins: FloatArray, losses: FloatArray, ties: FloatArray) -> FloatArray:
    """The counts as one flat array of (pair, outcome) cells: each pair's wins, losses, ties."""
    return np.stack([wins, losses, ties], axis=1).reshape(-1)


def cell_draw(cells: FloatArray) -> tuple[IntArray, FloatArray, int]:
    """What resampling ``cells`` draws from: the cells that hold results, their probabilities,
    and how many results a resample has (the rounded total). One rule for the plain and the
    controlled bootstrap, so that a seed draws the same resamples in both."""
    nonzero = np.flatnonzero(cells > 0)
    total = float(cells.sum())
    probs = cells[nonzero] / total if total else cells[nonzero]
    if probs.size:
        probs /= probs.sum()
    return nonzero, probs, round(total)


class Resamples:
    """One bootstrap's work, cut into steps so that a caller may spread it over threads (the
    domain runs none): :meth:`draw` each chunk of rounds in turn, :meth:`fit_point` once, then
    :meth:`fit` each drawn chunk, in any order and concurrently. The draws must be made in chunk
    order, one at a time (they come from the one generator, so the chunks together are exactly
    the draws of a single ``size=rounds`` call); a fit needs the point. numpy draws and fits
    without the GIL most of the time, so a caller with two cores can draw while it fits the
    point, then fit on both (services/bt_threads.py): the draws are about a third of
    a cold board's CPU for 100 competitors and 100,000 battles, and bound to stay so (the same
    seed must give the same draws). The result does not depend on who fitted what.
    :func:`run_in_turn` runs it all on the caller's thread."""

    def __init__(
        self,
        counts: PairCounts,
        rounds: int,
        seed: int,
        *,
        scale: float,
        base: float,
        initial: float,
        ridge: float,
        point: FloatArray | None,
        tol: float,
        max_iter: int,
    ) -> None:
        if rounds < 1:
            raise ValueError("rounds must be at least 1")
        check_settings(scale, base, ridge)
        self.counts, self.rounds = counts, rounds
        self.scale, self.base, self.initial, self.ridge = scale, base, initial, ridge
        self.tol, self.max_iter = tol, max_iter
        self.point = point
        self._theta0: FloatArray | None = None
        cells = outcome_cells(counts.wins_i, counts.wins_j, counts.ties)
        self._cells = cells.size
        self._nonzero, self._probs, self._n_draw = cell_draw(cells)
        self._chunk = max(1, BATCH_BYTES // (8 * max(1, counts.i.size)))
        self.trivial = self._nonzero.size == 0 or self._n_draw == 0
        """Nothing to resample: every round is the point itself."""
        self._starts = [] if self.trivial else list(range(0, rounds, self._chunk))
        self._rng = np.random.default_rng(seed)
        self._out = np.empty((rounds, len(counts.competitors)))

    @property
    def chunks(self) -> int:
        """How many chunks of rounds to draw and fit."""
        return len(self._starts)

    def draw(self, k: int) -> FloatArray:
        """Chunk ``k``'s resampled cell counts; call for k = 0, 1, ... in turn, one at a time."""
        size = min(self._chunk, self.rounds - self._starts[k])
        return self._rng.multinomial(self._n_draw, self._probs, size=size).astype(np.float64)

    def fit_point(self) -> None:
        """The full-data fit (unless given), which every round is warm-started from."""
        if self.point is None:
            self.point = fit(
                self.counts, scale=self.scale, base=self.base, initial=self.initial,
                ridge=self.ridge, tol=self.tol, max_iter=self.max_iter,
            )  # fmt: skip
        self._theta0 = to_logit(self.point, self.scale, self.base, self.initial)

    def fit(self, k: int, drawn: FloatArray) -> None:
        """Fit chunk ``k`` from its draws (after :meth:`fit_point`)."""
        assert self._theta0 is not None, "fit_point() first"
        size = drawn.shape[0]
        dense = np.zeros((size, self._cells))
        dense[:, self._nonzero] = drawn
        dense = dense.reshape(size, -1, 3)
        w_ij = dense[:, :, 0] + 0.5 * dense[:, :, 2]
        w_ji = dense[:, :, 1] + 0.5 * dense[:, :, 2]
        c = self.counts
        theta = solve_rounds(
            len(c.competitors), c.i, c.j, w_ij, w_ji, self.ridge, self._theta0, self.tol,
            self.max_iter,
        )  # fmt: skip
        first = self._starts[k]
        self._out[first : first + size] = to_elo(theta, self.scale, self.base, self.initial)

    def result(self) -> tuple[FloatArray, FloatArray]:
        """``(point, samples)`` once every step has run."""
        assert self.point is not None, "fit_point() first"
        if self.trivial:
            return self.point, np.broadcast_to(
                np.asarray(self.point, dtype=np.float64), self._out.shape
            ).copy()
        return self.point, self._out


Runner = Callable[[Resamples], None]
"""What runs a :class:`Resamples`' steps: :func:`run_in_turn`, or a caller's threads."""


def run_in_turn(work: Resamples) -> None:
    """Every step on the caller's thread, in order."""
    work.fit_point()
    for k in range(work.chunks):
        work.fit(k, work.draw(k))


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
    run: Runner = run_in_turn,
) -> tuple[FloatArray, FloatArray]:
    """``(point, samples)``: :func:`.point.fit` (unless ``point`` is given) and
    :func:`bootstrap_samples`, the steps run by ``run`` (see :class:`Resamples`)."""
    work = Resamples(
        counts, rounds, seed, scale=scale, base=base, initial=initial, ridge=ridge,
        point=point, tol=tol, max_iter=max_iter,
    )  # fmt: skip
    run(work)
    return work.result()


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
