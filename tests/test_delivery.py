"""A reused event id with other content is refused, always; publish, import and demo say what
the log made of every event (new, already in the log, refused, not yet recorded).

Real nats-server, real PostgreSQL, the real ingest on a thread, the CLI through Typer's runner.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.adapters.bus import STREAM, Publisher, connect
from arbiter.domain.events import content_digest
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import decode_event
from arbiter.services.cli import app
from typer.testing import CliRunner

from .helpers import battle, ingest_all, raw, rejected_messages, running_ingest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _holds(url: str, event: dict[str, Any]) -> bool:
    """Whether the log holds ``event`` under its id with exactly this content."""
    decoded = decode_event(raw(event))
    assert not isinstance(decoded, Rejection)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT digest FROM arbiter_event_ids WHERE event_id = %s", (event["event_id"],)
        ).fetchone()
    return row is not None and bytes(row[0]) == content_digest(decoded)


@pytest.fixture
def env(database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    return database_url, nats_url


async def _stream_count(nats_url: str) -> int:
    nc = await connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await nc.close()


async def test_a_changed_resend_inside_the_duplicate_window_reaches_the_ingest(
    database_url: str, nats_url: str
) -> None:
    """Before: Nats-Msg-Id was the bare event id, so JetStream swallowed the second content
    (PubAck duplicate=True) and it vanished without a rejection."""
    first = battle(1, "alpha", "beta", "a")
    changed = {**first, "outcome": "b"}
    async with Publisher(nats_url) as pub:
        acks = await pub.publish([raw(first), raw(changed), raw(first)])
    assert [bool(a.duplicate) for a in acks] == [False, False, True]  # only the identical resend
    assert await _stream_count(nats_url) == 2
    ingest = await ingest_all(database_url, nats_url, [], expect=2)
    assert ingest.stats.appended == 1
    (rejected,) = await rejected_messages(nats_url)
    assert rejected["rejection"]["code"] == "conflict"
    assert rejected["rejection"]["event_id"] == first["event_id"]
    assert _holds(database_url, first)


def test_publish_counts_conflicts_and_exits_1(env: tuple[str, str]) -> None:
    """Before: the second publish said "already known" and exited 0."""
    database_url, nats_url = env
    event = battle(1, "alpha", "beta", "a")
    first, changed = json.dumps(event), json.dumps({**event, "outcome": "b"})
    with running_ingest(database_url, nats_url):
        r1 = _cli("publish", first)
        assert r1.exit_code == 0, r1.output
        assert "1 new" in r1.output
        r2 = _cli("publish", changed)
        assert r2.exit_code == 1, r2.output
        assert "(conflict)" in r2.output and "1 refused" in r2.output
        assert "refused: 1 conflict (events 1)" in r2.output
        r3 = _cli("publish", first)
        assert r3.exit_code == 0 and "1 already in the log" in r3.output, r3.output
    assert _holds(database_url, event)


def test_conflict_in_flight_is_reported_from_the_ingest(
    env: tuple[str, str], tmp_path: Path
) -> None:
    """Two contents for one id in one input, and a vote on a battle nobody published: the
    first content is recorded, the second refused as conflict, the vote refused by the ingest
    with its own code; every refusal carries its line number."""
    database_url, nats_url = env
    two = battle(2, "alpha", "beta", "a")
    lines = [
        json.dumps(battle(1, "alpha", "beta", "a")),
        json.dumps(two),
        json.dumps({**two, "outcome": "tie"}),
        json.dumps(battle(3, "gamma", "alpha", "b")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with running_ingest(database_url, nats_url):
        result = _cli("publish", "--file", str(path))
    assert result.exit_code == 1, result.output
    assert "read 4 event(s): 3 new, 0 already in the log, 1 refused" in result.output
    assert "event 3 (conflict)" in result.output


def test_ingest_refusals_reach_the_command(env: tuple[str, str]) -> None:
    database_url, nats_url = env
    retire = {
        "type": "competitor.retired", "event_id": "retire-ghost",
        "occurred_at": "2025-01-01T00:00:00Z", "competitor": "ghost", "reason": "gone",
    }  # fmt: skip
    with running_ingest(database_url, nats_url):
        result = _cli("publish", json.dumps(retire))
    assert result.exit_code == 1, result.output
    assert "event 1 (unknown_competitor)" in result.output


def test_without_an_ingest_the_command_says_nothing_is_recorded_yet(
    env: tuple[str, str],
) -> None:
    result = _cli("publish", json.dumps(battle(1, "alpha", "beta", "a")))
    assert result.exit_code == 0, result.output
    assert "1 published, not yet recorded" in result.output
    assert "no ingest is taking events" in result.output


def _llmfao_as_arena_file(path: Path) -> int:
    """LLMFAO's judgments in the arena layout: left/right as model_a/model_b, the task id as
    question_id and the worker as judge (several workers judged each task)."""
    winners = {"left": "model_a", "right": "model_b", "tie": "tie"}
    rows = 0
    with (REALDATA / "llmfao.csv").open(newline="") as src, path.open("w", newline="") as dst:
        out = csv.writer(dst)
        out.writerow(["question_id", "model_a", "model_b", "winner", "judge"])
        for row in csv.DictReader(src):
            out.writerow([row["id"], row["left"], row["right"], winners[row["winner"]],
                          row["worker"]])  # fmt: skip
            rows += 1
    return rows


def _battles(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM arbiter_event_ids WHERE type = 'battle.completed'"
            ).fetchone()[0]
        )


@pytest.mark.skipif(not (REALDATA / "llmfao.csv").exists(), reason="shared/realdata is absent")
def test_llmfao_judgments_import_every_vote(env: tuple[str, str], tmp_path: Path) -> None:
    """Before: ids hashed model_a, model_b, winner, tstamp and question_id, so votes of several
    workers on one task collapsed: 4,755 of 8,931 votes were lost and the import exited 0."""
    database_url, nats_url = env
    path = tmp_path / "llmfao-arena.csv"
    rows = _llmfao_as_arena_file(path)
    assert rows == 8_931
    with running_ingest(database_url, nats_url):
        first = _cli("import", str(path), "--arena", "llmfao")
        assert first.exit_code == 0, first.output
        assert f"read {rows} row(s) of {path}: {rows} new, 0 already in the log, 0 refused" in (
            first.output.replace("\n", "")
        )
        assert _battles(database_url) == rows
        again = _cli("import", str(path), "--arena", "llmfao")
    assert again.exit_code == 0, again.output
    assert f"0 new, {rows} already in the log, 0 refused" in again.output
    assert _battles(database_url) == rows


def test_demo_rerun_says_it_added_nothing(env: tuple[str, str]) -> None:
    database_url, nats_url = env
    with running_ingest(database_url, nats_url):
        first = _cli("demo", "--battles", "40")
        assert first.exit_code == 0, first.output
        assert "0 already in the log" in first.output
        again = _cli("demo", "--battles", "40")
    assert again.exit_code == 0, again.output
    assert "added nothing" in again.output


async def test_post_events_answers_a_conflict_at_once(database_url: str, nats_url: str) -> None:
    import httpx

    from .helpers import running_api

    first = battle(1, "alpha", "beta", "a")
    await ingest_all(database_url, nats_url, [first])
    with running_api(database_url, nats_url) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            changed = await http.post("/events", content=raw({**first, "outcome": "b"}))
            same = await http.post("/events", content=raw(first))
    assert changed.status_code == 409, changed.text
    assert changed.json()["code"] == "conflict" and changed.json()["field"] == "event_id"
    assert same.status_code == 202, same.text
    assert same.json() == {"event_id": first["event_id"], "stream_seq": None, "duplicate": True}
    assert await _stream_count(nats_url) == 1  # only the first publish reached the stream


@pytest.fixture
def full_disk_nats(tmp_path: Path) -> Any:
    """A nats-server whose JetStream store is a 3 MiB tmpfs (root can mount one here and in
    CI), and the URL to reach it."""
    import shutil
    import subprocess
    import time

    from arbiter.adapters.embedded import find_free_port, find_nats_server

    store = tmp_path / "js"
    store.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(store)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    port = find_free_port()
    server = subprocess.Popen(
        [str(find_nats_server()), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["umount", str(store)], check=False)
        shutil.rmtree(store, ignore_errors=True)


async def _fill(nats_url: str) -> str:
    """Publish padded events until JetStream refuses; the refusal's text."""
    pad = "z" * 4_000
    async with Publisher(nats_url) as pub:
        for i in range(1_000):
            chunk = [raw(battle(f"{i}-{j}", "x", "y", meta={"pad": pad})) for j in range(50)]
            try:
                await pub.publish(chunk, timeout=20)
            except Exception as exc:
                return str(exc)
    raise AssertionError("a 3 MiB store never filled")


def test_a_publish_on_a_full_disk_says_the_servers_reason(
    database_url: str, full_disk_nats: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: nats-py raised JetStream's refusal inside its reply handler, the futures never
    resolved, and the command printed "publishing to NATS failed: " with nothing after it."""
    import time

    import httpx

    from .helpers import running_api

    reason = asyncio.run(_fill(full_disk_nats))
    assert "insufficient resources" in reason
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", full_disk_nats)
    started = time.monotonic()
    result = _cli("publish", "--no-wait", json.dumps(battle("late", "x", "y")))
    assert result.exit_code == 2, result.output
    assert "the server refused it: insufficient resources" in result.output
    assert time.monotonic() - started < 20  # at once, not after the ack timeout
    with running_api(database_url, full_disk_nats) as base:
        r = httpx.post(f"{base}/events", content=raw(battle("api", "x", "y")), timeout=30)
    assert r.status_code == 503, r.text
    assert "insufficient resources" in r.json()["message"]
