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


def test_a_broken_gzip_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    """A gzip cut short was "Aborted." (click took the EOFError for a cancel), a corrupt one a
    zlib traceback: both exit 2 now, naming the file, before anything is sent."""
    import gzip

    whole = gzip.compress(b"model_a,model_b,winner\n" + b"a,b,model_a\n" * 2000)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(whole[:20] + bytes(b ^ 0xFF for b in whole[20:40]) + whole[40:])
    for path in (cut, corrupt):
        result = CliRunner().invoke(app, ["import", str(path)])
        assert result.exit_code == 2, result.output
        assert f"{path} is not valid gzip" in result.output, result.output


def test_arena_row_flags_on_a_file_of_events_are_refused(tmp_path: Path) -> None:
    """--arena, --category and --judge apply to arena rows; on a file of Arbiter events (which
    name their own) they were ignored without a word."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type":"battle.completed","event_id":"e1","battle_id":"b1","a":"x","b":"y",'
        '"outcome":"a","occurred_at":"2025-01-01T00:00:00Z"}\n'
    )
    for flags in (["--judge", "human"], ["--arena", "zzz"], ["--category", "code"]):
        result = CliRunner().invoke(app, ["import", str(events), *flags])
        assert result.exit_code == 2, result.output
        assert f"{flags[0]} apply to arena battle rows only" in result.output, result.output


def test_a_judge_kind_in_other_letter_case_is_refused(tmp_path: Path) -> None:
    """``--judge Human`` was taken as a judge *name* (weight 1.0), not the human kind (1.5)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("model_a,model_b,winner\na,b,model_a\n")
    for spelling in ("Human", "AUTO"):
        result = CliRunner().invoke(app, ["import", str(rows), "--judge", spelling])
        assert result.exit_code == 2, result.output
        assert "spelled otherwise" in result.output, result.output
