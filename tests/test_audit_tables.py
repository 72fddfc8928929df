"""``arbiter audit verify`` compares every table of every read model: a log with every event
type, projected by the real projectors into a real PostgreSQL, audits OK; one row of any table
changed, deleted or added behind the projector's back makes the audit fail naming that table.

The tables are found in the migration files, so a table a new migration adds is covered here
(and the audit itself names any table or column it does not compare)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    GameCompleted,
    Participant,
    ResultVoided,
    TrialCompleted,
    VoteCast,
)
from arbiter.projections import PROJECTIONS
from arbiter.projections.tables import BOOKKEEPING
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from psycopg import sql

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
OWNER = "key:ak_0000000a"


def _tables() -> list[tuple[str, str]]:
    """(projection, table) for every table the migration files leave in place, bookkeeping and
    partitions aside. Only projections' folders: ``migrations/webhooks`` is operational state
    (the webhook worker's deliveries), never rebuilt nor audited."""
    out = []
    for folder in sorted(p for p in MIGRATIONS.iterdir() if p.is_dir() and p.name in PROJECTIONS):
        tables: list[str] = []
        for path in sorted(folder.glob("*.sql")):
            text = re.sub(r"--[^\n]*", "", path.read_text())
            for m in re.finditer(
                r"CREATE TABLE (\w+)([^;]*)|DROP TABLE (\w+)|RENAME TO (\w+)", text, re.I
            ):
                if m[1] and "PARTITION OF" not in m[2].upper() and m[1] not in tables:
                    tables.append(m[1])
                elif m[3] and m[3] in tables:
                    tables.remove(m[3])
        out += [(folder.name, t) for t in tables if t not in BOOKKEEPING]
    return out


TABLES = _tables()


def _log() -> list[Event]:
    """Every event type: settings, registry, battles with metrics (one awaiting votes), a game,
    pairwise and score votes (a voter's later score replacing the earlier), trials of a public
    and of a private experiment (written with a key), and voids of a battle, a trial and a
    vote."""
    at = [T0 + timedelta(seconds=i) for i in range(40)]
    metrics = {"a": {"latency_ms": 120.5, "wer": 0.1}, "b": {"latency_ms": 99.25, "wer": 0.3}}
    evs: list[Event] = [
        ArenaConfigured(event_id="cfg", occurred_at=at[0], arena="voice", k=24.0,
                        weights={"human": 2.0}),
        CompetitorRegistered(event_id="reg", occurred_at=at[1], competitor="m0", name="Model 0",
                             provider="acme", meta={"price": 1.5}),
        CompetitorRegistered(event_id="reg5", occurred_at=at[1], competitor="m5"),
        CompetitorRetired(event_id="ret5", occurred_at=at[2], competitor="m5", reason="old"),
    ]  # fmt: skip
    for i in range(4):
        evs.append(BattleCompleted(
            event_id=f"be{i}", occurred_at=at[3 + i], arena="voice", battle_id=f"b{i}",
            a="m0", b=f"m{1 + i % 2}", outcome=(None, "a", "b", "tie")[i], judge="human",
            category=(None, "support")[i % 2], metrics=metrics, meta={"run": i}, scenario="s",
        ))  # fmt: skip
    evs += [
        GameCompleted(event_id="ge", occurred_at=at[8], arena="voice", game_id="g0",
                      category="support", rounds=3, participants=[
                          Participant(competitor="m0", rank=1, score=3.5),
                          Participant(competitor="m1", rank=2),
                          Participant(competitor="m2", rank=2)]),
        VoteCast(event_id="va", occurred_at=at[9], vote_id="v1", voter="ann", battle_id="b0",
                 choice="a"),
        VoteCast(event_id="vb", occurred_at=at[10], vote_id="v2", voter="bob", battle_id="b0",
                 choice="tie"),
    ]  # fmt: skip
    for i, (experiment, source) in enumerate((("pub", None), ("pub", None), ("priv", OWNER))):
        evs.append(TrialCompleted(
            event_id=f"te{i}", occurred_at=at[11 + i], arena="voice", experiment_id=experiment,
            trial_id=f"t{i}", competitor=f"m{i}", prompt_index=i, status="completed",
            metrics={"ttfb_ms": 310.125 + i, "cost_usd": 0.0001}, dimensions={"persona": "p"},
            category="support", source=source,
        ))  # fmt: skip
    evs += [
        VoteCast(event_id="s1", occurred_at=at[20], vote_id="sv1", voter="ann", trial_id="t0",
                 score=4),
        VoteCast(event_id="s2", occurred_at=at[21], vote_id="sv2", voter="ann", trial_id="t0",
                 score=5),
        VoteCast(event_id="s3", occurred_at=at[22], vote_id="sv3", voter="bob", trial_id="t0",
                 score=2),
        ResultVoided(event_id="void-battle", occurred_at=at[23], target_event_id="be1",
                     reason="bad audio"),
        ResultVoided(event_id="void-trial", occurred_at=at[24], target_event_id="te1"),
        ResultVoided(event_id="void-vote", occurred_at=at[25], target_event_id="s2"),
        ExperimentCreated(event_id="xc", occurred_at=at[26], arena="voice", category="support",
                          experiment_id="pub", name="Public", competitors=["m0", "m1"],
                          prompt_count=2, trials_per_prompt=2,
                          webhook_url="https://example.com/hook"),
        ExperimentCompleted(event_id="xd", occurred_at=at[27], experiment_id="pub",
                            reason="enough"),
    ]  # fmt: skip
    return evs


@pytest.fixture
def projected(database_url: str) -> str:
    """A database holding :func:`_log`, projected into both read models."""
    with EventLog(database_url) as log:
        log.append(_log())
        assert log.store.head() == len(_log()), "every event accepted"
        for spec in PROJECTIONS.values():
            projector = Projector(database_url, spec, event_log=log)
            try:
                projector.catch_up()
            finally:
                projector.close()
    return database_url


def _one_row(conn: psycopg.Connection, schema: str, table: str) -> tuple[list[str], tuple]:
    """The primary key columns of a table and the key of one of its rows."""
    key = [
        r[0]
        for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            (f"{schema}.{table}",),
        ).fetchall()
    ]
    where = "WHERE x_wins + y_wins + ties > 0" if table == "pairs" else ""
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} " + where + " ORDER BY 1 LIMIT 1").format(
            sql.SQL(", ").join(map(sql.Identifier, key)), sql.Identifier(schema, table)
        )
    ).fetchone()
    assert row is not None, f"{schema}.{table} has no row: the log must fill every table"
    return key, tuple(row)


