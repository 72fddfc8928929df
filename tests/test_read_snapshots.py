"""The read snapshots (``ReadStore.snapshot`` and ``queries.snapshot.snapshot``) against real
PostgreSQL: each sends its ``BEGIN`` in the pipeline of its first queries (issue 15 point 1:
fewer round trips per recomputed hot read), so each switches its pooled connection's mode for a
moment. The connection must go back to the pool as it came: autocommit, outside a transaction,
after an answer and after a failure alike, or the next user of it (a write on the primary pool
such as an API key) would run in a transaction nobody commits."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from arbiter.services.api import store as store_module
from arbiter.services.api.queries.snapshot import POSITIONS, snapshot
from arbiter.services.api.store import ReadStore
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

BAD = (sql.SQL("SELECT 1 / 0"), ())


async def _idle_autocommit(store: ReadStore, primary: bool) -> None:
    async with (store.primary if primary else store.pool).connection() as conn:
        assert conn.autocommit
        assert conn.info.transaction_status == TransactionStatus.IDLE


@pytest.mark.parametrize("primary", [False, True])
async def test_store_snapshot_returns_its_connection_as_it_came(
    database_url: str, primary: bool
) -> None:
    store = ReadStore(database_url, max_size=1)
    await store.open()
    try:
        (rows,) = await store.snapshot(POSITIONS, primary=primary)
        assert len(rows) == 1
        await _idle_autocommit(store, primary)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await store.snapshot(POSITIONS, BAD, primary=primary)
        await _idle_autocommit(store, primary)
    finally:
        await store.close()


async def test_query_snapshot_returns_its_connection_as_it_came(database_url: str) -> None:
    store = ReadStore(database_url, max_size=1)
    await store.open()
    try:
        async with snapshot(store) as snap:
            position, _ = await snap.positions()
            (again,) = await snap.many(POSITIONS)
            assert again[0][0] == position
        await _idle_autocommit(store, False)
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with snapshot(store) as snap:
                await snap.positions()
                await snap.rows(*BAD)
        await _idle_autocommit(store, False)
        with pytest.raises(LookupError):  # the route's own error, inside the snapshot
            async with snapshot(store) as snap:
                await snap.positions()
                raise LookupError
        await _idle_autocommit(store, False)
    finally:
        await store.close()


async def test_a_connection_back_a_moment_ago_is_not_checked_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool checks a connection with a round trip before handing it out, unless it came
    back in good order less than a second ago (a hot read recomputed at every commit paid one
    round trip in four for it). The cost: a connection broken meanwhile fails one read, and the
    pool drops it."""
    checks: list[int] = []
    real_check = AsyncConnectionPool.check_connection

    async def counted(conn: psycopg.AsyncConnection[Any]) -> None:
        checks.append(1)
        await real_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    store = ReadStore(database_url, max_size=1)
    await store.open()
    try:
        await store.snapshot(POSITIONS)
        first = len(checks)
        await store.snapshot(POSITIONS)
        await store.snapshot(POSITIONS)
        assert len(checks) == first  # back a moment ago: not checked
        monkeypatch.setattr(store_module, "CHECKED_AFTER_S", 0.0)
        await store.snapshot(POSITIONS)
        assert len(checks) == first + 1

        monkeypatch.setattr(store_module, "CHECKED_AFTER_S", 60.0)
        async with store.pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await store.snapshot(POSITIONS)
        (rows,) = await store.snapshot(POSITIONS)  # a new connection
        assert len(rows) == 1
    finally:
        await store.close()


async def test_a_snapshot_ends_in_the_pipeline_of_its_last_queries(database_url: str) -> None:
    """``many(..., last=True)`` sends the snapshot's ``ROLLBACK`` in the pipeline of its last
    queries (a hot read's recomputation saves the round trip the block's end would take), so a
    query after it would read outside the snapshot: it is refused, never run. The connection
    goes back to the pool as it came."""
    store = ReadStore(database_url, max_size=1)
    await store.open()
    try:
        async with snapshot(store) as snap:
            (first,) = await snap.many(POSITIONS)
            (again,) = await snap.many(POSITIONS, last=True)
            assert again == first
            assert snap.conn.info.transaction_status == TransactionStatus.IDLE  # ended
            for late in (snap.many(POSITIONS), snap.rows(*POSITIONS), snap.positions()):
                with pytest.raises(RuntimeError, match="ended"):
                    await late
        await _idle_autocommit(store, False)
        async with snapshot(store) as snap:  # the first queries may be the last
            (rows,) = await snap.many(POSITIONS, last=True)
            assert len(rows) == 1
        await _idle_autocommit(store, False)
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with snapshot(store) as snap:
                await snap.many(POSITIONS, BAD, last=True)
        await _idle_autocommit(store, False)
        with pytest.raises(LookupError):  # the route's own error after its last queries
            async with snapshot(store) as snap:
                await snap.many(POSITIONS, last=True)
                raise LookupError
        await _idle_autocommit(store, False)
    finally:
        await store.close()


async def test_a_competitor_is_read_in_one_snapshot(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /competitors/{id}`` (a hot read, recomputed at every commit of either model) reads
    its registry entry, standings, game totals, recent games and both positions in one
    snapshot on one pooled connection: it took two (four round trips), and its two positions
    came from different moments."""
    from arbiter.services.api import create_app
    from litestar.testing import AsyncTestClient

    from .api_events import battle, game, seed

    seed(database_url, [battle("b1", "a", "b", at=1), game("g1", ("a", 1), ("b", 2), at=2)])
    taken: list[int] = []
    real = AsyncConnectionPool.connection

    def counted(self: AsyncConnectionPool[Any], *args: Any, **kw: Any) -> Any:
        taken.append(1)
        return real(self, *args, **kw)

    monkeypatch.setattr(AsyncConnectionPool, "connection", counted)
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        await client.get("/competitors/b")  # the key check's answer is kept a moment (auth)
        taken.clear()
        body = (await client.get("/competitors/a", params={"recent_games": 5})).json()
        assert len(taken) == 1
        assert body["competitor"] == "a" and body["recent_games"][0]["game_id"] == "g1"
        assert (body["position"], body["results_position"]) == (2, 2)
        assert [s["games"] for s in body["standings"]] == [2]
        taken.clear()
        assert (await client.get("/competitors/nobody")).status_code == 404
        assert len(taken) == 1
