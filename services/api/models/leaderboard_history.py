"""The body of ``GET /leaderboard/history``: every competitor's rating per UTC day in one pool,
for charts."""

from __future__ import annotations

from datetime import date
from typing import Literal

from msgspec import Struct

__all__ = ["BoardHistory", "DayRating", "RatingSeries"]


class DayRating(Struct, kw_only=True):
    """A competitor's rating at the end of one UTC day (by the producers' ``occurred_at``)."""

    day: date
    rating: float | None
    """After the day's last change in log order; null when a void left it unrated that day."""
    games: int
    """Its rated results in the pool after that change."""
    position: int
    """Log position of that change."""


class RatingSeries(Struct, kw_only=True):
    competitor: str
    rating: float | None
    """Its rating now (null when not rated in the pool now)."""
    before: DayRating | None
    """Where the line starts: its last day with a change before ``since`` (null if none)."""
    days: list[DayRating]
    """Each day from ``since`` to ``until`` on which its rating changed, in order; on the
    other days it stands where the previous point left it."""


class BoardHistory(Struct, kw_only=True):
    arena: str
    category: str
    """``""`` is the arena-wide pool."""
    system: Literal["elo"]
    since: date
    until: date
    """The days covered, both included."""
    total: int
    """Competitors rated in the pool now (or named by ``competitor``: a competitor every
    result of which in the pool was voided is listed only when named)."""
    limit: int
    offset: int
    position: int
    """Log position of the ratings read model this page was read from."""
    series: list[RatingSeries]
    """One per competitor of the page, in the leaderboard's order (rating now, highest first;
    then id)."""
