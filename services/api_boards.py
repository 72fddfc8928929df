"""Routes over the ratings read model beyond the leaderboard itself: head-to-head, matchmaking,
the summary and the live leaderboard stream.

* ``GET /head-to-head?arena=&category=&competitor=``: per pair, wins, losses, ties, observed and
  Elo-expected win rate, the most played pairs first, paginated.
* ``GET /matchmaking/next?arena=&category=&competitor=``: the next placement opponent of a
  competitor, or without one the most informative pair. 404 for an unknown competitor; when
  nobody is available the answer is a 200 whose ``proposal`` is null and whose ``reason`` says
  why (a retired competitor, fewer than two active rated competitors).
* ``GET /summary?arena=``: counts for a dashboard.
* ``GET /leaderboard/stream?arena=&category=&limit=``: server-sent events. One ``leaderboard``
  event at once, then one each time the ratings projection's position moves (polled every
  :data:`POLL_S` seconds), each carrying the body of ``GET /leaderboard`` (top ``limit``, Elo)
  with the position as the event id; a comment every :data:`KEEPALIVE_S` seconds of quiet. If
  the database goes away mid-stream an ``error`` event (``{status, code, message}``) is sent and
  the stream keeps polling. A client disconnect cancels the generator at its next await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
import psycopg
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from . import api_queries as q
from .api import ArenaParam, CategoryParam, Limit, Offset, _errors
from .api_models import ErrorBody, Leaderboard
from .api_privacy import Viewer, viewer_of
from .api_results_models import HeadToHeadPage, Matchmaking, Summary
from .api_store import ReadStore

log = logging.getLogger("arbiter.api.boards")

POLL_S = 0.5
KEEPALIVE_S = 15.0
STREAM_LIMIT = 20


class HeadToHeadController(Controller):
    path = "/head-to-head"
    tags = ["ratings"]  # noqa: RUF012

    @get("/", summary="Head-to-head records in a pool", responses=_errors(400, 404, 503))
    async def head_to_head(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        competitor: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="Only this competitor's pairs, from its side (404 if unknown).",
            ),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> HeadToHeadPage:
        """Every pair that has met in the pool (battles, votes and each pair of a game; voided
        results excluded): ``wins``/``losses``/``ties`` from ``competitor``'s side,
        ``win_rate`` = (wins + ties / 2) / games, and ``expected_win_rate`` from the current
        Elo ratings with the arena's scale and base. Most played first, then by ids."""
        return await q.head_to_head(reads, arena, category, competitor, limit, offset)


class MatchmakingController(Controller):
    path = "/matchmaking"
    tags = ["ratings"]  # noqa: RUF012

    @get("/next", summary="The next game to play", responses=_errors(400, 404, 503))
    async def next_game(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        competitor: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="Propose this competitor's next placement opponent (404 if "
                "unknown); absent: the most informative pair of the pool.",
            ),
        ] = None,
    ) -> Matchmaking:
        """With ``competitor``: seed 003's placement walk. It starts at the pool's median rating
        and steps up after a win and down after a loss, replayed over the competitor's first 10
        rated battle and vote results in the pool (voided ones skipped), against the current
        ratings; retired competitors are never proposed. Without: the pair whose next result is
        expected to cut the leaderboard's total rating variance the most (close in rating,
        little played). ``proposal`` is null, with a ``reason``, when nobody is available."""
        return await q.matchmaking(reads, arena, category, competitor)


class SummaryController(Controller):
    path = "/summary"
    tags = ["results"]  # noqa: RUF012

    @get("/", summary="Counts for a dashboard", responses=_errors(400, 503))
    async def summary(
        self,
        reads: NamedDependency[ReadStore],
        arena: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="Only this arena's results (and competitors rated in it).",
            ),
        ] = None,
    ) -> Summary:
        """Competitors, events by type, battles, games, trials (completed and failed),
        experiments, votes and scenarios. Voided results are not counted (``voided`` says how
        many there are); ``events`` counts the whole log whatever the arena."""
        return await q.summary(reads, arena)


class LeaderboardStreamController(Controller):
    path = "/leaderboard/stream"
    tags = ["ratings"]  # noqa: RUF012

    @get(
        "/",
        summary="The leaderboard, live (server-sent events)",
        responses=_errors(400, 503),
    )
    async def stream(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Rows per board (the top N).")
        ] = STREAM_LIMIT,
    ) -> ServerSentEvent:
        """``text/event-stream``: a ``leaderboard`` event now and after every change of the
        ratings projection's position (checked every 0.5 s); data is the JSON body of
        ``GET /leaderboard`` (Elo, top ``limit``), the event id its position."""
        viewer = viewer_of(request)  # private experiments' trials stay out of the averages
        first = await q.leaderboard(reads, arena, category, limit, 0, viewer=viewer)
        return ServerSentEvent(_board_events(reads, first, arena, category, limit, viewer))


class _Gauge:
    """Streams open now (tests check that a disconnect ends one)."""

    open = 0


STREAMS = _Gauge()


def _message(board: Leaderboard) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=msgspec.json.encode(board).decode(), event="leaderboard", id=str(board.position)
    )


async def _board_events(
    reads: ReadStore, first: Leaderboard, arena: str, category: str, limit: int, viewer: Viewer
) -> AsyncIterator[ServerSentEventMessage]:
    STREAMS.open += 1
    try:
        yield _message(first)
        last, quiet, failing = first.position, 0.0, False
        while True:
            await asyncio.sleep(POLL_S)
            quiet += POLL_S
            try:
                position = await q.tracking_position(reads)
                if position != last:
                    board = await q.leaderboard(reads, arena, category, limit, 0, viewer=viewer)
                    last, quiet, failing = board.position, 0.0, False
                    yield _message(board)
                    continue
                failing = False
            except psycopg.OperationalError as exc:
                if not failing:
                    failing = True
                    log.warning("leaderboard stream: database unavailable: %s", exc)
                    body = ErrorBody(503, "unavailable", "The database is unavailable; retrying.")
                    yield ServerSentEventMessage(
                        data=msgspec.json.encode(body).decode(), event="error"
                    )
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ServerSentEventMessage(data=None, comment="keep-alive")
    finally:
        STREAMS.open -= 1
