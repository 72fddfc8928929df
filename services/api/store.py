"""The API's read store: its async connection pool and the reads of the competitor registry, a
competitor's rating history and the log (the other routes' SQL is in :mod:`.queries`, on this
same pool). With ``ARBITER_READ_DATABASE_URL`` that pool is on a streaming replica and a second,
smaller one on the primary takes the writes and the reads that must see them (:mod:`.replica`).

Every request that needs more than one query runs them in a single ``REPEATABLE READ, READ ONLY``
transaction, pipelined (one round trip), so a page, its total and the projection position it
reports always come from the same snapshot. No query runs per row.

The log is read straight from the event store's table (``public.arbiter_events``) and its state
decoded with the store's own :class:`~arbiter.adapters.eventstore.StoredState` msgpack schema, so
the API shares the pool and the event loop instead of the store's synchronous recorder.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Sequence
from typing import Any

import msgspec
from arbiter.adapters.eventstore import StoredState
from arbiter.domain.elo import DEFAULT_SETTINGS
from arbiter.domain.placement import registry_status
from arbiter.projections import PROJECTIONS, tracking
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from .models.log import LoggedEvent
from .models.ratings import (
    CompetitorDetail,
    History,
    HistoryEntry,
    Standing,
)

__all__ = ["EVENT_IDS", "LOG", "Query", "ReadStore", "Rows"]

LOG = sql.Identifier("public", "arbiter_events")
EVENT_IDS = sql.Identifier("public", "arbiter_event_ids")
RATINGS = PROJECTIONS["ratings"]
_STATE = msgspec.msgpack.Decoder(StoredState)

Query = tuple[sql.Composable, Sequence[Any] | dict[str, Any]]
Rows = list[tuple[Any, ...]]


_HISTORY_SPLIT_ROWS = 600
"""History pages ending at most this far in are read by :meth:`ReadStore._history_split`
(measured at 1,244 rows: 0.33 against 0.84 ms at offset 0, 0.55 against 0.72 at 500, 1.5
against 0.7 at 1,200)."""


SNAPSHOT_BEGIN = sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
"""How every read starts its snapshot: sent in the pipeline of its first queries."""


def _t(table: str) -> sql.Identifier:
    return sql.Identifier(RATINGS.schema, table)


def _win_rate(wins: int, games: int) -> float:
    return wins / games if games else 0.0


async def _configure(conn: AsyncConnection[Any]) -> None:
    await conn.execute("SET statement_timeout = '15s'")


CHECKED_AFTER_S = 1.0
"""A pooled connection handed out within this many seconds of its return (in good order) is not
checked with a round trip first; an older one is (:func:`_check`)."""
_RETURNED: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()


async def _returned(conn: AsyncConnection[Any]) -> None:
    """The pool's ``reset``: when each connection came back, outside a transaction."""
    _RETURNED[conn] = time.monotonic()


async def _check(conn: AsyncConnection[Any]) -> None:
    """The pool's ``check``: the usual empty query, unless the connection came back in good order
    less than :data:`CHECKED_AFTER_S` ago. Why: the check is a round trip per read, and while
    events stream in every hot read is recomputed 20 to 40 times a second, each waited for by
    all its clients, with each round trip queued behind the other processes for the CPU
    (benchmarks/api_load.py). What it costs: a connection broken in that second (the database
    restarted) fails its next read with a 503, once, and the pool drops it; one idle longer is
    checked as before."""
    if conn.closed or conn.broken or time.monotonic() - _RETURNED.get(conn, 0.0) > CHECKED_AFTER_S:
        await AsyncConnectionPool.check_connection(conn)


