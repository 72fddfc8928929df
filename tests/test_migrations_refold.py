"""A migration whose new tables only the log can fill (``-- arbiter:refold``) empties the model
and sets it back to position 0 when it upgrades a database that holds a folded model, so the
projector folds the log again: after catching up, the model and the audit's digest are what a
database built with every migration from the start holds. Left empty instead, the registry per
arena and the log's index would answer wrongly without a word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import REFOLD, migration_files
from arbiter.domain.events import BattleCompleted, CompetitorRegistered
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from arbiter.services.setup import prepare_database

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _fold(url: str) -> None:
    for spec in PROJECTIONS.values():
        projector = Projector(url, spec)
        try:
            projector.catch_up()
        finally:
            projector.close()


def _scalar(url: str, query: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        return None if row is None else row[0]


def test_an_upgrade_that_needs_the_log_refolds_the_model(database_url: str) -> None:
    marked = {
        (projection, version)
        for projection in PROJECTIONS
        for version, _, text in migration_files(projection)
        if REFOLD in text.splitlines()
    }
    assert marked == {("ratings", 5), ("results", 4)}
    events = [
        CompetitorRegistered(event_id="r1", occurred_at=T0, competitor="solo", arena="x"),
        *(
            BattleCompleted(
                event_id=f"b{i}",
                occurred_at=T0 + timedelta(minutes=i),
                battle_id=f"b{i}",
                a="p",
                b="q",
                outcome="a" if i % 3 else "tie",
                arena="x" if i % 2 else "default",
            )
            for i in range(20)
        ),
    ]
    log = EventLog(database_url)
    try:
        assert not log.append(events).rejected
    finally:
        log.close()
    _fold(database_url)
    before = verify(database_url)
    assert before.ok and before.position == 21

    # The database as the previous version left it: without the two migrations' tables.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE arbiter_ratings.arena_competitors, arbiter_ratings.arena_configs")
        conn.execute("DELETE FROM arbiter_ratings.schema_migrations WHERE version = 5")
        conn.execute(
            "DROP TABLE arbiter_results.event_index, arbiter_results.event_competitors, "
            "arbiter_results.event_entities"
        )
        conn.execute("DELETE FROM arbiter_results.schema_migrations WHERE version = 4")
    applied = prepare_database(database_url)
    assert applied == ["arbiter_ratings: 0005_arena_registry", "arbiter_results: 0004_event_index"]
    for schema in ("arbiter_ratings", "arbiter_results"):
        assert _scalar(database_url, f"SELECT position FROM {schema}.tracking") == 0
    assert _scalar(database_url, "SELECT count(*) FROM arbiter_ratings.ratings") == 0
    assert _scalar(database_url, "SELECT count(*) FROM arbiter_results.battles") == 0

    _fold(database_url)
    after = verify(database_url)
    assert after.ok and after.position == 21 and after.digest == before.digest
    assert _scalar(
        database_url,
        "SELECT count(*) FROM arbiter_ratings.arena_competitors WHERE arena = 'x'",
    ) == 3  # fmt: skip
    # A database already at its newest migrations is not refolded again.
    assert prepare_database(database_url) == []
    assert _scalar(database_url, "SELECT position FROM arbiter_ratings.tracking") == 21
