"""The bodies of ``/events``: the log as read (a logged event, a page of them) and the answer to a
publish. Its own room: these are the log's shapes, not a read model's."""

from __future__ import annotations

from datetime import datetime

from arbiter.domain.events import Event
from msgspec import Struct

__all__ = [
    "Accepted",
    "EventPage",
    "LoggedEvent",
]


class LoggedEvent(Struct):
    position: int
    """The event's position in the log (its notification id): the one global order."""
    recorded_at: datetime
    event: Event
    """The wire event, as accepted."""


class EventPage(Struct):
    events: list[LoggedEvent]
    after: int
    limit: int
    type: str | None
    next_after: int
    """Pass as ``after`` to get the next page; nothing is skipped or repeated."""
    head: int
    """Highest position in the log when this page was read."""
    total: int = 0
    """Every event matching the filters and the ``after`` / ``before`` bounds, up to
    ``indexed`` (exact; the same on every page of one query)."""
    indexed: int = 0
    """The position the log's index reflects: pages are served from it, so events after it
    (up to ``head``) are not in any page yet."""
    order: str = "asc"
    next: str | None = None
    """Opaque cursor for the next page (pass as ``cursor`` with the same filters); null when a
    descending walk has reached the start of the log."""


class Accepted(Struct):
    event_id: str
    stream_seq: int | None
    """Sequence of the message in the ``ARBITER`` stream; None when the log already held the
    event, so nothing was published."""
    duplicate: bool
    """True when the event was already known with this very content: in the log, or in
    JetStream's duplicate window (a retry of a publish)."""