_CHANGE = {
    "text": "coalesce({c}, '') || '~'",
    "bigint": "coalesce({c}, 0) + 1",
    "integer": "coalesce({c}, 0) + 1",
    "numeric": "coalesce({c}, 0) + 1",
    "double precision": "coalesce({c}, 0) + 1",
    "boolean": "NOT coalesce({c}, false)",
    "jsonb": "'{{\"tampered\": true}}'::jsonb",
    "timestamp with time zone": "coalesce({c}, now()) + interval '1 microsecond'",
    "text[]": "array_append(coalesce({c}, '{{}}'), '~')",
}

_FRESH = {"bigint": "{c} + 1000000", "integer": "{c} + 1000000"}
"""A key value no row holds (for a copy of a row under a new key)."""


def _corrupt(url: str, projection: str, table: str, how: str) -> None:
    schema = f"arbiter_{projection}"
    with psycopg.connect(url, autocommit=True) as conn:
        key, values = _one_row(conn, schema, table)
        match = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
        target = sql.Identifier(schema, table)
        if how == "delete":
            conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, match), values)
            return
        # The first column outside the key; in a table that is all key (a lookup table), the
        # first key column: changing it moves the row to a key the replay does not have.
        column, kind = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attname = ANY(%s), attnum LIMIT 1",
            (f"{schema}.{table}", key),
        ).fetchone()
        if how == "update":
            change = sql.SQL(_CHANGE[kind].format(c="{c}")).format(c=sql.Identifier(column))
            conn.execute(
                sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(
                    target, sql.Identifier(column), change, match
                ),
                values,
            )
            return
        # insert: a copy of the row under another key (its last key column changed)
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (f"{schema}.{table}",),
            ).fetchall()
        ]
        kinds = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0",
                (f"{schema}.{table}",),
            ).fetchall()
        )
        unique = {key[-1]} | {
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass "
                "AND i.indisunique AND NOT i.indisprimary",
                (f"{schema}.{table}",),
            ).fetchall()
        }
        select = sql.SQL(", ").join(
            sql.SQL(_FRESH.get(kinds[c], _CHANGE[kinds[c]]).format(c="{c}")).format(
                c=sql.Identifier(c)
            )
            if c in unique
            else sql.Identifier(c)
            for c in cols
        )
        names = sql.SQL(", ").join(map(sql.Identifier, cols))
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {}").format(
                target, names, select, target, match
            ),
            values,
        )


