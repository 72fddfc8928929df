"""``arbiter health``: the service health check for scripts and container orchestrators.

It asks what ``GET /health`` answers, without needing the API: PostgreSQL reachable, NATS
reachable (with JetStream and the ``ARBITER`` stream), the events waiting in NATS for the ingest
(pending, of which unacknowledged and redelivered: a crashed ingest's deliveries are there until
redelivered), and each projection's position, lag behind the log and quarantined events. A
projection's lag is never printed alone while events wait in NATS: those are not in the log yet,
so "lag 0" would hide them; ``--max-lag`` counts them too. Exit 0 when healthy, 1 when
something is down or a projection lags more than ``--max-lag`` events, 2 when the configuration
is wrong (as every command). It never starts embedded servers: with nothing configured and no
``arbiter up`` running it reports that (exit 1).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from psycopg import sql

from .common import console, err

if TYPE_CHECKING:
    from arbiter.adapters.bus import IngestBacklog

__all__ = ["NATS_TIMEOUT", "health_command"]

NATS_TIMEOUT = 3.0


def health_command(
    max_lag: Annotated[
        int | None,
        typer.Option(
            min=0, help="Unhealthy when a projection trails the log by more events than this."
        ),
    ] = None,
    skip_nats: Annotated[bool, typer.Option("--skip-nats", help="Do not check NATS.")] = False,
) -> None:
    """Check PostgreSQL, NATS and every projection's lag; exit 0 healthy, 1 not."""
    # Lazy: the projections load eventsourcing, which `arbiter --help` need not pay.
    from arbiter.projections import PROJECTIONS, tracking
    from arbiter.services.processes.runtime import configured_urls

    try:
        database_url, nats_url = configured_urls()
    except LookupError as exc:
        err.print(f"unhealthy: {exc}", markup=False)
        raise typer.Exit(1) from exc
    problems: list[str] = []
    rows: list[tuple[str, int, int, int]] = []
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            head = int(
                conn.execute(
                    "SELECT coalesce(max(notification_id), 0) FROM arbiter_events"
                ).fetchone()[0]  # type: ignore[index]
            )
            for spec in PROJECTIONS.values():
                pos = tracking.position(conn.cursor(), spec.schema, spec.name)
                quarantined = _quarantined(conn, spec.schema)
                rows.append((spec.name, pos, head - pos, quarantined))
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL: {str(exc).strip().splitlines()[0]}")
    waiting = 0
    if not skip_nats:
        error, backlog = asyncio.run(_nats_problem(nats_url))
        if error:
            problems.append(f"NATS: {error}")
        if backlog is not None:
            waiting = backlog.pending
            console.print(
                f"ingest: {backlog.pending} waiting in NATS ({backlog.ack_pending} "
                f"unacknowledged, {backlog.redelivered} redelivered)"
                + (f"; {backlog.error}" if backlog.error else ""),
                markup=False,
            )
    in_nats = f" (+{waiting} waiting in NATS)" if waiting else ""
    for name, pos, lag, quarantined in rows:
        console.print(f"{name}: position {pos}, lag {lag}{in_nats}, quarantined {quarantined}")
        if max_lag is not None and lag + waiting > max_lag:
            problems.append(f"{name} lags {lag + waiting} events{in_nats} (max {max_lag})")
    if problems:
        for problem in problems:
            err.print(f"unhealthy: {problem}", markup=False)
        raise typer.Exit(1)
    console.print("healthy")


def _quarantined(conn: psycopg.Connection[Any], schema: str) -> int:
    found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.quarantine",)).fetchone()
    if not found or found[0] is None:
        return 0
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}.quarantine").format(sql.Identifier(schema))
    ).fetchone()
    return int(row[0]) if row else 0


async def _nats_problem(url: str) -> tuple[str | None, IngestBacklog | None]:
    """What is wrong with NATS (or None), and the ingest's backlog when it answers."""
    import nats  # lazy: NATS is loaded only by the commands that talk to it
    from arbiter.adapters.bus import STREAM, ingest_backlog
    from arbiter.adapters.nats_cluster import nats_servers

    try:
        nc = await nats.connect(
            nats_servers(url),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=NATS_TIMEOUT,
        )
    except Exception as exc:
        return str(exc) or type(exc).__name__, None
    try:
        js = nc.jetstream()
        await js.stream_info(STREAM)
        return None, await ingest_backlog(js, NATS_TIMEOUT)
    except Exception as exc:
        return f"stream {STREAM}: {exc or type(exc).__name__}", None
    finally:
        await nc.close()
