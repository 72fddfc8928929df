"""The bodies of the routes over the ratings read model: the leaderboard, the competitor registry
and its standings, rating history (per change and per day), head-to-head and matchmaking.

As msgspec structs, so Litestar documents them in OpenAPI. Every list carries ``total``,
``limit``, ``offset`` and the position of the read model it was read from."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from arbiter.domain.bradley_terry import Covariate
from arbiter.domain.placement import Proposal
from msgspec import Struct, field

from .game_scores import GameScoreTotal, RecentGame

__all__ = [
    "BTAnchorBody",
    "Bootstrap",
    "CompetitorDetail",
    "CompetitorInfo",
    "CompetitorList",
    "HeadToHeadPage",
    "HeadToHeadRow",
    "History",
    "HistoryDay",
    "HistoryEntry",
    "Leaderboard",
    "LeaderboardRow",
    "Matchmaking",
    "Standing",
]


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
    provisional: bool = False
    """Fewer than 10 rated results in this pool (seed 003's placement; status ``untested`` or
    ``testing``): the rating is still moving fast. A competitor registered in the arena and
    never played is on the Elo board at the initial rating, 0 games, provisional."""
    games_played: int | None = None
    games_scored: int | None = None
    games_score: float | None = None
    """Game pools only (a pool with a game that is not voided; null elsewhere): the games it
    played in the pool, those in which it had a ``score``, and the sum of those scores (seed
    003's apples eaten; null when none had a score). Voided games excluded."""


class Bootstrap(Struct):
    """How the ``system=bt`` intervals were made."""

    rounds: int
    seed: int
    level: float
    battles: int
    """Pairwise results fitted (a game of n players counts n(n-1)/2)."""
    position: int | None = None
    """The ratings position the fit reflects: while events stream in, a fit is reused for up
    to ``BT_REFRESH_S`` seconds, so it may trail the page's ``position`` a little. With
    ``control``: the results position (the battles and their metrics come from there)."""
    anchor: BTAnchorBody | None = None
    """The competitor pinned at a rating (the ``anchor`` parameter, else the arena's default
    when that competitor is in the pool); null: the mean is anchored at the arena's initial."""
    control: list[Covariate] | None = None
    """``control``: each metric's coefficient with its interval, in the order named."""
    left_out: int | None = None
    """``control``: battles of the pool left out for lacking a named metric on a side."""


class BTAnchorBody(Struct):
    competitor: str
    rating: float


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
    arena: str | None = None
    """The arena listed (its members only; ``status`` and ``rated_results`` there); null: the
    global registry (``status`` the most advanced in any arena)."""
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
    game_scores: list[GameScoreTotal] = field(default_factory=list)
    """Its game score totals in every pool where it played a game that is not voided."""
    recent_games: list[RecentGame] = field(default_factory=list)
    """Its last ``recent_games`` games (log order, newest first; voided ones marked)."""
    results_position: int | None = None
    """Log position of the results read model ``game_scores`` and ``recent_games`` were read
    from (in a snapshot of their own, after the registry's)."""


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


# -- history per day -------------------------------------------------------------------------------


class HistoryDay(Struct, kw_only=True):
    """One UTC day of a competitor's rating in one pool (by the producers' ``occurred_at``)."""

    day: date
    rating: float | None
    """Rating after the day's last change (in log order); null if a void removed the competitor
    from the pool that day."""
    low: float | None
    high: float | None
    """Lowest and highest rating after any change that day."""
    games: int
    """Rated results that day (void rows not counted)."""
    total_games: int
    wins: int
    losses: int
    ties: int
    """Counters after the day's last change."""
    position: int
    """Log position of the day's last change."""
    occurred_at: datetime
    """Producer time of the day's last change."""


# -- head-to-head -------------------------------------------------------------------------------


class HeadToHeadRow(Struct, kw_only=True):
    """One pair in one pool, from ``competitor``'s side (``wins`` are its wins over
    ``opponent``). Without a ``competitor`` filter the pair is listed once, lower id first."""

    competitor: str
    opponent: str
    games: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    """Observed: ``(wins + ties / 2) / games``."""
    expected_win_rate: float | None
    """Elo-expected score of ``competitor`` against ``opponent`` from their current ratings
    (the arena's scale and base); null when either is not rated in the pool (any more)."""
    competitor_rating: float | None
    opponent_rating: float | None


class HeadToHeadPage(Struct, kw_only=True):
    arena: str
    category: str
    competitor: str | None
    total: int
    limit: int
    offset: int
    position: int
    """Log position of the ratings read model this page was read from."""
    rows: list[HeadToHeadRow]


# -- matchmaking --------------------------------------------------------------------------------


class Matchmaking(Struct, kw_only=True):
    """The next game to play. ``proposal`` is null when nobody is available (fewer than two
    active rated competitors, or no active opponent for ``competitor``); ``reason`` says why."""

    arena: str
    category: str
    mode: str
    """``placement`` (a competitor was named) or ``pair`` (the most informative pair)."""
    competitor: str | None
    status: str | None
    """Registry status of ``competitor`` in the arena (untested, testing, ranked, retired)."""
    placement_results: int | None
    """Rated results of ``competitor`` used to replay its placement walk (at most 10)."""
    candidates: int
    """Active rated competitors the proposal was chosen from."""
    proposal: Proposal | None
    reason: str
    position: int
