"""``/health``: liveness, every projection's lag and quarantine, and the ingest's backlog in NATS.
Always open (no key needed), like ``/schema``."""

from __future__ import annotations

import os

import psycopg
from litestar import Controller, HttpMethod, Response, route
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from ..bus import HEALTH_TIMEOUT, Bus
from ..errors import first_line, route_errors
from ..models.health import ComponentHealth, Health, ProjectionHealth, QuarantinedEvent
from ..replica import replica_health
from ..store import ReadStore

__all__ = ["HealthController"]


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012 - Litestar layer attribute

    @route(
        "/",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],  # HEAD: a probe's status and headers
        summary="Liveness, projection lag and the ingest's backlog in NATS",
        responses={
            400: route_errors()[400],  # an unknown query parameter (..parameters)
            503: ResponseSpec(Health, description="The database is unreachable."),
        },
        opt={"scope": "none"},  # always open, like /schema
    )
    async def health(
        self, reads: NamedDependency[ReadStore], bus: NamedDependency[Bus]
    ) -> Response[Health]:
        """200 while the database answers (``status`` is ``degraded`` if NATS does not);
        503 when it does not. ``lag_events`` is the log head minus the projection's position;
        events still in NATS are in ``ingest`` (``pending``: not yet in the log, of which
        ``ack_pending`` delivered and unacknowledged, ``redelivered`` delivered again), so a
        lag of 0 with ``ingest.pending`` 0 means everything published is folded. HEAD answers
        the same status and headers without the body (the server drops it). With a read
        replica, ``projections`` are the replica's (what answers reflect) and ``replica`` says
        how far behind the primary it is; either server unreachable is a 503."""
        database = ComponentHealth(ok=True)
        projections: list[ProjectionHealth] = []
        replica = None
        try:
            head, positions = await reads.projection_positions(min(HEALTH_TIMEOUT, reads.timeout))
            projections = [
                ProjectionHealth(
                    name,
                    position,
                    head,
                    max(0, head - position),
                    updated_at,
                    count,
                    [QuarantinedEvent(q["position"], q["event_id"], q["error"]) for q in shown],
                )
                for name, position, updated_at, count, shown in positions
            ]
            replica = await replica_health(reads, min(HEALTH_TIMEOUT, reads.timeout))
        except psycopg.Error as exc:
            database = ComponentHealth(ok=False, error=first_line(exc))
        nats_health, backlog = await bus.health()
        status = "ok" if database.ok and nats_health.ok else "degraded"
        body = Health(status, database, nats_health, projections, backlog, os.getpid(), replica)
        return Response(body, status_code=200 if database.ok else 503)
