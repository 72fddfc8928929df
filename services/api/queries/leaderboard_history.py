"""``/leaderboard/history``: every competitor's Elo rating per UTC day in one pool, for charts.

A day's point is the ``rating_after`` of the competitor's last history row of that UTC day (by
the producers' ``occurred_at``) in log order, as ``/competitors/{id}/history?bucket=day`` has it
for one competitor. The rating history holds one row per changed standing, and a void adds a
``void`` row for every standing its recomputation changed, at the void's position and time: so
the series shows the ratings as they stood, and a void appears as a change on the day of the
void (a null rating where it left a competitor with no rated result in the pool). Past days are
not rewritten: rebuilding a past board without the voided result is what
``/leaderboard?as_of=`` is for.

Bounded: a page holds at most :data:`MAX_COMPETITORS` competitors and :data:`MAX_DAYS` days;
a wider window is a 400. Elo only: Bradley-Terry is a fit of the whole pool at one position, and
fitting it once per day would cost a fit per point.

The window: without ``until``, it ends today (UTC), the same for every page and every pool,
and costs no query; a competitor whose rating last changed before ``since`` is still drawn, by
its ``before`` point (its line is flat over the window, which is true). The pool's own last day
would need a scan of the whole pool (``occurred_at`` is in no index, and producer clocks are not
in log order), and the page's own last day would give each page another window.

The query reads only the history rows of the page's competitors in the pool, found by the
history's primary key (arena, category, competitor, position), one pass with no sort: it groups
them by (competitor, day) in a hash aggregate keeping each group's last position, and reads
those few rows back by primary key. Its cost is that pass: a competitor's rows lie scattered
over the whole partition (they are written in log order, all competitors interleaved), so a page
of 100 competitors reads the pool's partition about once (``benchmarks/views.py``). An index
covering ``occurred_at``, ``rating_after`` and ``games`` would make it an index-only scan; it is
not added here, as it would slow every rebuild of the ratings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import sql

from ..errors import bad_parameter, not_found
from ..models.leaderboard_history import BoardHistory, DayRating, RatingSeries
from ..store import ReadStore
from .snapshot import as_float, snapshot
from .snapshot import ratings_table as _r

__all__ = ["MAX_COMPETITORS", "MAX_DAYS", "board_history"]

MAX_COMPETITORS = 100
"""Competitors per page (``limit``, and names in ``competitor``)."""
MAX_DAYS = 366
"""Days per window: a page holds at most 100 x 366 points."""

_DAY = "(h.occurred_at AT TIME ZONE 'UTC')::date"

# Each competitor's last change per day in the window, and its last change before the window
# (day NULL), read back by primary key.
_POINTS = sql.SQL(
    "WITH d AS (SELECT h.competitor, " + _DAY + " AS day, max(h.position) AS position "
    "FROM {history} h WHERE h.arena = %(arena)s AND h.category = %(category)s "
    "AND h.competitor = ANY(%(competitors)s) GROUP BY 1, 2), "
    "p AS (SELECT competitor, day, position FROM d WHERE day BETWEEN %(since)s AND %(until)s "
    "UNION ALL SELECT competitor, NULL, max(position) FROM d WHERE day < %(since)s "
    "GROUP BY competitor) "
    "SELECT p.competitor, p.day, h.rating_after, h.games, p.position, "
    + _DAY
    + " FROM p JOIN {history} h ON h.arena = %(arena)s AND h.category = %(category)s "
    "AND h.competitor = p.competitor AND h.position = p.position "
    "ORDER BY p.competitor, p.day NULLS FIRST"
).format(history=_r("rating_history"))


def _shift(day: date, days: int) -> date:
    """``day`` moved by ``days``, kept within the calendar (year 1 to 9999)."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _window(since: date | None, until: date | None) -> tuple[date, date]:
    """The days covered. Without ``until``: today (UTC), or with ``since`` at most the widest
    window from it; without ``since``: the widest window ending on ``until``."""
    if until is not None:
        end = until
    elif since is not None:
        end = max(since, min(datetime.now(UTC).date(), _shift(since, MAX_DAYS - 1)))
    else:
        end = datetime.now(UTC).date()
    start = since or _shift(end, 1 - MAX_DAYS)
    if start > end:
        raise bad_parameter("since", f"Query parameter `since` ({start}) is after `until` ({end}).")
    if (end - start).days + 1 > MAX_DAYS:
        raise bad_parameter(
            "since",
            f"The window {start} to {end} is {(end - start).days + 1} days: at most {MAX_DAYS} "
            "days per request (narrow `since` / `until`).",
        )
    return start, end


async def board_history(
    reads: ReadStore,
    arena: str,
    category: str,
    limit: int,
    offset: int,
    since: date | None = None,
    until: date | None = None,
    competitors: list[str] | None = None,
) -> BoardHistory:
    """The page's competitors (the leaderboard's order, or those named) with their daily
    ratings from ``since`` to ``until``."""
    if competitors is not None and len(competitors) > MAX_COMPETITORS:
        raise bad_parameter(
            "competitor",
            f"Query parameter `competitor` names {len(competitors)} competitors: at most "
            f"{MAX_COMPETITORS}.",
        )
    start, end = _window(since, until)
    params: dict[str, Any] = {
        "arena": arena,
        "category": category,
        "limit": limit,
        "offset": offset,
        "named": sorted(set(competitors or ())),
    }
    if competitors is None:
        members = sql.SQL(
            "SELECT competitor, rating FROM {} WHERE arena = %(arena)s AND category = %(category)s"
        ).format(_r("ratings"))
    else:
        members = sql.SQL(
            "SELECT n.c AS competitor, r.rating FROM unnest(%(named)s::text[]) AS n(c) "
            "LEFT JOIN {} r ON r.arena = %(arena)s AND r.category = %(category)s "
            "AND r.competitor = n.c"
        ).format(_r("ratings"))
    async with snapshot(reads) as snap:
        position, _ = await snap.positions()
        total, page, known = await snap.many(
            (sql.SQL("SELECT count(*) FROM ({}) m").format(members), params),
            (
                sql.SQL(
                    "SELECT * FROM ({}) m ORDER BY rating DESC NULLS LAST, competitor "
                    "LIMIT %(limit)s OFFSET %(offset)s"
                ).format(members),
                params,
            ),
            (
                sql.SQL("SELECT competitor FROM {} WHERE competitor = ANY(%(named)s)").format(
                    _r("competitors")
                ),
                params,
            ),
        )
        unknown = sorted(set(params["named"]) - {r[0] for r in known})
        if unknown:
            raise not_found(f"Unknown competitor {unknown[0]!r}.")
        rows = await snap.rows(
            _POINTS, {**params, "competitors": [r[0] for r in page], "since": start, "until": end}
        )
    by_competitor: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_competitor.setdefault(row[0], []).append(row)
    series = []
    for competitor, rating in page:
        points = by_competitor.get(competitor, [])
        before = [_point(r) for r in points if r[1] is None]
        series.append(
            RatingSeries(
                competitor=competitor,
                rating=as_float(rating),
                before=before[0] if before else None,
                days=[_point(r) for r in points if r[1] is not None],
            )
        )
    return BoardHistory(
        arena=arena, category=category, system="elo", since=start, until=end,
        total=int(total[0][0]), limit=limit, offset=offset, position=position, series=series,
    )  # fmt: skip


def _point(row: tuple[Any, ...]) -> DayRating:
    _, day, rating, games, position, own_day = row
    return DayRating(
        day=day if day is not None else own_day,
        rating=as_float(rating),
        games=int(games),
        position=int(position),
    )
