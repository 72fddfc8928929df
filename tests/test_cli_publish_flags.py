"""``arbiter publish`` refuses what it would otherwise drop or misreport: battle flags beside a
JSON event, an argument beside --file, an --outcome outside a|b|tie|none (exit 2, before any
server), splits JSONL at ``\\n`` only, and says --no-wait did not wait. The CLI through Typer's
runner; real nats-server and PostgreSQL where something is published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arbiter.services.cli import app
from typer.testing import CliRunner

from .helpers import battle


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreachable servers: a refusal must come before any is contacted (else exit 2 would
    name PostgreSQL instead)."""
    monkeypatch.setenv("ARBITER_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    monkeypatch.setenv("ARBITER_NATS_URL", "nats://127.0.0.1:1")


@pytest.fixture
def env(database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    return database_url, nats_url


EVENT = json.dumps(battle(1, "alpha", "beta", "a"))


def test_battle_flags_beside_a_json_event_are_refused(no_servers: None) -> None:
    result = _cli("publish", EVENT, "--arena", "other", "--category", "c", "--judge", "human",
                  "--event-id", "zzz")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--arena, --category, --judge, --event-id apply only to a battle" in result.output
    assert "--a, --b and --outcome" in result.output
    result = _cli("publish", EVENT, "--judge", "auto")  # the default, given: still ignored
    assert result.exit_code == 2 and "--judge apply only" in result.output, result.output


def test_an_event_argument_beside_file_is_refused(no_servers: None, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(battle(2, "alpha", "beta", "b")) + "\n")
    result = _cli("publish", EVENT, "--file", str(path))
    assert result.exit_code == 2, result.output
    assert "give events as an argument or with --file, not both" in result.output


def test_an_unknown_outcome_is_refused_naming_the_values(no_servers: None) -> None:
    result = _cli("publish", "--a", "x", "--b", "y", "--outcome", "bogus")
    assert result.exit_code == 2, result.output
    assert "--outcome 'bogus'" in result.output and "a|b|tie|none" in result.output
    assert "null" not in result.output


def test_file_lines_end_at_newline_only(env: tuple[str, str], tmp_path: Path) -> None:
    """U+2028 inside a JSON string is one event, not two; line numbers count every line."""
    clip = json.dumps(battle(3, "alpha", "beta", "a", meta={"text": "bad\u2028clip"}),
                      ensure_ascii=False)  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text(f"{clip}\r\n\r\nnot json\r\n{json.dumps(battle(4, 'x', 'y'))}\r\n")
    result = _cli("publish", "--file", str(path))
    assert result.exit_code == 1, result.output  # line 3 only
    assert "read 3 event(s): 0 new, 0 already in the log, 1 refused" in result.output
    assert "2 published, not yet recorded" in result.output
    assert "refused: 1 malformed_json (events 3)" in result.output


def test_no_wait_says_it_did_not_wait(env: tuple[str, str], tmp_path: Path) -> None:
    result = _cli("publish", "--no-wait", EVENT)
    assert result.exit_code == 0, result.output
    assert "1 published, not yet recorded" in result.output
    assert "published without waiting for the ingest's verdict" in result.output
    assert "no verdict on them in time" not in result.output
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(battle(5, "alpha", "beta", "tie")) + "\n")
    result = _cli("import", str(path), "--via-nats", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "published without waiting for the ingest's verdict" in result.output
    assert "no verdict on them in time" not in result.output
