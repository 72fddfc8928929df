"""Routes over pairs of competitors in a pool (the ratings read model): head-to-head records and
matchmaking.

* ``GET /head-to-head?arena=&category=&competitor=``: per pair, wins, losses, ties, observed and
  Elo-expected win rate, the most played pairs first, paginated.
* ``GET /matchmaking/next?arena=&category=&competitor=``: the next placement opponent of a
  competitor, or without one the most informative pair. 404 for an unknown competitor; when
  nobody is available the answer is a 200 whose ``proposal`` is null and whose ``reason`` says
  why (a retired competitor, fewer than two active rated competitors).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ..cache import CACHE_S, READS
from ..errors import route_errors
from ..models.ratings import HeadToHeadPage, Matchmaking
from ..parameters import ArenaParam, CategoryParam, Limit, Offset
from ..queries import ratings as q
from ..store import ReadStore

__all__ = ["HeadToHeadController", "MatchmakingController"]


class HeadToHeadController(Controller):
    path = "/head-to-head"
    tags = ["ratings"]  # noqa: RUF012

    @get(
        "/",
        summary="Head-to-head records in a pool",
        responses=route_errors(400, 404, 503),
        cache=CACHE_S,
        opt={READS: ("ratings",)},  # the pairs and ratings, and the ratings' position
    )
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

    @get("/next", summary="The next game to play", responses=route_errors(400, 404, 503))
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
