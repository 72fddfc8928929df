"""The body of ``GET /health``: the database, NATS, every projection's lag and quarantine, and
the ingest's backlog in NATS. Its own room: it is the one body that reports on the processes,
not on a read model."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from arbiter.adapters.bus import IngestBacklog
from msgspec import Struct

__all__ = [
    "ComponentHealth",
    "Health",
    "ProjectionHealth",
    "QuarantinedEvent",
    "ReplicaHealth",
    "ReplicaPosition",
]


class ComponentHealth(Struct, omit_defaults=True):
    ok: bool
    error: str | None = None


class ProjectionHealth(Struct):
    name: str
    position: int
    """Log position the projection has folded up to."""
    head: int
    """Highest position in the log."""
    lag_events: int
    """``head - position``: events recorded but not yet folded."""
    updated_at: datetime
    quarantined: int = 0
    """Poison events this projection skipped because its fold raised on them."""
    quarantine: list[QuarantinedEvent] = []
    """The first few of them, in log order, with the fold's error."""


class QuarantinedEvent(Struct):
    position: int
    event_id: str
    error: str


class Health(Struct):
    status: Literal["ok", "degraded"]
    database: ComponentHealth
    nats: ComponentHealth
    projections: list[ProjectionHealth]
    ingest: IngestBacklog | None = None
    """Events waiting in NATS, not in the log yet (``lag_events`` counts only the log's);
    null while NATS does not answer."""
    pid: int = 0
    """The API process that answered (with ``arbiter api --workers``, one of several)."""
    replica: ReplicaHealth | None = None
    """The read replica's delay (``ARBITER_READ_DATABASE_URL``); null when reads go to the
    primary, or while the replica or the primary does not answer (then ``database`` says
    which)."""


class ReplicaPosition(Struct):
    name: str
    primary: int
    """The projection's position on the primary."""
    replica: int
    """Its position on the replica: what the read routes' ``position`` says now."""


class ReplicaHealth(Struct):
    standby: bool
    """Whether the read database is in recovery (a hot standby); false means it is not a
    replica of anything, and its positions may never move."""
    delay_s: float
    """Seconds since the last transaction the replica replayed committed on the primary; 0
    when it has replayed all the WAL it received."""
    lag_bytes: int
    """WAL bytes the primary has written that the replica has not replayed yet."""
    projections: list[ReplicaPosition]
