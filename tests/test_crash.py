"""A projector process killed with SIGKILL in the middle of a batch, then restarted, ends with
the same read model as an uninterrupted run (the audit replay) and as a rebuild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.projections import PROJECTIONS, ratings
from arbiter.services.processes.audit import verify
from arbiter.services.processes.rebuild import rebuild

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _projector(database_url: str, nats_url: str, **env: str) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url,
               "ARBITER_PROJECTOR_BATCH": "400", **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "arbiter.services.cli", "project"], env=environ)


def _position(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT position FROM arbiter_ratings.tracking").fetchone()[0])


def _in_transaction(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        ).fetchone()
        return bool(row and row[0])


def _table(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        return ratings.stored_rows(cur, "arbiter_ratings")


def test_projector_sigkill_mid_batch_then_restart(database_url: str, nats_url: str) -> None:
    names = [f"m{i}" for i in range(12)]
    with EventLog(database_url) as log:
        for chunk in range(5):
            log.append(
                BattleCompleted(
                    event_id=f"e{chunk}-{i}", occurred_at=T0, battle_id=f"b{chunk}-{i}",
                    a=names[i % 12], b=names[(i * 7 + 1) % 12], outcome="ab"[i % 3 % 2]
                    if i % 5 else "tie", category="c1" if i % 2 else None,
                )
                for i in range(400)
                if names[i % 12] != names[(i * 7 + 1) % 12]
            )  # fmt: skip
        total = log.store.head()

    proc = _projector(database_url, nats_url, ARBITER_FAULT_SLEEP_IN_TX="0.6")
    try:
        deadline = time.monotonic() + 60
        while _position(database_url) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        while not _in_transaction(database_url) and time.monotonic() < deadline:
            time.sleep(0.02)  # the second batch is written but not committed
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _position(database_url)
    assert 0 < killed_at < total
    assert killed_at % 400 == 0 or killed_at == total  # a batch is all or nothing

    proc = _projector(database_url, nats_url)
    try:
        deadline = time.monotonic() + 60
        while _position(database_url) < total and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert _position(database_url) == total

    report = verify(database_url)
    assert report.ok, report.mismatches
    after_crash = _table(database_url)
    rebuild(database_url, PROJECTIONS["ratings"])
    assert _table(database_url) == after_crash
    assert verify(database_url).digest == report.digest
