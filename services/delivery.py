"""Publish events for a person at a terminal, and tell them what the log made of each one.

``arbiter publish``, ``arbiter import`` and ``arbiter demo`` hand their events to a
:class:`Delivery`. A JetStream acknowledgement only says that NATS holds a message; what a user
needs to know is whether the event is now in the log, was there already, or was refused, and why.
So, chunk by chunk:

1. Each event is validated here with the ingest's own rules (:func:`decode_event`); an invalid
   one is refused with its code and never sent.
2. The chunk's ids are looked up in the event store (``arbiter_event_ids``, one query a chunk):
   an id already recorded with the same content digest is *already in the log* and not sent; an
   id recorded with other content is refused as ``conflict`` at once, whenever the first one
   came. Within the input, a second event with an id already seen is a repeat (same content) or
   a ``conflict`` (other content).
3. The rest is published (``Nats-Msg-Id`` = id and digest of the bytes, so JetStream drops only
   identical resends) and remembered by its stream sequence.
4. While an ingest is taking events, their verdicts are collected: an id that shows up in the log
   with our digest is *new*; with another digest, a ``conflict`` (another publisher won a race);
   a message of ``ARBITER_REJECTED`` whose ``stream_seq`` is one of ours is *refused* with the
   ingest's code and sentence. Pending verdicts are bounded (:data:`MAX_PENDING`), so memory
   stays flat on a file of millions of rows.

When no ingest is consuming (no ``arbiter up`` or ``arbiter ingest`` on this NATS), there is
nothing to wait for: the published events are counted *not yet recorded*, and the command says
so. Waiting also ends, with the same count, after :attr:`Delivery.stall` seconds without a
verdict (e.g. an ingest that stopped mid-way); a vote whose battle is missing is retried by the
ingest for about 15 s before its refusal, so the default stall is longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from arbiter.adapters.bus import (
    INGEST_DURABLE,
    REJECTED_PREFIX,
    REJECTED_STREAM,
    STREAM,
    Outgoing,
    Publisher,
)
from arbiter.domain.events import content_digest, type_name
from arbiter.domain.rejections import Code, RejectedEvent, Rejection
from arbiter.domain.validation import decode_event
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

__all__ = ["CHUNK", "DEFAULT_STALL", "MAX_PENDING", "Delivery", "DeliveryReport", "Refusal"]

CHUNK = 2_000
"""Events validated, looked up and published together."""
MAX_PENDING = 20_000
"""Published events whose verdict is still awaited before publishing waits for verdicts."""
DEFAULT_STALL = 30.0
_REJECTED = msgspec.json.Decoder(RejectedEvent)


@dataclass(frozen=True)
class Refusal:
    """One event that did not enter the log: where it came from, the code and the sentence."""

    label: str
    code: str
    message: str


@dataclass
class DeliveryReport:
    """What happened to every event handed to a :class:`Delivery`."""

    read: int = 0
    new: int = 0
    """Recorded in the log by this delivery."""
    known: int = 0
    """Already in the log with the same content, or repeated in the input: nothing to do."""
    unconfirmed: int = 0
    """Published to NATS, no verdict seen (no ingest running, or it stalled)."""
    refused: list[Refusal] = field(default_factory=list)
    ingest_running: bool = True

    def by_code(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for refusal in self.refused:
            counts[refusal.code] = counts.get(refusal.code, 0) + 1
        return counts


@dataclass
class _Sent:
    label: str
    event_id: str
    digest: bytes


class Delivery:
    """Validate, look up, publish and follow events; see the module docstring.

    Use as ``async with Delivery(db, nats) as d: await d.add(label, raw)``; the report is
    complete once the block exits. ``on_refused`` is called for each refusal as it is found (a
    CLI prints it at once); ``on_progress`` with the number of events settled so far.
    """

    def __init__(
        self,
        database_url: str,
        nats_url: str,
        *,
        wait: bool = True,
        stall: float = DEFAULT_STALL,
        connect_attempts: int = 6,
        on_refused: Callable[[Refusal], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.wait = wait
        self.stall = stall
        self.connect_attempts = connect_attempts
        self.on_refused = on_refused
        self.on_progress = on_progress
        self.report = DeliveryReport()
        self._chunk: list[tuple[str, bytes]] = []
        self._inflight: dict[str, bytes] = {}
        """event_id -> digest of what was published and awaits its verdict (or, when verdicts
        are not followed, of the chunk at hand): a repeat of it in the input is caught here,
        one already recorded by the lookup. Bounded by :data:`MAX_PENDING`."""
        self._pending: dict[int, list[_Sent]] = {}
        self._rejections: list[RejectedEvent] = []
        self._publisher: Publisher | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._sub: Any = None
        self._settled = 0

    async def __aenter__(self) -> Delivery:
        self._conn = await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, connect_timeout=5
        )
        self._publisher = Publisher(self.nats_url, reconnect_attempts=self.connect_attempts)
        await self._publisher.open()
        if self.wait:
            self.report.ingest_running = await self._ingest_running()
        if self.wait and self.report.ingest_running:
            await self._follow_rejections()
        return self

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                await self._flush()
                await self._settle(until=0)
        finally:
            if self._sub is not None:
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
            if self._publisher is not None:
                with contextlib.suppress(Exception):
                    await self._publisher.close()
            if self._conn is not None:
                await self._conn.close()
        self.report.unconfirmed += sum(len(v) for v in self._pending.values())
        self._pending.clear()

    # -- input ----------------------------------------------------------------------------------

    async def add(self, label: str, raw: bytes) -> None:
        """One event (its JSON bytes) from ``label`` (a line or row number, for the report)."""
        self.report.read += 1
        self._chunk.append((label, raw))
        if len(self._chunk) >= CHUNK:
            await self._flush()

    def refuse(self, label: str, code: str, message: str) -> None:
        """Count an input that never became an event (a bad row of a file)."""
        self.report.read += 1
        self._refused(Refusal(label, code, message))

    # -- the steps ------------------------------------------------------------------------------

    async def _flush(self) -> None:
        chunk, self._chunk = self._chunk, []
        if not chunk:
            return
        candidates: list[_Sent] = []
        outgoing: list[Outgoing] = []
        for label, raw in chunk:
            event = decode_event(raw)
            if isinstance(event, Rejection):
                self._refused(Refusal(label, event.code, event.message))
                continue
            candidates.append(_Sent(label, event.event_id, content_digest(event)))
            outgoing.append(Outgoing(raw, event.event_id, type_name(event)))
        recorded = await self._recorded({c.event_id for c in candidates})
        to_send: list[tuple[_Sent, Outgoing]] = []
        for sent, out in zip(candidates, outgoing, strict=True):
            in_log = recorded.get(sent.event_id)
            earlier = self._inflight.get(sent.event_id)
            if in_log is None and earlier is None:
                self._inflight[sent.event_id] = sent.digest
                to_send.append((sent, out))
            elif sent.digest in (in_log, earlier):
                self.report.known += 1
                self._progress(1)
            else:
                self._refused(_conflict(sent.label, sent.event_id, in_log is not None))
        if not to_send:
            return
        assert self._publisher is not None
        acks = await self._publisher.publish([o for _, o in to_send], timeout=120.0)
        if not (self.wait and self.report.ingest_running):
            self.report.unconfirmed += len(acks)
            self._progress(len(acks))
            self._inflight.clear()
            return
        for (sent, _), ack in zip(to_send, acks, strict=True):
            self._pending.setdefault(ack.seq, []).append(sent)
        await self._settle(until=MAX_PENDING)

    async def _settle(self, until: int) -> None:
        """Collect verdicts until at most ``until`` are pending (or nothing moves for ``stall``
        seconds)."""
        last_change = time.monotonic()
        while self._pending and sum(len(v) for v in self._pending.values()) > until:
            if self._resolve_rejections() + await self._resolve_recorded():
                last_change = time.monotonic()
            elif time.monotonic() - last_change > self.stall:
                return
            else:
                await asyncio.sleep(0.1)

    def _resolve_rejections(self) -> int:
        done = 0
        rejections, self._rejections = self._rejections, []
        for rejected in rejections:
            for sent in self._pending.pop(rejected.stream_seq or -1, []):
                self._inflight.pop(sent.event_id, None)
                rejection = rejected.rejection
                self._refused(Refusal(sent.label, rejection.code, rejection.message))
                done += 1
        return done

    async def _resolve_recorded(self) -> int:
        recorded = await self._recorded({s.event_id for v in self._pending.values() for s in v})
        done = 0
        for seq in list(self._pending):
            left = []
            for sent in self._pending[seq]:
                digest = recorded.get(sent.event_id)
                if digest is None:
                    left.append(sent)
                    continue
                self._inflight.pop(sent.event_id, None)
                if digest == sent.digest:
                    self.report.new += 1
                    self._progress(1)
                    done += 1
                else:  # another publisher's content got there first
                    self._refused(_conflict(sent.label, sent.event_id, True))
                    done += 1
            if left:
                self._pending[seq] = left
            else:
                del self._pending[seq]
        return done

    # -- I/O helpers ----------------------------------------------------------------------------

    async def _recorded(self, event_ids: set[str]) -> dict[str, bytes]:
        """event_id -> recorded digest, for the ids the log holds (one query)."""
        if not event_ids:
            return {}
        assert self._conn is not None
        try:
            cursor = await self._conn.execute(
                "SELECT event_id, digest FROM arbiter_event_ids WHERE event_id = ANY(%s)",
                (list(event_ids),),
            )
        except psycopg.errors.UndefinedTable:  # a store no event has reached yet
            return {}
        return {event_id: bytes(digest) for event_id, digest in await cursor.fetchall()}

    async def _ingest_running(self) -> bool:
        """Whether an ingest is pulling from ``ARBITER`` now: its durable consumer has a pull
        request waiting (the ingest keeps one open between batches), sampled for about 1.5 s."""
        assert self._publisher is not None and self._publisher.js is not None
        for _ in range(6):
            try:
                info = await self._publisher.js.consumer_info(STREAM, INGEST_DURABLE)
            except NotFoundError:
                return False
            if (info.num_waiting or 0) > 0:
                return True
            await asyncio.sleep(0.25)
        return False

    async def _follow_rejections(self) -> None:
        """Receive every rejection published from now on (an ordered, ephemeral consumer)."""
        assert self._publisher is not None and self._publisher.js is not None
        js = self._publisher.js
        start = (await js.stream_info(REJECTED_STREAM)).state.last_seq + 1

        async def on_message(msg: Any) -> None:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                self._rejections.append(_REJECTED.decode(msg.data))

        self._sub = await js.subscribe(
            f"{REJECTED_PREFIX}.>",
            cb=on_message,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
        )

    def _refused(self, refusal: Refusal) -> None:
        self.report.refused.append(refusal)
        self._progress(1)
        if self.on_refused is not None:
            self.on_refused(refusal)

    def _progress(self, n: int) -> None:
        self._settled += n
        if self.on_progress is not None:
            self.on_progress(self._settled)


def _conflict(label: str, event_id: str, in_log: bool) -> Refusal:
    where = "is already in the log" if in_log else "comes earlier in this input"
    return Refusal(
        label,
        Code.CONFLICT,
        f"event_id {event_id!r} {where} with other content; use a new event_id for a new "
        "event, or resend the original unchanged.",
    )
