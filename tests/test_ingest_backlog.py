"""Nothing waits hidden in NATS: the ingest's backlog is reported, and a dead ingest's
deliveries come back within seconds (short ack_wait; a live ingest's slow batch is kept with
progress acks)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from arbiter.adapters.bus import INGEST_DURABLE, STREAM, SUBJECT_PREFIX, Publisher, connect
from arbiter.services.cli import app
from arbiter.services.processes.ingest import ACK_WAIT, Ingest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from typer.testing import CliRunner

from .helpers import battle, running_api
from .test_up_home import _stored


def _publish(nats_url: str, n: int, prefix: str) -> None:
    async def go() -> None:
        async with Publisher(nats_url) as publisher:
            await publisher.publish([battle(f"{prefix}{i}", "x", "y") for i in range(n)])

    asyncio.run(go())


def _health(monkeypatch: pytest.MonkeyPatch, database_url: str, nats_url: str) -> tuple[int, str]:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    result = CliRunner().invoke(app, ["health", "--max-lag", "5"])
    return result.exit_code, result.output


async def _old_consumer_holds(nats_url: str, n: int) -> None:
    """What an ingest of the old version left behind when killed: the durable consumer with a
    60 s ack_wait, and ``n`` deliveries it fetched and never acknowledged."""
    nc = await connect(nats_url, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(
            durable_name=INGEST_DURABLE, filter_subject=f"{SUBJECT_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=60,
            max_ack_pending=50_000, max_deliver=-1,
        )  # fmt: skip
        sub = await js.pull_subscribe(f"{SUBJECT_PREFIX}.>", durable=INGEST_DURABLE,
                                      stream=STREAM, config=config)  # fmt: skip
        got = await sub.fetch(n, timeout=5)
        assert len(got) == n
    finally:
        await nc.close()  # dies without acking


async def _run_ingest_until(database_url: str, nats_url: str, done: Any, timeout: float) -> float:
    """Run an ingest until ``done()``; the seconds it took."""
    stop = asyncio.Event()
    ingest = Ingest(database_url, nats_url)
    task = asyncio.create_task(ingest.run(stop))
    t0 = time.monotonic()
    try:
        while not await asyncio.to_thread(done):
            assert time.monotonic() - t0 < timeout, "timed out"
            assert not task.done(), task
            await asyncio.sleep(0.1)
        return time.monotonic() - t0
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def test_backlog_in_health_and_prompt_redelivery(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(nats_url, 30, "w")
    # Published, no ingest yet: the log is empty (lag 0), but 30 events wait in NATS.
    code, out = _health(monkeypatch, database_url, nats_url)
    assert "ingest: 30 waiting in NATS" in out, out
    assert "ratings: position 0, lag 0 (+30 waiting in NATS)" in out, out
    assert code == 1 and "ratings lags 30 events" in out, out  # --max-lag counts them
    with running_api(database_url, nats_url) as base:
        body = httpx.get(f"{base}/health", timeout=10).json()
    assert body["ingest"]["pending"] == 30 and body["ingest"]["error"], body
    assert body["projections"][0]["lag_events"] == 0

    # A killed ingest (old config, 60 s ack_wait) held 10 deliveries: reported as pending,
    # unacknowledged; a new ingest updates the consumer and gets them back within seconds.
    asyncio.run(_old_consumer_holds(nats_url, 10))
    code, out = _health(monkeypatch, database_url, nats_url)
    assert "ingest: 30 waiting in NATS (10 unacknowledged, 0 redelivered)" in out, out
    with running_api(database_url, nats_url) as base:
        body = httpx.get(f"{base}/health", timeout=10).json()
    assert body["ingest"] == {"pending": 30, "ack_pending": 10, "redelivered": 0}, body

    took = asyncio.run(
        _run_ingest_until(database_url, nats_url, lambda: _stored(database_url) == 30, 30)
    )
    assert took < ACK_WAIT + 5, took
    code, out = _health(monkeypatch, database_url, nats_url)
    assert "ingest: 0 waiting in NATS" in out, out
