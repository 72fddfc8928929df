"""Battle counts per arena and scenario (issue 15 point 1: ``/summary`` while events stream in)
against real PostgreSQL: the results projector's running counts, what the migration fills from
battles folded before it, the audit's re-derivation, and ``/summary``, which reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.services.api import create_app
from arbiter.services.processes.audit import verify
from litestar.testing import AsyncTestClient

from .api_events import T0, battle, seed, void

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations/results"
MIGRATION = MIGRATIONS / "0008_battle_counts.sql"
LAST = MIGRATIONS / "0009_battle_counts_last.sql"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _events() -> list[Any]:
    """Two arenas; scenarios, battles without one, and voids (one emptying its row)."""
    return [
        battle("b1", "x", "y", "a", arena="voice", scenario="greet", at=1),
        battle("b2", "x", "z", "b", arena="voice", scenario="greet", at=2),
        battle("b3", "y", "z", "tie", arena="voice", scenario="order", at=3),
        battle("b4", "x", "y", "a", arena="voice", at=4),
        battle("b5", "x", "y", "a", arena="other", scenario="greet", at=5),
        void("v2", "b2", at=6),
        void("v3", "b3", at=7),
    ]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT arena, scenario, live, voided, last_occurred FROM arbiter_results.battle_counts"
            " ORDER BY 1, 2"
        ).fetchall()


def test_running_counts_voids_and_the_audit(database_url: str) -> None:
    seed(database_url, _events())
    # A void moves its battle from live to voided; a row left with no live battle stays. The
    # latest producer time counts voided battles too (voice/greet's, b2, was voided).
    assert _rows(database_url) == [
        ("other", "greet", 1, 0, at(5)),
        ("voice", "", 1, 0, at(4)),
        ("voice", "greet", 1, 1, at(2)),
        ("voice", "order", 0, 1, at(3)),
    ]
    assert verify(database_url).ok
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE arbiter_results.battle_counts SET live = live + 1, "
            "last_occurred = last_occurred - interval '1 second' WHERE scenario = ''"
        )
    report = verify(database_url)
    assert not report.ok
    for column in ("live", "last_occurred"):
        assert any(
            m.startswith(f"results.battle_counts ('voice', '').{column}") for m in report.mismatches
        ), report.mismatches


def test_the_migration_fills_the_counts_of_battles_already_folded(database_url: str) -> None:
    """A deployment upgraded with battles in its results model gets the rows a fold from the
    log would have made: the migration's fill equals the projector's running counts."""
    seed(database_url, _events())
    folded = _rows(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET search_path TO arbiter_results")
        conn.execute("DROP TABLE battle_counts")
        conn.execute(MIGRATION.read_text())
        conn.execute(LAST.read_text())
    assert _rows(database_url) == folded


async def test_summary_counts_battles_and_scenarios(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _events())
    voice = (await client.get("/summary", params={"arena": "voice"})).json()
    assert (voice["battles"], voice["voided"]["battles"], voice["scenarios"]) == (2, 2, 1)
    assert voice["events"]["battle.completed"] == 4
    everywhere = (await client.get("/summary")).json()
    # greet is live in both arenas and counted once; order has no live battle left.
    assert (everywhere["battles"], everywhere["voided"]["battles"]) == (3, 2)
    assert everywhere["scenarios"] == 1


async def test_summary_reads_the_running_counts(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """Not a scan of the battles (what made /summary cost O(battles) at every commit): a count
    changed in the table shows."""
    seed(database_url, _events())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE arbiter_results.battle_counts SET live = live + 5 WHERE scenario = ''")
    assert (await client.get("/summary", params={"arena": "voice"})).json()["battles"] == 7


async def test_the_arenas_page_reads_the_running_counts(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """``/`` took a count and a max over every battle at each recomputation; it reads the
    running rows now: a count and a time changed in the table show."""
    seed(database_url, _events())
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE arbiter_results.battle_counts SET live = live + 5, "
            "last_occurred = '2030-01-02T03:04:05Z' WHERE arena = 'other'"
        )
    page = (await client.get("/")).text
    row = page[page.index('data-arena="other"') :].split("</tr>", 1)[0]
    assert "2030-01-02 03:04:05 UTC" in row and ">6<" in row, row
