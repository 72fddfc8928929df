"""``ARBITER_LOG_FORMAT=json``: one JSON object per line, with the service and the event ids or
batch positions, and never a secret; an unknown format is refused."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from arbiter.adapters.bus import Publisher
from arbiter.services.logs import JsonFormatter, LogFormatError, TextFormatter, log_format, scrub

from .helpers import battle, raw

SECRET = "s3cretPart_-x"
TOKEN = f"ak_0123abcd.{SECRET}"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("nats://ingest:hunter2@nats:4222 unreachable", "hunter2"),
        ("postgresql://u:pa%40ss@db/arbiter", "pa%40ss"),
        (f"key {TOKEN} revoked", SECRET),
        ("host=db password=hunter2 dbname=x", "hunter2"),
        ("host=db password='hunter 2' dbname=x", "hunter 2"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
    ],
)
def test_scrub_hides_every_secret_shape(text: str, hidden: str) -> None:
    out = scrub(text)
    assert hidden not in out and "***" in out


def _record(msg: str, *args: Any, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"failed at {TOKEN}")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("arbiter.ingest", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_service_context_and_no_secret() -> None:
    line = JsonFormatter("ingest").format(
        _record("rejected %s", TOKEN, exc=True, event_id=TOKEN, code="conflict", secret="x")
    )
    body = json.loads(line)
    assert "\n" not in line
    assert body["service"] == "ingest" and body["level"] == "warning"
    assert body["logger"] == "arbiter.ingest" and body["code"] == "conflict"
    assert body["event_id"] == "ak_0123abcd.***"
    assert "secret" not in body  # only the documented context fields are written
    assert "RuntimeError" in body["exception"]
    assert SECRET not in line
    assert body["time"].endswith("+00:00")
    text = TextFormatter("api").format(_record("rejected %s", TOKEN, exc=True))
    assert SECRET not in text and " api arbiter.ingest: " in text


def test_unknown_format_is_refused() -> None:
    assert log_format({}) == "text"
    assert log_format({"ARBITER_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(LogFormatError, match="text or json"):
        log_format({"ARBITER_LOG_FORMAT": "yaml"})
    proc = subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", "ingest"],
        env={**os.environ, "ARBITER_LOG_FORMAT": "yaml"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "ARBITER_LOG_FORMAT='yaml'" in proc.stderr and "text or json" in proc.stderr


async def test_a_real_ingest_logs_json_lines(database_url: str, nats_url: str) -> None:
    url = f"{database_url} password=hunter2"  # trust auth ignores it; it must never be logged
    env = {**os.environ, "ARBITER_DATABASE_URL": url, "ARBITER_NATS_URL": nats_url,
           "ARBITER_LOG_FORMAT": "json"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbiter.services.cli", "ingest", "--verbose"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        bad = battle(TOKEN, "x", "x")  # same competitor: rejected, logged with its event id
        async with Publisher(nats_url) as pub:
            await pub.publish([raw(battle(i, "a", "b")) for i in range(5)] + [raw(bad)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM arbiter_event_ids").fetchone()
            if row and row[0] == 5:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the rejection is logged after the append
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert lines, "no log lines"
    assert all(line["service"] == "ingest" for line in lines)
    batches = [line for line in lines if line.get("batch_size")]
    assert sum(line["events"] for line in batches) == 5
    first = min(line["first_position"] for line in batches if line["events"])
    last = max(line["last_position"] for line in batches if line["events"])
    assert (first, last) == (1, 5)
    [rejected] = [line for line in lines if line.get("code")]
    assert rejected["code"] == "same_competitor" and rejected["event_id"] == "ev-ak_0123abcd.***"
    assert SECRET not in stderr.decode() and "hunter2" not in stderr.decode()


async def test_the_api_app_leaves_the_logging_configuration_alone(database_url: str) -> None:
    """Litestar's default logging config resets the root logger to INFO in its own format when
    an app starts; under ``arbiter up`` that printed every projector batch, and in plain text
    whatever ARBITER_LOG_FORMAT said."""
    from arbiter.services.api import create_app
    from arbiter.services.logs import configure
    from litestar.testing import AsyncTestClient

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure("api", verbose=False, environ={"ARBITER_LOG_FORMAT": "json"})
        ours = list(root.handlers)
        async with AsyncTestClient(app=create_app(database_url, None)) as client:
            assert (await client.get("/health")).status_code == 200
        assert root.handlers == ours and root.level == logging.WARNING
        assert isinstance(ours[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
