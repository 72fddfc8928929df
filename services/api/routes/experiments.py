"""Routes over the results read model's trials: an experiment's trials and results, and grouped
trial statistics.

* ``GET /experiments/{experiment_id}/trials`` (filters ``competitor``, ``status``, ``voided``;
  log order) and ``GET /experiments/{experiment_id}/results`` (seed 001's rankings, per-prompt
  head-to-head, winner and confidence, over the trials that are not voided). Both 404 when the
  experiment has no trial at all, and are served only to the experiment's owner and admins.
* ``GET /stats?group_by=&order=&arena=&category=&experiment_id=``: seed 004's grouped stats.

Voided trials stay in the list with ``voided_by`` set (``voided=false`` hides them) and are left
out of every count, average and ranking.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ..cache import CACHE_S, READS
from ..errors import route_errors
from ..models.results import ExperimentReport, StatsPage, TrialPage
from ..parameters import (
    EXTRA_QUERY,
    OPEN_QUERY,
    ArenaFilter,
    CategoryFilter,
    Limit,
    Offset,
    VoidedFilter,
    text_filter,
)
from ..privacy import viewer_of
from ..queries import experiments as q
from ..queries import rating_workflow
from ..store import ReadStore

__all__ = ["ExperimentController", "StatsController"]


class ExperimentController(Controller):
    path = "/experiments"
    tags = ["experiments"]  # noqa: RUF012

    @get(
        "/{experiment_id:str}/trials",
        summary="An experiment's trials",
        responses=route_errors(400, 404, 503),
        opt={"scope": "owner", OPEN_QUERY: True},  # owner and admins; dimension filters
    )
    async def trials(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        experiment_id: FromPath[str],
        competitor: Annotated[str | None, text_filter("Only this competitor's trials.")] = None,
        status: Annotated[
            Literal["completed", "failed"] | None,
            QueryParameter(description="Only trials with this status."),
        ] = None,
        voided: VoidedFilter = None,
        rated_by: Annotated[
            str | None, text_filter("Only trials this voter has a current score vote on.")
        ] = None,
        unrated_by: Annotated[
            str | None, text_filter("Only trials this voter has no current score vote on.")
        ] = None,
        voter: Annotated[
            str | None, text_filter("Each row carries this voter's score as `my_rating`.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> TrialPage:
        """Trials in log order with their metrics, dimensions, current score votes and
        ``voided_by``. Seed 004's rating workflow: ``rated_by``/``unrated_by`` a voter,
        ``voter`` for ``my_rating``, and any dimension key the experiment's trials carry as a
        filter (``persona=calm``, or ``dim.persona=calm``; repeated: either value); another
        name is a 400 naming the parameters and the dimension keys."""
        return await rating_workflow.trials(
            reads,
            experiment_id,
            filters={
                "competitor": competitor,
                "status": status,
                "voided": voided,
                "rated_by": rated_by,
                "unrated_by": unrated_by,
                "voter": voter,
            },
            extra=request.scope.get(EXTRA_QUERY),  # type: ignore[arg-type]
            extra_values={k: request.query_params.getall(k) for k in request.query_params},
            limit=limit,
            offset=offset,
        )

    @get(
        "/{experiment_id:str}/results",
        summary="An experiment's results",
        responses=route_errors(404, 503),
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

    @get(
        "/",
        summary="Trial statistics, grouped",
        responses=route_errors(400, 503),
        cache=CACHE_S,
        opt={READS: ("results",)},  # the trials, and the results' position
    )
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
        experiment_id: Annotated[str | None, text_filter("Only this experiment's trials.")] = None,
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
