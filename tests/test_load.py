"""Load: concurrent leaderboard readers while events stream in (issue 5, point 4).

Everything real: the API served by uvicorn on a free port, the ingest (NATS -> log) and the
projector threads running, and a publisher sending battles through NATS at a steady rate. Twelve
asyncio httpx clients read ``/leaderboard`` for about 10 s, each asking ``/health`` just before
every request. What must hold (speed is measured by ``benchmarks/api_load.py``, not here):

* every response is a 200 with a JSON body;
* no stale read beyond the lag ``/health`` reported: a response's ``position`` (the ratings
  read model it was read from) is at least the ratings position ``/health`` reported before the
  request was sent (``head - lag_events``), and at most the log head a ``/health`` after it saw;
* monotonic reads: the positions one client sees never go backwards;
* the reads really raced the writes (positions moved while the clients read), and at the end
  every published battle is in the log and folded.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from arbiter.adapters.bus import Publisher
from arbiter.services.processes.ingest import Ingest
from arbiter.services.processes.projector import run_projectors

from .helpers import running_api

ARENA = "load"
COMPETITORS = [f"m{i:03d}" for i in range(100)]
CLIENTS = 12
BT_CLIENTS = 2
"""Of the clients, how many read ``system=bt`` (the Bradley-Terry fit and its bootstrap)."""
LOAD_SECONDS = 10.0
RATE = 200
"""Battles published per second while the clients read."""
SEED_BATTLES = 2_000


def battles(start: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(start, start + n):
        a, b = rng.sample(COMPETITORS, 2)
        out.append(
            {
                "type": "battle.completed",
                "event_id": f"load-{i}",
                "occurred_at": (t0 + timedelta(seconds=i)).isoformat(),
                "arena": ARENA,
                "battle_id": f"load-b{i}",
                "a": a,
                "b": b,
                "outcome": rng.choice(("a", "b", "a", "b", "tie")),
                "judge": "auto",
            }
        )
    return out


@dataclass
class Stream:
    """The ingest and a steady publisher, on their own event loop in a thread."""

    database_url: str
    nats_url: str
    seeded: threading.Event = field(default_factory=threading.Event)
    stop_publishing: threading.Event = field(default_factory=threading.Event)
    published: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.seeded.set()

    async def _main(self) -> None:
        rng = random.Random(5)
        ingest = Ingest(self.database_url, self.nats_url, batch_size=500)
        stop = asyncio.Event()
        task = asyncio.create_task(ingest.run(stop))
        try:
            async with Publisher(self.nats_url) as pub:
                await pub.publish(battles(0, SEED_BATTLES, rng))
                self.published = SEED_BATTLES
                await self._until(lambda: ingest.stats.received >= SEED_BATTLES, task, 60)
                self.seeded.set()
                # Steady rate, in ticks of 50 ms.
                per_tick = max(1, RATE // 20)
                next_tick = time.monotonic()
                while not self.stop_publishing.is_set():
                    await pub.publish(battles(self.published, per_tick, rng))
                    self.published += per_tick
                    next_tick += 0.05
                    await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            await self._until(lambda: ingest.stats.received >= self.published, task, 60)
        finally:
            stop.set()
            await task

    @staticmethod
    async def _until(done: Any, task: asyncio.Task[None], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if task.done():
                await task  # raises what stopped the ingest
                raise AssertionError("the ingest stopped early")
            assert time.monotonic() < deadline, "the ingest did not keep up"
            await asyncio.sleep(0.05)


@dataclass
class Observation:
    client: int
    health_position: int
    """The ratings position /health reported just before the request."""
    health_head: int
    position: int
    """The leaderboard response's position."""
    head_after: int
    """The log head a /health call just after the response saw."""


def ratings(health: httpx.Response) -> tuple[int, int]:
    assert health.status_code == 200, health.text
    body = health.json()
    (entry,) = [p for p in body["projections"] if p["name"] == "ratings"]
    assert entry["lag_events"] == entry["head"] - entry["position"]
    return int(entry["position"]), int(entry["head"])


async def reader(
    base_url: str, client_id: int, system: str, until: float, out: list[Observation]
) -> None:
    params = {"arena": ARENA, "limit": 50, "system": system}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        health_after = await client.get("/health")
        while time.monotonic() < until:
            position_before, head_before = ratings(health_after)
            response = await client.get("/leaderboard", params=params)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            assert body["arena"] == ARENA and body["system"] == system
            assert len(body["rows"]) == 50
            health_after = await client.get("/health")
            _, head_after = ratings(health_after)
            out.append(
                Observation(client_id, position_before, head_before, body["position"], head_after)
            )


def test_leaderboard_under_load_is_never_staler_than_health_says(
    database_url: str, nats_url: str
) -> None:
    stream = Stream(database_url, nats_url)
    stop_projectors = threading.Event()
    projectors = threading.Thread(
        target=run_projectors, args=(database_url, stop_projectors), daemon=True
    )
    producer = threading.Thread(target=stream.run, daemon=True)
    projectors.start()
    producer.start()
    observations: list[Observation] = []
    try:
        assert stream.seeded.wait(90) and stream.error is None, stream.error
        with running_api(database_url, nats_url) as base_url:

            async def load() -> None:
                until = time.monotonic() + LOAD_SECONDS
                await asyncio.gather(
                    *(
                        reader(base_url, i, "bt" if i < BT_CLIENTS else "elo", until, observations)
                        for i in range(CLIENTS)
                    )
                )

            asyncio.run(load())
            stream.stop_publishing.set()
            producer.join(90)
            assert not producer.is_alive() and stream.error is None, stream.error

            # Every published battle is in the log, and the ratings fold it all.
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM arbiter_events").fetchone()
            assert row is not None and row[0] == stream.published
            with httpx.Client(base_url=base_url, timeout=30) as client:
                deadline = time.monotonic() + 60
                while True:
                    position, head = ratings(client.get("/health"))
                    if position == head == stream.published or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                assert position == head == stream.published
                final = client.get("/leaderboard", params={"arena": ARENA, "limit": 1})
                assert final.status_code == 200 and final.json()["position"] == head
    finally:
        stream.stop_publishing.set()
        stop_projectors.set()
        producer.join(30)
        projectors.join(30)

    assert len(observations) >= CLIENTS * 5
    for o in observations:
        # Never older than what /health already showed, never ahead of the log.
        assert o.position >= o.health_position, o
        assert o.position <= o.head_after, o
    for client_id in range(CLIENTS):
        seen = [o.position for o in observations if o.client == client_id]
        assert seen, client_id
        assert seen == sorted(seen), f"client {client_id} read positions going backwards"
    # The reads raced the writes: the clients saw the projection move.
    positions = {o.position for o in observations}
    assert len(positions) > 5
    assert min(positions) >= SEED_BATTLES
