"""``GET /leaderboard/history``: every competitor's rating per UTC day in one pool, for charts
(the rules are in :mod:`..queries.leaderboard_history`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ..errors import route_errors
from ..models.leaderboard_history import BoardHistory
from ..parameters import ArenaParam, CategoryParam, Offset
from ..queries.leaderboard_history import MAX_COMPETITORS, board_history
from ..store import ReadStore

__all__ = ["LeaderboardHistoryController"]


class LeaderboardHistoryController(Controller):
    path = "/leaderboard/history"
    tags = ["ratings"]  # noqa: RUF012

    @get(
        "/",
        summary="Every competitor's rating per day (for charts)",
        responses=route_errors(400, 404, 503),
    )
    async def history(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaParam = "default",
        category: CategoryParam = "",
        system: Annotated[
            Literal["elo"], QueryParameter(description="`elo` (the only one with a history).")
        ] = "elo",
        since: Annotated[
            date | None,
            QueryParameter(description="First UTC day (YYYY-MM-DD); default: `until` - 365."),
        ] = None,
        until: Annotated[
            date | None,
            QueryParameter(
                description="Last UTC day (YYYY-MM-DD); default: today (with `since`, at most "
                "365 days after it)."
            ),
        ] = None,
        competitor: Annotated[
            list[str] | None,
            QueryParameter(
                description=f"Only these competitors (repeat the parameter; at most "
                f"{MAX_COMPETITORS})."
            ),
        ] = None,
        limit: Annotated[
            int,
            QueryParameter(
                ge=1,
                le=MAX_COMPETITORS,
                description=f"Competitors per page, 1 to {MAX_COMPETITORS}.",
            ),
        ] = 20,
        offset: Offset = 0,
    ) -> BoardHistory:
        """For each competitor of the page (the leaderboard's order: rating now, highest first;
        or those named by ``competitor``), its Elo rating at the end of each UTC day (by the
        producers' ``occurred_at``) from ``since`` to ``until`` on which it changed: the rating
        after the day's last change in log order, with its rated-result count and position;
        ``before`` is where its line starts (its last change before ``since``). Days without a
        change have no point: the rating stands. A voided result shows as a change on the
        void's day (``rating`` null if the void left it unrated); earlier days are not
        rewritten (``/leaderboard?as_of=`` rebuilds a past board).

        At most 366 days per request (400 beyond) and 100 competitors per page."""
        return await board_history(reads, arena, category, limit, offset, since, until, competitor)
