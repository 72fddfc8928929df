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
from psycopg.pq import TransactionStatus

from ..store import SNAPSHOT_BEGIN, ReadStore

__all__ = [
    "POSITIONS",
    "RATINGS",
    "RESULTS",
    "Query",
    "Rows",
    "Snapshot",
    "as_float",
    "positions_of",
    "ratings_table",
    "results_table",
    "settings_of",
    "settings_query",
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
    """Queries in one read-only ``REPEATABLE READ`` transaction.

    The transaction starts with the first queries, in their pipeline: ``BEGIN ISOLATION LEVEL
    REPEATABLE READ READ ONLY`` is sent with them, not as round trips of its own (psycopg's
    ``transaction()`` sends ``BEGIN`` and waits, and the ``SET TRANSACTION`` after it waited
    again). A round trip is cheap on a quiet machine, but while events stream in the server's
    processes compete for the CPU and each one waits to be scheduled: measured with
    benchmarks/api_load.py, a hot read's recomputation spent most of its time in them, and every
    request for that route waits for it (:mod:`..single_flight`)."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.begun = False
        self.ended = False
        """Ended by ``many(..., last=True)``: a later query would read outside the snapshot."""

    def _open(self) -> None:
        if self.ended:
            raise RuntimeError("the snapshot has ended: a query now would read outside it")

    async def rows(self, query: sql.Composable, params: Any = ()) -> Rows:
        self._open()
        if not self.begun:
            return (await self.many((query, params)))[0]
        cur = await self.conn.execute(query, params)
        return await cur.fetchall()

    async def many(self, *queries: Query, last: bool = False) -> list[Rows]:
        """Independent queries, pipelined (one round trip). ``last``: the snapshot's last
        queries: its ``ROLLBACK`` goes in their pipeline rather than in a round trip of its own
        when the block ends (the answer is recomputed at every commit while events stream in),
        and any query after them is refused."""
        self._open()
        async with self.conn.pipeline():
            if not self.begun:
                await self.conn.execute(SNAPSHOT_BEGIN)
                self.begun = True
            cursors = [await self.conn.execute(q, p) for q, p in queries]
            if last:
                await self.conn.execute(_END)
        self.ended = last
        return [await c.fetchall() for c in cursors]

    async def value(self, query: sql.Composable, params: Any = (), default: Any = 0) -> Any:
        rows = await self.rows(query, params)
        return rows[0][0] if rows and rows[0][0] is not None else default

    async def positions(self) -> tuple[int, int]:
        """``(ratings position, results position)``."""
        return positions_of(await self.rows(*POSITIONS))

    async def settings(self, arena: str) -> tuple[float, float, float]:
        """The arena's ``(scale, base, initial)`` now (defaults 400, 10, 1500)."""
        return settings_of(await self.rows(*settings_query(arena)))


_END = sql.SQL("ROLLBACK")
"""How a snapshot ends: it wrote nothing."""

POSITIONS: Query = (
    sql.SQL("SELECT ({}), ({})").format(
        tracking.position_query(RATINGS.schema, RATINGS.name),
        tracking.position_query(RESULTS.schema, RESULTS.name),
    ),
    (),
)
"""The query of :meth:`Snapshot.positions`, for a route that pipelines it with others."""


def positions_of(rows: Rows) -> tuple[int, int]:
    """:data:`POSITIONS`'s rows as ``(ratings position, results position)``."""
    (row,) = rows
    return int(row[0] or 0), int(row[1] or 0)


def settings_query(arena: str) -> Query:
    """The query of :meth:`Snapshot.settings`, for a route that pipelines it with others."""
    return (
        sql.SQL("SELECT scale, base, initial FROM {} WHERE arena = %s").format(_r("arenas")),
        (arena,),
    )


def settings_of(rows: Rows) -> tuple[float, float, float]:
    """:func:`settings_query`'s rows as ``(scale, base, initial)`` (defaults 400, 10, 1500)."""
    if not rows:
        d = DEFAULT_SETTINGS
        return d.scale, d.base, d.initial
    return float(rows[0][0]), float(rows[0][1]), float(rows[0][2])


@contextlib.asynccontextmanager
async def snapshot(reads: ReadStore) -> AsyncIterator[Snapshot]:
    """A :class:`Snapshot` on a connection of the read pool, ended (rolled back: it wrote
    nothing) by its last queries (``many(..., last=True)``) or else when the block ends. The
    connection is in autocommit mode meanwhile, so that psycopg sends no ``BEGIN`` of its own:
    the snapshot's is explicit."""
    async with reads.pool.connection() as conn:
        autocommit = conn.autocommit  # the pool's connections are (see ReadStore)
        await conn.set_autocommit(True)
        snap = Snapshot(conn)
        try:
            yield snap
        except BaseException:
            if snap.begun and not snap.ended and not conn.broken:
                with contextlib.suppress(Exception):
                    await conn.execute(_END)
            raise
        else:
            if snap.begun and not snap.ended:
                await conn.execute(_END)
        finally:
            if conn.info.transaction_status == TransactionStatus.IDLE:
                await conn.set_autocommit(autocommit)  # else the pool rolls back or drops it


def where_all(conditions: list[sql.Composable]) -> sql.Composable:
    """``WHERE`` the conditions all hold (nothing when there are none)."""
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)


def as_float(value: Any) -> float | None:
    """A numeric column as a float, NULL as None."""
    return None if value is None else float(value)
