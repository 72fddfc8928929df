"""SIGTERM drains in-flight batches: ``arbiter ingest`` and ``arbiter project``, run as separate
processes, are told to stop while a batch is in flight; each finishes that batch (the ingest
appends and acks it, the projector commits it), exits 0, and a restarted service ends exactly
where an uninterrupted run would: every published event stored once, nothing left un-acked,
read models equal to a rebuild."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from arbiter.adapters.bus import INGEST_DURABLE, REJECTED_STREAM, STREAM, Publisher, connect
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.projections import PROJECTIONS, ratings, results
from arbiter.services.processes.audit import verify
from arbiter.services.processes.rebuild import rebuild
from nats.js.errors import NotFoundError

from .helpers import battle, raw

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = [f"m{i}" for i in range(12)]


def _service(command: str, database_url: str, nats_url: str, **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url,
               **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "arbiter.services.cli", command], env=environ)


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then the exit status (killing it if it does not exit in time)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"did not exit within {timeout}s of SIGTERM") from None


async def _consumer(js: Any) -> Any:
    return await js.consumer_info(STREAM, INGEST_DURABLE)


async def _settled(js: Any, timeout: float = 10) -> Any:
    """Consumer info once nothing is delivered-but-unacked (acks are processed asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await _consumer(js)
        if info.num_ack_pending == 0 or time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.05)


async def test_sigterm_lets_the_ingest_finish_its_batch(database_url: str, nats_url: str) -> None:
    n = 8_000
    payloads = [
        raw(battle(i, NAMES[i % 12], NAMES[(i * 5 + 1) % 12], "ab"[i % 2]))
        for i in range(n)
        if NAMES[i % 12] != NAMES[(i * 5 + 1) % 12]
    ]
    ids = {f"ev-{i}" for i in range(n) if NAMES[i % 12] != NAMES[(i * 5 + 1) % 12]}
    count = "SELECT count(*) FROM arbiter_event_ids"
    nc = await connect(nats_url)
    js = nc.jetstream()
    publisher_done = asyncio.Event()

    async def publish_steadily() -> None:
        async with Publisher(nats_url) as pub:
            for i in range(0, len(payloads), 100):
                await pub.publish(payloads[i : i + 100])
                await asyncio.sleep(0.01)
        publisher_done.set()

    # Each batch sleeps 0.4 s between its committed append and its acks: a window in which the
    # batch is provably in flight (stored, not acked).
    proc = _service("ingest", database_url, nats_url, ARBITER_FAULT_SLEEP_BEFORE_ACK="0.4")
    publisher = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await _consumer(js)
                break
            except NotFoundError:
                await asyncio.sleep(0.1)
        publisher = asyncio.create_task(publish_steadily())
        while time.monotonic() < deadline:
            stored = await asyncio.to_thread(_scalar, database_url, count)
            acked = (await _consumer(js)).ack_floor.stream_seq
            if 1_000 <= stored < n // 2 and stored > acked:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the ingest never had a batch in flight")
        assert not publisher_done.is_set()  # SIGTERM in the middle of a steady stream
        assert await asyncio.to_thread(_stop, proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # The batch in flight at the signal was acked before the exit, and nothing handed to the
    # stopped ingest is left unacknowledged: what it received, it stored and acked.
    info = await _settled(js)
    stored = await asyncio.to_thread(_scalar, database_url, count)
    assert info.num_ack_pending == 0
    assert info.ack_floor.stream_seq == info.delivered.stream_seq == stored > acked

    proc = _service("ingest", database_url, nats_url)
    try:
        assert publisher is not None
        await asyncio.wait_for(publisher, 120)
        deadline = time.monotonic() + 120
        while await asyncio.to_thread(_scalar, database_url, count) < len(ids):
            assert time.monotonic() < deadline, "the restarted ingest did not drain the stream"
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(_stop, proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with psycopg.connect(database_url) as conn:
        stored_ids = [r[0] for r in conn.execute("SELECT event_id FROM arbiter_event_ids")]
        events = conn.execute("SELECT count(*) FROM arbiter_events").fetchone()
    assert sorted(stored_ids) == sorted(ids) and events == (len(ids),)  # each exactly once
    info = await _settled(js)
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert info.ack_floor.stream_seq == len(ids)
    try:
        rejected = (await js.stream_info(REJECTED_STREAM)).state.messages
    except NotFoundError:
        rejected = 0
    assert rejected == 0
    await nc.close()


def _positions(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            name: int(conn.execute(f"SELECT position FROM {spec.schema}.tracking").fetchone()[0])
            for name, spec in PROJECTIONS.items()
        }


def _in_transaction(url: str) -> bool:
    return bool(
        _scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'",
        )
    )


def _read_models(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        return {
            "ratings": ratings.stored_rows(cur, "arbiter_ratings"),
            "history": sorted(ratings.stored_history(cur, "arbiter_ratings"), key=repr),
            "results": results.stored_rows(cur, "arbiter_results"),
        }


def test_sigterm_lets_the_projector_commit_its_batch(database_url: str, nats_url: str) -> None:
    batch = 100
    with EventLog(database_url) as log:
        for chunk in range(10):
            log.append(
                BattleCompleted(
                    event_id=f"e{chunk}-{i}", occurred_at=T0, battle_id=f"b{chunk}-{i}",
                    a=NAMES[i % 12], b=NAMES[(i * 7 + 1) % 12], outcome="ab"[i % 3 % 2]
                    if i % 5 else "tie", category="c1" if i % 2 else None,
                )
                for i in range(500)
                if NAMES[i % 12] != NAMES[(i * 7 + 1) % 12]
            )  # fmt: skip
        total = log.store.head()

    # Every batch sleeps 0.3 s inside its transaction, after its writes: a backlog of ~50 batches
    # per projection, each in flight for a while.
    proc = _service("project", database_url, nats_url, ARBITER_PROJECTOR_BATCH=str(batch),
                    ARBITER_FAULT_SLEEP_IN_TX="0.3")  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while min(_positions(database_url).values()) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        while not _in_transaction(database_url) and time.monotonic() < deadline:
            time.sleep(0.02)
        at_signal = _positions(database_url)
        assert proc.poll() is None and min(at_signal.values()) > 0
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped = _positions(database_url)
    assert not _in_transaction(database_url)
    for name in PROJECTIONS:
        # Whole batches only; at most the batch in flight and one begun just before the signal.
        assert stopped[name] % batch == 0 or stopped[name] == total
        assert at_signal[name] <= stopped[name] <= at_signal[name] + 2 * batch
    assert sum(stopped.values()) > sum(at_signal.values())  # in-flight work committed, not lost
    assert max(stopped.values()) < total  # it stopped mid catch-up, not at the end

    proc = _service("project", database_url, nats_url, ARBITER_PROJECTOR_BATCH=str(batch))
    try:
        deadline = time.monotonic() + 120
        while min(_positions(database_url).values()) < total:
            assert time.monotonic() < deadline, "the restarted projector did not catch up"
            time.sleep(0.1)
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    report = verify(database_url)
    assert report.ok, report.mismatches
    incremental = _read_models(database_url)
    for spec in PROJECTIONS.values():
        rebuild(database_url, spec)
    assert _read_models(database_url) == incremental
    assert verify(database_url).digest == report.digest
