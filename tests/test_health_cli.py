"""``arbiter health``: the container health check (exit 0 healthy, 1 not)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from arbiter.adapters.bus import connect, ensure_streams
from arbiter.adapters.embedded import find_free_port
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.services.cli import app
from typer.testing import CliRunner

from .helpers import T0, project


async def _create_streams(url: str) -> None:
    nc = await connect(url)
    try:
        await ensure_streams(nc.jetstream())
    finally:
        await nc.close()


def _health(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", *args])
    return result.exit_code, result.output


def test_health_reports_lag_and_outages(
    database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    with EventLog(database_url) as log:
        log.append([BattleCompleted(event_id="e1", occurred_at=T0, battle_id="b1", a="x",
                                    b="y", outcome="a")])  # fmt: skip
    # Recorded, not folded: healthy unless a lag bound is given.
    code, out = _health("--skip-nats")
    assert code == 0 and "ratings: position 0, lag 1" in out, out
    code, out = _health("--skip-nats", "--max-lag", "0")
    assert code == 1 and "ratings lags 1 events" in out, out
    project(database_url)
    code, out = _health()
    assert code == 1 and "stream ARBITER" in out, out  # no ingest has created the stream yet
    asyncio.run(_create_streams(nats_url))
    code, out = _health()
    assert "ratings: position 1, lag 0" in out
    # The results projection was not folded by `project` (ratings only) above.
    assert "results: position 0, lag 1" in out and code == 0, out

    monkeypatch.setenv("ARBITER_NATS_URL", f"nats://127.0.0.1:{find_free_port()}")
    code, out = _health()
    assert code == 1 and "unhealthy: NATS" in out, out

    monkeypatch.delenv("ARBITER_DATABASE_URL")
    monkeypatch.delenv("ARBITER_NATS_URL")
    monkeypatch.setenv("ARBITER_HOME", str(tmp_path))
    code, out = _health()
    assert code == 1 and "no servers configured" in out, out
