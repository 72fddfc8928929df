"""The event log: an ``eventsourcing`` application on PostgreSQL, with a batched, checked append.

What the library gives us and we keep: the stored-event table and its notification id (the one
global order), the stored-event format (the append builds the mapper's rows itself, byte for byte:
:mod:`arbiter.adapters.stored_rows`), a pluggable transcoder, LISTEN/NOTIFY on append, paged reads.

What we change, and why (see ../shared/reference/eventsourcing-and-nats.md):

* The append is one transaction per *batch* that takes the library's ``EXCLUSIVE`` table lock
  (so ids become visible in commit order and a tailing projector never skips one), looks up the
  batch's event ids and streams, decides duplicate / conflict / append, inserts with ``unnest``
  arrays and notifies. The library's pipelined insert hangs above ~400 KB per call, so it is not
  used for the hot path.
* Every accepted wire event is stored as one :class:`Recorded` domain event whose originator id is
  a uuid5 of its natural key: ``battle:<battle_id>`` for a battle, ``competitor:<id>`` and
  ``arena:<name>`` for the streams that evolve, ``event:<event_id>`` otherwise. A second battle
  with the same ``battle_id`` therefore collides on the store's primary key even if every check
  above were bypassed.
* ``arbiter_event_ids`` maps each ``event_id`` to the SHA-256 of the event's canonical JSON: a
  resend with the same content is a no-op, the same id with other content is a ``conflict``.
* ``arbiter_event_ids.chain`` is each event's hash chain link (:mod:`arbiter.domain.chain`),
  computed in the append (:func:`arbiter.adapters.chainstore.chain_batch`, one query a batch for
  the head's hash and the positions) and written in the same statement; an older log is chained
  when the tables are created (:func:`arbiter.adapters.chainstore.fill_chain`).
* State is msgpack (msgspec), decoded straight into the typed wire structs: no dict round trip on
  the projector's and the audit's hot path.
* ``arbiter_owners`` maps each shared thing (``experiment:<id>``, ``trial:<id>``,
  ``arena:<name>``) to the ``source`` of the event that created it, written in the append's
  transaction. With the events voids name (read from the log: a battle, game or vote is owned
  by its own ``source``) and the admin keys among the batch's writers (``public.arbiter_api_keys``,
  same database), it is what :func:`arbiter.domain.decisions.decide` needs to rule ``not_owner``
  under the lock. The table is filled from the log when it is first created, so an older log
  gets its owners too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import msgspec
from arbiter.adapters import chainstore, keys, owners
from arbiter.adapters.stored_rows import StoredRow, stored_state, stream_uuid
from arbiter.domain.batch_decisions import decide_batch, needed_for
from arbiter.domain.chain import StoredLink, stored_digest
from arbiter.domain.decisions import (
    CompetitorFacts,
    Facts,
    Needed,
    Target,
    Verdict,
    stream_key,
    thing_of,
)
from arbiter.domain.events import Event, type_name
from arbiter.domain.events import content_digest as digest
from arbiter.domain.rejections import Rejection
from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

__all__ = [
    "CREATE_LOCK",
    "NAMESPACE",
    "RECORDED_TOPIC",
    "AppendOutcome",
    "ArbiterRecorder",
    "EventLog",
    "MsgspecTranscoder",
    "Recorded",
    "StoredState",
    "decode_body",
    "decode_state",
    "postgres_env",
    "stream_id",
]


CREATE_LOCK = 0x4172_6269_7465_72
"""Advisory lock id held while the store's tables and functions are created."""
NAMESPACE = UUID("5b0f6c1e-3d44-4c0e-9a53-6a1f1e0d7a11")
"""uuid5 namespace of Arbiter's streams. Fixed forever: changing it would re-key the log."""


class StoredState(msgspec.Struct):
    """The typed shape of every stored event's state."""

    timestamp: datetime
    body: Event


class MsgspecTranscoder(Transcoder):
    """msgpack via msgspec, decoding into :class:`StoredState` rather than untyped dicts."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(StoredState)

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes) -> dict[str, Any]:
        state = self._decoder.decode(data)
        return {"timestamp": state.timestamp, "body": state.body}


_STATE_DECODER = msgspec.msgpack.Decoder(StoredState)


def decode_state(state: bytes) -> Event:
    """The typed wire event a stored row's ``state`` holds."""
    return _STATE_DECODER.decode(state).body


class Recorded(DomainEvent):
    """One accepted wire event, as the library stores it. ``body`` is the typed wire event."""

    body: Event


RECORDED_TOPIC = get_topic(Recorded)


