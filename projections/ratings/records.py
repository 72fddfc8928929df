"""The ratings read model's records: a standing, a registry entry, a rated result, the history
row, and the column lists they are stored with.

They are their own room because every other part of the package shares them: the fold builds
them, the store writes and reads them back, the shard forwards matches between two processes,
the audit compares their rows. Plain msgspec structs, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
from arbiter.domain.elo import ArenaSettings, rank_score

__all__ = [
    "CHECKPOINT_EVERY",
    "HISTORY_COLUMNS",
    "HISTORY_TYPES",
    "MATCH_COLUMNS",
    "MATCH_TYPES",
    "NAME",
    "OVERALL",
    "Competitor",
    "HistoryRow",
    "Match",
    "PoolKey",
    "Presence",
    "Standing",
    "StandingKey",
    "arena_row",
]

NAME = "ratings"
_JSON = msgspec.json.Encoder(order="sorted")
OVERALL = ""
"""The category key of the arena-wide pool."""
CHECKPOINT_EVERY = 1024
"""Results between two checkpoints of a pool (a void replays at most this many plus the tail)."""

PoolKey = tuple[str, str]
"""(arena, category)"""
StandingKey = tuple[str, str, str]
"""(arena, category, competitor)"""

HISTORY_COLUMNS = (
    "competitor", "arena", "category", "position", "event_id", "occurred_at", "kind",
    "opponent", "score", "expected", "k", "rating_before", "rating_after",
    "games", "wins", "losses", "ties",
)  # fmt: skip
HISTORY_TYPES = (
    "text", "text", "text", "int8", "text", "timestamptz", "text",
    "text", "float8", "float8", "float8", "float8", "float8",
    "int4", "int4", "int4", "int4",
)  # fmt: skip
HistoryRow = tuple[Any, ...]
"""One rating change, in :data:`HISTORY_COLUMNS` order: enough to re-derive it."""

MATCH_COLUMNS = (
    "position", "event_id", "occurred_at", "arena", "category", "kind", "battle_id",
    "players", "ranks", "score", "k", "scale", "base", "initial",
)  # fmt: skip
MATCH_TYPES = (
    "int8", "text", "timestamptz", "text", "text", "text", "text",
    "text", "text", "float8", "float8", "float8", "float8", "float8",
)  # fmt: skip


class Standing(msgspec.Struct, gc=False):
    """One competitor in one pool."""

    rating: float
    games: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    last_position: int = 0
    last_at: datetime | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.rating, self.games, self.wins, self.losses, self.ties,
            self.last_position, self.last_at,
        )  # fmt: skip

    def copy(self) -> Standing:
        return Standing(*self.row())


class Competitor(msgspec.Struct, gc=False):
    """A registry entry: explicit (``competitor.registered``) or implicit (first seen)."""

    name: str | None = None
    provider: str | None = None
    meta: dict[str, Any] = msgspec.field(default_factory=dict)
    registered: bool = False
    first_position: int = 0
    last_position: int = 0
    retired: bool = False
    retired_reason: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.name, self.provider, _JSON.encode(self.meta).decode(),
            self.registered, self.first_position, self.last_position,
            self.retired, self.retired_reason,
        )  # fmt: skip


class Presence(msgspec.Struct, gc=False):
    """A competitor in one arena: registered there (a ``competitor.registered`` whose envelope
    ``arena`` is it) or seen in one of its results. Presence, unlike a standing, never goes away:
    a void takes a result out of the ratings, not the fact that the competitor played there."""

    first_position: int
    registered: bool = False
    registered_position: int | None = None
    """The first registration in this arena; None when only seen in results there."""

    def row(self) -> tuple[Any, ...]:
        return (self.registered, self.registered_position, self.first_position)


class Match(msgspec.Struct, gc=False):
    """One result as the ratings see it, with the settings in force when it was folded."""

    position: int
    event_id: str
    occurred_at: datetime
    arena: str
    category: str | None
    kind: str
    """battle, vote or game"""
    battle_id: str | None
    players: tuple[str, ...]
    ranks: tuple[int, ...] | None
    """Games: each player's rank. None for pairwise results."""
    score: float | None
    """Pairwise: the score of ``players[0]``; None for a battle awaiting votes."""
    k: float
    scale: float
    base: float
    initial: float
    live: bool = True

    @property
    def rated(self) -> bool:
        return self.ranks is not None or self.score is not None

    def pools(self) -> tuple[PoolKey, ...]:
        if self.category is None:
            return ((self.arena, OVERALL),)
        return ((self.arena, OVERALL), (self.arena, self.category))

    def pairs(self) -> Iterator[tuple[str, str, float]]:
        """Every pair of players with the first one's score."""
        if self.ranks is None:
            assert self.score is not None
            yield self.players[0], self.players[1], self.score
            return
        n = len(self.players)
        for i in range(n):
            for j in range(i + 1, n):
                yield self.players[i], self.players[j], rank_score(self.ranks[i], self.ranks[j])

    def row(self) -> tuple[Any, ...]:
        return (
            self.position, self.event_id, self.occurred_at, self.arena, self.category,
            self.kind, self.battle_id, _JSON.encode(self.players).decode(),
            None if self.ranks is None else _JSON.encode(self.ranks).decode(), self.score,
            self.k, self.scale, self.base, self.initial,
        )  # fmt: skip


def arena_row(s: ArenaSettings, position: int) -> tuple[Any, ...]:
    weights = _JSON.encode(s.weights).decode()
    anchor = s.bt_anchor or (None, None)
    return (s.k, s.initial, s.scale, s.base, weights, s.strict, position, *anchor)
