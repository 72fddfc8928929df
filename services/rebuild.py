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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from arbiter.adapters.eventstore import EventLog
from arbiter.adapters.migrations import migrate
from arbiter.projections import ProjectionSpec
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
    import time

    started = time.perf_counter()
    if event_log is None:
        with EventLog(database_url) as owned:
            return rebuild(database_url, spec, event_log=owned, progress=progress)
    live, fresh = spec.schema, f"{spec.schema}__next"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))
        migrate(conn, spec.name, fresh)
        deferred = _drop_indexes(conn, fresh, spec.bulk_tables)
        fold = spec.new()
        head = event_log.store.head()
        while fold.position < head:
            page = event_log.store.read_after(fold.position, PAGE)
            if not page:
                break
            _fold_and_write(conn, spec, fresh, fold, page)
            if progress:
                progress(fold.position, head)
        with conn.transaction():
            for statement in deferred:
                conn.execute(statement)
        with conn.transaction(), conn.cursor() as cur:
            generation = _lock_live(cur, live)
            while page := event_log.store.read_after(fold.position, PAGE):
                for position, event in page:
                    fold.apply(position, event)
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
    if progress:
        progress(fold.position, max(head, fold.position))
    return RebuildResult(
        spec.name, fold.events, fold.position, generation + 1, time.perf_counter() - started
    )


def _fold_and_write(
    conn: psycopg.Connection[Any], spec: ProjectionSpec, schema: str, fold: Any, page: list[Any]
) -> None:
    for position, event in page:
        fold.apply(position, event)
    with conn.transaction(), conn.cursor() as cur:
        spec.write(cur, schema, fold, fold.take_changes())


def _drop_indexes(
    conn: psycopg.Connection[Any], schema: str, tables: tuple[str, ...]
) -> list[sql.Composable]:
    """Drop the indexes (primary keys and unique constraints included) of ``tables`` in the fresh
    schema; returns the statements that recreate them, to run once the tables are full."""
    restore: list[sql.Composable] = []
    for table in tables:
        qualified = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        constraints = conn.execute(
            "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE n.nspname = %s AND t.relname = %s AND c.contype IN ('p', 'u')",
            (schema, table),
        ).fetchall()
        owned = {name for name, _ in constraints}
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (schema, table),
        ).fetchall()
        for name, definition in constraints:
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified, sql.Identifier(name))
            )
            restore.append(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    qualified, sql.Identifier(name), sql.SQL(definition)
                )
            )
        for name, definition in indexes:
            if name in owned:
                continue
            conn.execute(
                sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            )
            restore.append(sql.SQL(definition))
    return restore


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