def stream_id(event: Event) -> UUID:
    """The originator id of an event's stream: uuid5 of its natural key."""
    return uuid5(NAMESPACE, stream_key(event))


_NS = NAMESPACE.bytes


@dataclass
class AppendOutcome:
    """What one batch append did, in the batch's order."""

    appended: list[tuple[Event, int]] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    rejected: list[tuple[Event, Rejection]] = field(default_factory=list)
    deferred: list[tuple[Event, Rejection]] = field(default_factory=list)
    """Events whose target is not in the log yet; the rejection to give if it never comes."""


class ArbiterRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder plus the event-id index and the checked batch append."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.ids_table = SQL("{}.{}").format(schema, Identifier("arbiter_event_ids"))
        self.competitors_table = SQL("{}.{}").format(schema, Identifier("arbiter_competitors"))
        self.arenas_table = SQL("{}.{}").format(schema, Identifier("arbiter_arenas"))
        self.events_table = SQL("{}.{}").format(schema, Identifier(self.events_table_name))
        self.owners_table = SQL("{}.{}").format(schema, Identifier("arbiter_owners"))
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id text PRIMARY KEY, "
                "digest bytea NOT NULL, notification_id bigint NOT NULL, type text, "
                "chain bytea NOT NULL)"
            ).format(self.ids_table)
        )
        self.sql_create_statements.append(
            SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (notification_id)").format(
                Identifier("arbiter_event_ids_notification_id"), self.ids_table
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (competitor text PRIMARY KEY, "
                "registered boolean NOT NULL, retired boolean NOT NULL)"
            ).format(self.competitors_table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (arena text PRIMARY KEY, strict boolean NOT NULL)"
            ).format(self.arenas_table)
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (thing text PRIMARY KEY, owner text NOT NULL)"
            ).format(self.owners_table)
        )
        # The ingest reads which writers are admins from the keys table (same database).
        self.sql_create_statements.append(SQL(keys.DDL))  # type: ignore[arg-type]

    def create_table(self) -> None:
        """The library's table creation, safe when several services start at once: the DDL runs
        under an advisory lock (PostgreSQL refuses concurrent ``CREATE OR REPLACE FUNCTION`` with
        "tuple concurrently updated"), and a lost race on a type is retried."""
        for attempt in range(5):
            try:
                super().create_table()
                return
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _create_table(self, curs: Any) -> None:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
        curs.execute(
            "SELECT to_regclass(%s) IS NOT NULL AS here",
            (f"{self.datastore.schema or 'public'}.arbiter_owners",),
        )
        had_owners = curs.fetchone()["here"]
        super()._create_table(curs)
        if not had_owners:
            self._fill_owners(curs)
        if not chainstore.has_chain(curs, self.datastore.schema):  # a log from before the chain
            chainstore.fill_chain(curs, self.events_table, self.ids_table, _STATE_DECODER)

    def _fill_owners(self, curs: Any) -> None:
        """Fill a new ``arbiter_owners`` from the log (a log written before the table existed)."""
        owners.fill(curs, self.events_table, self.owners_table, decode_body)

    def _store_owners(self, curs: Any, facts: Facts) -> None:
        owners.store(curs, self.owners_table, facts)

    def append_checked(
        self, events: Sequence[Event], stored: Sequence[Any], *, insert: Any = None
    ) -> AppendOutcome:
        """Append a batch in one transaction, as :func:`arbiter.domain.decisions.decide` rules.

        ``stored[i]`` is the library's StoredEvent for ``events[i]``; its version is reassigned
        here from the stream's head, read under the table lock. ``insert(curs, events_columns,
        ids_columns)`` writes the accepted rows instead of the ``unnest`` statement (the bulk
        import's COPY, :mod:`arbiter.adapters.bulkstore`): every decision stays here.
        """
        outcome = AppendOutcome()
        if not events:
            return outcome
        digests = [digest(e) for e in events]
        needed = needed_for(events)
        known = {stream_key(e): s.originator_id for e, s in zip(events, stored, strict=True)}
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            facts = self._facts(curs, needed, known)
            decisions = decide_batch(events, digests, facts)  # = decide, battles faster
            rows: list[tuple[UUID, int, str, bytes, str, bytes, str]] = []
            accepted: list[Event] = []
            for event, item, dig, d in zip(events, stored, digests, decisions, strict=True):
                if d.verdict is Verdict.APPEND:
                    rows.append(
                        (item.originator_id, d.version, item.topic, item.state, event.event_id,
                         dig, type_name(event))
                    )  # fmt: skip
                    accepted.append(event)
                elif d.verdict is Verdict.DUPLICATE:
                    outcome.duplicates.append(event)
                elif d.verdict is Verdict.DEFER:
                    assert d.rejection is not None
                    outcome.deferred.append((event, d.rejection))
                else:
                    assert d.rejection is not None
                    outcome.rejected.append((event, d.rejection))
            if rows:
                positions, chains = chainstore.chain_batch(
                    curs,
                    self.ids_table,
                    f"{self.datastore.schema or 'public'}.{self.events_table_name}",
                    [(oid.bytes, version, eid, tag, stored_digest(event, dig), dig)
                     for (oid, version, _, _, eid, dig, tag), event
                     in zip(rows, accepted, strict=True)],
                )  # fmt: skip
                oids, versions, topics, states, ids, digs, types = (
                    list(c) for c in zip(*rows, strict=True)
                )
                if insert is not None:
                    insert(curs, (oids, versions, topics, states, positions),
                           (ids, digs, positions, types, chains))  # fmt: skip
                else:
                    curs.execute(
                        SQL(
                            "WITH ins AS (INSERT INTO {events} "
                            "(originator_id, originator_version, topic, state, notification_id) "
                            "SELECT * FROM unnest(%s::uuid[], %s::int8[], %s::text[], %s::bytea[], "
                            "%s::int8[])) "
                            "INSERT INTO {ids} (event_id, digest, notification_id, type, chain) "
                            "SELECT * FROM unnest(%s::text[], %s::bytea[], %s::int8[], %s::text[], "
                            "%s::bytea[])"
                        ).format(events=self.events_table, ids=self.ids_table),
                        (oids, versions, topics, states, positions, ids, digs, positions, types,
                         chains),
                    )  # fmt: skip
                outcome.appended = list(zip(accepted, positions, strict=True))
                self._store_facts(curs, needed, facts)
                self._store_owners(curs, facts)
                self._notify_channel(curs)
        return outcome

    def _facts(self, curs: Any, needed: Needed, known: dict[str, UUID]) -> Facts:
        """Look up, in four queries (three more with owners), everything :func:`decide` needs
        about a batch."""
        facts = Facts()
        # %b: a batch's ids and streams go as binary arrays, 3-5x cheaper to dump than text
        curs.execute(
            SQL("SELECT event_id, digest, type FROM {} WHERE event_id = ANY(%b)").format(
                self.ids_table
            ),
            (list(needed.event_ids),),
        )
        facts.ids = {r["event_id"]: (bytes(r["digest"]), r["type"]) for r in curs.fetchall()}
        by_uuid = {known.get(key) or stream_uuid(_NS, key): key for key in needed.streams}
        curs.execute(
            SQL(
                "SELECT originator_id, max(originator_version) AS v FROM {} "
                "WHERE originator_id = ANY(%b) GROUP BY originator_id"
            ).format(self.events_table),
            (list(by_uuid),),
        )
        facts.heads = {by_uuid[r["originator_id"]]: r["v"] for r in curs.fetchall()}
        if needed.competitors:
            curs.execute(
                SQL(
                    "SELECT competitor, registered, retired FROM {} WHERE competitor = ANY(%s)"
                ).format(self.competitors_table),
                (list(needed.competitors),),
            )
            facts.competitors = {
                r["competitor"]: CompetitorFacts(r["registered"], r["retired"])
                for r in curs.fetchall()
            }
        if needed.arenas:
            curs.execute(
                SQL("SELECT arena, strict FROM {} WHERE arena = ANY(%s)").format(self.arenas_table),
                (list(needed.arenas),),
            )
            facts.strict = {r["arena"]: r["strict"] for r in curs.fetchall()}
        self._owner_facts(curs, needed, facts)
        return facts

    def _owner_facts(self, curs: Any, needed: Needed, facts: Facts) -> None:
        """The events voids name (from the log), the owners of everything the batch is about,
        and which of its key writers are admins: at most three queries a batch."""
        things = set(needed.things)
        if needed.targets:
            curs.execute(
                SQL(
                    "SELECT i.event_id, e.state FROM {ids} i JOIN {log} e "
                    "ON e.notification_id = i.notification_id WHERE i.event_id = ANY(%s)"
                ).format(ids=self.ids_table, log=self.events_table),
                (list(needed.targets),),
            )
            for row in curs.fetchall():
                target = _STATE_DECODER.decode(row["state"]).body
                thing = thing_of(target)
                facts.targets[row["event_id"]] = Target(thing, target.source or "")
                if thing is not None:
                    things.add(thing)
        if things:
            curs.execute(
                SQL("SELECT thing, owner FROM {} WHERE thing = ANY(%s)").format(self.owners_table),
                (list(things),),
            )
            facts.owners = {r["thing"]: r["owner"] for r in curs.fetchall()}
        if needed.writers and (things or needed.targets):  # else no write can be refused
            curs.execute(keys.ADMINS_AMONG, (list(needed.writers),))
            facts.admins = {f"key:{r['key_id']}" for r in curs.fetchall()}

    def _store_facts(self, curs: Any, needed: Needed, facts: Facts) -> None:
        """Write back what the accepted events changed about competitors and arenas."""
        known = sorted(c for c in needed.competitors if c in facts.competitors)
        if known:
            curs.execute(
                SQL(
                    "INSERT INTO {} (competitor, registered, retired) "
                    "SELECT * FROM unnest(%s::text[], %s::bool[], %s::bool[]) "
                    "ON CONFLICT (competitor) DO UPDATE SET registered = EXCLUDED.registered, "
                    "retired = EXCLUDED.retired"
                ).format(self.competitors_table),
                (
                    known,
                    [facts.competitors[c].registered for c in known],
                    [facts.competitors[c].retired for c in known],
                ),
            )
        arenas = sorted(facts.strict)
        if arenas:
            curs.execute(
                SQL(
                    "INSERT INTO {} (arena, strict) SELECT * FROM unnest(%s::text[], %s::bool[]) "
                    "ON CONFLICT (arena) DO UPDATE SET strict = EXCLUDED.strict"
                ).format(self.arenas_table),
                (arenas, [facts.strict[a] for a in arenas]),
            )

    def read_after(self, position: int, limit: int) -> list[tuple[int, Event]]:
        """Up to ``limit`` events after ``position``, in log order, typed."""
        with self.datastore.transaction(commit=False) as curs:
            curs.row_factory = tuple_row  # the store's default builds a dict per row
            curs.execute(
                SQL(
                    "SELECT notification_id, state FROM {} WHERE notification_id > %s "
                    "ORDER BY notification_id LIMIT %s"
                ).format(self.events_table),
                (position, limit),
                prepare=True,
                binary=True,  # bytea as raw bytes, not hex text: half the bytes, no decoding
            )
            decode = _STATE_DECODER.decode
            return [(position, decode(state).body) for position, state in curs.fetchall()]

    def read_links_after(self, position: int, limit: int) -> list[tuple[int, Event, StoredLink]]:
        """Like :meth:`read_after`, each event with its stream, version and event-id row (for
        the audit's chain check, :class:`arbiter.domain.chain.ChainCheck`)."""
        with self.datastore.transaction(commit=False) as curs:
            return chainstore.links(
                curs, self.events_table, self.ids_table, position, limit, _STATE_DECODER
            )

    def head(self) -> int:
        """The highest notification id, 0 for an empty log."""
        return self.max_notification_id() or 0


