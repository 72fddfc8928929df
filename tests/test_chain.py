"""The log's hash chain: the ingest chains every event in the append's transaction, the audit
recomputes the chain and names the first position where an edit, a deletion or a reordering made
directly in PostgreSQL breaks it, and a log written before the chain gets it by a migration that
gives the same head as the live append."""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog, StoredState
from arbiter.domain.chain import GENESIS, link, stored_digest
from arbiter.domain.events import EVENT_DECODER, canonical_json, type_name
from arbiter.services.cli import app as cli_app
from arbiter.services.processes.audit import verify
from psycopg import sql
from typer.testing import CliRunner

from .helpers import battle, ingest_all, project, raw

STATE = msgspec.msgpack.Decoder(StoredState)


def _outsider_head(database_url: str) -> tuple[int, str]:
    """The chain recomputed from the README's byte layout, with nothing of Arbiter's chain code:
    hashlib and the stored rows only."""
    previous = bytes(32)
    position = 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.state, i.event_id, "
            "i.type, i.digest FROM arbiter_events e JOIN arbiter_event_ids i "
            "USING (notification_id) ORDER BY notification_id"
        ).fetchall()
    for position, oid, version, state, event_id, tag, ingest in rows:
        event = STATE.decode(state).body
        content = hashlib.sha256(canonical_json(event)).digest()
        eid, t = event_id.encode(), tag.encode()
        previous = hashlib.sha256(
            previous + position.to_bytes(8, "big") + oid.bytes + version.to_bytes(8, "big")
            + len(eid).to_bytes(2, "big") + eid + len(t).to_bytes(2, "big") + t + content
            + bytes(ingest)
        ).digest()  # fmt: skip
    return position, previous.hex()


def _stored_head(database_url: str) -> tuple[int, str]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT notification_id, chain FROM arbiter_event_ids ORDER BY notification_id DESC "
            "LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), bytes(row[1]).hex()


def _payloads() -> list[dict[str, Any]]:
    """Registrations, battles (one with a non-UTC offset: the chain covers the stored instant)
    and a void, over several ingest batches."""
    names = [f"c{i}" for i in range(6)]
    out: list[dict[str, Any]] = [
        {"type": "competitor.registered", "event_id": f"reg-{n}", "competitor": n,
         "occurred_at": "2025-01-01T00:00:00Z"} for n in names
    ]  # fmt: skip
    out += [battle(i, names[i % 6], names[(i + 1) % 6], "ab"[i % 2]) for i in range(40)]
    out[10]["occurred_at"] = "2025-01-01T12:00:00+05:30"
    out.append({"type": "result.voided", "event_id": "void-1", "target_event_id": "ev-3",
                "occurred_at": "2025-01-02T00:00:00Z", "reason": "test"})  # fmt: skip
    return out


def _build(database_url: str, nats_url: str) -> None:
    payloads = _payloads()
    ingest = asyncio.run(ingest_all(database_url, nats_url, [raw(p) for p in payloads]))
    assert ingest.stats.received == len(payloads)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM arbiter_events").fetchone() == (len(payloads),)
    project(database_url)


def _audit(database_url: str, nats_url: str) -> tuple[int, str]:
    env = {"ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url, "COLUMNS": "200"}
    result = CliRunner().invoke(cli_app, ["audit", "verify"], env=env)
    return result.exit_code, result.output


def _head(output: str) -> tuple[int, str]:
    found = re.search(r"chain head ([0-9a-f]{64}) at position (\d+)", output)
    assert found, output
    return int(found.group(2)), found.group(1)


def test_link_is_the_documented_byte_layout() -> None:
    stream, digest, ingest = bytes(range(16)), bytes([7] * 32), bytes([9] * 32)
    expected = hashlib.sha256(
        GENESIS + (5).to_bytes(8, "big") + stream + (2).to_bytes(8, "big") + b"\x00\x02e1"
        + b"\x00\x10battle.completed" + digest + ingest
    ).digest()  # fmt: skip
    assert link(GENESIS, 5, stream, 2, "e1", "battle.completed", digest, ingest) == expected


def test_stored_digest_is_the_digest_of_the_stored_event() -> None:
    """The chain's content digest is what anyone decoding the stored state recomputes, whatever
    offset the producer wrote."""
    for offset in (timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8)):
        event = EVENT_DECODER.decode(raw(battle(1, "a", "b")))
        event = msgspec.structs.replace(
            event, occurred_at=datetime(2025, 1, 1, 12, 0, 0, 123456, timezone(offset))
        )
        state = msgspec.msgpack.encode(StoredState(timestamp=datetime.now(UTC), body=event))
        decoded = STATE.decode(state).body
        assert stored_digest(event) == hashlib.sha256(canonical_json(decoded)).digest()


