"""Registered competitors that have not played yet, as rows of an Elo leaderboard.

Seed 000 lists every model on its leaderboard, a new one at the starting rating with no battles.
Arbiter's standings exist only once a competitor has a rated result, so the Elo board adds, in
the arena-wide pool only, every competitor *registered* in the arena (``competitor.registered``
with that ``arena``, see :mod:`.registry`) that has no standing there: at the arena's initial
rating as configured at the board's position (the live settings, or for ``as_of`` the last
``arena.configured`` at or before it, kept in ``arena_configs``), 0 games, and
``provisional`` like every row under :data:`~arbiter.domain.placement.PLACEMENT_GAMES` games.
A competitor whose every result was voided is back to that row. They rank among the others by
rating (then id), so a board of 8 registered competitors shows 8 rows from the first event.

Decisions: a competitor only *seen* in an arena has played there, so it has a standing (or had
one, voided away: then it shows as unplayed only if it is also registered there). Category
pools list who played in them only: a registration names an arena, not a category. Retired
competitors stay listed, as retired competitors with standings do. ``system=bt`` lists none of
them: Bradley-Terry estimates a strength only from comparisons, and a competitor with none has
no estimate (not even an interval), so it is left off rather than shown at a made-up rating.
"""

from __future__ import annotations

from arbiter.domain.elo import DEFAULT_SETTINGS
from psycopg import sql

from .snapshot import ratings_table as _r

__all__ = ["DEFAULT_INITIAL", "with_unplayed"]

DEFAULT_INITIAL = DEFAULT_SETTINGS.initial

_UNPLAYED = sql.SQL(
    "WITH board AS ({board}) SELECT * FROM board UNION ALL "
    "SELECT p.competitor, coalesce((SELECT c.initial FROM {configs} c WHERE c.arena = p.arena "
    "AND c.position <= %(p)s ORDER BY c.position DESC LIMIT 1), %(default_initial)s), 0, 0, 0, 0 "
    "FROM {presence} p WHERE p.arena = %(arena)s AND %(category)s = '' AND p.registered "
    "AND p.registered_position <= %(p)s "
    "AND NOT EXISTS (SELECT 1 FROM board b WHERE b.competitor = p.competitor)"
)


def with_unplayed(board: sql.Composable) -> sql.Composable:
    """``board`` (rows ``competitor, rating, games, wins, losses, ties`` of the pool
    ``%(arena)s``/``%(category)s`` at ``%(p)s``) plus the registered competitors without a
    standing in it; the caller adds ``default_initial`` to the parameters
    (:data:`DEFAULT_INITIAL`)."""
    return _UNPLAYED.format(
        board=board, configs=_r("arena_configs"), presence=_r("arena_competitors")
    )
