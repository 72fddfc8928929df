"""The log's hash chain: each stored event's SHA-256 over the previous event's chain and its own
canonical content, so that editing, deleting, inserting or reordering an event in PostgreSQL
changes every chain hash from that position on.

Pure: the event store computes the hashes in the append's transaction and stores them in
``arbiter_event_ids.chain``; the audit recomputes them from the stored events (:class:`ChainCheck`).

The byte layout (README, "The hash chain"), all integers unsigned big-endian::

    chain[0]  = 32 zero bytes (GENESIS)
    chain[n]  = SHA-256( chain[n-1]                      32 bytes
                       || position                        8 bytes (notification id)
                       || stream                          16 bytes (originator id, UUID bytes)
                       || version                         8 bytes (originator version)
                       || len(event_id) || event_id       2 bytes + UTF-8
                       || len(type) || type               2 bytes + UTF-8 (wire tag)
                       || content digest                  32 bytes
                       || ingest digest )                 32 bytes

*content digest* is SHA-256 of the canonical JSON (sorted keys, no whitespace) of the event *as
the log stores it*: ``occurred_at`` in UTC, because the stored state (msgpack timestamps) keeps
the instant, not the producer's offset; so anyone who decodes the stored event can recompute it.
*ingest digest* is ``arbiter_event_ids.digest`` as written at ingest (the canonical JSON of the
message as received, the idempotency key); it is chained so that editing it is seen too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC

import msgspec

from .events import Event, content_digest, type_name

__all__ = ["GENESIS", "ChainCheck", "StoredLink", "link", "stored_digest", "stored_form"]

GENESIS = bytes(32)
"""The chain hash "before" the first event."""


def stored_form(event: Event) -> Event:
    """The event as the log stores it: ``occurred_at`` in UTC (msgpack keeps the instant only)."""
    offset = event.occurred_at.utcoffset()
    if offset is not None and not offset:
        return event
    return msgspec.structs.replace(event, occurred_at=event.occurred_at.astimezone(UTC))


def stored_digest(event: Event, digest: bytes | None = None) -> bytes:
    """The content digest the chain covers: SHA-256 of the stored form's canonical JSON.
    ``digest``: the event's :func:`content_digest` when the caller has it (the ingest does):
    reused when the event is already in stored form (``occurred_at`` in UTC), saving 1 us."""
    stored = stored_form(event)
    if digest is not None and stored is event:
        return digest
    return content_digest(stored)


def link(
    previous: bytes,
    position: int,
    stream: bytes,
    version: int,
    event_id: str,
    type_: str,
    digest: bytes,
    ingest_digest: bytes,
) -> bytes:
    """One event's chain hash (layout in the module docstring)."""
    eid = event_id.encode()
    tag = type_.encode()
    return hashlib.sha256(
        b"".join(
            (
                previous,
                position.to_bytes(8, "big"),
                stream,
                version.to_bytes(8, "big"),
                len(eid).to_bytes(2, "big"),
                eid,
                len(tag).to_bytes(2, "big"),
                tag,
                digest,
                ingest_digest,
            )
        )
    ).digest()


@dataclass(frozen=True, slots=True)
class StoredLink:
    """What the store holds about one position besides the event: its stream and version (from
    ``arbiter_events``) and its ``arbiter_event_ids`` row (None where that row is missing)."""

    stream: bytes
    version: int
    event_id: str | None
    type: str | None
    ingest_digest: bytes | None
    chain: bytes | None


@dataclass
class ChainCheck:
    """Recompute the chain over the stored events in position order and collect the breaks.

    After a break the check goes on from the *stored* chain hash, so that each independent
    change is named once: an edited event breaks at its own position, a deleted one at the
    position after it, two swapped events at both of theirs (and the ones between).
    """

    previous: bytes = GENESIS
    position: int = 0
    events: int = 0
    breaks: list[str] = field(default_factory=list)

    def check(self, position: int, event: Event, stored: StoredLink) -> None:
        """Check the event at ``position`` against what the store holds for it."""
        tag = type_name(event)
        if stored.chain is None or stored.ingest_digest is None:
            self.breaks.append(f"position {position}: event {event.event_id} has no chain hash")
            self.previous = link(
                self.previous, position, stored.stream, stored.version, event.event_id, tag,
                stored_digest(event), GENESIS,
            )  # fmt: skip
        else:
            expected = link(
                self.previous, position, stored.stream, stored.version, event.event_id, tag,
                stored_digest(event), stored.ingest_digest,
            )  # fmt: skip
            if stored.event_id != event.event_id or stored.type != tag:
                self.breaks.append(
                    f"position {position}: event id/type {stored.event_id}/{stored.type} in "
                    f"arbiter_event_ids, {event.event_id}/{tag} in the stored event"
                )
            elif expected != stored.chain:
                self.breaks.append(
                    f"position {position}: chain hash does not match event {event.event_id}: "
                    "this event, or the one before it, was edited, deleted, inserted or moved"
                )
            self.previous = stored.chain
        self.position = position
        self.events += 1

    @property
    def ok(self) -> bool:
        return not self.breaks