def test_audit_prints_the_chain_head_an_outsider_recomputes(
    database_url: str, nats_url: str
) -> None:
    _build(database_url, nats_url)
    code, output = _audit(database_url, nats_url)
    assert code == 0, output
    assert "hash chain is intact" in output
    assert _head(output) == _outsider_head(database_url)


def _events(database_url: str) -> list[tuple[int, bytes]]:
    with psycopg.connect(database_url) as conn:
        return [
            (int(p), bytes(s))
            for p, s in conn.execute(
                "SELECT notification_id, state FROM arbiter_events ORDER BY notification_id"
            ).fetchall()
        ]


def _edit(conn: psycopg.Connection[Any], events: list[tuple[int, bytes]]) -> int:
    """Re-encode one battle with the other outcome (a valid event, nothing else touched)."""
    position, state = events[20]
    stored = STATE.decode(state)
    assert type_name(stored.body) == "battle.completed"
    other = "b" if stored.body.outcome == "a" else "a"  # type: ignore[union-attr]
    body = msgspec.structs.replace(stored.body, outcome=other)
    new = msgspec.msgpack.encode(StoredState(timestamp=stored.timestamp, body=body))
    conn.execute("UPDATE arbiter_events SET state = %s WHERE notification_id = %s", (new, position))
    return position


def _delete(conn: psycopg.Connection[Any], events: list[tuple[int, bytes]]) -> int:
    """Delete one event (its row in both tables): the break is at the position after it."""
    position = events[20][0]
    conn.execute("DELETE FROM arbiter_events WHERE notification_id = %s", (position,))
    conn.execute("DELETE FROM arbiter_event_ids WHERE notification_id = %s", (position,))
    return events[21][0]


def _swap(conn: psycopg.Connection[Any], events: list[tuple[int, bytes]]) -> int:
    """Swap two events' positions (in both tables, consistently)."""
    first, second = events[20][0], events[25][0]
    for table in ("arbiter_events", "arbiter_event_ids"):
        for old, new in ((first, -1), (second, first), (-1, second)):
            conn.execute(
                sql.SQL("UPDATE {} SET notification_id = %s WHERE notification_id = %s").format(
                    sql.Identifier(table)
                ),
                (new, old),
            )
    return first


def _edit_digest(conn: psycopg.Connection[Any], events: list[tuple[int, bytes]]) -> int:
    position = events[30][0]
    conn.execute(
        "UPDATE arbiter_event_ids SET digest = %s WHERE notification_id = %s",
        (bytes(32), position),
    )
    return position


@pytest.mark.parametrize("tamper", [_edit, _delete, _swap, _edit_digest])
def test_audit_names_the_position_where_the_log_was_changed(
    database_url: str, nats_url: str, tamper: Any
) -> None:
    _build(database_url, nats_url)
    assert _audit(database_url, nats_url)[0] == 0
    events = _events(database_url)
    with psycopg.connect(database_url) as conn:
        position = tamper(conn, events)
    code, output = _audit(database_url, nats_url)
    assert code == 1, output
    first = re.search(r"CHAIN BROKEN position (\d+):", output)
    assert first and int(first.group(1)) == position, output
    assert _head(output)[0] == events[-1][0]  # the head is printed on failure too
    report = verify(database_url)
    assert not report.ok and report.chain_breaks[0].startswith(f"position {position}:")


def test_migration_chains_an_older_log_to_the_live_head(database_url: str, nats_url: str) -> None:
    """A log appended in several batches, its chain column dropped (a log from before the
    chain): the next start of the store fills it in one pass, to the same head, and a second
    start changes nothing; appends then continue the chain."""
    _build(database_url, nats_url)  # several ingest batches (the publisher's chunks)
    with EventLog(database_url) as log:
        log.append([EVENT_DECODER.decode(raw(battle(900 + i, "c1", "c2"))) for i in range(3)])
    live = _stored_head(database_url)
    assert live == _outsider_head(database_url)  # appended in batches = chained in one pass
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE arbiter_event_ids DROP COLUMN chain")
    EventLog(database_url).close()
    assert _stored_head(database_url) == live
    with psycopg.connect(database_url) as conn:
        chains = conn.execute("SELECT chain FROM arbiter_event_ids ORDER BY 1").fetchall()
        assert conn.execute(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_name = 'arbiter_event_ids' AND column_name = 'chain'"
        ).fetchone() == ("NO",)
    EventLog(database_url).close()  # idempotent
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT chain FROM arbiter_event_ids ORDER BY 1").fetchall() == chains
    with EventLog(database_url) as log:
        log.append([EVENT_DECODER.decode(raw(battle(990, "c1", "c3")))])
    project(database_url)
    report = verify(database_url)
    assert report.ok, report.chain_breaks + report.mismatches
    assert (report.chain_position, report.chain_head) == _outsider_head(database_url)
