"""``arbiter rebuild``: build a projection from position 0 into a fresh schema, then swap it in.

Readers never see a half-built model: the new tables fill up in ``arbiter_<name>__next``, which
nobody reads, and replace the live schema in one short transaction. That transaction first takes
an ACCESS EXCLUSIVE lock on the live tracking table, which waits for the running projector's
batch to commit and holds off its next one; it then folds whatever arrived meanwhile, bumps the
generation (so the projector knows to reload) and renames the schemas. Old schema gone, new one
live, all at one commit.

Speed. The fresh tables are filled with binary COPY, with their random-order indexes dropped
and built once at the end (a sort instead of a b-tree insert per row). A shardable projection
over a long log is folded by two processes at once, since the fold is pure Python under one
GIL: for the ratings, this one reads the log and rates the arena-wide pools, and forwards each
result to a worker that rates the category pools (:class:`arbiter.projections.ratings.Shard`);
each indexes its own partition of the history as soon as it is done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec
import psycopg
from arbiter.adapters.migrations import migrate
from arbiter.projections import ProjectionSpec
from arbiter.projections.copy import qualified
from arbiter.projections.ratings import Forwarded, Shard
from arbiter.services.bulk import collector_paused
from psycopg import sql

if TYPE_CHECKING:  # the worker process never opens the event store: it starts faster without
    from arbiter.adapters.eventstore import EventLog

log = logging.getLogger("arbiter.rebuild")

PAGE = 20_000
SHARD_MIN_EVENTS = 50_000
"""A log shorter than this is rebuilt in one process: starting another costs more than it saves."""
FAULT_WORKER = "ARBITER_FAULT_REBUILD_WORKER"
"""Tests set it to make the rebuild worker fail (a real failure path, end to end)."""
WORKERS_ENV = "ARBITER_REBUILD_WORKERS"
"""1 or 2: how many processes fold a shardable projection (default: 2 given two CPUs)."""


class RebuildError(RuntimeError):
    """A rebuild failed; the live read model is untouched."""


@dataclass
class RebuildResult:
    projection: str
    events: int
    position: int
    generation: int
    seconds: float
    workers: int = 1


def rebuild(
    database_url: str,
    spec: ProjectionSpec,
    *,
    event_log: EventLog | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> RebuildResult:
    """Rebuild ``spec`` from the whole log and swap it in atomically.

    ``workers`` (1 or 2) defaults to ``ARBITER_REBUILD_WORKERS``, else to 2 for a shardable
    projection given two CPUs, a log of at least :data:`SHARD_MIN_EVENTS` events and a live
    model that has category pools (or none yet); else 1.
    """
    started = time.perf_counter()
    if event_log is None:
        from arbiter.adapters.eventstore import EventLog

        with EventLog(database_url) as owned:
            return rebuild(database_url, spec, event_log=owned, progress=progress, workers=workers)
    live, fresh = spec.schema, f"{spec.schema}__next"
    with psycopg.connect(database_url, autocommit=True) as conn:
        head = event_log.store.head()
        sharded = _sharded(conn, spec, head, workers)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))
        migrate(conn, spec.name, fresh)
        deferred = _drop_indexes(conn, fresh, spec.deferred_indexes)
        skip = _quarantined(conn, live)
        task = {"database_url": database_url, "name": spec.name, "schema": fresh}
        with _Worker(task, deferred, sharded) as worker:
            shard = Shard(categories=False) if sharded else None
            fold = spec.new(shard) if sharded else spec.new()
            forward = worker.send if sharded else None
            _fill(database_url, spec, fresh, event_log, head, fold, skip, progress, forward)
            worker.finish()
            own = time.perf_counter()
            if shard is not None:
                _run(database_url, _create_indexes(fresh, deferred, shard.partition))
            worker.join()
        filled = time.perf_counter()
        with conn.transaction():
            for statement in _create_indexes(fresh, deferred):
                conn.execute(statement)
        indexed = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            generation = _lock_live(cur, live)
            skip = _carry_quarantine(cur, live, fresh)
            while page := event_log.store.read_after(fold.position, PAGE):
                if sharded:
                    # Events appended since ``head``: fold them on the whole model, read back
                    # from the fresh tables as the projector would read it.
                    fold, sharded = spec.load(cur, fresh), False
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
        "rebuilt %s in %d process(es): own fill %.3fs, fill and partition indexes %.3fs, "
        "indexes %.3fs, swap %.3fs",
        spec.name, worker.processes, own - started, filled - started, indexed - filled,
        done - indexed,
    )  # fmt: skip
    if progress:
        progress(fold.position, max(head, fold.position))
    return RebuildResult(
        spec.name, fold.events, fold.position, generation + 1, done - started, worker.processes
    )


def _sharded(
    conn: psycopg.Connection[Any], spec: ProjectionSpec, head: int, workers: int | None
) -> bool:
    """Whether to fold in two processes (see :func:`rebuild`)."""
    if workers is None:
        configured = os.environ.get(WORKERS_ENV, "").strip()
        if configured:
            try:
                workers = int(configured)
            except ValueError:
                raise RebuildError(f"{WORKERS_ENV} must be 1 or 2, not {configured!r}") from None
    if workers is not None and workers not in (1, 2):
        raise RebuildError(f"a rebuild runs in 1 or 2 processes, not {workers}")
    if not spec.shardable or workers == 1:
        return False
    if workers == 2:
        return True
    if _usable_cpus() < 2 or head < SHARD_MIN_EVENTS:
        return False
    return Shard.worth_it(conn, spec.schema)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run(database_url: str, statements: list[sql.Composable]) -> None:
    """Run statements in one transaction on a connection of their own."""
    if statements:
        with _fill_connection(database_url) as conn, conn.transaction():
            for statement in statements:
                conn.execute(statement)


def _fill(
    database_url: str,
    spec: ProjectionSpec,
    schema: str,
    event_log: EventLog,
    head: int,
    fold: Any,
    skip: set[int],
    progress: Callable[[int, int], None] | None,
    forward: Callable[[Any], None] | None = None,
) -> None:
    """Fold the log up to ``head`` into ``fold`` and store its rows in ``schema``; with
    ``forward``, hand it what the fold forwards for the category shard after each page."""
    source = _log_pages(event_log, head)
    with collector_paused(), _Pipeline(database_url, spec, schema, source) as pipeline:
        # Rows updated in place (standings, pair counts) are stored once, at the end, when
        # the fold offers that; append-only rows go page by page.
        take = getattr(fold, "take_appends", fold.take_changes)
        for page in pipeline.pages():
            _fold(fold, page, skip)
            if forward is not None:
                forward(fold.take_forwarded())
            pipeline.store(spec.prepare(fold, take()))
            if progress:
                progress(fold.position, head)
        pipeline.store(spec.prepare(fold, fold.take_changes()))


def _fold(fold: Any, page: list[Any], skip: set[int]) -> None:
    """Apply a page of the log, skipping the positions the projector quarantined (so that the
    rebuild equals the incremental fold: both leave those poison events out)."""
    for position, event in page:
        if position in skip:
            fold.position = position
        else:
            fold.apply(position, event)


class _Worker:
    """The category shard of a sharded rebuild, in a process of its own, fed by this one.

    It is a fresh interpreter (``python -m arbiter.services.rebuild``), not a fork: the caller
    has threads and open connections, and multiprocessing's spawn would re-import the caller's
    main module. Its stdin carries length-prefixed frames: the task (JSON; the database URL
    stays out of ``ps``), then one msgpack :class:`Forwarded` per page of the log, then an
    empty frame for the end; a feeder thread writes them, so the fold never waits on the pipe.
    A failing worker's traceback goes to its stderr, a temporary file, which :meth:`join`
    raises with. If the caller fails, :meth:`__exit__` kills the worker; if it dies, the worker
    reads the end of its stdin without the end frame, and stops without storing more.
    """

    def __init__(self, task: dict[str, Any], deferred: list[_Deferred], start: bool) -> None:
        self.start = start
        self.processes = 2 if start else 1
        indexes = _create_indexes(task["schema"], deferred, Shard(categories=True).partition)
        self.task = {**task, "indexes": [_text(s) for s in indexes]}
        self.proc: subprocess.Popen[bytes] | None = None
        self.errors: Any = None
        self.frames: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.feeder = threading.Thread(target=self._feed, name="rebuild-feeder", daemon=True)
        self.feed_failure: BaseException | None = None
        self.encode = msgspec.msgpack.Encoder().encode

    def __enter__(self) -> _Worker:
        if not self.start:
            return self
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "arbiter.services.rebuild"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self.errors,
            )
            self.feeder.start()
            self.frames.put(json.dumps(self.task).encode())
        except BaseException:
            self._stop()
            raise
        return self

    def send(self, batch: Forwarded) -> None:
        """Queue one page's forwarded results and voids for the worker."""
        if self.feed_failure is not None:
            self.join()
            raise RebuildError(f"the rebuild worker stopped reading: {self.feed_failure}")
        self.frames.put(self.encode(batch))

    def finish(self) -> None:
        """Send the end frame and wait until the feeder has written everything."""
        if self.proc is None:
            return
        self.frames.put(b"")
        self.frames.put(None)
        self.feeder.join()

    def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        stdin = self.proc.stdin
        try:
            while (frame := self.frames.get()) is not None:
                stdin.write(len(frame).to_bytes(4, "big"))
                stdin.write(frame)
            stdin.close()
        except BaseException as exc:  # the worker died: join() says why
            self.feed_failure = exc
            while self.frames.get() is not None:  # keep the sender from blocking
                pass

    def join(self) -> None:
        if self.proc is None or self.proc.wait() == 0:
            return
        self.errors.seek(0)
        detail = self.errors.read().decode(errors="replace").strip()
        raise RebuildError(f"the rebuild worker exited with {self.proc.returncode}: {detail}")

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self.feeder.is_alive():  # let it finish: it drains, or its write fails
            try:
                self.frames.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.frames.get_nowait()
        if self.errors is not None:
            self.errors.close()

    def __exit__(self, *_: object) -> None:
        self._stop()