def test_the_log_fills_every_table_and_audits_ok(projected: str) -> None:
    report = verify(projected)
    assert report.ok, report.mismatches
    with psycopg.connect(projected) as conn:
        for projection, table in TABLES:
            _one_row(conn, f"arbiter_{projection}", table)
        sums = dict(
            conn.execute(
                "SELECT (category, competitor, metric, of_trials, owner)::text, total "
                "FROM arbiter_results.competitor_metrics WHERE arena = 'voice'"
            ).fetchall()
        )
    # The private experiment's sums stand apart under its owner; a voided trial's are gone.
    assert sums["(support,m2,ttfb_ms,t,key:ak_0000000a)"] == 312.125
    assert sums['(support,m1,ttfb_ms,t,"")'] == 0


@pytest.mark.parametrize("how", ["update", "delete", "insert"])
@pytest.mark.parametrize(("projection", "table"), TABLES)
def test_one_corrupted_row_fails_the_audit_naming_its_table(
    projected: str, projection: str, table: str, how: str
) -> None:
    _corrupt(projected, projection, table, how)
    report = verify(projected)
    assert not report.ok
    named = [m for m in report.mismatches if m.startswith(f"{projection}.{table}")]
    assert named, report.mismatches


def test_the_command_exits_1_naming_the_table(projected: str, nats_url: str) -> None:
    """The same through ``arbiter audit verify``: exit 1, MISMATCH naming the table, the key,
    the column and both values."""
    with psycopg.connect(projected, autocommit=True) as conn:
        conn.execute(
            "UPDATE arbiter_results.competitor_metrics SET total = total + 0.000001 "
            "WHERE competitor = 'm0' AND metric = 'wer' AND category = ''"
        )
    env = {**os.environ, "ARBITER_DATABASE_URL": projected, "ARBITER_NATS_URL": nats_url}
    out = subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", "audit", "verify"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "MISMATCH" in out.stdout and "results.competitor_metrics" in out.stdout, out.stdout
    assert "'wer', False, '').total" in out.stdout.replace("\n", ""), out.stdout


def test_a_table_the_audit_does_not_compare_is_a_mismatch(projected: str) -> None:
    with psycopg.connect(projected, autocommit=True) as conn:
        conn.execute("CREATE TABLE arbiter_results.extra (x int)")
        conn.execute("ALTER TABLE arbiter_ratings.pairs ADD COLUMN note text")
    text = "\n".join(verify(projected).mismatches)
    assert "results.extra: a table the audit does not compare" in text
    assert "ratings.pairs.note: a column the audit does not compare" in text


def test_metric_sums_are_compared_to_the_last_digit(database_url: str) -> None:
    """Two values whose exact sum needs 35 significant digits (more than ``Decimal``'s default
    28): PostgreSQL's ``numeric`` keeps them all, so must the replay, and the audit sees a
    change in the last one."""
    values = (999999999999999.9, 0.0001234567890123456)
    with EventLog(database_url) as log:
        log.append([
            TrialCompleted(
                event_id=f"x{i}", occurred_at=T0, experiment_id="x", trial_id=f"x{i}",
                competitor="m0", prompt_index=i, status="completed", metrics={"big": value},
            )
            for i, value in enumerate(values)
        ])  # fmt: skip
        projector = Projector(database_url, PROJECTIONS["results"], event_log=log)
        projector.catch_up()
        projector.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        total = conn.execute(
            "SELECT total FROM arbiter_results.competitor_metrics WHERE metric = 'big'"
        ).fetchone()
        assert str(total[0]) == "999999999999999.9001234567890123456"
        assert verify(database_url).ok
        conn.execute(
            "UPDATE arbiter_results.competitor_metrics SET total = total + 1e-19 "
            "WHERE metric = 'big'"
        )
    assert any(
        m.startswith("results.competitor_metrics")
        and m.endswith("read model Decimal('999999999999999.9001234567890123457')")
        for m in verify(database_url).mismatches
    ), verify(database_url).mismatches
