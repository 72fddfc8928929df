"""Read scale-out on real parts: a second embedded PostgreSQL, started as a hot standby of the
session's primary with the wheel's ``pg_basebackup``, serves the API's reads
(``ARBITER_READ_DATABASE_URL``); writes, keys and projectors stay on the primary; the response
cache follows the replica; ``/health`` reports its delay; ``arbiter api --workers 2`` answers on
one port from two processes with merged metrics.

The replica's replay is paused (``pg_wal_replay_pause``) to hold it behind the primary on
purpose: that is what makes "this answer came from the replica" observable without timing."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from arbiter.adapters import keys
from arbiter.adapters.embedded import EmbeddedStandby, find_free_port
from arbiter.services.api import create_app
from arbiter.services.api.replica import caught_up
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict

from .conftest import _with_dbname
from .test_api import append, battle, fold, wire

NAMES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def standby(servers: tuple[str, str]) -> Iterator[str]:
    """A hot standby of the session's primary; yields its URL (``arbiter`` database)."""
    home = Path(tempfile.mkdtemp(prefix="arbiter-standby-"))
    server = EmbeddedStandby(home / "pg", servers[0])
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _until(what: str, cond: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if found := cond():
                return found
        except psycopg.Error:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _one(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
        return None if row is None else row[0]


def _replica_position(url: str) -> int:
    return int(
        _one(url, "SELECT position FROM arbiter_ratings.tracking WHERE projection = 'ratings'")
    )


def _primary_lsn(url: str) -> str:
    return str(_one(url, "SELECT pg_current_wal_lsn()::text"))


def _replayed(replica: str, lsn: str) -> bool:
    return bool(_one(replica, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"))


@pytest.fixture
def replica_url(database_url: str, standby: str) -> str:
    """The test's fresh database, as the standby has it (once it has replayed its migration)."""
    url = _with_dbname(standby, conninfo_to_dict(database_url)["dbname"])
    lsn = _primary_lsn(database_url)
    _until("the replica to replay the test database", lambda: _replayed(url, lsn))
    return url


def _pause(replica: str, paused: bool) -> None:
    _one(replica, f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()::text")


def _seed(url: str, first: int, count: int) -> None:
    append(url, [battle(i, NAMES[i % 4], NAMES[(i + 1) % 4]) for i in range(first, first + count)])
    fold(url)


@pytest.fixture
async def client(
    database_url: str, replica_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncTestClient[Any]]:
    monkeypatch.setenv("ARBITER_AUTH", "auto")
    _seed(database_url, 0, 10)
    lsn = _primary_lsn(database_url)
    _until("the replica to replay the seed", lambda: _replayed(replica_url, lsn))
    app = create_app(database_url, nats_url, read_database_url=replica_url)
    try:
        async with AsyncTestClient(app=app) as c:
            watch = app.state["watch"]
            _ = await asyncio.to_thread(_until, "the watch", lambda: watch.state is not None)
            yield c
    finally:
        _pause(replica_url, False)


async def test_answers_are_the_replicas_and_the_cache_follows_it(
    client: AsyncTestClient[Any], database_url: str, replica_url: str
) -> None:
    url = "/leaderboard?limit=10"
    first = await client.get(url)
    assert first.status_code == 200 and first.json()["position"] == 10
    assert (await client.get(url)).headers["etag"] == first.headers["etag"]  # the same state
    _pause(replica_url, True)
    await asyncio.to_thread(_seed, database_url, 10, 5)
    # The primary is at 15; the replica, held, at 10: answers say 10, never 15, and nothing is
    # cached under a state the replica lacks.
    for _ in range(5):
        answer = (await client.get(url)).json()
        assert answer["position"] == 10
        assert (await client.get("/competitors/a")).json()["position"] == 10
    health = (await client.get("/health")).json()
    assert [p["position"] for p in health["projections"] if p["name"] == "ratings"] == [10]
    replica = health["replica"]
    assert replica["standby"] is True
    assert replica["lag_bytes"] > 0 and replica["delay_s"] > 0
    ratings = next(p for p in replica["projections"] if p["name"] == "ratings")
    assert (ratings["primary"], ratings["replica"]) == (15, 10)
    # Resumed: once the replica has 15, no answer is older than the replica (a cache keyed by
    # the primary's state would keep serving the answer computed at 10 under the state of 15).
    _pause(replica_url, False)
    await asyncio.to_thread(
        _until, "the replica to replay", lambda: _replica_position(replica_url) == 15
    )
    for _ in range(5):
        before = await asyncio.to_thread(_replica_position, replica_url)
        answer = (await client.get(url)).json()
        assert answer["position"] >= before == 15
    # Replayed all it received: no delay (however long ago the primary last committed).
    deadline = time.monotonic() + 60
    while (health := (await client.get("/health")).json())["replica"]["delay_s"] != 0:
        assert time.monotonic() < deadline, health
        await asyncio.sleep(0.05)
    ratings = next(p for p in health["replica"]["projections"] if p["name"] == "ratings")
    assert (ratings["primary"], ratings["replica"]) == (15, 15)


async def test_writes_keys_and_resend_checks_use_the_primary(
    client: AsyncTestClient[Any], database_url: str, replica_url: str
) -> None:
    _, admin = keys.create(database_url, "admin", ["admin"])
    lsn = _primary_lsn(database_url)
    _until("the replica to replay the key", lambda: _replayed(replica_url, lsn))
    _pause(replica_url, True)
    # A key created through the API is written to the primary, and works at once although the
    # replica (held) has never seen it.
    made = await client.post(
        "/admin/keys",
        json={"name": "reader", "scopes": ["read", "publish"]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert _one(replica_url, "SELECT count(*) FROM public.arbiter_api_keys") == 1
    mine = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/leaderboard", headers=mine)).status_code == 200
    listed = await client.get("/admin/keys", headers={"Authorization": f"Bearer {admin}"})
    assert len(listed.json()["keys"]) == 2
    # An event the primary's log holds and the replica's does not yet: a resend with other
    # content is a conflict at once.
    append(database_url, [battle(99, "a", "b")])
    conflict = await client.post(
        "/events", content=wire(event_id="ev-99", a="b", b="a"), headers=mine
    )
    assert conflict.status_code == 409, conflict.text


def _health(base: str) -> httpx.Response | None:
    try:
        with httpx.Client(timeout=10) as http:  # a fresh connection each time
            return http.get(f"{base}/health")
    except httpx.TransportError:
        return None


def _requests_of(text: str, path: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "arbiter_http_requests_total" and s.labels.get("path") == path
    )


def test_workers_answer_on_one_port_from_several_processes(
    database_url: str, replica_url: str, servers: tuple[str, str]
) -> None:
    port = find_free_port()
    env = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": servers[1],
           "ARBITER_READ_DATABASE_URL": replica_url,
           "ARBITER_HOME": f"/tmp/arbiter-{uuid.uuid4().hex}"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbiter.services.cli", "api", "--workers", "2",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        seen: set[int] = set()
        answered = 0

        def two_pids() -> bool:
            nonlocal answered
            # A few at once, each on its own connection: the kernel gives each to one worker.
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(_health, [base] * 4))
            for answer in answers:
                if answer is not None:
                    answered += 1  # whatever its status: the worker counted it
                    if answer.status_code == 200:
                        seen.add(answer.json()["pid"])
                        assert answer.json()["replica"]["standby"] is True
            return len(seen) == 2

        _until("answers from two workers", two_pids, timeout=120)
        workers = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        assert seen <= workers and proc.pid not in seen
        # Every worker's /metrics is the merge of both: it counts every /health answered.
        for _ in range(4):
            text = httpx.get(f"{base}/metrics", timeout=10).text
            assert _requests_of(text, "/health") == answered
        metrics_dir = Path(psutil.Process(next(iter(seen))).environ()["PROMETHEUS_MULTIPROC_DIR"])
        assert metrics_dir.is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    assert not metrics_dir.exists()


def test_caught_up_is_per_projection_and_a_rebuild_counts_as_ahead() -> None:
    # (position, generation) per projection, in name order, as the watch keys the cache.
    assert caught_up((10, 1, 6, 1), (10, 1, 6, 1))
    assert not caught_up((20, 1, 5, 1), (10, 1, 6, 1))  # the second projection is behind
    assert caught_up((3, 2, 6, 1), (10, 1, 6, 1))  # a rebuild swapped in: a later generation
    assert not caught_up((10, 1, 6, 1), (9, 2, 6, 1))  # the primary's rebuild not replayed
    assert not caught_up((10, 1), (10, 1, 6, 1))  # a projection the replica does not have yet
