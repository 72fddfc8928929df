"""Game score totals (issue 13 point 8) against real PostgreSQL: the results projector's running
sums, what the migration fills from games folded before it, the audit's re-derivation, the
leaderboard rows of game pools and ``GET /competitors/{id}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.services.api import create_app
from arbiter.services.processes.audit import verify
from litestar.testing import AsyncTestClient

from .api_events import assert_error, battle, game, seed, void

MIGRATION = Path(__file__).resolve().parents[1] / "migrations/results/0007_game_scores.sql"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _events() -> list[Any]:
    """A snake arena (seed 003: apples eaten as the score), one game voided, one without
    scores, one in a category; and a battle arena."""
    return [
        game("g1", ("a", 1, 7.5), ("b", 2, 3.0), ("c", 3, 0.1), arena="snake", at=1),
        game("g2", ("b", 1, 9.0), ("a", 2, 2.25), arena="snake", at=2),
        game("g3", ("a", 1, 100.0), ("c", 2, 1.0), arena="snake", at=3),
        game("g4", ("c", 1), ("a", 2), arena="snake", at=4),
        game("g5", ("a", 1, 0.2), ("b", 1, 0.1), arena="snake", category="night", at=5),
        void("v3", "g3", at=6),
        battle("b1", "a", "z", "a", arena="voice", at=7),
    ]


def _rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT arena, category, competitor, total, scored, games "
            "FROM arbiter_results.competitor_game_scores ORDER BY 1, 2, 3"
        ).fetchall()


def test_running_sums_voids_and_the_audit(database_url: str) -> None:
    seed(database_url, _events())
    # Exact sums of the digits sent (0.1 + 0.2 is 0.3 here, not 0.30000000000000004); the
    # voided game counts nowhere, and its players keep their rows.
    assert _rows(database_url) == [
        ("snake", "", "a", Decimal("9.95"), 3, 4),
        ("snake", "", "b", Decimal("12.1"), 3, 3),
        ("snake", "", "c", Decimal("0.1"), 1, 2),
        ("snake", "night", "a", Decimal("0.2"), 1, 1),
        ("snake", "night", "b", Decimal("0.1"), 1, 1),
    ]
    assert verify(database_url).ok
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE arbiter_results.competitor_game_scores SET scored = scored + 1 "
            "WHERE competitor = 'c' AND category = ''"
        )
    report = verify(database_url)
    assert not report.ok
    assert any(
        m.startswith("results.competitor_game_scores ('snake', '', 'c').scored")
        for m in report.mismatches
    ), report.mismatches


def test_the_migration_fills_the_sums_of_games_already_folded(database_url: str) -> None:
    """A deployment upgraded with games in its results model gets the rows a fold from the
    log would have made: the migration's fill equals the projector's running sums."""
    seed(database_url, _events())
    folded = _rows(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET search_path TO arbiter_results")
        conn.execute("DROP TABLE competitor_game_scores")
        conn.execute(MIGRATION.read_text())
    assert _rows(database_url) == folded


async def test_leaderboard_rows_of_game_pools(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _events())
    body = (await client.get("/leaderboard", params={"arena": "snake"})).json()
    totals = {r["competitor"]: (r["games_played"], r["games_scored"], r["games_score"])
              for r in body["rows"]}  # fmt: skip
    assert totals == {
        "a": (4, 3, pytest.approx(9.95)),
        "b": (3, 3, pytest.approx(12.1)),
        "c": (2, 1, pytest.approx(0.1)),
    }
    night = await client.get("/leaderboard", params={"arena": "snake", "category": "night"})
    assert {r["competitor"]: r["games_score"] for r in night.json()["rows"]} == {
        "a": pytest.approx(0.2),
        "b": pytest.approx(0.1),
    }
    bt = (await client.get("/leaderboard", params={"arena": "snake", "system": "bt"})).json()
    assert {r["competitor"]: r["games_scored"] for r in bt["rows"]} == {"a": 3, "b": 3, "c": 1}
    # Not a game pool: the fields are null, not zeros.
    voice = (await client.get("/leaderboard", params={"arena": "voice"})).json()
    assert [(r["games_played"], r["games_scored"], r["games_score"]) for r in voice["rows"]] == [
        (None, None, None),
        (None, None, None),
    ]


async def test_competitor_totals_and_recent_games(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(database_url, _events())
    r = await client.get("/competitors/a", params={"recent_games": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results_position"] == 7
    assert [
        (t["arena"], t["category"], t["games"], t["scored"], t["score_total"], t["score_avg"])
        for t in body["game_scores"]
    ] == [
        ("snake", "", 4, 3, pytest.approx(9.95), pytest.approx(9.95 / 3)),
        ("snake", "night", 1, 1, pytest.approx(0.2), pytest.approx(0.2)),
    ]
    # Newest first; the voided game is listed, marked.
    assert [
        (g["game_id"], g["event_id"], g["rank"], g["score"], g["players"], g["voided_by"])
        for g in body["recent_games"]
    ] == [
        ("g5", "ev-g5", 1, 0.2, ["a", "b"], None),
        ("g4", "ev-g4", 2, None, ["c", "a"], None),
        ("g3", "ev-g3", 1, 100.0, ["a", "c"], "ev-v3"),
    ]
    assert (await client.get("/competitors/a")).json()["recent_games"][-1]["game_id"] == "g1"
    z = (await client.get("/competitors/z", params={"recent_games": 0})).json()
    assert (z["game_scores"], z["recent_games"]) == ([], [])
    assert_error(
        await client.get("/competitors/a", params={"recent_games": 101}), 400, "bad_parameter"
    )
    assert_error(await client.get("/competitors/a", params={"games": 3}), 400, "bad_parameter")