def postgres_env(database_url: str, *, pool_size: int = 2) -> dict[str, str]:
    """The eventsourcing environment for a PostgreSQL URL (TCP host or Unix socket dir)."""
    info = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": get_topic(ArbiterRecorder),
        "POSTGRES_DBNAME": str(info.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(info.get("host") or "localhost"),
        "POSTGRES_PORT": str(info.get("port") or "5432"),
        "POSTGRES_USER": str(info.get("user") or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": str(info.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "2",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
    }


class EventLog(Application):  # type: ignore[type-arg]
    """Arbiter's one ordered log of accepted events (table ``arbiter_events``)."""

    name = "Arbiter"

    def __init__(self, database_url: str, *, pool_size: int = 2) -> None:
        super().__init__(env=postgres_env(database_url, pool_size=pool_size))

    def construct_transcoder(self) -> Transcoder:
        return MsgspecTranscoder()

    @property
    def store(self) -> ArbiterRecorder:
        """The recorder, typed."""
        recorder = self.recorder
        assert isinstance(recorder, ArbiterRecorder)
        return recorder

    def append(self, events: Iterable[Event], *, insert: Any = None) -> AppendOutcome:
        """Append a batch of validated events; see :meth:`ArbiterRecorder.append_checked`."""
        batch = list(events)
        stored = [  # the rows the library's mapper would build (adapters/stored_rows.py)
            StoredRow(stream_uuid(_NS, stream_key(e)), RECORDED_TOPIC, stored_state(StoredState, e))
            for e in batch
        ]
        return self.store.append_checked(batch, stored, insert=insert)


def decode_body(state: bytes) -> Event:
    """The wire event stored in a row's ``state`` column."""
    return _STATE_DECODER.decode(state).body
