"""The last rebuild of each projection and the last audit: ``public.arbiter_operations``.

Rebuilds and audits run as one-off commands (``arbiter rebuild``, ``arbiter audit verify``) whose
processes end, so a duration kept in their memory would never reach a metrics scrape. Each run
records its outcome here instead, one row per (kind, projection) overwritten by the next run, and
``/metrics`` (:mod:`arbiter.services.metrics`) reads it: an operator can alert on an audit that
failed or has not run for a day, or on a rebuild that takes longer than it used to.

Like the API keys, this is bookkeeping, not a read model: no event describes it, a rebuild never
drops it, and ``arbiter backup`` does not save it. Created by :func:`ensure_table` from
:func:`arbiter.services.setup.prepare_database`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

log = logging.getLogger("arbiter.operations")

__all__ = ["TABLE", "Operation", "ensure_table", "latest", "record_operation"]

TABLE = "arbiter_operations"
_LOCK = 0x6172_6F70  # advisory lock for the DDL ("arop")
DDL = f"""
CREATE TABLE IF NOT EXISTS public.{TABLE} (
    kind         text NOT NULL,
    projection   text NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    seconds      double precision NOT NULL,
    ok           boolean NOT NULL,
    position     bigint NOT NULL,
    events       bigint NOT NULL,
    PRIMARY KEY (kind, projection)
)
"""


@dataclass(frozen=True)
class Operation:
    """The last run of one kind (``rebuild`` or ``audit``) on one projection (``''``: all)."""

    kind: str
    projection: str
    finished_at: datetime
    seconds: float
    ok: bool
    position: int
    events: int


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    """Create the table if absent; safe from several processes at once (advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(DDL)


def record_operation(
    database_url: str, kind: str, projection: str, *, seconds: float, ok: bool, position: int,
    events: int,
) -> None:  # fmt: skip
    """Store the outcome of a run that just finished, replacing the previous one. A database
    that refuses (one prepared by an older Arbiter, without the table) costs a warning, never
    the run whose outcome it is."""
    try:
        _record(database_url, (kind, projection, seconds, ok, position, events))
    except psycopg.Error as exc:
        log.warning("could not record the %s of %r: %s", kind, projection, exc)


def _record(database_url: str, values: tuple[Any, ...]) -> None:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            f"INSERT INTO public.{TABLE} (kind, projection, seconds, ok, position, events) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kind, projection) DO UPDATE SET "
            "finished_at = now(), seconds = EXCLUDED.seconds, ok = EXCLUDED.ok, "
            "position = EXCLUDED.position, events = EXCLUDED.events",
            values,
        )


def latest(cur: psycopg.Cursor[Any]) -> list[Operation]:
    """Every recorded run, by kind and projection (none before the table exists)."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{TABLE}",))
    row = cur.fetchone()
    if not row or not row[0]:
        return []
    cur.execute(
        f"SELECT kind, projection, finished_at, seconds, ok, position, events "
        f"FROM public.{TABLE} ORDER BY kind, projection"
    )
    return [Operation(*r) for r in cur.fetchall()]
