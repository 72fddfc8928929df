"""Response bodies of the HTTP API, as msgspec structs (Litestar documents them in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from arbiter.domain.events import Event
from msgspec import Struct


class ErrorBody(Struct, omit_defaults=True):
    """Every error: an HTTP status, a stable machine-readable code and a sentence for people.

    ``field`` names the offending query parameter or event field; ``event_id`` and ``type`` are
    echoed from a rejected event when they could be read from it.
    """

    status: int
    code: str
    message: str
    field: str | None = None
    event_id: str | None = None
    type: str | None = None


# -- health -------------------------------------------------------------------------------------


class ComponentHealth(Struct, omit_defaults=True):
    ok: bool
    error: str | None = None


class ProjectionHealth(Struct):
    name: str
    position: int
    """Log position the projection has folded up to."""
    head: int
    """Highest position in the log."""
    lag_events: int
    """``head - position``: events recorded but not yet folded."""
    updated_at: datetime


class Health(Struct):
    status: Literal["ok", "degraded"]
    database: ComponentHealth
    nats: ComponentHealth
    projections: list[ProjectionHealth]


# -- ratings ------------------------------------------------------------------------------------


class LeaderboardRow(Struct):
    rank: int
    competitor: str
    name: str | None
    provider: str | None
    rating: float
    games: int
    wins: int
    losses: int
    ties: int
    win_rate: float


class Leaderboard(Struct):
    arena: str
    category: str
    """``""`` is the arena-wide pool."""
    total: int
    limit: int
    offset: int
    position: int
    """Log position of the read model this page was read from."""
    rows: list[LeaderboardRow]


class CompetitorInfo(Struct, kw_only=True):
    competitor: str
    name: str | None
    provider: str | None
    meta: dict[str, Any]
    registered: bool
    """True once a ``competitor.registered`` event named it; false when only seen in battles."""
    first_position: int
    last_position: int


class CompetitorList(Struct):
    competitors: list[CompetitorInfo]
    total: int
    limit: int
    offset: int
    position: int


class Standing(Struct):
    arena: str
    category: str
    rank: int
    rating: float
    games: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    last_position: int
    last_at: datetime


class CompetitorDetail(CompetitorInfo, kw_only=True):
    standings: list[Standing]
    position: int


class HistoryEntry(Struct):
    position: int
    event_id: str
    occurred_at: datetime
    arena: str
    category: str
    opponent: str
    score: float
    expected: float
    k: float
    rating_before: float
    rating_after: float
    delta: float


class History(Struct):
    competitor: str
    arena: str | None
    category: str | None
    total: int
    limit: int
    offset: int
    position: int
    history: list[HistoryEntry]


# -- the log ------------------------------------------------------------------------------------


class LoggedEvent(Struct):
    position: int
    """The event's position in the log (its notification id): the one global order."""
    recorded_at: datetime
    event: Event
    """The wire event, as accepted."""


class EventPage(Struct):
    events: list[LoggedEvent]
    after: int
    limit: int
    type: str | None
    next_after: int
    """Pass as ``after`` to get the next page; nothing is skipped or repeated."""
    head: int
    """Highest position in the log when this page was read."""


class Accepted(Struct):
    event_id: str
    stream_seq: int
    """Sequence of the message in the ``ARBITER`` stream."""
    duplicate: bool
    """True when JetStream already held this event id (a retry inside its window)."""
