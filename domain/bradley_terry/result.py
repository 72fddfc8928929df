"""The Bradley-Terry leaderboard: fit, bootstrap and rank in one call, as a sorted struct. Pure."""

from __future__ import annotations

import numpy as np
from msgspec import Struct

from ..elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE
from .anchor import Anchor, anchor_index, anchor_ratings
from .pair_counts import PairCounts
from .resampling import (
    DEFAULT_LEVEL,
    DEFAULT_ROUNDS,
    Runner,
    fit_and_bootstrap,
    intervals,
    rank_with_intervals,
    run_in_turn,
)
from .solver import DEFAULT_RIDGE

__all__ = ["BTResult", "leaderboard", "sorted_result"]


class BTResult(Struct, frozen=True, kw_only=True):
    """A Bradley-Terry leaderboard, sorted by rating (descending; name breaks ties).

    The fields are aligned: ``competitors[k]`` has ``rating[k]`` in ``[lower[k], upper[k]]``
    (the bootstrap's percentile interval at ``level``) and ``rank[k]``
    (:func:`rank_with_intervals`). ``battles`` is the number of battles fitted, ``rounds`` and
    ``seed`` the bootstrap's. ``anchor``: the ``(competitor, rating)`` every rating (and every
    bootstrap round) was shifted to, or None for the mean anchoring at ``initial``.
    """

    competitors: tuple[str, ...]
    rating: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    rank: tuple[int, ...]
    battles: int
    rounds: int
    seed: int
    level: float = DEFAULT_LEVEL
    anchor: Anchor | None = None

    def rows(self) -> list[tuple[int, str, float, float, float]]:
        """``(rank, competitor, rating, lower, upper)`` per line, in display order."""
        return list(
            zip(self.rank, self.competitors, self.rating, self.lower, self.upper, strict=True)
        )


def leaderboard(
    counts: PairCounts,
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    initial: float = DEFAULT_INITIAL,
    ridge: float = DEFAULT_RIDGE,
    anchor: Anchor | None = None,
    run: Runner = run_in_turn,
) -> BTResult:
    """Fit, bootstrap and rank: the whole leaderboard for ``counts``. See :func:`fit`.

    ``anchor`` shifts the fit and each bootstrap round so that its competitor has its rating
    (:func:`.anchor_ratings`, as the public arena board does); ValueError when that competitor
    is not in ``counts``. ``run`` runs the bootstrap's steps (:class:`.resampling.Resamples`):
    in turn on this thread unless the caller brings threads."""
    if anchor is not None:
        anchor_index(counts.competitors, anchor)  # refuse an unknown one before any work
    point, samples = fit_and_bootstrap(
        counts, rounds, seed, scale=scale, base=base, initial=initial, ridge=ridge, run=run
    )
    rating = anchor_ratings(point, counts.competitors, anchor)
    lower, upper = intervals(anchor_ratings(samples, counts.competitors, anchor), level)
    return sorted_result(
        counts.competitors, rating, lower, upper, battles=round(counts.battles), rounds=rounds,
        seed=seed, level=level, anchor=anchor,
    )  # fmt: skip


def sorted_result(
    competitors: tuple[str, ...],
    rating: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    battles: int,
    rounds: int,
    seed: int,
    level: float,
    anchor: Anchor | None,
) -> BTResult:
    """Rank by intervals and sort by rating (name breaks ties): the aligned arrays as a board."""
    rank = rank_with_intervals(rating, lower, upper)
    order = sorted(range(rating.size), key=lambda k: (-rating[k], competitors[k]))
    return BTResult(
        competitors=tuple(competitors[k] for k in order),
        rating=tuple(rating[order].tolist()),
        lower=tuple(lower[order].tolist()),
        upper=tuple(upper[order].tolist()),
        rank=tuple(rank[order].tolist()),
        battles=battles,
        rounds=rounds,
        seed=seed,
        level=level,
        anchor=anchor,
    )
