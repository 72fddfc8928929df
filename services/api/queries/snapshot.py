"""One snapshot per request: the read-only ``REPEATABLE READ`` transaction every query of a
request runs in, and the pieces of SQL every query module shares (the two read models' tables).

Every request reads in one snapshot: :func:`snapshot` opens a ``REPEATABLE READ, READ ONLY``
transaction on the API's pool and every query of the request runs in it (sequentially where a
query depends on an earlier answer, pipelined where not), so a page, its total and the positions
it reports always agree. No query module runs a query per row.

Two read models are involved, each at its own log position: ``arbiter_ratings`` (ratings,
history, pairs, registry; ``position`` in the bodies) and ``arbiter_results`` (battles, games,
votes, trials, metric sums; ``results_position``). They are folded by separate projectors, so
one may briefly be ahead of the other; both positions are reported so a client can tell.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from arbiter.domain.elo import DEFAULT_SETTINGS
from arbiter.projections import PROJECTIONS, tracking
from psycopg import AsyncConnection, sql

from ..store import ReadStore

__all__ = [
    "RATINGS",
    "RESULTS",
    "Query",
    "Rows",
    "Snapshot",
    "as_float",
    "ratings_table",
    "results_table",
    "snapshot",
    "where_all",
]

Rows = list[tuple[Any, ...]]
Query = tuple[sql.Composable, Sequence[Any] | Mapping[str, Any]]

RATINGS = PROJECTIONS["ratings"]
RESULTS = PROJECTIONS["results"]


def ratings_table(table: str) -> sql.Identifier:
    """A table of the ratings read model."""
    return sql.Identifier(RATINGS.schema, table)


def results_table(table: str) -> sql.Identifier:
    """A table of the results read model."""
    return sql.Identifier(RESULTS.schema, table)


_r = ratings_table
_s = results_table


# -- one snapshot per request -------------------------------------------------------------------


class Snapshot:
    """Queries in one read-only ``REPEATABLE READ`` transaction."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def rows(self, query: sql.Composable, params: Any = ()) -> Rows:
        cur = await self.conn.execute(query, params)
        return await cur.fetchall()

    async def many(self, *queries: Query) -> list[Rows]:
        """Independent queries, pipelined (one round trip)."""
        async with self.conn.pipeline():
            cursors = [await self.conn.execute(q, p) for q, p in queries]
        return [await c.fetchall() for c in cursors]

    async def value(self, query: sql.Composable, params: Any = (), default: Any = 0) -> Any:
        rows = await self.rows(query, params)
        return rows[0][0] if rows and rows[0][0] is not None else default

    async def positions(self) -> tuple[int, int]:
        """``(ratings position, results position)``."""
        (row,) = await self.rows(
            sql.SQL("SELECT ({}), ({})").format(
                tracking.position_query(RATINGS.schema, RATINGS.name),
                tracking.position_query(RESULTS.schema, RESULTS.name),
            )
        )
        return int(row[0] or 0), int(row[1] or 0)

    async def settings(self, arena: str) -> tuple[float, float, float]:
        """The arena's ``(scale, base, initial)`` now (defaults 400, 10, 1500)."""
        rows = await self.rows(
            sql.SQL("SELECT scale, base, initial FROM {} WHERE arena = %s").format(_r("arenas")),
            (arena,),
        )
        if not rows:
            d = DEFAULT_SETTINGS
            return d.scale, d.base, d.initial
        return float(rows[0][0]), float(rows[0][1]), float(rows[0][2])


@contextlib.asynccontextmanager
async def snapshot(reads: ReadStore) -> AsyncIterator[Snapshot]:
    async with reads.pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield Snapshot(conn)


def where_all(conditions: list[sql.Composable]) -> sql.Composable:
    """``WHERE`` the conditions all hold (nothing when there are none)."""
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)


def as_float(value: Any) -> float | None:
    """A numeric column as a float, NULL as None."""
    return None if value is None else float(value)
