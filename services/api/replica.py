"""Reads from a PostgreSQL streaming replica: which queries go where, how the response cache
follows the replica, and what ``/health`` says about it.

``ARBITER_READ_DATABASE_URL`` (unset: everything on the primary, as before) points the read
routes at a hot standby of ``ARBITER_DATABASE_URL``. What goes where, and why:

* **Replica**: every read route (leaderboards, competitors, histories, results, the log,
  experiments, stats, the leaderboard stream, ownership of experiments) and ``/health``'s
  projection positions. Each answer runs in one snapshot of the replica, so the ``position`` /
  ``results_position`` it carries is the replica's and describes exactly the rows it shows.
* **Primary**: every write (``/admin/keys``, ``/admin/rebuild``, the evaluation jobs and their
  progress), and three reads that must see a write at once: API keys (a key just created must
  work and a revoked one stop, whatever the replica's delay), the evaluation jobs (a job is read
  back right after it is queued) and the digest ``POST /events`` compares a resend with (an
  event recorded a moment ago is a duplicate or a conflict now, not after replay). ``POST
  /events`` itself only publishes to NATS; the ingest and the projectors write the primary.

The response cache (:mod:`.cache`) must be keyed by the state of the server that answers.
NOTIFY is not delivered on a hot standby, so :class:`~.cache.ReadModelWatch` LISTENs on the
primary (to learn at once that a projector committed) and reads the state it installs from the
replica: at each notification it stops serving from the cache, reads the primary's projection
state, and polls the replica every :data:`POLL_S` until the replica has replayed that far
(:func:`caught_up`); only then does the replica's state key the cache again. Meanwhile every
answer is computed on the replica. So a cached answer never names a position the replica does
not hold, and since the cache is off from the primary's commit (the replica cannot replay it
earlier) until the replica shows it, an answer is never older than the replica, except in the
sub-millisecond window before the NOTIFY arrives, as on a single server (:mod:`.cache`).

``/health`` adds ``replica`` (:func:`replica_health`): ``delay_s`` (how long ago the last
replayed transaction committed on the primary; 0 when the replica has replayed everything it
received, so an idle primary does not look like a lagging replica), ``lag_bytes`` (primary WAL
position minus replayed WAL position) and every projection's position on both servers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import psycopg
from arbiter.projections import PROJECTIONS, tracking
from psycopg import sql

from .models.health import ReplicaHealth, ReplicaPosition
from .store import ReadStore

__all__ = [
    "POLL_S",
    "READ_URL_ENV",
    "STATE_QUERY",
    "caught_up",
    "read_state",
    "read_url_from_env",
    "replica_health",
    "state_of",
    "wait_for_replica",
]

READ_URL_ENV = "ARBITER_READ_DATABASE_URL"
POLL_S = 0.02
"""How often the watch asks the replica whether it has replayed a commit: one tiny query."""

STATE_QUERY = sql.SQL(" UNION ALL ").join(
    sql.SQL("SELECT {n}, position, generation FROM {t} WHERE projection = {n}").format(
        n=sql.Literal(spec.name), t=tracking.table(spec.schema)
    )
    for spec in PROJECTIONS.values()
)
"""``(projection, position, generation)`` of every projection."""

_REPLAY = sql.SQL(
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END, "
    "pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())"
)


def read_url_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """``ARBITER_READ_DATABASE_URL``, or None when unset or blank (reads on the primary)."""
    value = environ.get(READ_URL_ENV, "").strip()
    return value or None


def state_of(rows: list[tuple[Any, ...]]) -> tuple[int, ...]:
    """Rows of :data:`STATE_QUERY` as the flat ``(position, generation, ...)`` tuple that keys
    the cache, in projection-name order."""
    return tuple(v for _, position, generation in sorted(rows) for v in (position, generation))


async def read_state(conn: psycopg.AsyncConnection[Any]) -> tuple[int, ...]:
    return state_of(await (await conn.execute(STATE_QUERY)).fetchall())


def caught_up(replica: tuple[int, ...], primary: tuple[int, ...]) -> bool:
    """Whether the replica's state includes the primary's: per projection, a later generation
    (a rebuild swapped in) or the same generation at least as far."""
    if len(replica) != len(primary):
        return False
    pairs = range(0, len(primary), 2)
    return all((replica[i + 1], replica[i]) >= (primary[i + 1], primary[i]) for i in pairs)


async def wait_for_replica(
    replica: psycopg.AsyncConnection[Any], target: tuple[int, ...]
) -> tuple[int, ...]:
    """Poll the replica until its state includes ``target``; its state then. No deadline: while
    it waits the cache stays off and answers come from the replica as it is."""
    while not caught_up(state := await read_state(replica), target):
        await asyncio.sleep(POLL_S)
    return state


async def replica_health(reads: ReadStore, timeout: float) -> ReplicaHealth | None:
    """The replica's delay behind the primary; None when reads go to the primary."""
    if not reads.replicated:
        return None
    async with reads.primary.connection(timeout=timeout) as conn:
        # The WAL position after the tracking rows were read: the replica is compared with a
        # primary at least as new as the positions shown.
        primary = await (await conn.execute(STATE_QUERY)).fetchall()
        lsn = await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
    async with reads.pool.connection(timeout=timeout) as conn:
        row = await (await conn.execute(_REPLAY, (lsn[0] if lsn else None,))).fetchone()
        replica = await (await conn.execute(STATE_QUERY)).fetchall()
    recovering, delay, behind = row if row else (False, None, None)
    replayed = {name: int(position) for name, position, _ in replica}
    return ReplicaHealth(
        standby=bool(recovering),
        delay_s=float(delay or 0.0),
        lag_bytes=max(0, int(behind or 0)),
        projections=[
            ReplicaPosition(name, int(position), replayed.get(name, 0))
            for name, position, _ in sorted(primary)
        ],
    )
