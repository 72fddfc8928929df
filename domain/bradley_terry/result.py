"""The Bradley-Terry leaderboard: fit, bootstrap and rank in one call, as a sorted struct. Pure."""

from __future__ import annotations

from msgspec import Struct

from ..elo import DEFAULT_BASE, DEFAULT_INITIAL, DEFAULT_SCALE
from .pair_counts import PairCounts
from .resampling import DEFAULT_LEVEL, DEFAULT_ROUNDS, bootstrap, rank_with_intervals
from .solver import DEFAULT_RIDGE, fit

__all__ = ["BTResult", "leaderboard"]


class BTResult(Struct, frozen=True, kw_only=True):
    """A Bradley-Terry leaderboard, sorted by rating (descending; name breaks ties).

    The fields are aligned: ``competitors[k]`` has ``rating[k]`` in ``[lower[k], upper[k]]``
    (the bootstrap's percentile interval at ``level``) and ``rank[k]``
    (:func:`rank_with_intervals`). ``battles`` is the number of battles fitted, ``rounds`` and
    ``seed`` the bootstrap's.
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
) -> BTResult:
    """Fit, bootstrap and rank: the whole leaderboard for ``counts``. See :func:`fit`."""
    rating = fit(counts, scale=scale, base=base, initial=initial, ridge=ridge)
    lower, upper = bootstrap(
        counts,
        rounds,
        seed,
        level=level,
        scale=scale,
        base=base,
        initial=initial,
        ridge=ridge,
        point=rating,
    )
    rank = rank_with_intervals(rating, lower, upper)
    order = sorted(range(rating.size), key=lambda k: (-rating[k], counts.competitors[k]))
    return BTResult(
        competitors=tuple(counts.competitors[k] for k in order),
        rating=tuple(rating[order].tolist()),
        lower=tuple(lower[order].tolist()),
        upper=tuple(upper[order].tolist()),
        rank=tuple(rank[order].tolist()),
        battles=round(counts.battles),
        rounds=rounds,
        seed=seed,
        level=level,
    )
