"""``arbiter import``: arena battle files and event JSONL, idempotent across runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from arbiter.services.cli import app
from typer.testing import CliRunner

from .helpers import ingest_all


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM arbiter_events").fetchone()[0])


async def test_import_arena_csv_twice_changes_nothing(
    database_url: str, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    battles = tmp_path / "battles.csv"
    battles.write_text(
        "question_id,model_a,model_b,winner,tstamp\n"
        "q1,gpt,claude,model_a,1700000000\n"
        "q2,claude,llama,tie (bothbad),1700000100.5\n"
        "q3,gpt,llama,nobody,1700000200\n"
        "q4,llama,gpt,model_b,\n"
    )
    runner = CliRunner()
    first = await asyncio.to_thread(
        runner.invoke, app, ["import", str(battles), "--arena", "lmsys", "--via-nats"]
    )
    assert first.exit_code == 1, first.output  # one bad row, reported, the rest imported
    assert "row 3 (bad_winner)" in first.output
    # No ingest runs during the import: the rows wait in NATS, and the summary says so.
    assert "read 4 row(s)" in first.output and "3 published, not yet recorded" in first.output
    await ingest_all(database_url, nats_url, [], expect=3)
    assert _count(database_url) == 3
    again = await asyncio.to_thread(
        runner.invoke, app, ["import", str(battles), "--arena", "lmsys", "--via-nats"]
    )
    assert "0 new, 3 already in the log, 1 refused" in again.output
    assert "refused: 1 bad_winner (rows 3)" in again.output
    await ingest_all(database_url, nats_url, [], expect=0)
    assert _count(database_url) == 3


async def test_import_event_jsonl(
    database_url: str, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type":"competitor.registered","event_id":"r1","occurred_at":"2025-01-01T00:00:00Z",'
        '"competitor":"m1"}\n'
        '{"type":"game.completed","event_id":"g1","occurred_at":"2025-01-01T00:00:00Z",'
        '"game_id":"g1","participants":[{"competitor":"m1","rank":1},'
        '{"competitor":"m2","rank":2}]}\n'
    )
    result = await asyncio.to_thread(CliRunner().invoke, app, ["import", str(events), "--via-nats"])
    assert result.exit_code == 0, result.output
    await ingest_all(database_url, nats_url, [], expect=2)
    assert _count(database_url) == 2


def test_import_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2


def test_no_wait_without_via_nats_is_refused(tmp_path: Path) -> None:
    """--no-wait means something only for the NATS path; taken silently it would mislead."""
    rows = tmp_path / "rows.csv"
    rows.write_text("model_a,model_b,winner\na,b,model_a\n")
    result = CliRunner().invoke(app, ["import", str(rows), "--no-wait"])
    assert result.exit_code == 2 and "--via-nats" in result.output, result.output
