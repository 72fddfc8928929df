"""``/leaderboard``: the standings of a pool (Elo or Bradley-Terry, now or as of a position or
time), and the same board live as server-sent events.

``GET /leaderboard/stream?arena=&category=&limit=``: one ``leaderboard`` event at once, then one
each time the ratings projection's position moves (polled every :data:`POLL_S` seconds), each
carrying the body of ``GET /leaderboard`` (top ``limit``, Elo) with the position as the event id;
a comment every :data:`KEEPALIVE_S` seconds of quiet. If the database goes away mid-stream an
``error`` event (``{status, code, message}``) is sent and the stream keeps polling. A client
disconnect cancels the generator at its next await. The streams of a process share each look
at the position and each board (:mod:`..board_feed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ..board_feed import BoardFeed, feed_of
from ..cache import CACHE_S, READS, expire_within
from ..errors import ErrorBody, bad_parameter, route_errors
from ..models.ratings import Leaderboard
from ..parameters import ArenaParam, CategoryParam, Limit, Offset, parse_as_of
from ..privacy import Viewer, viewer_of
from ..queries import leaderboard as q
from ..queries.bt_board import bt_options
from ..store import ReadStore

__all__ = ["STREAMS", "LeaderboardController", "LeaderboardStreamController"]

log = logging.getLogger("arbiter.api.boards")

POLL_S = 0.5
KEEPALIVE_S = 15.0
STREAM_LIMIT = 20


class LeaderboardController(Controller):
    path = "/leaderboard"
    tags = ["ratings"]  # noqa: RUF012

    @get(
        "/",
        summary="Leaderboard of an arena or category",
        responses=route_errors(400, 503),
        cache=CACHE_S,
        opt={READS: ("ratings", "results")},
    )
    async def leaderboard(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        limit: Limit = 100,
        offset: Offset = 0,
        system: Annotated[
            Literal["elo", "bt"],
            QueryParameter(description="`elo` (the folded ratings) or `bt` (Bradley-Terry)."),
        ] = "elo",
        as_of: Annotated[
            str | None,
            QueryParameter(
                max_length=64,
                description="The board as it stood at a log position (integer) or at an RFC "
                "3339 time (by the producers' `occurred_at`).",
            ),
        ] = None,
        rounds: Annotated[
            int | None,
            QueryParameter(description="`system=bt`: bootstrap rounds, 1 to 1,000 (default 100)."),
        ] = None,
        seed: Annotated[
            int | None,
            QueryParameter(description="`system=bt`: the bootstrap's random seed (default 0)."),
        ] = None,
        level: Annotated[
            float | None,
            QueryParameter(
                description="`system=bt`: the intervals' level, between 0 and 1 (default 0.95)."
            ),
        ] = None,
        anchor: Annotated[
            str | None,
            QueryParameter(
                max_length=200,
                description="`system=bt`: `COMPETITOR:RATING` shows that competitor at that "
                "rating (as the public Chatbot Arena board does with "
                "`mixtral-8x7b-instruct-v0.1:1114`); `mean`: the mean at the arena's initial. "
                "Default: the arena's `bt_anchor`, else the mean.",
            ),
        ] = None,
        control: Annotated[
            str | None,
            QueryParameter(
                max_length=2100,
                description="`system=bt`: metric names, comma-separated: Bradley-Terry with "
                "each metric's standardised normalised difference between the sides as a "
                "covariate (the public board's style control); ranks by the controlled ratings.",
            ),
        ] = None,
    ) -> Leaderboard:
        """Standings by rating (highest first, ties by competitor id); with ``system=elo``
        ``rank`` is ``offset`` + row number. ``system=bt``: Bradley-Terry maximum likelihood
        on the Elo scale (the arena's scale, base and initial) from the pool's pairwise counts,
        ``lower``/``upper`` its bootstrap interval (``level`` 0.95, ``rounds`` 100, ``seed`` 0
        by default) and ``rank`` 1 + the number of competitors whose lower bound is above this
        one's upper bound; ``anchor`` and ``control`` as described on each parameter.

        Every row also carries the averages of the metrics its battles and trials carried in
        the pool (``metrics``; wer, semascore, prosody, quality, latency, cost and tokens picked
        out) and its average score vote, voided results excluded.

        ``as_of``: a position P rebuilds the board from the rating history (each competitor's
        last change at or before P); a time T means the last change in the pool whose producer
        time is at or before T (producer clocks, not arrival order: a late-arriving older
        result can fall after P). The averages are always current; while keys are enforced
        they count only the trials of experiments the caller may read.

        In a game pool (one with a game that is not voided) every row also carries
        ``games_played``, ``games_scored`` and ``games_score`` (the sum of its game scores,
        always current, voided games excluded); in other pools they are null."""
        when = None if as_of is None else parse_as_of(as_of)
        given = {"rounds": rounds, "seed": seed, "level": level, "anchor": anchor}
        given["control"] = control
        if system == "elo" and any(v is not None for v in given.values()):
            name = next(k for k, v in given.items() if v is not None)
            raise bad_parameter(name, f"{name} applies to system=bt only")
        options = bt_options(rounds, seed, level, anchor, control) if system == "bt" else None
        return await q.leaderboard(
            reads, arena, category, limit, offset, system, when, viewer=viewer_of(request),
            options=options, reused=lambda seconds: expire_within(request, seconds),
        )  # fmt: skip


class LeaderboardStreamController(Controller):
    path = "/leaderboard/stream"
    tags = ["ratings"]  # noqa: RUF012

    @get(
        "/",
        summary="The leaderboard, live (server-sent events)",
        responses=route_errors(400, 503),
        opt={"key_cookie": True},  # the leaderboard page's EventSource sends no headers (auth)
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
        feed = feed_of(reads)  # what every stream of this process shares (..board_feed)
        seen = await feed.position()
        first = await feed.board(arena, category, limit, viewer, seen)
        return ServerSentEvent(_board_events(feed, seen, first, arena, category, limit, viewer))


class _Gauge:
    """Streams open now (tests check that a disconnect ends one)."""

    open = 0


STREAMS = _Gauge()


def _message(board: Leaderboard) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=msgspec.json.encode(board).decode(), event="leaderboard", id=str(board.position)
    )


async def _board_events(
    feed: BoardFeed,
    seen: int,
    first: Leaderboard,
    arena: str,
    category: str,
    limit: int,
    viewer: Viewer,
) -> AsyncIterator[ServerSentEventMessage]:
    """``seen``: the position looked at for ``first``. A board is sent when a look finds the
    position moved (either way: a restored database may go back) and the board read then is
    not the one last sent (a shared board may have been read a little after its look)."""
    STREAMS.open += 1
    try:
        yield _message(first)
        sent, quiet, failing = first.position, 0.0, False
        while True:
            await asyncio.sleep(POLL_S)
            quiet += POLL_S
            try:
                position = await feed.position()
                if position != seen:
                    board = await feed.board(arena, category, limit, viewer, position)
                    seen, failing = position, False
                    if board.position != sent:
                        sent, quiet = board.position, 0.0
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
