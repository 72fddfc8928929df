"""``GET /votes?voter=V``: a voter's score votes (seed 004's ratings list), see
:mod:`..queries.rating_workflow`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ..errors import route_errors
from ..models.votes import ScoreVotePage
from ..parameters import Limit, Offset, text_filter
from ..privacy import viewer_of
from ..queries import rating_workflow
from ..store import ReadStore

__all__ = ["VoteController"]


class VoteController(Controller):
    path = "/votes"
    tags = ["experiments"]  # noqa: RUF012

    @get("/", summary="A voter's score votes", responses=route_errors(400, 503))
    async def votes(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadStore],
        voter: Annotated[
            str, QueryParameter(min_length=1, max_length=128, description="The voter.")
        ],
        experiment_id: Annotated[str | None, text_filter("Only this experiment's trials.")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> ScoreVotePage:
        """The voter's current score votes (on each trial its latest that is not voided),
        newest first, with the trial's experiment and competitor; a vote on a voided trial
        carries ``trial_voided_by``. Votes on trials of experiments the caller may not read
        (another key's, while keys are enforced) are left out."""
        return await rating_workflow.votes(
            reads, voter, experiment_id, limit, offset, viewer=viewer_of(request)
        )
