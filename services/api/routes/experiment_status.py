"""Routes over an experiment's lifecycle (issue 13): the list, one experiment, and the webhook
deliveries of its results.

* ``GET /experiments?status=&limit=&offset=``: the caller's experiments (admins, or anyone
  while keys are not enforced: all), newest first, each with its status (``created``,
  ``running``, ``completed``), counts (expected, recorded, counted, unexpected, failed, voided
  trials; score votes as ``ratings``) and times.
* ``GET /experiments/{experiment_id}``: the same for one experiment.
* ``GET /experiments/{experiment_id}/deliveries``: every webhook delivery and attempt.

The last two are served to the experiment's owner and admins only; anyone else gets the 404 of
an unknown experiment (as ``/trials`` and ``/results``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ..errors import route_errors
from ..models.experiment_status import DeliveryPage, ExperimentPage, ExperimentStatus
from ..parameters import Limit, Offset
from ..privacy import viewer_of
from ..queries import experiment_status as q
from ..store import ReadStore

__all__ = ["ExperimentStatusController"]


class ExperimentStatusController(Controller):
    path = "/experiments"
    tags = ["experiments"]  # noqa: RUF012

    @get("/", summary="Experiments and their status", responses=route_errors(400, 503))
    async def experiments(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        status: Annotated[
            Literal["created", "running", "completed"] | None,
            QueryParameter(description="Only experiments in this status."),
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> ExperimentPage:
        """Experiments the caller may read, newest first: declared ones (``experiment.created``)
        and those known from trials only (never ``created``: ``running`` until an
        ``experiment.completed`` closes them)."""
        return await q.experiments(
            reads, viewer=viewer_of(request), status=status, limit=limit, offset=offset
        )

    @get(
        "/{experiment_id:str}",
        summary="One experiment's status",
        responses=route_errors(404, 503),
        opt={"scope": "owner"},
    )
    async def experiment(
        self, reads: NamedDependency[ReadStore], experiment_id: FromPath[str]
    ) -> ExperimentStatus:
        """Status, declaration, counts and times of one experiment."""
        return await q.experiment_status(reads, experiment_id)

    @get(
        "/{experiment_id:str}/deliveries",
        summary="Webhook deliveries of an experiment's results",
        responses=route_errors(404, 503),
        opt={"scope": "owner"},
    )
    async def deliveries(
        self, reads: NamedDependency[ReadStore], experiment_id: FromPath[str]
    ) -> DeliveryPage:
        """Each delivery (state, attempts, next try) with every attempt: start, duration,
        the receiver's status code or the error."""
        await q.experiment_status(reads, experiment_id)  # 404 for an unknown experiment
        return await q.deliveries(reads, experiment_id)
