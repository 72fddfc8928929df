"""Filling a rebuild's fresh tables: the three-stage pipeline, its connections, and the
indexes it defers.

Its own room because both processes of a sharded rebuild fill tables the same way (the
rebuild itself, :mod:`.rebuild`, and its worker, :mod:`.rebuild_worker`): pages of rows go
through :class:`Pipeline` to a writer thread on a connection that does not wait for the WAL
(:func:`fill_connection`), and the indexes that would cost a b-tree insert per row are dropped
first (:func:`drop_indexes`) and built once at the end (:func:`create_indexes`).
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from arbiter.projections import ProjectionSpec
from arbiter.projections.copy import qualified
from psycopg import sql

__all__ = [
    "Deferred",
    "Pipeline",
    "RebuildError",
    "create_indexes",
    "drop_indexes",
    "fill_connection",
    "run_statements",
    "sql_text",
]


class RebuildError(RuntimeError):
    """A rebuild failed; the live read model is untouched."""


def run_statements(database_url: str, statements: list[sql.Composable]) -> None:
    """Run statements in one transaction on a connection of their own."""
    if statements:
        with fill_connection(database_url) as conn, conn.transaction():
            for statement in statements:
                conn.execute(statement)


def sql_text(statement: sql.Composable) -> str:
    """A composed statement as plain SQL (identifiers quoted without a connection)."""
    return statement.as_string(None)


class Pipeline:
    """Three stages on three threads, so that the two cores overlap: a reader prefetches the
    next page of the log (the database works, psycopg waits without the GIL), the caller folds
    (pure Python), a writer stores the previous page's rows on its own connection (COPY runs in
    the server). Bounded queues keep at most two pages in flight each way. Pages are stored in
    order, each in its own transaction; nobody reads the fresh schema until the swap."""

    def __init__(
        self, database_url: str, spec: ProjectionSpec, schema: str, source: Iterator[Any]
    ) -> None:
        self.database_url, self.spec, self.schema, self.source = database_url, spec, schema, source
        self.read_q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.write_q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read, name="rebuild-reader", daemon=True)
        self.writer = threading.Thread(target=self._write, name="rebuild-writer", daemon=True)

    def __enter__(self) -> Pipeline:
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
        try:
            for page in self.source:
                if self.stopping.is_set():
                    break
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
            with fill_connection(self.database_url) as conn:
                while (rows := self.write_q.get()) is not _DONE:
                    if self.failure is None:
                        with conn.transaction(), conn.cursor() as cur:
                            self.spec.store(cur, self.schema, rows)
        except BaseException as exc:
            self.failure = exc
            self.stopping.set()


_DONE = object()


def fill_connection(database_url: str) -> psycopg.Connection[Any]:
    """A connection for filling the fresh schema. Its commits do not wait for the WAL to reach
    the disk: until the swap nothing refers to the fresh schema, a crash before it leaves one
    that the next rebuild drops, and the swap's own commit flushes everything before it."""
    conn = psycopg.connect(database_url)
    conn.execute("SET synchronous_commit = off")
    conn.commit()
    return conn


@dataclass(frozen=True)
class Deferred:
    """An index (or the key or unique constraint it backs) a rebuild drops while it fills the
    fresh tables and builds once they are full."""

    table: str
    name: str
    index: str
    """``pg_get_indexdef``: ``CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ...``"""
    constraint: str | None
    """``pg_get_constraintdef`` (``PRIMARY KEY (..)``) when the index backs a constraint."""


_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$")


def drop_indexes(
    conn: psycopg.Connection[Any], schema: str, only: tuple[str, ...]
) -> list[Deferred]:
    """Drop the named indexes (primary keys and unique constraints included) in the fresh
    schema; on a partitioned table that drops its partitions' copies too."""
    rows = conn.execute(
        "SELECT t.relname, i.relname, pg_get_indexdef(i.oid), c.conname, "
        "pg_get_constraintdef(c.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = t.oid "
        "WHERE n.nspname = %s AND i.relname = ANY(%s) ORDER BY i.relname",
        (schema, list(only)),
    ).fetchall()
    dropped = []
    for table, index, definition, constraint, constraint_def in rows:
        if constraint is None:
            drop = sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(index))
        else:
            drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                qualified(schema, table), sql.Identifier(constraint)
            )
        conn.execute(drop)
        dropped.append(Deferred(table, constraint or index, definition, constraint_def))
    return dropped


def create_indexes(
    schema: str, deferred: list[Deferred], partition: tuple[str, str] | None = None
) -> list[sql.Composable]:
    """The statements that build the deferred indexes: on their own tables, or, given
    ``(parent, partition)``, those of ``parent`` on that one partition only. Built on a
    partitioned table after its partitions, an index attaches theirs instead of building."""
    statements: list[sql.Composable] = []
    for d in deferred:
        table, name = d.table, d.name
        if partition is not None:
            if d.table != partition[0]:
                continue
            table, name = partition[1], partition[1] + d.name.removeprefix(d.table)
        if d.constraint is not None:
            statements.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    qualified(schema, table), sql.Identifier(name), sql.SQL(d.constraint)
                )
            )
            continue
        match = _INDEXDEF.match(d.index)
        if match is None:
            raise RebuildError(f"cannot rebuild index {d.name}: {d.index}")
        statements.append(
            sql.SQL("CREATE {}INDEX {} ON {} {}").format(
                sql.SQL(match.group(1) or ""),
                sql.Identifier(name),
                qualified(schema, table),
                sql.SQL(match.group(2)),
            )
        )
    return statements
