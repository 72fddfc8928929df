"""The read snapshots (``ReadStore.snapshot`` and ``queries.snapshot.snapshot``) against real
PostgreSQL: each sends its ``BEGIN`` in the pipeline of its first queries (issue 15 point 1:
fewer round trips per recomputed hot read), so each switches its pooled connection's mode for a
moment. The connection must go back to the pool as it came: autocommit, outside a transaction,
after an answer and after a failure alike, or the next user of it (a write on the primary pool
such as an API key) would run in a transaction nobody commits."""

from __future__ import annotations

import psycopg
import pytest
from arbiter.services.api.queries.snapshot import POSITIONS, snapshot
from arbiter.services.api.store import ReadStore
from psycopg import sql
from psycopg.pq import TransactionStatus

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
