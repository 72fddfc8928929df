"""The tracking table: where each projection stands in the log, and which build of it is live.

Every projection's schema holds one ``tracking`` table with one row, keyed by the projection's
name and created with the schema by its first migration (so that a projector can lock it from
the start): ``position`` (the last log position folded in), ``events`` (how many were folded),
``generation`` (bumped by each ``arbiter rebuild`` swap, so a running projector knows to reload)
and ``updated_at``. The folds' stores write it, the projector locks it, a rebuild locks and bumps
it, the audit, the API and ``arbiter health`` read it. Its statements live here, in one room, so
that the meaning of its columns is written down once.

Two kinds of helpers: statements (:class:`psycopg.sql.Composed`, for callers that run them on
their own connection, synchronous or asynchronous) and functions that run them on a
synchronous cursor in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor, sql

from .copy import qualified

__all__ = [
    "CHANNEL",
    "TABLE",
    "bump_generation",
    "generation",
    "lock_row",
    "lock_table",
    "position",
    "position_query",
    "read",
    "table",
    "write",
]

TABLE = "tracking"
CHANNEL = "arbiter_read_models"
"""The NOTIFY channel :func:`write` signals on: PostgreSQL delivers it when the writing
transaction commits, so a listener (the API's response cache, :mod:`arbiter.services.api.cache`)
learns that a read model moved the moment its new rows become visible, and never before. The
payload is the schema; listeners re-read the positions rather than trust it."""


def table(schema: str) -> sql.Composed:
    """``schema.tracking``, quoted."""
    return qualified(schema, TABLE)


def position_query(schema: str, name: str) -> sql.Composed:
    """``SELECT position`` of projection ``name`` (no parameters: the name is a literal), for a
    caller's own connection, or, in parentheses, as a scalar subquery of a larger statement."""
    return sql.SQL("SELECT position FROM {} WHERE projection = {}").format(
        table(schema), sql.Literal(name)
    )


def position(cur: Cursor[Any], schema: str, name: str) -> int:
    """The position of projection ``name`` (0 when it has no row)."""
    cur.execute(position_query(schema, name))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def read(cur: Cursor[Any], schema: str, name: str) -> tuple[int, int] | None:
    """``(position, events)`` of projection ``name``, or None when it has no row: where a fold
    loaded from the store starts."""
    cur.execute(
        sql.SQL("SELECT position, events FROM {} WHERE projection = %s").format(table(schema)),
        (name,),
    )
    row = cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def generation(cur: Cursor[Any], schema: str, name: str) -> int:
    """The generation of projection ``name`` (0 when it has no row)."""
    cur.execute(
        sql.SQL("SELECT generation FROM {} WHERE projection = %s").format(table(schema)), (name,)
    )
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


def lock_row(cur: Cursor[Any], schema: str, name: str) -> tuple[int, int] | None:
    """Lock the row of projection ``name`` for the caller's transaction (``FOR UPDATE``: one
    writer at a time) and return its ``(position, generation)``, or None without a row."""
    cur.execute(
        sql.SQL("SELECT position, generation FROM {} WHERE projection = %s FOR UPDATE").format(
            table(schema)
        ),
        (name,),
    )
    row = cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def write(cur: Cursor[Any], schema: str, name: str, position: int, events: int) -> None:
    """Record that projection ``name`` has folded ``events`` events up to ``position``, in the
    caller's transaction (the one that stores the rows they produced)."""
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (projection, position, events, updated_at) VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position, "
            "events = EXCLUDED.events, updated_at = now()"
        ).format(table(schema)),
        (name, position, events),
    )
    cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, schema))


def lock_table(cur: Cursor[Any], schema: str) -> int:
    """Lock the whole table ``ACCESS EXCLUSIVE`` for the caller's transaction (it waits for a
    projector's batch to commit and holds off its next one) and return the highest generation
    in it (0 when empty): what a rebuild's swap does before it renames the schemas."""
    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table(schema)))
    cur.execute(sql.SQL("SELECT max(generation) FROM {}").format(table(schema)))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def bump_generation(cur: Cursor[Any], schema: str, name: str, generation: int) -> None:
    """Set the generation of projection ``name`` (a rebuild's fresh schema: the live one's + 1)."""
    cur.execute(
        sql.SQL("UPDATE {} SET generation = %s WHERE projection = %s").format(table(schema)),
        (generation, name),
    )