def _text(statement: sql.Composable) -> str:
    """A composed statement as plain SQL (identifiers quoted without a connection)."""
    return statement.as_string(None)


def _frames(stream: BinaryIO) -> Iterator[bytes]:
    """Length-prefixed frames until the empty end frame; a stream that ends before it means
    the rebuild that wrote it is gone."""
    while True:
        size = stream.read(4)
        if len(size) < 4:
            raise RebuildError("the rebuild that started this worker is gone")
        frame = stream.read(int.from_bytes(size, "big"))
        if not frame:
            return
        yield frame


def _fill_shard(stream: BinaryIO) -> None:
    """The worker process: fold what the arena-wide shard forwards into the category pools of
    the fresh schema, then index its partition of the history."""
    from arbiter.projections import PROJECTIONS

    frames = _frames(stream)
    task = json.loads(next(frames))
    if os.environ.get(FAULT_WORKER):
        raise RuntimeError(f"{FAULT_WORKER} is set: failing as a test asked")
    spec, url, schema = PROJECTIONS[task["name"]], task["database_url"], task["schema"]
    fold = spec.new(Shard(categories=True))
    decode = msgspec.msgpack.Decoder(Forwarded).decode
    batches = (decode(frame) for frame in frames)
    with collector_paused(), _Pipeline(url, spec, schema, batches) as pipeline:
        for batch in pipeline.pages():
            fold.apply_forwarded(batch)
            pipeline.store(spec.prepare(fold, fold.take_appends()))
        pipeline.store(spec.prepare(fold, fold.take_changes()))
    _run(url, [sql.SQL(s) for s in task["indexes"]])


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
        self, database_url: str, spec: ProjectionSpec, schema: str, source: Iterator[Any]
    ) -> None:
        self.database_url, self.spec, self.schema, self.source = database_url, spec, schema, source
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
            with _fill_connection(self.database_url) as conn:
                while (rows := self.write_q.get()) is not _DONE:
                    if self.failure is None:
                        with conn.transaction(), conn.cursor() as cur:
                            self.spec.store(cur, self.schema, rows)
        except BaseException as exc:
            self.failure = exc
            self.stopping.set()


