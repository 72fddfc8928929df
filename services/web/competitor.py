"""``/ui/competitors/{id}``: one competitor. Its standings (W/L/T) in every pool, a rating
history chart per arena (one line per category, a point per UTC day), its latest rating changes
each linked to the event that caused it with the audit's explanation of the change, and its
latest battles and games.

Everything comes from the JSON routes' queries: the standings and recent games are
``GET /competitors/{id}``'s, the chart is ``GET /competitors/{id}/history?bucket=day``'s and the
changes ``GET /competitors/{id}/history``'s. The explanation is the Elo update the audit
(``arbiter audit explain``) re-derives from the log, written out from the rating history row the
fold stored (the audit proves the two equal; replaying the log on every page view would not be
fast): ``before + K x (score - expected) = after``.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from ..api.errors import not_found
from ..api.models.ratings import HistoryDay, HistoryEntry
from ..api.queries.game_scores import with_games
from ..api.queries.ratings import history_days
from ..api.queries.results import battles
from ..api.store import ReadStore
from .charts import Series, lines

__all__ = ["HANDLERS", "MAX_CHART_DAYS", "competitor_page", "explanation", "latest_days"]

MAX_CHART_DAYS = 1000
"""UTC days drawn per pool, the latest (``GET .../history?bucket=day``'s largest page); the page
says how many older ones are left out."""

RECENT = 20
"""Latest rating changes, battles and games listed."""


def explanation(h: HistoryEntry) -> str:
    """The change in words, as ``arbiter audit explain`` accounts for it."""
    if h.kind == "void" or h.k is None or h.score is None or h.expected is None:
        after = "unrated in the pool" if h.rating_after is None else f"{h.rating_after:.2f}"
        return f"recomputed after a voided result: {h.rating_before:.2f} → {after}"
    after = "–" if h.rating_after is None else f"{h.rating_after:.2f}"
    return f"{h.rating_before:.2f} + {h.k:g} × ({h.score:g} − {h.expected:.4f}) = {after}"


async def latest_days(
    reads: ReadStore, competitor: str, arena: str, category: str
) -> tuple[list[HistoryDay], int]:
    """The pool's latest :data:`MAX_CHART_DAYS` UTC days, oldest first, and how many older
    days are left out. The days are paged oldest first: a history longer than that is read
    again from its last page (with room for days that landed between the two reads)."""
    found = await history_days(reads, competitor, arena, category, MAX_CHART_DAYS, 0)
    if found is None or found.total <= MAX_CHART_DAYS:
        return (found.days or []) if found is not None else [], 0
    later = await history_days(
        reads, competitor, arena, category, 2 * MAX_CHART_DAYS, found.total - MAX_CHART_DAYS
    )
    if later is None:  # not reached: a competitor is never removed
        return found.days or [], found.total - MAX_CHART_DAYS
    days = (later.days or [])[-MAX_CHART_DAYS:]
    return days, max(0, later.total - len(days))


@get("/ui/competitors/{competitor_id:str}", name="web-competitor")
async def competitor_page(
    request: Request[Any, Any, Any],
    reads: NamedDependency[ReadStore],
    competitor_id: FromPath[str],
    arena: Annotated[
        str | None,
        QueryParameter(
            min_length=1,
            max_length=128,
            description="The arena whose status is shown; default: `default` if the "
            "competitor has a standing there, else the arena of its first standing.",
        ),
    ] = None,
) -> Template:
    """The competitor, its standings, history charts, latest changes, battles and games."""
    shown = arena or "default"
    found = await reads.competitor(competitor_id, shown)
    if found is None:
        raise not_found(f"Unknown competitor {competitor_id!r}.")
    if arena is None and found.standings and "default" not in {s.arena for s in found.standings}:
        # "untested in default" says nothing of a competitor that plays elsewhere
        shown = found.standings[0].arena
        found = await reads.competitor(competitor_id, shown) or found
    detail = await with_games(reads, found, RECENT)
    head = await reads.history(competitor_id, None, None, 1, 0)
    total = head.total if head is not None else 0
    recent = await reads.history(competitor_id, None, None, RECENT, max(0, total - RECENT))
    changes = list(reversed(recent.history)) if recent is not None else []
    fought = await battles(
        reads, arena=None, category=None, competitor=competitor_id, judge=None, scenario=None,
        voided=None, limit=RECENT, offset=0,
    )  # fmt: skip
    # Per arena: its chart, and the categories whose older days are left out (how many).
    charts: list[tuple[str, str, list[tuple[str, int]]]] = []
    by_arena: dict[str, list[str]] = {}
    for s in detail.standings:
        by_arena.setdefault(s.arena, []).append(s.category)
    for name, categories in sorted(by_arena.items()):
        series = []
        left_out = []
        for category in sorted(categories):
            days, older = await latest_days(reads, competitor_id, name, category)
            points = [(d.day, d.rating) for d in days if d.rating is not None]
            series.append(Series(category or "(all)", competitor_id, points))
            if older:
                left_out.append((category or "(all)", older))
        charts.append((name, lines(series), left_out))
    return Template(
        template_name="competitor.html",
        context={
            "c": detail,
            "status_arena": shown,
            "changes": [(h, explanation(h)) for h in changes],
            "total_changes": total,
            "battles": fought,
            "charts": charts,
            "max_days": MAX_CHART_DAYS,
        },
    )


HANDLERS = (competitor_page,)
