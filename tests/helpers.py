"""Shared test helpers: build events, run the real pipeline pieces in-process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from arbiter.adapters.bus import REJECTED_STREAM, STREAM, Publisher, connect
from arbiter.adapters.embedded import find_free_port
from arbiter.projections import PROJECTIONS
from arbiter.services.api import make_server
from arbiter.services.processes.ingest import Ingest
from arbiter.services.processes.projector import Projector

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@contextmanager
def running_api(database_url: str, nats_url: str | None) -> Iterator[str]:
    """The real API served by uvicorn on a free loopback port in a thread; yields its base URL
    and stops it (and waits for the thread) on the way out."""
    port = find_free_port()
    server = make_server(database_url, nats_url, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the API did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert not thread.is_alive(), "the API did not stop"


def battle(i: int | str, a: str, b: str, outcome: str | None = "a", **extra: Any) -> dict[str, Any]:
    event = {
        "type": "battle.completed",
        "event_id": f"ev-{i}",
        "occurred_at": (T0 + timedelta(seconds=hash(str(i)) % 10_000)).isoformat(),
        "battle_id": f"battle-{i}",
        "a": a,
        "b": b,
        "outcome": outcome,
    }
    event.update(extra)
    return event


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


async def ingest_all(
    database_url: str, nats_url: str, payloads: list[Any], expect: int | None = None
) -> Ingest:
    """Publish payloads, run the ingest until ``expect`` (default: all) are handled, stop it."""
    async with Publisher(nats_url) as pub:
        await pub.publish(payloads)
    expect = len(payloads) if expect is None else expect
    ingest = Ingest(database_url, nats_url, batch_size=500)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    for _ in range(600):
        if ingest.stats.received >= expect or task.done():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    return ingest


def project(database_url: str) -> Projector:
    projector = Projector(database_url, PROJECTIONS["ratings"], batch_size=137)
    projector.catch_up()
    projector.close()
    return projector


async def rejected_messages(nats_url: str) -> list[dict[str, Any]]:
    """Every message in ARBITER_REJECTED, decoded."""
    nc = await connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(REJECTED_STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            msg = await js.get_msg(REJECTED_STREAM, seq)
            out.append(json.loads(msg.data))
        return out
    finally:
        await nc.close()


@contextmanager
def running_ingest(database_url: str, nats_url: str) -> Iterator[Ingest]:
    """The real ingest on its own thread and event loop for the duration of a block (so that a
    CLI command run in the test sees an ingest taking events, as under ``arbiter up``)."""
    ingest = Ingest(database_url, nats_url, batch_size=500)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(ingest.run(stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while ingest.log is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # its first pull request is out
        yield ingest
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


async def stored_source(nats_url: str, seq: int) -> str | None:
    """The ``source`` of the message at ``seq`` in ``ARBITER`` (what the ingest will store)."""
    nc = await connect(nats_url, max_reconnect_attempts=1)
    try:
        msg = await nc.jetstream().get_msg(STREAM, seq)
        return json.loads(msg.data).get("source")  # type: ignore[no-any-return]
    finally:
        await nc.close()
