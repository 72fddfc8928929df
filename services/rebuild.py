"""``arbiter rebuild``: build a projection from position 0 into a fresh schema, then swap it in.

Readers never see a half-built model: the new tables fill up in ``arbiter_<name>__next``, which
nobody reads, and replace the live schema in one short transaction. That transaction first takes
an ACCESS EXCLUSIVE lock on the live tracking table, which waits for the running projector's
batch to commit and holds off its next one; it then folds whatever arrived meanwhile, bumps the
generation (so the projector knows to reload) and renames the schemas. Old schema gone, new one
live, all at one commit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import migrate
from arbiter.projections import ProjectionSpec
from arbiter.services.bulk import collector_paused
from psycopg import sql

log = logging.getLogger("arbiter.rebuild")

PAGE = 20_000


@dataclass
class RebuildResult:
    projection: str
    events: int
    position: int
    generation: int
    seconds: float


def rebuild(
    database_url: str,
    spec: ProjectionSpec,
    *,
    event_log: EventLog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildResult:
    """Rebuild ``spec`` from the whole log and swap it in atomically."""
    started = time.perf_counter()
    if event_log is None:
        with EventLog(database_url) as owned:
            return rebuild(database_url, spec, event_log=owned, progress=progress)
    live, fresh = spec.schema, f"{spec.schema}__next"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))
        migrate(conn, spec.name, fresh)
        deferred = _drop_indexes(conn, fresh, spec.deferred_indexes)
        fold = spec.new()
        head = event_log.store.head()
        skip = _quarantined(conn, live)
        with collector_paused(), _Pipeline(database_url, spec, fresh, event_log, head) as pipeline:
            # Rows updated in place (standings, pair counts) are stored once, at the end, when
            # the fold offers that; append-only rows go page by page.
            take = getattr(fold, "take_appends", fold.take_changes)
            for page in pipeline.pages():
                _fold(fold, page, skip)
                pipeline.store(spec.prepare(fold, take()))
                if progress:
                    progress(fold.position, head)
            pipeline.store(spec.prepare(fold, fold.take_changes()))
        filled = time.perf_counter()
        with conn.transaction():
            for statement in (*deferred[0], *deferred[1]):
                conn.execute(statement)
        indexed = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            generation = _lock_live(cur, live)
            skip = _carry_quarantine(cur, live, fresh)
            while page := event_log.store.read_after(fold.position, PAGE):
                _fold(fold, page, skip)
                spec.write(cur, fresh, fold, fold.take_changes())
            cur.execute(
                sql.SQL("UPDATE {}.tracking SET generation = %s WHERE projection = %s").format(
                    sql.Identifier(fresh)
                ),
                (generation + 1, spec.name),
            )
            if generation >= 0:
                old = f"{live}__old"
                cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old)))
                cur.execute(
                    sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(live), sql.Identifier(old)
                    )
                )
            cur.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(fresh), sql.Identifier(live)
                )
            )
            if generation >= 0:
                cur.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(f"{live}__old"))
                )
    done = time.perf_counter()
    log.debug(
        "rebuilt %s: fill %.3fs, indexes %.3fs, swap %.3fs",
        spec.name, filled - started, indexed - filled, done - indexed,
    )  # fmt: skip
    if progress:
        progress(fold.position, max(head, fold.position))
    return RebuildResult(
        spec.name, fold.events, fold.position, generation + 1, time.perf_counter() - started
    )


def _fold(fold: Any, page: list[Any], skip: set[int]) -> None:
    """Apply a page of the log, skipping the positions the projector quarantined (so that the
    rebuild equals the incremental fold: both leave those poison events out)."""
    for position, event in page:
        if position in skip:
            fold.position = position
        else:
            fold.apply(position, event)


def _quarantined(conn: psycopg.Connection[Any], live: str) -> set[int]:
    """The live schema's quarantined positions (none if there is no live schema yet)."""
    if conn.execute("SELECT to_regclass(%s)", (f"{live}.quarantine",)).fetchone() == (None,):
        return set()
    rows = conn.execute(sql.SQL("SELECT position FROM {}.quarantine").format(sql.Identifier(live)))
    return {int(r[0]) for r in rows}