class ReadStore:
    """The SQL behind every read route."""

    def __init__(
        self,
        database_url: str,
        *,
        max_size: int = 10,
        timeout: float = 5.0,
        read_url: str | None = None,
    ) -> None:
        self.database_url = database_url
        """The primary: every write, and the reads that must see a write at once."""
        self.read_url = read_url or database_url
        """Where the read routes read: a streaming replica (``ARBITER_READ_DATABASE_URL``) or
        the primary itself (see :mod:`.replica`)."""
        self.max_size = max_size
        self.timeout = timeout
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._primary: AsyncConnectionPool[AsyncConnection[Any]] | None = None

    @property
    def replicated(self) -> bool:
        """Whether reads go to another server than writes."""
        return self.read_url != self.database_url

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        if self._pool is None:
            raise RuntimeError("ReadStore.open() was not called")
        return self._pool

    @property
    def primary(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """The pool on the primary (the read pool itself when there is no replica): writes,
        and the reads that must see this process's own writes (keys, evaluation jobs, the
        digest ``POST /events`` compares a resend with)."""
        if self._primary is None:
            raise RuntimeError("ReadStore.open() was not called")
        return self._primary

    def _new_pool(self, url: str, name: str, max_size: int) -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=self.timeout,
            open=False,
            name=name,
            kwargs={"autocommit": True, "application_name": "arbiter-api"},
            configure=_configure,
            check=_check,
            reset=_returned,
        )

    async def open(self) -> None:
        """Open the pools without waiting: a database that is down now is a 503 later, not a
        failed start."""
        self._pool = self._new_pool(self.read_url, "arbiter-api", self.max_size)
        await self._pool.open(wait=False)
        self._primary = self._pool
        if self.replicated:  # the primary serves few requests: a smaller pool
            self._primary = self._new_pool(
                self.database_url, "arbiter-api-primary", max(2, self.max_size // 2)
            )
            await self._primary.open(wait=False)

    async def close(self) -> None:
        if self._primary is not None and self._primary is not self._pool:
            await self._primary.close()
        self._primary = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def snapshot(
        self, *queries: Query, timeout: float | None = None, primary: bool = False
    ) -> list[Rows]:
        """Run queries in one read-only snapshot, pipelined; their rows, in order (on the
        primary with ``primary``)."""
        # BEGIN with its isolation and the queries in one pipeline: one round trip, not three
        # (see :class:`.queries.snapshot.Snapshot`; the connection pool hands out connections
        # outside a transaction, so the BEGIN here starts one).
        async with (self.primary if primary else self.pool).connection(timeout=timeout) as conn:
            autocommit = conn.autocommit  # the pool's connections are (see _new_pool)
            await conn.set_autocommit(True)
            try:
                async with conn.pipeline():
                    await conn.execute(SNAPSHOT_BEGIN)
                    cursors = [await conn.execute(q, p) for q, p in queries]
                    await conn.execute("ROLLBACK")  # read only: nothing to keep
                return [await c.fetchall() for c in cursors]
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE and not conn.broken:
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
            finally:
                if conn.info.transaction_status == TransactionStatus.IDLE:
                    await conn.set_autocommit(autocommit)

    # -- pieces shared by several reads ---------------------------------------------------------

    @staticmethod
    def _position() -> Query:
        return (tracking.position_query(RATINGS.schema, RATINGS.name), ())

    @staticmethod
    def _head() -> Query:
        return (sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(LOG), ())

    @staticmethod
    def _first(rows: Rows, default: Any = 0) -> Any:
        return rows[0][0] if rows else default

    # -- health ---------------------------------------------------------------------------------

    async def projection_positions(
        self, timeout: float, shown: int = 5
    ) -> tuple[int, list[tuple[str, int, Any, int, list[dict[str, Any]]]]]:
        """The log head and ``(name, position, updated_at, quarantined, first quarantined)`` of
        every projection: how many events its quarantine holds and the first ``shown`` of them
        (``position``, ``event_id``, ``error``)."""
        positions = sql.SQL(" UNION ALL ").join(
            sql.SQL(
                "SELECT projection, position, updated_at, (SELECT count(*) FROM {q}), "
                "(SELECT coalesce(json_agg(x ORDER BY x.position), '[]') FROM (SELECT position, "
                "event_id, error FROM {q} ORDER BY position LIMIT {n}) x) "
                "FROM {t} WHERE projection = {name}"
            ).format(
                q=sql.Identifier(spec.schema, "quarantine"),
                n=sql.Literal(shown),
                t=tracking.table(spec.schema),
                name=sql.Literal(spec.name),
            )
            for spec in PROJECTIONS.values()
        )
        head, rows = await self.snapshot(self._head(), (positions, ()), timeout=timeout)
        return int(self._first(head)), [(r[0], int(r[1]), r[2], int(r[3]), r[4]) for r in rows]

    # -- ratings --------------------------------------------------------------------------------

    _COMPETITOR_COLUMNS = sql.SQL(
        "c.competitor, c.name, c.provider, c.meta, c.registered, c.first_position, "
        "c.last_position, c.retired, c.retired_reason, coalesce(r.games, 0)"
    )
    _COMPETITOR_FROM = sql.SQL(
        "{} c LEFT JOIN {} r ON r.arena = %(arena)s AND r.category = '' "
        "AND r.competitor = c.competitor"
    ).format(_t("competitors"), _t("ratings"))

    @staticmethod
    def _info(row: tuple[Any, ...]) -> dict[str, Any]:
        comp, name, provider, meta, registered, first, last, retired, reason, rated = row
        return {
            "competitor": comp,
            "name": name,
            "provider": provider,
            "meta": meta if isinstance(meta, dict) else {},
            "registered": registered,
            "first_position": int(first),
            "last_position": int(last),
            "retired": bool(retired),
            "retired_reason": reason,
            "status": registry_status(int(rated), bool(retired)),
            "rated_results": int(rated),
        }

    def competitor_queries(self, competitor: str, arena: str = "default") -> list[Query]:
        """The queries of :meth:`competitor` (its entry, the ratings' position, its standings),
        for a read that pipelines them with its own (``GET /competitors/{id}``); read their rows
        with :meth:`competitor_of`."""
        return [
            (
                sql.SQL("SELECT {} FROM {} WHERE c.competitor = %(competitor)s").format(
                    self._COMPETITOR_COLUMNS, self._COMPETITOR_FROM
                ),
                {"competitor": competitor, "arena": arena},
            ),
            self._position(),
            (
                # Rank = 1 + how many sort ahead of it (rating desc, then competitor) on the live
                # leaderboard; the count walks the (arena, category, rating desc) index. The
                # arena-wide board also lists the competitors registered in the arena without a
                # standing, at its initial rating (queries/unplayed.py): they count too.
                sql.SQL(
                    "SELECT r.arena, r.category, 1 + (SELECT count(*) FROM {ratings} o "
                    "WHERE o.arena = r.arena AND o.category = r.category AND o.rating >= r.rating "
                    "AND (o.rating > r.rating OR o.competitor < r.competitor)) "
                    "+ CASE WHEN r.category = '' THEN (SELECT count(*) FROM {presence} p, "
                    "(SELECT coalesce((SELECT c.initial FROM {configs} c WHERE c.arena = r.arena "
                    "ORDER BY c.position DESC LIMIT 1), %(initial)s) AS rating) i "
                    "WHERE p.arena = r.arena AND p.registered AND i.rating >= r.rating "
                    "AND (i.rating > r.rating OR p.competitor < r.competitor) "
                    "AND NOT EXISTS (SELECT 1 FROM {ratings} u WHERE u.arena = p.arena "
                    "AND u.category = '' AND u.competitor = p.competitor)) ELSE 0 END, "
                    "r.rating, r.games, r.wins, r.losses, r.ties, r.last_position, r.last_at "
                    "FROM {ratings} r WHERE r.competitor = %(competitor)s "
                    "ORDER BY r.arena, r.category"
                ).format(
                    ratings=_t("ratings"),
                    presence=_t("arena_competitors"),
                    configs=_t("arena_configs"),
                ),
                {"competitor": competitor, "initial": DEFAULT_SETTINGS.initial},
            ),
        ]

    def competitor_of(self, info: Rows, position: Rows, standings: Rows) -> CompetitorDetail | None:
        """The rows of :meth:`competitor_queries` as the detail, None if the competitor is
        unknown."""
        if not info:
            return None
        return CompetitorDetail(
            **self._info(info[0]),
            position=int(self._first(position)),
            standings=[
                Standing(*row[:8], _win_rate(row[5], row[4]), int(row[8]), row[9])
                for row in standings
            ],
        )

    async def competitor(self, competitor: str, arena: str = "default") -> CompetitorDetail | None:
        """Registry entry (status in ``arena``) plus standings (with rank) in every pool; None if
        unknown."""
        return self.competitor_of(*await self.snapshot(*self.competitor_queries(competitor, arena)))

    _HISTORY_COLUMNS = sql.SQL(
        "position, event_id, occurred_at, arena, category, opponent, score, expected, k, "
        "rating_before, rating_after, kind, games, wins, losses, ties"
    )

    def _history_split(self, competitor: str, arena: str, limit: int, offset: int) -> Query:
        """A page of a competitor's history in one arena, every pool, as the arena-wide pool's
        first rows (in position order along the key) merged with the category pools' (sorted):
        the plain query sorted all its rows in the arena for each page (1,244 for the first 100
        at 40,000 battles, 0.6 ms, twice this one), the API's history route being recomputed at
        every commit while events stream in. Far pages are read the plain way, which is then
        cheaper (:data:`_HISTORY_SPLIT_ROWS`)."""
        part = sql.SQL(
            "(SELECT {columns} FROM {history} WHERE competitor = %(c)s AND arena = %(a)s "
            "AND category {pool} ORDER BY position, category LIMIT %(n)s)"
        )
        pools = [
            part.format(columns=self._HISTORY_COLUMNS, history=_t("rating_history"), pool=pool)
            for pool in (sql.SQL("= ''"), sql.SQL("<> ''"))
        ]
        return (
            sql.SQL(
                "SELECT * FROM ({} UNION ALL {}) h ORDER BY position, arena, category "
                "LIMIT %(limit)s OFFSET %(offset)s"
            ).format(*pools),
            {"c": competitor, "a": arena, "n": offset + limit, "limit": limit, "offset": offset},
        )

    async def history(
        self, competitor: str, arena: str | None, category: str | None, limit: int, offset: int
    ) -> History | None:
        """A competitor's rating changes in log order; None if the competitor is unknown."""
        where = [sql.SQL("competitor = %s")]
        params: list[Any] = [competitor]
        if arena is not None:
            where.append(sql.SQL("arena = %s"))
            params.append(arena)
        if category is not None:
            where.append(sql.SQL("category = %s"))
            params.append(category)
        cond = sql.SQL(" AND ").join(where)
        page: Query = (
            sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY position, arena, category").format(
                self._HISTORY_COLUMNS, _t("rating_history"), cond
            )
            + sql.SQL(" LIMIT %s OFFSET %s"),
            [*params, limit, offset],
        )
        if arena is not None and category is None and offset + limit <= _HISTORY_SPLIT_ROWS:
            page = self._history_split(competitor, arena, limit, offset)
        known, position, total, rows = await self.snapshot(
            (
                sql.SQL("SELECT 1 FROM {} WHERE competitor = %s").format(_t("competitors")),
                (competitor,),
            ),
            self._position(),
            (
                sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_t("rating_history"), cond),
                params,
            ),
            page,
        )
        if not known:
            return None
        return History(
            competitor=competitor,
            arena=arena,
            category=category,
            total=int(self._first(total)),
            limit=limit,
            offset=offset,
            position=int(self._first(position)),
            history=[
                HistoryEntry(*row[:11], None if row[10] is None else row[10] - row[9], *row[11:])
                for row in rows
            ],
        )

    # -- the log --------------------------------------------------------------------------------

    @staticmethod
    def _logged(position: int, state: bytes) -> LoggedEvent:
        stored = _STATE.decode(state)
        return LoggedEvent(position=int(position), recorded_at=stored.timestamp, event=stored.body)

    async def recorded_digest(self, event_id: str) -> bytes | None:
        """The content digest the log holds for ``event_id``, or None when it holds no such id
        (what ``POST /events`` compares a publish with, to answer a conflict at once)."""
        (rows,) = await self.snapshot(  # the primary: the log's latest, not the replica's
            (sql.SQL("SELECT digest FROM {} WHERE event_id = %s").format(EVENT_IDS), (event_id,)),
            primary=True,
        )
        return bytes(rows[0][0]) if rows else None

    async def event(self, event_id: str) -> LoggedEvent | None:
        (rows,) = await self.snapshot(
            (
                sql.SQL(
                    "SELECT e.notification_id, e.state FROM {ids} i JOIN {log} e "
                    "ON e.notification_id = i.notification_id WHERE i.event_id = %s"
                ).format(ids=EVENT_IDS, log=LOG),
                (event_id,),
            )
        )
        return self._logged(*rows[0]) if rows else None
