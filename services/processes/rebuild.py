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

Rooms: this module is the rebuild's course (fill, index, swap), on the paging loop the projector
and the audit share (:mod:`.paging`); :mod:`.rebuild_tables` fills the fresh tables and defers
their indexes; :mod:`.rebuild_worker` is the second process and the pipe to it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import migrate
from arbiter.adapters.operations import record_operation
from arbiter.projections import ProjectionSpec, tracking
from arbiter.projections.ratings import Shard, worth_sharding
from psycopg import sql

from ..commits import committed
from .paging import PAGE, collector_paused, fold_page, pages
from .rebuild_tables import Pipeline, RebuildError, create_indexes, drop_indexes, run_statements
from .rebuild_worker import FAULT_WORKER, Worker

__all__ = [
    "FAULT_WORKER",
    "PAGE",
    "SHARD_MIN_EVENTS",
    "WORKERS_ENV",
    "RebuildError",
    "RebuildResult",
    "rebuild",
]

log = logging.getLogger("arbiter.rebuild")

SHARD_MIN_EVENTS = 50_000
"""A log shorter than this is rebuilt in one process: starting another costs more than it saves."""
WORKERS_ENV = "ARBITER_REBUILD_WORKERS"
"""1 or 2: how many processes fold a shardable projection (default: 2 given two CPUs)."""


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
        with EventLog(database_url) as owned:
            return rebuild(database_url, spec, event_log=owned, progress=progress, workers=workers)
    live, fresh = spec.schema, f"{spec.schema}__next"
    with psycopg.connect(database_url, autocommit=True) as conn:
        head = event_log.store.head()
        sharded = _sharded(conn, spec, head, workers)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))
        migrate(conn, spec.name, fresh)
        deferred = drop_indexes(conn, fresh, spec.deferred_indexes)
        skip = _quarantined(conn, live)
        task = {"database_url": database_url, "name": spec.name, "schema": fresh}
        with Worker(task, deferred, sharded) as worker:
            shard = Shard(categories=False) if sharded else None
            fold = spec.new(shard) if sharded else spec.new()
            forward = worker.send if sharded else None
            _fill(database_url, spec, fresh, event_log, head, fold, skip, progress, forward)
            worker.finish()
            own = time.perf_counter()
            if shard is not None:
                run_statements(database_url, create_indexes(fresh, deferred, shard.partition))
            worker.join()
        filled = time.perf_counter()
        with conn.transaction():
            for statement in create_indexes(fresh, deferred):
                conn.execute(statement)
        indexed = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            generation = _lock_live(cur, live)
            skip = _carry_quarantine(cur, live, fresh)
            for page in pages(event_log, fold.position):
                if sharded:
                    # Events appended since ``head``: fold them on the whole model, read back
                    # from the fresh tables as the projector would read it.
                    fold, sharded = spec.load(cur, fresh), False
                fold_page(fold, page, skip)
                spec.write(cur, fresh, fold, fold.take_changes())
            tracking.bump_generation(cur, fresh, spec.name, generation + 1)
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
    committed()
    done = time.perf_counter()
    log.debug(
        "rebuilt %s in %d process(es): own fill %.3fs, fill and partition indexes %.3fs, "
        "indexes %.3fs, swap %.3fs",
        spec.name, worker.processes, own - started, filled - started, indexed - filled,
        done - indexed,
    )  # fmt: skip
    if progress:
        progress(fold.position, max(head, fold.position))
    record_operation(
        database_url, "rebuild", spec.name, seconds=done - started, ok=True,
        position=fold.position, events=fold.events,
    )  # fmt: skip
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
    return worth_sharding(conn, spec.schema)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container's cpuset narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    source = pages(event_log, 0, head)
    with collector_paused(), Pipeline(database_url, spec, schema, source) as pipeline:
        # Rows updated in place (standings, pair counts) are stored once, at the end, when
        # the fold offers that; append-only rows go page by page.
        take = getattr(fold, "take_appends", fold.take_changes)
        for page in pipeline.pages():
            fold_page(fold, page, skip)
            if forward is not None:
                forward(fold.take_forwarded())
            pipeline.store(spec.prepare(fold, take()))
            if progress:
                progress(fold.position, head)
        pipeline.store(spec.prepare(fold, fold.take_changes()))


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


def _lock_live(cur: psycopg.Cursor[Any], live: str) -> int:
    """Lock the live tracking table; returns its generation, or -1 if there is no live schema."""
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (live,))
    if cur.fetchone() is None:
        return -1
    return tracking.lock_table(cur, live)
