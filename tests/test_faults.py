"""Faults against real processes, under a steady stream of published events.

Each test runs ``arbiter ingest`` and ``arbiter project`` as separate processes while a background
publisher keeps publishing battles (one in 25 invalid, so rejections flow too), breaks something
for real, and ends with the same check (:func:`_check_end_state`): every published event_id is
stored exactly once in the log or is in ``ARBITER_REJECTED`` with a code and a message, the audit
replay agrees with the read model, and a rebuild of both projections from the log gives the same
rows as the incremental fold.

The NATS and PostgreSQL restart tests start their own embedded servers (they stop them), the
others use the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.adapters.bus import Publisher
from arbiter.adapters.embedded import EmbeddedServers, find_free_port
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.projections import PROJECTIONS, ratings, results
from arbiter.services.processes.audit import verify
from arbiter.services.processes.paging import replay
from arbiter.services.processes.rebuild import rebuild
from arbiter.services.setup import prepare_database

from .helpers import T0, battle, rejected_messages

NAMES = [f"m{i}" for i in range(10)]


# -- the pieces ---------------------------------------------------------------------------------


class Feed:
    """Publishes batches of 20 events every 50 ms from a background thread until stopped.

    A batch is retried (same event ids, so JetStream and the ingest deduplicate) until JetStream
    acknowledges all of it, through server restarts; ``published`` holds the ids of acknowledged
    batches, so every id in it must end up stored or rejected."""

    def __init__(self, nats_url: str, prefix: str = "f") -> None:
        self.nats_url, self.prefix = nats_url, prefix
        self.published: list[str] = []
        self.bad: set[str] = set()
        self.retries = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the publisher did not stop"
        if self.failure is not None:
            raise self.failure

    def _event(self, i: int) -> dict[str, Any]:
        a, b = NAMES[i % 10], NAMES[(i * 3 + 1) % 10]
        if i % 25 == 7:
            b = a  # rejected: same_competitor
        event = battle(f"{self.prefix}{i}", a, b, "ab"[i % 2] if i % 9 else "tie")
        if a == b:
            self.bad.add(event["event_id"])
        return event

    async def _run(self) -> None:
        try:
            async with Publisher(self.nats_url, max_in_flight=100_000) as pub:
                i = 0
                while not self._stop.is_set():
                    batch = [self._event(i + j) for j in range(20)]
                    deadline = time.monotonic() + 90
                    while True:
                        try:
                            await pub.publish(batch, timeout=3)
                            break
                        except Exception:
                            self.retries += 1
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.2)
                    self.published.extend(e["event_id"] for e in batch)
                    i += 20
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            self.failure = exc

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.published) < n:
            assert time.monotonic() < deadline, f"only {len(self.published)} published"
            assert self.failure is None, self.failure
            time.sleep(0.05)


def _service(
    command: str, database_url: str, nats_url: str, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url,
               "ARBITER_PROJECTOR_BATCH": "300", **env}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "arbiter.services.cli", command, *args],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _services(*procs: subprocess.Popen[bytes]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stop (SIGTERM, then SIGKILL) every process still running on the way out."""
    running = list(procs)
    try:
        yield running
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(query).fetchall()


