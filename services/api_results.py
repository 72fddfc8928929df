"""Routes over the results read model: battles, games, experiments and grouped stats.

* ``GET /battles`` (filters ``arena``, ``category``, ``competitor`` (either side), ``judge``,
  ``scenario``, ``voided``; newest first) and ``GET /battles/{battle_id}`` (metrics, meta,
  vote counts and every vote).
* ``GET /games`` (filters ``arena``, ``category``, ``competitor``, ``voided``; newest first) and
  ``GET /games/{game_id}`` (participants with ranks and scores, rounds, replay_uri, meta).
* ``GET /experiments/{experiment_id}/trials`` (filters ``competitor``, ``status``, ``voided``;
  log order) and ``GET /experiments/{experiment_id}/results`` (seed 001's rankings, per-prompt
  head-to-head, winner and confidence, over the trials that are not voided). Both 404 when the
  experiment has no trial at all.
* ``GET /stats?group_by=&order=&arena=&category=&experiment_id=``: seed 004's grouped stats.

Voided results stay in the lists with ``voided_by`` set (``voided=false`` hides them) and are
left out of every count, average and ranking.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from . import api_results_queries as q
from .api import Limit, Offset, _errors
from .api_privacy import viewer_of
from .api_results_models import (
    BattleDetail,
    BattlePage,
    ExperimentReport,
    GameDetail,
    GamePage,
    StatsPage,
    TrialPage,
)
from .api_store import ReadStore


def _text(description: str) -> object:
    return QueryParameter(min_length=1, max_length=128, description=description)


ArenaFilter = Annotated[str | None, _text("Only this arena.")]
CategoryFilter = Annotated[str | None, _text("Only this category.")]
CompetitorFilter = Annotated[str | None, _text("Only results this competitor took part in.")]
VoidedFilter = Annotated[
    bool | None,
    QueryParameter(
        description="true: only voided results; false: only results that count; absent: both."
    ),
]


class BattleController(Controller):
    path = "/battles"
    tags = ["results"]  # noqa: RUF012

    @get("/", summary="Battles, newest first", responses=_errors(400, 503))
    async def list_battles(
        self,
        reads: NamedDependency[ReadStore],
        arena: ArenaFilter = None,
        category: CategoryFilter = None,
        competitor: CompetitorFilter = None,
        judge: Annotated[str | None, _text("Only battles decided by this judge.")] = None,
        scenario: Annotated[str | None, _text("Only battles of this scenario.")] = None,
        voided: VoidedFilter = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> BattlePage:
        """Battles in reverse log order with their outcome, judge, vote counts so far (voided
        votes excluded) and ``voided_by``."""
        return await q.battles(
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

    @get("/{battle_id:str}", summary="One battle and its votes", responses=_errors(404, 503))
    async def get_battle(
        self, reads: NamedDependency[ReadStore], battle_id: FromPath[str]
    ) -> BattleDetail:
        """The battle with its metrics per side, meta, vote counts and every vote cast on it
        (in log order, voided ones marked)."""
        found = await q.battle(reads, battle_id)
        if found is None:
            raise q.not_found(f"Unknown battle {battle_id!r}.")
        return found


class GameController(Controller):
    path = "/games"
    tags = ["results"]  # noqa: RUF012

    @get("/", summary="Games, newest first", responses=_errors(400, 503))
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
        return await q.games(
            reads,
            arena=arena,
            category=category,
            competitor=competitor,
            voided=voided,
            limit=limit,
            offset=offset,
        )

    @get("/{game_id:str}", summary="One game", responses=_errors(404, 503))
    async def get_game(
        self, reads: NamedDependency[ReadStore], game_id: FromPath[str]
    ) -> GameDetail:
        """Participants with ranks, scores and meta; rounds, replay_uri, meta and source."""
        found = await q.game(reads, game_id)
        if found is None:
            raise q.not_found(f"Unknown game {game_id!r}.")
        return found


class ExperimentController(Controller):
    path = "/experiments"
    tags = ["experiments"]  # noqa: RUF012

    @get(
        "/{experiment_id:str}/trials",
        summary="An experiment's trials",
        responses=_errors(400, 404, 503),
        opt={"scope": "owner"},  # the publishing key and admins (arbiter.services.api_auth)
    )
    async def trials(
        self,
        reads: NamedDependency[ReadStore],
        experiment_id: FromPath[str],
        competitor: Annotated[str | None, _text("Only this competitor's trials.")] = None,
        status: Annotated[
            Literal["completed", "failed"] | None,
            QueryParameter(description="Only trials with this status."),
        ] = None,
        voided: VoidedFilter = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> TrialPage:
        """Trials in log order with their metrics, dimensions, current score votes and
        ``voided_by``."""
        return await q.trials(
            reads,
            experiment_id,
            competitor=competitor,
            status=status,
            voided=voided,
            limit=limit,
            offset=offset,
        )

    @get(
        "/{experiment_id:str}/results",
        summary="An experiment's results",
        responses=_errors(404, 503),
        opt={"scope": "owner"},
    )
    async def results(
        self, reads: NamedDependency[ReadStore], experiment_id: FromPath[str]
    ) -> ExperimentReport:
        """Per competitor: completed and failed trials, metric averages, score votes and seed
        001's composite (ttfb 0.30, generation time 0.25, silence 0.25, duration 0.20);
        rankings; per-prompt head-to-head on ttfb + generation time (50 ms tie threshold); the
        winner and its confidence (lead over 0.10 high, 0.05 medium, 0.02 low, else
        inconclusive). Voided trials are left out (``voided`` counts them)."""
        return await q.experiment(reads, experiment_id)


class StatsController(Controller):
    path = "/stats"
    tags = ["experiments"]  # noqa: RUF012

    @get("/", summary="Trial statistics, grouped", responses=_errors(400, 503))
    async def stats(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        group_by: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="`competitor` or a dimension key some trial in scope carries "
                "(persona, style, input_type...); any other is a 400 naming those they carry.",
            ),
        ] = "competitor",
        order: Annotated[
            Literal["key", "avg_score"],
            QueryParameter(description="By key (the default), or by average score vote."),
        ] = "key",
        arena: ArenaFilter = None,
        category: CategoryFilter = None,
        experiment_id: Annotated[str | None, _text("Only this experiment's trials.")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> StatsPage:
        """Per group of trials (voided ones excluded): count, failures, average latency and
        tokens (completed trials), total cost, average score vote and votes, every metric's
        average. Trials without the dimension form the group with key null (listed last when
        ordered by key); a dimension no trial in scope carries is a 400 (with no trial in scope,
        any ``group_by`` answers no groups). While keys are enforced, only the trials of
        experiments the caller may read count (an experiment it may not read looks like one with
        no trials)."""
        return await q.stats(
            reads,
            group_by=group_by,
            order=order,
            arena=arena,
            category=category,
            experiment_id=experiment_id,
            limit=limit,
            offset=offset,
            viewer=viewer_of(request),
        )