def _carry_quarantine(cur: psycopg.Cursor[Any], live: str, fresh: str) -> set[int]:
    """Under the swap's lock: copy the live quarantine into the fresh schema, so it survives the
    swap; returns its positions. One quarantined while the rebuild ran, at a position the rebuild
    had folded already, only happens for a fold that raises nondeterministically; the audit names
    any difference that would leave."""
    cur.execute("SELECT to_regclass(%s)", (f"{live}.quarantine",))
    if cur.fetchone() == (None,):
        return set()
    cur.execute(
        sql.SQL(
            "INSERT INTO {}.quarantine SELECT * FROM {}.quarantine ON CONFLICT DO NOTHING "
            "RETURNING position"
        ).format(sql.Identifier(fresh), sql.Identifier(live))
    )
    return {int(r[0]) for r in cur.fetchall()}


class _Pipeline:
    """Three stages on three threads, so that the two cores overlap: a reader prefetches the
    next page of the log (the database works, psycopg waits without the GIL), the caller folds
    (pure Python), a writer stores the previous page's rows on its own connection (COPY runs in
    the server). Bounded queues keep at most two pages in flight each way. Pages are stored in
    order, each in its own transaction; nobody reads the fresh schema until the swap."""

    def __init__(
        self, database_url: str, spec: ProjectionSpec, schema: str, event_log: EventLog, head: int
    ) -> None:
        self.database_url, self.spec, self.schema = database_url, spec, schema
        self.event_log, self.head = event_log, head
        self.read_q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.write_q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read, name="rebuild-reader", daemon=True)
        self.writer = threading.Thread(target=self._write, name="rebuild-writer", daemon=True)

    def __enter__(self) -> _Pipeline:
        self.reader.start()
        self.writer.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.stopping.set()
        self.write_q.put(_DONE)
        self.writer.join()
        self.stopping.set()
        self.reader.join(timeout=30)
        if self.failure is not None and exc_type is None:
            raise self.failure

    def _read(self) -> None:
        position = 0
        try:
            while position < self.head and not self.stopping.is_set():
                page = self.event_log.store.read_after(position, PAGE)
                if not page:
                    break
                position = page[-1][0]
                self._put(self.read_q, page)
        except BaseException as exc:
            self.failure = exc
        finally:
            self._put(self.read_q, _DONE)

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stopping.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def pages(self) -> Iterator[list[Any]]:
        while True:
            page = self.read_q.get()
            if page is _DONE:
                if self.failure is not None:
                    raise self.failure
                return
            if self.failure is not None:
                raise self.failure
            yield page

    def store(self, rows: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self._put(self.write_q, rows)

    def _write(self) -> None:
        try:
            with psycopg.connect(self.database_url) as conn:
                while (rows := self.write_q.get()) is not _DONE:
                    if self.failure is None:
                        with conn.transaction(), conn.cursor() as cur:
                            self.spec.store(cur, self.schema, rows)
        except BaseException as exc:
            self.failure = exc
            self.stopping.set()


_DONE = object()


def _drop_indexes(
    conn: psycopg.Connection[Any], schema: str, only: tuple[str, ...]
) -> tuple[list[sql.Composable], list[sql.Composable]]:
    """Drop the named indexes (primary keys and unique constraints included) in the fresh
    schema. Returns what recreates them once the tables are full: the ``CREATE INDEX``
    statements, then the ``ADD CONSTRAINT .. USING INDEX`` ones that turn unique indexes back
    into keys."""
    indexes: list[sql.Composable] = []
    constraints: list[sql.Composable] = []
    tables = conn.execute(
        "SELECT DISTINCT t.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE n.nspname = %s AND i.relname = ANY(%s)",
        (schema, list(only)),
    ).fetchall()
    for (table,) in tables:
        qualified = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        rows = conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid), c.conname, c.contype "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = t.oid "
            "WHERE n.nspname = %s AND t.relname = %s",
            (schema, table),
        ).fetchall()
        for index, definition, constraint, kind in rows:
            if index not in only:
                continue
            indexes.append(sql.SQL(definition))
            if constraint is None:
                conn.execute(
                    sql.SQL("DROP INDEX {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(index)
                    )
                )
                continue
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    qualified, sql.Identifier(constraint)
                )
            )
            constraints.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
                    qualified,
                    sql.Identifier(constraint),
                    sql.SQL("PRIMARY KEY" if kind == "p" else "UNIQUE"),
                    sql.Identifier(index),
                )
            )
    return indexes, constraints


def _lock_live(cur: psycopg.Cursor[Any], live: str) -> int:
    """Lock the live tracking table; returns its generation, or -1 if there is no live schema."""
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (live,))
    if cur.fetchone() is None:
        return -1
    cur.execute(
        sql.SQL("LOCK TABLE {}.tracking IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(live))
    )
    cur.execute(sql.SQL("SELECT max(generation) FROM {}.tracking").format(sql.Identifier(live)))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
