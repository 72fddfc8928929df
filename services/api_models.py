"""Response bodies of the HTTP API, as msgspec structs (Litestar documents them in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from arbiter.adapters.bus import IngestBacklog
from arbiter.domain.events import Event
from litestar.openapi import ResponseSpec
from msgspec import Struct, field

from .api_results_models import HistoryDay


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


ERRORS = {
    400: "A bad parameter (`bad_parameter`) or a rejected event (its rejection code).",
    401: "No valid API key (`unauthorized`): a bad key always, no key where one is needed "
    "(see README, Authentication).",
    403: "The API key lacks the route's scope (`forbidden`).",
    404: "Unknown resource (`not_found`).",
    409: "The log already holds this event_id with other content (`conflict`).",
    413: "Body over 64 KiB (`too_large`).",
    503: "Database or NATS unavailable (`unavailable`).",
}
"""What each error status means on most routes; a route group says it its own way where its
errors mean more (an upload's 413, an admin route's 404)."""


def error_responses(*statuses: int, text: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors a route can answer, all :class:`ErrorBody`: ``statuses``
    plus 401 and 403, which every route answers when keys are enforced. ``text`` overrides
    :data:`ERRORS` for a route group."""
    described = {**ERRORS, **(text or {})}
    return {
        s: ResponseSpec(data_container=ErrorBody, description=described[s], generate_examples=False)
        for s in sorted({401, 403, *statuses})
    }


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
    quarantined: int = 0
    """Poison events this projection skipped because its fold raised on them."""
    quarantine: list[QuarantinedEvent] = []
    """The first few of them, in log order, with the fold's error."""


class QuarantinedEvent(Struct):
    position: int
    event_id: str
    error: str


class Health(Struct):
    status: Literal["ok", "degraded"]
    database: ComponentHealth
    nats: ComponentHealth
    projections: list[ProjectionHealth]
    ingest: IngestBacklog | None = None
    """Events waiting in NATS, not in the log yet (``lag_events`` counts only the log's);
    null while NATS does not answer."""


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
    """``wins / games`` (a tie is neither)."""
    lower: float | None = None
    upper: float | None = None
    """``system=bt``: the 95% bootstrap interval of ``rating``; null for Elo."""
    wer: float | None = None
    semascore: float | None = None
    prosody: float | None = None
    """Average ``prosody_score`` (or ``prosody``) metric."""
    quality: float | None = None
    """Average ``quality_score`` (or ``quality``) metric."""
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Average of every metric the competitor's battles (its side) and completed trials carried
    in this pool, voided results excluded; the named fields above are picked from it."""
    avg_score: float | None = None
    """Average 1-5 score vote on its trials in this pool (voided trials and votes excluded)."""
    score_votes: int = 0


class Bootstrap(Struct):
    """How the ``system=bt`` intervals were made."""

    rounds: int
    seed: int
    level: float
    battles: int
    """Pairwise results fitted (a game of n players counts n(n-1)/2)."""
    position: int | None = None
    """The ratings position the fit reflects: while events stream in, a fit is reused for up
    to ``BT_REFRESH_S`` seconds, so it may trail the page's ``position`` a little."""


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
    system: Literal["elo", "bt"] = "elo"
    as_of: int | None = None
    """With ``as_of``: the log position the board was rebuilt at (the requested position, or for
    a time the last change in the pool at or before it, capped at ``position``)."""
    bootstrap: Bootstrap | None = None
    results_position: int | None = None
    """Log position of the results read model the averages came from."""


class CompetitorInfo(Struct, kw_only=True):
    competitor: str
    name: str | None
    provider: str | None
    meta: dict[str, Any]
    registered: bool
    """True once a ``competitor.registered`` event named it; false when only seen in battles."""
    first_position: int
    last_position: int
    retired: bool = False
    retired_reason: str | None = None
    status: Literal["untested", "testing", "ranked", "retired"] = "untested"
    """In the requested arena (``arena``, default ``default``): no rated result yet is
    ``untested``, 1 to 9 rated results ``testing``, 10 or more ``ranked``; ``retired`` wins."""
    rated_results: int = 0
    """Rated results in the arena-wide pool of that arena."""


class CompetitorList(Struct):
    competitors: list[CompetitorInfo]
    total: int
    limit: int
    offset: int
    position: int
    arena: str = "default"
    """The arena ``status`` and ``rated_results`` refer to."""
    status: str | None = None
    """The ``status`` filter, if one was given."""


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
    opponent: str | None
    """Null for a game (several opponents) and for a void."""
    score: float | None
    expected: float | None
    k: float | None
    rating_before: float
    rating_after: float | None
    """Null when a void left the competitor with no rated result in the pool."""
    delta: float | None
    kind: str = "battle"
    """``battle``, ``vote``, ``game`` or ``void`` (a voided result's recomputation)."""
    games: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    """Counters after the change."""


class History(Struct):
    competitor: str
    arena: str | None
    category: str | None
    total: int
    limit: int
    offset: int
    position: int
    history: list[HistoryEntry]
    bucket: Literal["day"] | None = None
    days: list[HistoryDay] | None = None
    """With ``bucket=day``: one point per UTC day of the pool (``history`` is then empty and
    ``total``, ``limit`` and ``offset`` count days)."""


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
    stream_seq: int | None
    """Sequence of the message in the ``ARBITER`` stream; None when the log already held the
    event, so nothing was published."""
    duplicate: bool
    """True when the event was already known with this very content: in the log, or in
    JetStream's duplicate window (a retry of a publish)."""
