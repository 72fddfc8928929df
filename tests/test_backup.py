"""Backup and restore: the log is the backup. A log filled through the real pipeline with every
kind of event is backed up with ``arbiter backup``, restored with ``arbiter restore`` into a
database that holds nothing, and rebuilt there: the audit digest is the one ``arbiter audit
verify`` printed on the source, and every read-model row is equal."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted
from arbiter.projections import PROJECTIONS, ratings, results
from arbiter.services.backup import STORE_TABLES, backup, read_manifest, store_counts
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .helpers import T0, battle, ingest_all
from .test_event_types import ev, game, score, trial, vote


def _arbiter(*args: str, database_url: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url}
    return subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def empty_database(servers: tuple[str, str]) -> Iterator[str]:
    """A second database, created like ``database_url`` but holding nothing at all (no event
    store, no read-model schemas): what a restore starts from."""
    admin = servers[0]
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = conninfo_to_dict(admin)
    info["dbname"] = name
    yield make_conninfo(**info)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _mixed_events() -> list[dict[str, Any]]:
    """Every event type: settings, registrations, battles (some awaiting votes, some in a
    category), pairwise votes, multi-player games, trials with score votes, a retirement, voids."""
    names = [f"m{i}" for i in range(8)]
    out: list[dict[str, Any]] = [
        ev("arena.configured", "cfg", k=24.0, weights={"human": 2.0, "auto": 1.0}),
        ev("competitor.registered", "reg-m0", competitor="m0", name="Model 0", provider="acme",
           meta={"price": 1.5}),
    ]  # fmt: skip
    for i in range(240):
        a, b = names[i % 8], names[(i * 3 + 1) % 8]
        if a == b:
            continue
        outcome = None if i % 10 == 0 else ("a", "b", "tie")[i % 3]
        extra: dict[str, Any] = {"category": "c1"} if i % 4 == 0 else {}
        if i % 7 == 0:
            extra["metrics"] = {"a": {"wer": 0.1 * (i % 5)}, "b": {"latency_ms": 10.0 * i}}
        out.append(battle(i, a, b, outcome, judge="human" if i % 5 == 0 else "auto", **extra))
        if outcome is None:
            out.append(vote(i, f"battle-{i}", "ann", "a"))
            out.append(vote(1000 + i, f"battle-{i}", "bob", "tie"))
    for i in range(20):
        out.append(game(i, (names[i % 8], 1), (names[(i + 1) % 8], 2), (names[(i + 2) % 8], 2)))
    for i in range(1, 12):
        out.append(trial(i, names[i % 3], arena="tts"))
        out.append(score(i, f"trial-{i}", "ann", 1 + i % 5))
    out.append(score(99, "trial-1", "ann", 5))  # replaces ann's earlier score on trial 1
    out += [
        ev("result.voided", "void-1", target_event_id="ev-7", reason="bad audio"),
        ev("result.voided", "void-2", target_event_id="game-ev-3", reason="crashed"),
        ev("competitor.retired", "ret-m7", competitor="m7", reason="deprecated"),
        battle(500, "m1", "m2", "b"),
    ]
    return out


def _project(url: str) -> None:
    for spec in PROJECTIONS.values():
        projector = Projector(url, spec, batch_size=97)
        projector.catch_up()
        projector.close()


def _read_models(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        history = sorted(ratings.stored_history(cur, "arbiter_ratings"), key=repr)
        return {
            "ratings": ratings.stored_rows(cur, "arbiter_ratings"),
            "history": history,
            "results": results.stored_rows(cur, "arbiter_results"),
        }


def _store(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            name: [tuple(r) for r in conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY 1, 2").format(sql.Identifier(name))
            ).fetchall()]
            for name in STORE_TABLES
        }  # fmt: skip


@pytest.fixture
def filled(database_url: str, nats_url: str) -> tuple[str, str]:
    """A log filled through NATS and the ingest, projected, and its audit digest."""
    import asyncio

    payloads = _mixed_events()
    ingest = asyncio.run(ingest_all(database_url, nats_url, payloads))
    assert ingest.stats.appended == len(payloads), ingest.stats
    _project(database_url)
    report = verify(database_url)
    assert report.ok, report.mismatches
    return database_url, report.digest


def _owners(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT thing, owner FROM arbiter_owners ORDER BY thing").fetchall()


@pytest.mark.parametrize("name, fmt", [("log.tar", "binary"), ("log.tar.gz", "csv")])
def test_restore_into_an_empty_database_rebuilds_to_the_same_digest(
    filled: tuple[str, str], empty_database: str, nats_url: str, tmp_path: Path, name: str,
    fmt: str,
) -> None:  # fmt: skip
    source, digest = filled
    audit = _arbiter("audit", "verify", database_url=source, nats_url=nats_url)
    assert audit.returncode == 0, audit.stderr
    assert f"digest {digest}" in audit.stdout

    path = tmp_path / name
    done = _arbiter("backup", str(path), "--format", fmt, database_url=source, nats_url=nats_url)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(path)
    assert manifest.copy_format == fmt
    with tarfile.open(path, "r:*") as tar:
        assert tar.getnames() == ["manifest.json", *(t.member for t in manifest.tables)]
    assert (tmp_path / f"{name}.sha256").read_text().endswith(f"  {name}\n")
    assert manifest.events == len(_store(source)["arbiter_events"]) > 300

    done = _arbiter("restore", str(path), database_url=empty_database, nats_url=nats_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"digest {digest}" in done.stdout
    restored = verify(empty_database)
    assert restored.digest == digest
    assert restored.ok and restored.chain_head == verify(source).chain_head  # the chain is kept
    assert _store(empty_database) == _store(source)
    assert _read_models(empty_database) == _read_models(source)
    # Owners are derived from the log, not backed up: the restore rebuilds them (it left them
    # empty, and any key could then write into another's experiment or arena).
    assert _owners(empty_database) == _owners(source) != []

    # The notification id sequence goes on after the restored head.
    with EventLog(empty_database) as log:
        extra = BattleCompleted(event_id="after", occurred_at=T0, battle_id="after", a="m1",
                                b="m2", outcome="a")  # fmt: skip
        outcome = log.append([extra])
    assert [pos for _, pos in outcome.appended] == [manifest.head + 1]
    assert verify(empty_database).ok  # and the chain goes on from the restored head


def test_a_backup_from_before_the_chain_is_chained_on_restore(
    filled: tuple[str, str], empty_database: str, nats_url: str, tmp_path: Path
) -> None:
    """A store written before the hash chain (no ``chain`` column) backs up without it; the
    restore chains the loaded log to the head the live append gave it."""
    source, digest = filled
    live = verify(source)
    assert live.ok and live.chain_position > 0
    with psycopg.connect(source) as conn:
        conn.execute("ALTER TABLE arbiter_event_ids DROP COLUMN chain")
    path = tmp_path / "old.tar"
    manifest = backup(source, path)
    assert "chain" not in next(t for t in manifest.tables if t.name == "arbiter_event_ids").columns
    done = _arbiter("restore", str(path), database_url=empty_database, nats_url=nats_url)
    assert done.returncode == 0, done.stdout + done.stderr
    restored = verify(empty_database)
    assert restored.ok, restored.chain_breaks + restored.mismatches
    assert (restored.chain_position, restored.chain_head, restored.digest) == (
        live.chain_position, live.chain_head, digest,
    )  # fmt: skip


def test_restore_refuses_a_store_that_is_not_empty(
    filled: tuple[str, str], nats_url: str, tmp_path: Path
) -> None:
    source, digest = filled
    path = tmp_path / "log.tar"
    assert _arbiter("backup", str(path), database_url=source, nats_url=nats_url).returncode == 0
    again = _arbiter("backup", str(path), database_url=source, nats_url=nats_url)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    before = _store(source)

    refused = _arbiter("restore", str(path), database_url=source, nats_url=nats_url)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert _store(source) == before

    owners = _owners(source)
    with psycopg.connect(source) as conn:  # an owner of the log being replaced
        conn.execute("INSERT INTO arbiter_owners VALUES ('experiment:other', 'key:other')")
    forced = _arbiter("restore", str(path), "--force", database_url=source, nats_url=nats_url)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"digest {digest}" in forced.stdout
    assert _store(source) == before
    assert _owners(source) == owners  # the replaced log's owner is gone


def test_a_damaged_backup_loads_nothing(
    filled: tuple[str, str], empty_database: str, nats_url: str, tmp_path: Path
) -> None:
    source, _ = filled
    path = tmp_path / "log.tar"
    assert _arbiter("backup", str(path), database_url=source, nats_url=nats_url).returncode == 0
    (tmp_path / "log.tar.sha256").unlink()  # let the per-table checksums find it
    with tarfile.open(path) as tar:
        offset = tar.getmember("arbiter_events.copy").offset_data
    data = bytearray(path.read_bytes())
    data[offset + 200] ^= 0xFF
    path.write_bytes(bytes(data))

    done = _arbiter("restore", str(path), database_url=empty_database, nats_url=nats_url)
    assert done.returncode == 1 and "SHA-256" in done.stderr
    assert set(store_counts(empty_database).values()) == {0}

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    done = _arbiter("restore", str(not_a_backup), database_url=empty_database, nats_url=nats_url)
    assert done.returncode == 2 and "not an Arbiter backup" in done.stderr
    done = _arbiter("restore", str(tmp_path / "missing.tar"), database_url=empty_database,
                    nats_url=nats_url)  # fmt: skip
    assert done.returncode == 2


def test_an_empty_log_round_trips(database_url: str, empty_database: str, tmp_path: Path) -> None:
    from arbiter.services.backup import backup, restore

    manifest = backup(database_url, tmp_path / "empty.tar")
    assert manifest.head == 0 and {t.rows for t in manifest.tables} == {0}
    assert restore(empty_database, tmp_path / "empty.tar").head == 0
    with EventLog(empty_database) as log:
        extra = BattleCompleted(event_id="first", occurred_at=T0, battle_id="first", a="m1",
                                b="m2", outcome="a")  # fmt: skip
        assert [pos for _, pos in log.append([extra]).appended] == [1]