def _until(what: str, cond: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except (psycopg.Error, OSError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _stored(url: str) -> set[str]:
    return {r[0] for r in _rows(url, "SELECT event_id FROM arbiter_event_ids")}


def _caught_up(url: str) -> bool:
    head = _rows(url, "SELECT coalesce(max(notification_id), 0) FROM arbiter_events")[0][0]
    positions = [
        _rows(url, f"SELECT position FROM {spec.schema}.tracking")[0][0]
        for spec in PROJECTIONS.values()
    ]
    return all(p == head for p in positions)


def _rejected(nats_url: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for msg in asyncio.run(rejected_messages(nats_url)):
        out.setdefault(msg["rejection"].get("event_id"), []).append(msg["rejection"])
    return out


def _all_rows(url: str) -> tuple[Any, Any]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        return ratings.stored_rows(cur, "arbiter_ratings"), results.stored_rows(
            cur, "arbiter_results"
        )


def _check_end_state(
    url: str, nats_url: str, feed: Feed, *, appended: frozenset[str] = frozenset(),
    quarantined: int = 0,
) -> None:  # fmt: skip
    """Every published id stored once or rejected with a reason; audit and rebuild agree.
    ``appended``: ids appended to the log directly, not published."""
    published = set(feed.published)
    assert len(published) == len(feed.published) > 0
    published |= appended
    bad = feed.bad & published

    def settled() -> bool:
        return published - bad <= _stored(url) and bad <= set(_rejected(nats_url))

    _until("every published event stored or rejected", settled)
    _until("both projections at the head of the log", lambda: _caught_up(url))
    stored = _stored(url)
    assert stored == published - bad
    rejected = _rejected(nats_url)
    assert set(rejected) == bad
    for reasons in rejected.values():
        assert all(r["code"] == "same_competitor" and r["message"] for r in reasons)
    with EventLog(url) as log:
        in_log = Counter(e.event_id for _, e in replay(log, log.store.head()))
    assert set(in_log) == stored
    assert max(in_log.values()) == 1  # stored exactly once

    report = verify(url)
    assert report.ok, report.mismatches[:20]
    assert len(report.quarantined) == quarantined
    incremental = _all_rows(url)
    for spec in PROJECTIONS.values():
        rebuild(url, spec)
    assert _all_rows(url) == incremental
    assert verify(url).digest == report.digest


@pytest.fixture
def own_servers() -> Iterator[EmbeddedServers]:
    """Embedded PostgreSQL and nats-server for one test (which stops and restarts them)."""
    home = Path(tempfile.mkdtemp(prefix="arbiter-faults-"))
    servers = EmbeddedServers(home)
    try:
        database_url, _ = servers.start()
        prepare_database(database_url)
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(home, ignore_errors=True)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- the tests ----------------------------------------------------------------------------------


def test_nats_server_restart(own_servers: EmbeddedServers) -> None:
    """nats-server stopped and restarted twice (JetStream on disk, same port): the publisher,
    the ingest's pull consumer and its rejection publishes reconnect; nothing lost or doubled."""
    url, nats_url = own_servers.postgres.start(), own_servers.nats.start()
    with (
        _services(_service("ingest", url, nats_url), _service("project", url, nats_url)) as procs,
        Feed(nats_url) as feed,
    ):
        for round_ in range(2):
            feed.wait_for(400 * (round_ + 1))
            _until("events stored", lambda: len(_stored(url)) > 200)
            own_servers.nats.stop()
            time.sleep(2)
            assert own_servers.nats.start() == nats_url
        feed.wait_for(len(feed.published) + 400)
        feed.stop()  # (nats-py buffers while reconnecting; a batch not acked in 3 s is resent)
        _check_end_state(url, nats_url, feed)
        assert all(p.poll() is None for p in procs)


def test_postgres_restart(own_servers: EmbeddedServers) -> None:
    """PostgreSQL stopped for a few seconds: ingest and projector back off and resume, /health
    reports the database down (503, database.ok false) and a read route answers 503 JSON."""
    url, nats_url = own_servers.postgres.start(), own_servers.nats.start()
    port = find_free_port()
    api = f"http://127.0.0.1:{port}"
    with (
        _services(
            _service("ingest", url, nats_url),
            _service("project", url, nats_url),
            _service("api", url, nats_url, "--port", str(port)),
        ) as procs,
        Feed(nats_url) as feed,
    ):
        _until("the API", lambda: _get(f"{api}/health")[0] == 200, 60)
        feed.wait_for(400)
        _until("events projected", lambda: _rows(url, "SELECT position FROM "
               "arbiter_ratings.tracking")[0][0] > 100)  # fmt: skip
        own_servers.postgres.stop()
        status, health = _get(f"{api}/health")
        assert status == 503 and health["database"]["ok"] is False, health
        assert health["database"]["error"]
        status, body = _get(f"{api}/leaderboard")
        assert status == 503 and body["code"] == "unavailable", body
        during = len(feed.published)
        time.sleep(4)  # the publisher goes on; the ingest holds its batch and retries
        assert own_servers.postgres.start() == url
        _until("/health ok", lambda: _get(f"{api}/health")[0] == 200, 60)
        feed.wait_for(during + 600)
        feed.stop()
        _check_end_state(url, nats_url, feed)
        status, health = _get(f"{api}/health")
        assert status == 200 and all(p["lag_events"] == 0 for p in health["projections"])
        assert _get(f"{api}/leaderboard")[0] == 200
        assert all(p.poll() is None for p in procs)  # backed off, never died


def test_ingest_and_projector_killed_mid_batch_and_restarted(
    database_url: str, nats_url: str
) -> None:
    """SIGKILL both services in the middle of their batches (fault hooks stretch the windows:
    the ingest sleeps between its committed append and its acks, the projector between its
    writes and its commit), then start fresh ones: nothing lost, nothing doubled."""
    slow = {"ARBITER_FAULT_SLEEP_BEFORE_ACK": "0.4", "ARBITER_FAULT_SLEEP_IN_TX": "0.4"}
    with Feed(nats_url) as feed:
        with _services(
            _service("ingest", database_url, nats_url, **slow),
            _service("project", database_url, nats_url, **slow),
        ) as procs:
            feed.wait_for(600)
            _until("events projected", lambda: _rows(database_url, "SELECT position FROM "
                   "arbiter_ratings.tracking")[0][0] > 100)  # fmt: skip
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        with _services(
            _service("ingest", database_url, nats_url), _service("project", database_url, nats_url)
        ) as procs:
            feed.wait_for(len(feed.published) + 600)
            feed.stop()
            _check_end_state(database_url, nats_url, feed)
            assert all(p.poll() is None for p in procs)


def test_two_ingests_and_two_projectors(database_url: str, nats_url: str) -> None:
    """Two ingest and two projector processes at once: still exactly once. Midway one of each
    is SIGKILLed; the other takes over (the projectors serialise on their tracking rows)."""
    with (
        _services(*(_service(c, database_url, nats_url) for c in ("ingest", "project") * 2))
        as procs,
        Feed(nats_url) as feed,
    ):  # fmt: skip
        feed.wait_for(1500)
        _until("events projected", lambda: _rows(database_url, "SELECT position FROM "
               "arbiter_results.tracking")[0][0] > 300)  # fmt: skip
        for proc in procs[:2]:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        feed.wait_for(len(feed.published) + 1000)
        feed.stop()
        _check_end_state(database_url, nats_url, feed)
        assert all(p.poll() is None for p in procs[2:])


def test_poison_event_is_quarantined(database_url: str, nats_url: str) -> None:
    """A fold that raises on one event: the projector quarantines it (with its error) in each
    projection, skips it and goes on; /health and the audit name it; rebuild and audit skip it
    too, so incremental = rebuild = audit still holds."""
    poison = BattleCompleted(event_id="poison-1", occurred_at=T0, battle_id="poison-battle",
                             a="m1", b="m2", outcome="a")  # fmt: skip
    with (
        _services(
            _service("ingest", database_url, nats_url),
            _service("project", database_url, nats_url, ARBITER_FAULT_POISON="poison-1"),
        ) as procs,
        Feed(nats_url) as feed,
    ):
        feed.wait_for(300)
        with EventLog(database_url) as log:
            assert log.append([poison]).appended
            position = log.store.head()
        feed.wait_for(len(feed.published) + 600)
        feed.stop()
        _check_end_state(
            database_url, nats_url, feed, appended=frozenset({"poison-1"}), quarantined=2
        )
        assert all(p.poll() is None for p in procs)
    for spec in PROJECTIONS.values():
        rows = _rows(
            database_url, f"SELECT position, event_id, error FROM {spec.schema}.quarantine"
        )
        assert [r[:2] for r in rows] == [(position, "poison-1")]
        assert "ARBITER_FAULT_POISON" in rows[0][2]
    report = verify(database_url)
    assert {(q.projection, q.position, q.event_id) for q in report.quarantined} == {
        ("ratings", position, "poison-1"), ("results", position, "poison-1")}  # fmt: skip
    assert not _rows(database_url, "SELECT 1 FROM arbiter_results.battles "
                     "WHERE battle_id = 'poison-battle'")  # fmt: skip

    out = subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", "audit", "verify"],
        env={**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "QUARANTINED" in out.stdout and "poison-1" in out.stdout

    from arbiter.services.api import create_app
    from litestar.testing import TestClient

    with TestClient(create_app(database_url, nats_url)) as client:
        health = client.get("/health").json()
    for p in health["projections"]:
        assert p["quarantined"] == 1
        assert p["quarantine"][0]["event_id"] == "poison-1" and p["quarantine"][0]["error"]
