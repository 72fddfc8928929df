"""``/ui/stats``: seed 004's grouped trial statistics as a sortable table and one bar chart per
measure. It takes the parameters of ``GET /stats`` (group_by, order, arena, category,
experiment_id, limit, offset) through the same query function, so its numbers are the route's,
with the same privacy (only the trials of experiments the viewer may read).

Cached like ``GET /stats`` (:mod:`arbiter.services.api.cache`): the grouping reads every trial in
scope, so the rendered page is kept until a projector commits, under a key of its path and query,
the viewer and the read models' state; a viewer never gets a page rendered for another.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from ..api.cache import CACHE_S
from ..api.models.results import StatsPage
from ..api.routes.experiments import StatsController
from ..api.store import ReadStore
from .bars import bars
from .route_mirror import mirror
from .units import unit_of

__all__ = ["HANDLERS", "MEASURES", "measures", "stats_page"]

_STATS = StatsController.stats.fn

MEASURES: tuple[tuple[str, str, str], ...] = (
    ("count", "trials", "count"),
    ("failures", "failures", "count"),
    ("avg_latency_ms", "average latency", "ms"),
    ("avg_input_tokens", "average input", "tokens"),
    ("avg_output_tokens", "average output", "tokens"),
    ("total_cost_usd", "total cost", "USD"),
    ("avg_score", "average score vote", "points"),
    ("score_votes", "score votes", "count"),
)
"""Each group's fixed measures: field, label, unit. Metric averages follow, by name."""


def measures(page: StatsPage) -> list[tuple[str, str, str, list[float | None]]]:
    """(key, label, unit, one value per group) for every measure some group has a value of:
    the fixed ones, then every metric's average (``metric:<name>``)."""
    found: list[tuple[str, str, str, list[float | None]]] = []
    for field, label, unit in MEASURES:
        values = [getattr(g, field) for g in page.groups]
        if any(v is not None for v in values):
            found.append((field, label, unit, values))
    names = sorted({name for g in page.groups for name in g.metrics})
    for name in names:
        values = [g.metrics.get(name) for g in page.groups]
        found.append((f"metric:{name}", f"average {name}", unit_of(name), values))
    return found


async def stats_page(
    request: Request[Any, Any, Any], reads: NamedDependency[ReadStore], **filters: Any
) -> Template:
    """The grouped table and a chart per measure."""
    page: StatsPage = await _STATS(None, request=request, reads=reads, **filters)
    found = measures(page)
    attribute = "data-competitor" if page.group_by == "competitor" else "data-group"
    charts = [
        (key, label, unit, bars(list(zip([g.key for g in page.groups], values, strict=True)),
                                unit, label, key_attribute=attribute))
        for key, label, unit, values in found
    ]  # fmt: skip
    chosen = {f.name: request.query_params.get(f.name) for f in FILTERS}
    return Template(
        template_name="stats.html",
        context={
            "page": page,
            "measures": found,
            "charts": charts,
            "filters": FILTERS,
            "chosen": {k: v for k, v in chosen.items() if v not in (None, "")},
        },
    )


FILTERS = mirror(_STATS, stats_page)
stats_handler = get("/ui/stats", name="web-stats", cache=CACHE_S)(stats_page)
HANDLERS = (stats_handler,)