_DONE = object()


def _fill_connection(database_url: str) -> psycopg.Connection[Any]:
    """A connection for filling the fresh schema. Its commits do not wait for the WAL to reach
    the disk: until the swap nothing refers to the fresh schema, a crash before it leaves one
    that the next rebuild drops, and the swap's own commit flushes everything before it."""
    conn = psycopg.connect(database_url)
    conn.execute("SET synchronous_commit = off")
    conn.commit()
    return conn


def _log_pages(event_log: EventLog, head: int) -> Iterator[list[Any]]:
    """The log up to ``head``, a page at a time. It stops exactly there: the swap folds the
    rest under its lock."""
    position = 0
    while position < head:
        page = event_log.store.read_after(position, PAGE)
        if page and page[-1][0] > head:
            page = [entry for entry in page if entry[0] <= head]
        if not page:
            return
        position = page[-1][0]
        yield page


@dataclass(frozen=True)
class _Deferred:
    """An index (or the key or unique constraint it backs) a rebuild drops while it fills the
    fresh tables and builds once they are full."""

    table: str
    name: str
    index: str
    """``pg_get_indexdef``: ``CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ...``"""
    constraint: str | None
    """``pg_get_constraintdef`` (``PRIMARY KEY (..)``) when the index backs a constraint."""


_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$")


def _drop_indexes(
    conn: psycopg.Connection[Any], schema: str, only: tuple[str, ...]
) -> list[_Deferred]:
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
        dropped.append(_Deferred(table, constraint or index, definition, constraint_def))
    return dropped


def _create_indexes(
    schema: str, deferred: list[_Deferred], partition: tuple[str, str] | None = None
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


if __name__ == "__main__":
    _fill_shard(sys.stdin.buffer)
