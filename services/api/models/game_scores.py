"""The bodies of game scores (seed 003's apples eaten): a competitor's score totals per pool and
its recent games, as ``GET /competitors/{id}`` carries them.

Read from the results read model's running sums (``competitor_game_scores``) and games, at the
results projection's position (``results_position`` of the body)."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

__all__ = ["GameScoreTotal", "RecentGame"]


class GameScoreTotal(Struct, kw_only=True):
    """A competitor's games in one pool (``category`` ``""`` = arena-wide), voided games
    excluded."""

    arena: str
    category: str
    games: int
    """Games it played in the pool."""
    scored: int
    """Of those, games in which it had a ``score``."""
    score_total: float | None
    """Sum of its scores (summed exactly, shown as a float); null when no game had a score."""
    score_avg: float | None
    """``score_total / scored``; null when no game had a score."""


class RecentGame(Struct, kw_only=True):
    """One game the competitor played, newest (in log order) first."""

    game_id: str
    """``GET /games/{game_id}``."""
    event_id: str
    """``GET /events/{event_id}``."""
    position: int
    occurred_at: datetime
    arena: str
    category: str | None
    rank: int
    """Its rank in the game (1 is best; equal ranks tie)."""
    score: float | None
    """Its score in the game, if the game carried one."""
    players: list[str]
    """Every player of the game, best rank first (ties by id): ids for ``/competitors/{id}``."""
    voided_by: str | None
    """The void's event id when the game was voided (then it counts in no total)."""
