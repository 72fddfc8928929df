"""Routes over the results read model's battles and games, and the dashboard's summary counts.

* ``GET /battles`` (filters ``arena``, ``category``, ``competitor`` (either side), ``judge``,
  ``scenario``, ``voided``; newest first) and ``GET /battles/{battle_id}`` (metrics, meta,
  vote counts and every vote). Both carry ``auto_judged`` (outcome and both composites) for a
  battle the auto-judge decided (:mod:`..queries.verdicts`).
* ``GET /games`` (filters ``arena``, ``category``, ``competitor``, ``voided``; newest first) and
  ``GET /games/{game_id}`` (participants with ranks and scores, rounds, replay_uri, meta).
* ``GET /summary?arena=``: counts for a dashboard.

Voided results stay in the lists with ``voided_by`` set (``voided=false`` hides them) and are
left out of every count.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ..cache import CACHE_S, READS
from ..errors import not_found, route_errors
from ..models.results import BattleDetail, BattlePage, GameDetail, GamePage, Summary
from ..parameters import (
    ArenaFilter,
    CategoryFilter,
    CompetitorFilter,
    Limit,
    Offset,
    VoidedFilter,
    text_filter,
)
from ..privacy import viewer_of
from ..queries.results import battle, battles, game, games
from ..queries.summary import summary as count_summary
from ..store import ReadStore

__all__ = ["BattleController", "GameController", "SummaryController"]


class BattleController(Controller):
    path = "/battles"
    tags = ["results"]  # noqa: RUF012

    @get("/", summary="Battles, newest first", responses=route_errors(400, 503))
    async def list_battles(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaFilter = None,
        category: CategoryFilter = None,
        competitor: CompetitorFilter = None,
        judge: Annotated[str | None, text_filter("Only battles decided by this judge.")] = None,
        scenario: Annotated[str | None, text_filter("Only battles of this scenario.")] = None,
        voided: VoidedFilter = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> BattlePage:
        """Battles in reverse log order with their outcome, judge, vote counts so far (voided
        votes excluded) and ``voided_by``."""
        return await battles(
            reads,
            arena=arena,
            category=category,
            competitor=competitor,
            judge=judge,
            scenario=scenario,
            voided=voided,
            limit=limit,
            offset=offset,
        )

    @get("/{battle_id:str}", summary="One battle and its votes", responses=route_errors(404, 503))
    async def get_battle(
        self, reads: NamedDependency[ReadStore], battle_id: FromPath[str]
    ) -> BattleDetail:
        """The battle with its metrics per side, meta, vote counts and every vote cast on it
        (in log order, voided ones marked), and the auto-judge's verdict and composites when
        it decided the battle (``auto_judged``)."""
        found = await battle(reads, battle_id)
        if found is None:
            raise not_found(f"Unknown battle {battle_id!r}.")
        return found


class GameController(Controller):
    path = "/games"
    tags = ["results"]  # noqa: RUF012

    @get("/", summary="Games, newest first", responses=route_errors(400, 503))
    async def list_games(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaFilter = None,
        category: CategoryFilter = None,
        competitor: CompetitorFilter = None,
        voided: VoidedFilter = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> GamePage:
        """N-player games in reverse log order, participants best rank first."""
        return await games(
            reads,
            arena=arena,
            category=category,
            competitor=competitor,
            voided=voided,
            limit=limit,
            offset=offset,
        )

    @get("/{game_id:str}", summary="One game", responses=route_errors(404, 503))
    async def get_game(
        self, reads: NamedDependency[ReadStore], game_id: FromPath[str]
    ) -> GameDetail:
        """Participants with ranks, scores and meta; rounds, replay_uri, meta and source."""
        found = await game(reads, game_id)
        if found is None:
            raise not_found(f"Unknown game {game_id!r}.")
        return found


class SummaryController(Controller):
    path = "/summary"
    tags = ["results"]  # noqa: RUF012

    @get(
        "/",
        summary="Counts for a dashboard",
        responses=route_errors(400, 503),
        cache=CACHE_S,
        opt={READS: ("ratings", "results")},
    )
    async def summary(
        self,
        request: Request[Any, Any, Any],
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
        many there are). With ``arena`` every count is of that arena, ``events`` included: its
        results, the votes on them and the voids of either (a void or vote belongs to its
        target's arena); settings and registry events (no arena of their own in the read
        models) are counted only without ``arena``. While keys are
        enforced, the trials of experiments the caller may not read, the score votes on them and
        the voids of either are counted nowhere, ``events`` included."""
        return await count_summary(reads, arena, viewer_of(request))
