"""``arbiter arena configure``: flags and the ``chatbot-arena`` preset become one
``arena.configured`` event that the real ingest records and the ratings fold keeps; bad flags
exit 2 naming what is accepted. Real nats-server and PostgreSQL, the CLI through Typer's runner."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from arbiter.projections import PROJECTIONS
from arbiter.services.cli import app
from arbiter.services.processes.projector import Projector
from typer.testing import CliRunner

from .helpers import running_ingest


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def env(database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    return database_url, nats_url


def _arena(database_url: str, arena: str) -> tuple[Any, ...] | None:
    projector = Projector(database_url, PROJECTIONS["ratings"])
    try:
        projector.catch_up()
    finally:
        projector.close()
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT k, initial, scale, base, weights, strict, bt_anchor, bt_anchor_rating "
            "FROM arbiter_ratings.arenas WHERE arena = %s",
            (arena,),
        ).fetchone()


def test_preset_publishes_the_public_boards_settings(env: tuple[str, str]) -> None:
    database_url, nats_url = env
    with running_ingest(database_url, nats_url):
        result = _cli("arena", "configure", "lmsys", "--preset", "chatbot-arena")
        assert result.exit_code == 0, result.output
        assert "1 new" in result.output
        printed = json.loads(result.output.split("publishing: ", 1)[1].splitlines()[0])
        assert printed["type"] == "arena.configured" and printed["arena"] == "lmsys"
        assert _arena(database_url, "lmsys") == (
            4.0, 1000.0, 400.0, 10.0, {"auto": 1.0, "human": 1.0}, False,
            "mixtral-8x7b-instruct-v0.1", 1114.0,
        )  # fmt: skip

        # Flags override the preset; `--anchor mean` clears the default anchor.
        result = _cli(
            "arena", "configure", "lmsys", "--preset", "chatbot-arena", "--k", "8",
            "--weight", "human=2", "--strict", "--anchor", "mean",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert _arena(database_url, "lmsys") == (
            8.0, 1000.0, 400.0, 10.0, {"human": 2.0}, True, None, None
        )  # fmt: skip

        # Without a preset only the flags given change (the event is a patch).
        result = _cli("arena", "configure", "lmsys", "--anchor", "gpt-4:1200")
        assert result.exit_code == 0, result.output
        assert _arena(database_url, "lmsys") == (
            8.0, 1000.0, 400.0, 10.0, {"human": 2.0}, True, "gpt-4", 1200.0
        )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--preset", "elo-world"], "accepted presets are chatbot-arena"),
        (["--weight", "human"], "KIND=WEIGHT"),
        (["--weight", "human=x"], "KIND=WEIGHT"),
        (["--anchor", "gpt-4"], "COMPETITOR:RATING"),
        ([], "nothing to configure"),
        # The last of a repeated kind won silently; a kind in other letter case was a judge
        # name and left the real kind at 1.0; values the ingest refuses exited 1 after
        # publishing. Each is a bad flag now, refused before anything is published.
        (["--weight", "human=1", "--weight", "human=2"], "--weight human is given twice"),
        (["--weight", "Human=2"], "spelled otherwise"),
        (["--k", "-4"], "not published"),
        (["--weight", "human=nan"], "not published"),
    ],
)
def test_bad_flags_exit_2(args: list[str], words: str) -> None:
    result = _cli("arena", "configure", "lmsys", *args)
    assert result.exit_code == 2, result.output
    assert words in result.output
