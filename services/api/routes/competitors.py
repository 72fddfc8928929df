"""``/competitors``: the registry (each competitor's status in an arena), one competitor with its
standings in every pool, and its rating history (per change, or per UTC day for charts)."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ..cache import CACHE_S, READS
from ..errors import not_found, route_errors
from ..models.ratings import CompetitorDetail, CompetitorList, History
from ..parameters import ArenaFilter, ArenaParam, Limit, Offset
from ..queries import registry
from ..queries.game_scores import MAX_RECENT_GAMES, competitor_detail
from ..queries.ratings import history_days
from ..store import ReadStore

__all__ = ["CompetitorController"]


class CompetitorController(Controller):
    path = "/competitors"
    tags = ["competitors"]  # noqa: RUF012

    @get("/", summary="The competitor registry", responses=route_errors(400, 503))
    async def list_competitors(
        self,
        reads: NamedDependency[ReadStore],
        limit: Limit = 100,
        offset: Offset = 0,
        arena: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="Only the competitors registered in or seen in this arena, with "
                "their status there; absent: the global registry.",
            ),
        ] = None,
        status: Annotated[
            Literal["untested", "testing", "ranked", "retired"] | None,
            QueryParameter(
                description="Only competitors with this status in `arena` (without `arena`: "
                "the most advanced status in any arena)."
            ),
        ] = None,
    ) -> CompetitorList:
        """Competitors by id with their status: untested (no rated result in the arena-wide
        pool), testing (1 to 9), ranked (10 or more), retired (global). With ``arena``: only
        those registered there (``competitor.registered`` with that ``arena``) or seen in one
        of its results, ``registered`` meaning registered there. Without: every competitor,
        its status the most advanced in any arena."""
        return await registry.competitors(reads, limit, offset, arena, status)

    @get(
        "/{competitor_id:str}",
        summary="One competitor and its standings",
        responses=route_errors(404, 503),
        cache=CACHE_S,
        opt={READS: ("ratings", "results")},
    )
    async def get_competitor(
        self,
        reads: NamedDependency[ReadStore],
        competitor_id: FromPath[str],
        arena: ArenaParam = "default",
        recent_games: Annotated[
            int,
            QueryParameter(
                ge=0,
                le=MAX_RECENT_GAMES,
                description=f"How many of its latest games to list, 0 to {MAX_RECENT_GAMES}.",
            ),
        ] = 10,
    ) -> CompetitorDetail:
        """Registry entry (``status`` in ``arena``) plus its standing (with rank) in every
        arena and category, its game score totals in every pool where it played a game
        (``game_scores``: games, games with a score, their sum and average; voided games
        excluded) and its latest games (``recent_games``: rank, score, players and the ids of
        the game and its event, voided ones marked), from the results read model at
        ``results_position``."""
        found = await competitor_detail(reads, competitor_id, arena, recent_games)
        if found is None:
            raise not_found(f"Unknown competitor {competitor_id!r}.")
        return found

    @get(
        "/{competitor_id:str}/history",
        summary="A competitor's rating history",
        responses=route_errors(400, 404, 503),
        cache=CACHE_S,
        opt={READS: ("ratings",)},  # the rating history, and the ratings' position
    )
    async def history(
        self,
        reads: NamedDependency[ReadStore],
        competitor_id: FromPath[str],
        arena: ArenaFilter = None,
        category: Annotated[
            str | None,
            QueryParameter(
                max_length=128, description="Only this category ('' = arena-wide pool)."
            ),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
        bucket: Annotated[
            Literal["day"] | None,
            QueryParameter(description="`day`: one point per UTC day of one pool."),
        ] = None,
    ) -> History:
        """Every rating change in log order (a battle with a category moves two pools, so it
        appears twice unless ``category`` is given); ``kind`` says what caused it, a ``void``
        row being the recomputation after a voided result (no opponent, score or K; a null
        ``rating_after`` when it left the competitor unrated in the pool).

        ``bucket=day``: a series for charts in one pool (``arena`` default ``default``,
        ``category`` default the arena-wide pool): per UTC day of the producers'
        ``occurred_at``, the rating after the day's last change, its low and high, the rated
        results that day and the counters after it; paginated by day."""
        if bucket is not None:
            pool = "default" if arena is None else arena
            found = await history_days(reads, competitor_id, pool, category or "", limit, offset)
        else:
            found = await reads.history(competitor_id, arena, category, limit, offset)
        if found is None:
            raise not_found(f"Unknown competitor {competitor_id!r}.")
        return found
