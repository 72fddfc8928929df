"""``/ui/experiments/{id}``: one experiment, as seed 001 reports it: its lifecycle (declared,
running, completed), rankings by composite score with the components, each competitor's trials
and averages, the per-prompt head-to-head, the winner with its confidence, and the trials.

Privacy is the JSON routes' (:mod:`arbiter.services.api.privacy`): while keys are enforced the
page shows only to the experiment's owner and admins; anyone else gets the 404 of an unknown
experiment. The page is a ``read`` route (not ``owner``) so that, with public reads off, a
visitor without a key is asked for one (the key form) instead of being told "not found".
"""

from __future__ import annotations

from typing import Any

from arbiter.domain.experiments import HeadToHead
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from ..api.cache import CACHE_S
from ..api.errors import ApiError, not_found
from ..api.models.results import ExperimentReport
from ..api.privacy import experiment_owner, viewer_of
from ..api.queries import experiments as q
from ..api.queries.experiment_status import experiment_status
from ..api.queries.rating_workflow import trials as trial_page
from ..api.store import ReadStore
from .bars import bars

__all__ = ["HANDLERS", "PAIRS_AMONG", "TRIALS_SHOWN", "experiment_page", "top_pairs"]

TRIALS_SHOWN = 200
"""Trials listed on the page (newest last); the JSON route pages through all of them."""

PAIRS_AMONG = 10
"""The head-to-head table lists the pairs among this many competitors, the best ranked: n
competitors make n(n-1)/2 pairs (4,950 for 100), a table nobody reads on a phone and most of
the page's weight; the JSON route has them all."""


def top_pairs(report: ExperimentReport) -> list[HeadToHead]:
    """The head-to-head rows among the :data:`PAIRS_AMONG` best ranked competitors (all rows
    when there are no more), in the route's order."""
    ranked = [r.competitor for r in report.rankings] or [c.competitor for c in report.competitors]
    if len(ranked) <= PAIRS_AMONG:
        return list(report.head_to_head)
    best = set(ranked[:PAIRS_AMONG])
    return [h for h in report.head_to_head if h.a in best and h.b in best]


async def _report(reads: ReadStore, experiment_id: str) -> ExperimentReport | None:
    try:
        return await q.experiment(reads, experiment_id)
    except ApiError as exc:
        if exc.body.status == 404:  # declared, no trials yet
            return None
        raise


@get("/ui/experiments/{experiment_id:str}", name="web-experiment", cache=CACHE_S)
async def experiment_page(
    request: Request[Any, Any, Any],
    reads: NamedDependency[ReadStore],
    experiment_id: FromPath[str],
) -> Template:
    """The experiment's status, results and latest trials."""
    viewer = viewer_of(request)
    if not viewer.everything and not viewer.sees(await experiment_owner(reads, experiment_id)):
        raise not_found(f"Experiment {experiment_id!r} has no trials.")
    status = await experiment_status(reads, experiment_id)
    report = await _report(reads, experiment_id)
    chart = None
    if report is not None and report.rankings:
        chart = bars(
            [(r.competitor, r.composite) for r in report.rankings],
            "0–1, higher is better",
            "composite score",
            key_attribute="data-competitor",
        )
    trials = None
    if report is not None:
        trials = await trial_page(
            reads, experiment_id, filters={}, extra=None, extra_values={},
            limit=TRIALS_SHOWN, offset=max(0, report.total + report.voided - TRIALS_SHOWN),
        )  # fmt: skip
    return Template(
        template_name="experiment.html",
        context={
            "status": status,
            "report": report,
            "chart": chart,
            "trials": trials,
            "pairs": top_pairs(report) if report is not None else [],
        },
    )


HANDLERS = (experiment_page,)
