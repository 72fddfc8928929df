"""Small CLI refusals: ``health --max-lag -1``, ``rebuild ""``, ``audit export DIR`` exit 2
naming what is accepted, before any server; ``audit explain --arena`` names the filter that
found nothing. The CLI through Typer's runner; real PostgreSQL where the log is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.projections import PROJECTIONS
from arbiter.services.cli import app
from typer.testing import CliRunner

from .helpers import T0


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreachable servers: a refusal must come before any is contacted."""
    monkeypatch.setenv("ARBITER_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    monkeypatch.setenv("ARBITER_NATS_URL", "nats://127.0.0.1:1")


def test_health_refuses_a_negative_max_lag(no_servers: None) -> None:
    result = _cli("health", "--skip-nats", "--max-lag", "-1")
    assert result.exit_code == 2, result.output
    assert "--max-lag" in result.output and "unhealthy" not in result.output


def test_rebuild_refuses_an_empty_projection_name(no_servers: None) -> None:
    result = _cli("rebuild", "")
    assert result.exit_code == 2, result.output
    assert "unknown projection ''" in result.output
    assert f"known: {', '.join(PROJECTIONS)}" in result.output


def test_audit_export_refuses_a_directory(no_servers: None, tmp_path: Path) -> None:
    result = _cli("audit", "export", str(tmp_path), "--overwrite")
    assert result.exit_code == 2, result.output
    assert "is a directory; give a file path" in result.output


def test_audit_explain_names_the_filter_that_found_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    with EventLog(database_url) as log:
        log.append([BattleCompleted(event_id="e1", occurred_at=T0, battle_id="b1", a="x",
                                    b="y", outcome="a")])  # fmt: skip
    assert _cli("audit", "explain", "x").exit_code == 0
    result = _cli("audit", "explain", "x", "--arena", "nope")
    assert result.exit_code == 1, result.output
    assert "no rating changes for 'x' in arena 'nope'" in " ".join(result.output.split())
    result = _cli("audit", "explain", "x", "--arena", "default", "--category", "c")
    assert result.exit_code == 1, result.output
    assert "in arena 'default' and category 'c'" in " ".join(result.output.split())
    result = _cli("audit", "explain", "nobody")
    assert result.exit_code == 1 and "for 'nobody' in the log" in result.output, result.output
