"""The competitor registry, per arena or global, as ``GET /competitors`` serves it.

Presence and status are per arena (issue 13 point 7). ``/competitors?arena=X`` lists only the
competitors the ratings model has in ``arena_competitors`` for X: registered there (a
``competitor.registered`` whose envelope ``arena`` is X) or seen in one of X's results (a
battle's side, awaiting votes or not, or a game's player). Each row's ``status`` and
``rated_results`` are those of X's arena-wide pool, and ``registered`` says whether a
registration in X named it. Before, every competitor of every arena was listed with status
``untested`` in an arena it had never been near (69 rows for an arena of 8).

Without ``arena`` the list is the global registry: every competitor registered or seen
anywhere, ``registered`` true once any registration named it, and ``status`` the most advanced
it has reached in any arena (``rated_results`` the most rated results it has in one arena-wide
pool), so ``status=untested`` means "never rated anywhere".

Retirement stays global: ``competitor.retired`` retires the competitor in every arena (the
ingest refuses its results everywhere, ``competitor_retired``), so ``retired`` wins in every
arena's view. A per-arena retirement would need the ingest's decision to be per arena too.
"""

from __future__ import annotations

from typing import Any

from arbiter.domain.placement import PLACEMENT_GAMES
from psycopg import sql

from ..models.ratings import CompetitorInfo, CompetitorList
from ..store import ReadStore
from .snapshot import ratings_table as _r
from .snapshot import snapshot

__all__ = ["competitors"]

_COLUMNS = sql.SQL(
    "c.competitor, c.name, c.provider, c.meta, {registered}, c.first_position, "
    "c.last_position, c.retired, c.retired_reason, coalesce(r.games, 0)"
)
_IN_ARENA = sql.SQL(
    "{presence} p JOIN {competitors} c ON c.competitor = p.competitor "
    "LEFT JOIN {ratings} r ON r.arena = p.arena AND r.category = '' "
    "AND r.competitor = p.competitor WHERE p.arena = %(arena)s"
).format(presence=_r("arena_competitors"), competitors=_r("competitors"), ratings=_r("ratings"))
_ANYWHERE = sql.SQL(
    "{competitors} c LEFT JOIN (SELECT competitor, max(games) AS games FROM {ratings} "
    "WHERE category = '' GROUP BY competitor) r ON r.competitor = c.competitor WHERE true"
).format(competitors=_r("competitors"), ratings=_r("ratings"))
_STATUS = sql.SQL(
    "CASE WHEN c.retired THEN 'retired' WHEN coalesce(r.games, 0) = 0 THEN 'untested' "
    "WHEN r.games < {} THEN 'testing' ELSE 'ranked' END"
).format(sql.Literal(PLACEMENT_GAMES))
""":func:`arbiter.domain.placement.registry_status` as SQL, for the ``status`` filter (the rows'
own status comes from ``registry_status`` itself)."""


async def competitors(
    reads: ReadStore, limit: int, offset: int, arena: str | None, status: str | None
) -> CompetitorList:
    """The registry by id: of one arena (its members, status there) or of every arena."""
    if arena is None:
        source, registered = _ANYWHERE, sql.SQL("c.registered")
    else:
        source, registered = _IN_ARENA, sql.SQL("p.registered")
    where = sql.SQL("") if status is None else sql.SQL(" AND {} = %(status)s").format(_STATUS)
    columns = _COLUMNS.format(registered=registered)
    params: dict[str, Any] = {"arena": arena, "status": status, "limit": limit, "offset": offset}
    async with snapshot(reads) as snap:
        position, _ = await snap.positions()
        total, rows = await snap.many(
            (sql.SQL("SELECT count(*) FROM {}{}").format(source, where), params),
            (
                sql.SQL(
                    "SELECT {} FROM {}{} ORDER BY c.competitor LIMIT %(limit)s OFFSET %(offset)s"
                ).format(columns, source, where),
                params,
            ),
        )
    return CompetitorList(
        competitors=[CompetitorInfo(**ReadStore._info(r)) for r in rows],
        total=int(total[0][0]),
        limit=limit,
        offset=offset,
        position=position,
        arena=arena,
        status=status,
    )
