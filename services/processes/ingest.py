"""The ingest: ARBITER stream -> decode -> validate -> decide -> append, in batches.

One loop iteration: fetch up to ``batch_size`` messages from the durable pull consumer, decode and
validate each (pure, :mod:`arbiter.domain.validation`), append all valid ones in ONE store
transaction (which also decides duplicate / conflict under the table lock), publish every
rejection to ``ARBITER_REJECTED``, wait for those PubAcks, and only then ack the batch.

A crash anywhere before the acks means JetStream redelivers the batch; the append is idempotent
on ``event_id`` and the rejection publishes carry a ``Nats-Msg-Id`` derived from the stream
sequence, so redelivery neither doubles an event nor a rejection. If PostgreSQL is down the batch
is retried with back-off (messages stay un-acked, ``in_progress`` keeps them ours).

Stopping (SIGTERM / SIGINT set ``stop``) is graceful: the batch being handled is finished (append,
rejections published and acknowledged, acks sent and flushed) before the loop exits; a batch whose
append cannot be done while stopping, and any delivery that reached us after the last fetch, is
negatively acknowledged so that the next ingest gets it at once rather than after ``ack_wait``.

A vote or a void whose target is not in the log yet is not acked but negatively acknowledged
with a growing delay, so JetStream redelivers it; after ``target_attempts`` deliveries it is
rejected ``unknown_target``.

After a crash nothing waits hidden: the consumer's ``ack_wait`` is short (:data:`ACK_WAIT`), so
the deliveries a killed ingest held (the batch it was appending, and the one it had fetched
meanwhile) are redelivered seconds later, not a minute later. A short ``ack_wait`` alone would
also redeliver a batch that a live ingest is merely slow with (a slow append, PostgreSQL
restarting), to itself or to a second ingest; so every batch held longer than
:data:`PROGRESS_EVERY` gets a progress ack (``in_progress``) for each message, repeated while it
is held. Those are fire-and-forget publishes sent only for slow batches, never on the fast path.
A consumer reset on start was the other way: it cannot tell a dead ingest's deliveries from a
live second ingest's, and NATS has no "redeliver now" for another client's deliveries.
``/health`` and ``arbiter health`` report the consumer's pending and redelivered counts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from arbiter.adapters.bus import (
    INGEST_DURABLE,
    REJECTED_PREFIX,
    STREAM,
    SUBJECT_PREFIX,
    connect,
    ensure_streams,
    ingest_backlog,
    subject_for,
)
from arbiter.adapters.eventstore import AppendOutcome, EventLog
from arbiter.domain.events import EVENT_TYPES, Event, type_name
from arbiter.domain.rejections import Code, RejectedEvent, Rejection
from arbiter.domain.validation import MAX_EVENT_BYTES, decode_event
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from .. import metrics

__all__ = [
    "ACK_WAIT",
    "DEFAULT_BATCH",
    "DEFAULT_TARGET_ATTEMPTS",
    "DEFAULT_TARGET_DELAY",
    "FAULT_SLEEP_ENV",
    "PROGRESS_EVERY",
    "Ingest",
    "IngestStats",
    "run_ingest",
]

log = logging.getLogger("arbiter.ingest")

DEFAULT_BATCH = 1_000
ACK_WAIT = 5.0
"""Seconds JetStream waits for an ack before it redelivers: how long a dead ingest's batch hides."""
PROGRESS_EVERY = 1.5
"""A batch held this long gets progress acks, this often, so a live ingest keeps it (< ACK_WAIT)."""
BACKLOG_EVERY = 5.0
"""Seconds between refreshes of the NATS consumer gauges of ``/metrics``."""
DEFAULT_TARGET_ATTEMPTS = 6
DEFAULT_TARGET_DELAY = 0.5
"""A vote or void whose target is missing is redelivered after 0.5, 1, 2, 4 and 8 s (JetStream
keeps it, so an ingest restart loses nothing) and rejected ``unknown_target`` at the 6th
delivery: about 15 s for the target to arrive, e.g. from a producer that publishes out of order.
"""
FAULT_SLEEP_ENV = "ARBITER_FAULT_SLEEP_BEFORE_ACK"
"""Fault injection for the shutdown tests: seconds to sleep after a batch's append has committed
and before its acks, so a test can signal the ingest while a batch is in flight."""
_REJECTED = msgspec.json.Encoder()


@dataclass
class IngestStats:
    """Counters since start, for logs and ``/health``."""

    received: int = 0
    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    waiting: int = 0
    """Deliveries put back because their target (a vote's battle, a void's result) was missing."""
    batches: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


class Ingest:
    """The ingest service. ``run`` until ``stop`` is set; every step is one batch."""

    def __init__(
        self,
        database_url: str,
        nats_url: str,
        *,
        batch_size: int = DEFAULT_BATCH,
        max_event_bytes: int = MAX_EVENT_BYTES,
        target_attempts: int | None = None,
        target_delay: float | None = None,
    ) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.batch_size = batch_size
        self.max_event_bytes = max_event_bytes
        self.target_attempts = target_attempts or int(
            os.environ.get("ARBITER_TARGET_ATTEMPTS", DEFAULT_TARGET_ATTEMPTS)
        )
        self.target_delay = target_delay or float(
            os.environ.get("ARBITER_TARGET_DELAY", DEFAULT_TARGET_DELAY)
        )
        self.stats = IngestStats()
        self.log: EventLog | None = None
        self._held: dict[int, tuple[float, list[Msg]]] = {}
        """Fetched batches not yet settled, by id, with the time they were fetched."""

    async def run(self, stop: asyncio.Event) -> None:
        nc = await connect(self.nats_url, name="arbiter-ingest")
        js = nc.jetstream()
        await ensure_streams(js)
        self.log = await asyncio.to_thread(EventLog, self.database_url)
        config = ConsumerConfig(
            durable_name=INGEST_DURABLE,
            filter_subject=f"{SUBJECT_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT,
            max_ack_pending=50_000,
            max_deliver=-1,
        )
        # Create, or update a consumer an older version made (binding alone keeps its config,
        # and with it a 60 s ack_wait).
        await js.add_consumer(STREAM, config)
        sub = await js.pull_subscribe(
            f"{SUBJECT_PREFIX}.>", durable=INGEST_DURABLE, stream=STREAM, config=config
        )
        keep_alive = asyncio.ensure_future(self._keep_alive())
        watch = asyncio.ensure_future(self._watch_backlog(js))
        # The next batch is fetched while this one is appended and acked: the append waits on
        # PostgreSQL in a thread, and the event loop meanwhile takes in the next messages.
        # Appends stay strictly in turn, so the log keeps the order in which batches arrive.
        fetching = asyncio.ensure_future(self._fetch(sub))
        try:
            while True:
                msgs = await fetching
                if stop.is_set():  # finish what was received: one more batch at most
                    if msgs:
                        await self.handle(js, msgs, stop)
                    break
                fetching = asyncio.ensure_future(self._fetch(sub))
                if msgs:
                    await self.handle(js, msgs, stop)
                    self._held.pop(id(msgs), None)
            await self._put_back(nc, sub)
        finally:
            keep_alive.cancel()
            watch.cancel()
            if not fetching.done():
                fetching.cancel()
                with contextlib.suppress(BaseException):
                    await fetching
            # Every handled message is acked already; flush those acks, then close (a drain
            # would wait out the pending pull request).
            with contextlib.suppress(Exception):
                await nc.flush(timeout=5)
            await nc.close()
            await asyncio.to_thread(self.log.close)

    async def handle(self, js: object, msgs: list[Msg], stop: asyncio.Event) -> None:
        """Process one fetched batch end to end; ack only after everything is durable."""
        now = datetime.now(UTC)
        events: list[Event] = []
        rejections: list[tuple[Msg, Rejection]] = []
        msg_of: dict[int, Msg] = {}
        for msg in msgs:
            result = decode_event(msg.data, now=now, max_bytes=self.max_event_bytes)
            if not isinstance(result, Rejection) and msg.subject != _SUBJECT[type(result)]:
                result = _wrong_subject(msg.subject, result)
            if isinstance(result, Rejection):
                rejections.append((msg, result))
            else:
                msg_of[id(result)] = msg
                events.append(result)
        outcome = await self._append(events, msgs, stop)
        if outcome is None:
            await self._nak(msgs)  # stopping: redeliver now, not after ack_wait
            return
        if fault_sleep := float(os.environ.get(FAULT_SLEEP_ENV, "0")):
            await asyncio.sleep(fault_sleep)
        for event, rejection in outcome.rejected:
            rejections.append((msg_of[id(event)], rejection))
        waiting: list[tuple[Msg, float]] = []
        for event, rejection in outcome.deferred:
            msg = msg_of[id(event)]
            attempt = msg.metadata.num_delivered if msg.metadata else None
            if attempt is None or attempt >= self.target_attempts:
                rejections.append((msg, rejection))
            else:
                waiting.append((msg, min(self.target_delay * 2 ** (attempt - 1), 30.0)))
        if rejections:
            await self._publish_rejections(js, rejections)
        later = {id(m) for m, _ in waiting}
        for msg in msgs:
            if id(msg) not in later:
                await msg.ack()
        for msg, delay in waiting:
            await msg.nak(delay=delay)
        self.stats.waiting += len(waiting)
        metrics.EVENTS_DEFERRED.inc(len(waiting))
        self._count(len(msgs) - len(waiting), outcome, rejections)
        positions = [p for _, p in outcome.appended]
        log.info(
            "batch of %d: %d appended, %d duplicates, %d rejected, %d waiting for their target",
            len(msgs), len(positions), len(outcome.duplicates), len(rejections), len(waiting),
            extra={"batch_size": len(msgs), "events": len(positions), "rejected": len(rejections),
                   "first_position": positions[0] if positions else None,
                   "last_position": positions[-1] if positions else None},
        )  # fmt: skip

    async def _fetch(self, sub: object) -> list[Msg]:
        """The next batch, or nothing after half a second without messages."""
        try:
            msgs: list[Msg] = await sub.fetch(self.batch_size, timeout=0.5)  # type: ignore[attr-defined]
        except (FetchTimeoutError, TimeoutError):
            return []
        self._held[id(msgs)] = (time.monotonic(), msgs)
        return msgs

    async def _keep_alive(self) -> None:
        """Progress-ack every batch held longer than :data:`PROGRESS_EVERY` (module docstring)."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            now = time.monotonic()
            for fetched, msgs in list(self._held.values()):
                if now - fetched >= PROGRESS_EVERY:
                    for msg in msgs:
                        with contextlib.suppress(Exception):
                            await msg.in_progress()

    @staticmethod
    async def _watch_backlog(js: object) -> None:
        """Keep the consumer-backlog gauges of ``/metrics`` current (one JetStream API request
        every :data:`BACKLOG_EVERY` seconds; a failed request leaves the last values)."""
        while True:
            with contextlib.suppress(Exception):
                backlog = await ingest_backlog(js, timeout=2.0)  # type: ignore[arg-type]
                metrics.CONSUMER_PENDING.set(backlog.pending)
                metrics.CONSUMER_ACK_PENDING.set(backlog.ack_pending)
                metrics.CONSUMER_REDELIVERED.set(backlog.redelivered)
            await asyncio.sleep(BACKLOG_EVERY)

    @staticmethod
    async def _nak(msgs: list[Msg]) -> None:
        """Hand deliveries back for redelivery at once (stopping with a batch not appended)."""
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak()

    async def _put_back(self, nc: object, sub: object) -> None:
        """Stopping: nak the deliveries buffered after the last fetch (a pull request's messages
        still in flight when its fetch returned), so they are redelivered at once. The flush first
        lets every such delivery arrive."""
        with contextlib.suppress(Exception):
            await nc.flush(timeout=5)  # type: ignore[attr-defined]
            while sub.pending_msgs:  # type: ignore[attr-defined]
                msg = await sub._sub.next_msg(timeout=1)  # type: ignore[attr-defined]
                if msg.reply:  # a JetStream delivery, not a status message
                    await msg.nak()

    async def _append(
        self, events: list[Event], msgs: list[Msg], stop: asyncio.Event
    ) -> AppendOutcome | None:
        """Append with back-off while the database is unreachable; None if stopping first."""
        assert self.log is not None
        delay = 0.2
        while True:
            try:
                started = time.perf_counter()
                outcome = await asyncio.to_thread(self.log.append, events)
                metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
                metrics.APPEND_BATCH.observe(len(events))
                return outcome
            except Exception as exc:
                if stop.is_set():
                    log.warning("stopping with an un-appended batch; JetStream will redeliver")
                    return None
                log.warning(
                    "append failed (%s); retrying in %.1fs", exc, delay,
                    extra={"batch_size": len(events), "delay_s": delay},
                )  # fmt: skip
                for msg in msgs:
                    await msg.in_progress()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _publish_rejections(
        self, js: object, rejections: list[tuple[Msg, Rejection]]
    ) -> None:
        futures = []
        for msg, rejection in rejections:
            seq = msg.metadata.sequence.stream if msg.metadata else None
            body = RejectedEvent(
                rejection=rejection,
                original=msg.data.decode("utf-8", "replace")[: self.max_event_bytes],
                original_b64=_b64_if_binary(msg.data, self.max_event_bytes),
                subject=msg.subject,
                stream_seq=seq,
            )
            headers = {"Nats-Msg-Id": f"rejected:{seq}"} if seq is not None else None
            futures.append(
                await js.publish_async(  # type: ignore[attr-defined]
                    subject_for(rejection.type, REJECTED_PREFIX),
                    _REJECTED.encode(body),
                    headers=headers,
                )
            )
            log.info(
                "rejected %s (%s): %s", rejection.event_id, rejection.code, rejection.message,
                extra={"event_id": rejection.event_id, "code": rejection.code,
                       "subject": msg.subject, "stream_seq": seq},
            )  # fmt: skip
        await asyncio.gather(*futures)

    def _count(self, received: int, outcome: AppendOutcome, rejections: list[object]) -> None:
        s = self.stats
        s.received += received
        s.batches += 1
        s.appended += len(outcome.appended)
        s.duplicates += len(outcome.duplicates)
        s.rejected += len(rejections)
        for _msg, rejection in rejections:  # type: ignore[misc]
            s.by_code[rejection.code] = s.by_code.get(rejection.code, 0) + 1
            metrics.EVENTS_REJECTED.labels(rejection.code).inc()
        for event, _position in outcome.appended:
            metrics.EVENTS_ACCEPTED.labels(type_name(event)).inc()
        metrics.EVENTS_DUPLICATE.inc(len(outcome.duplicates))


_SUBJECT = {cls: subject_for(cls.__struct_config__.tag) for cls in EVENT_TYPES}  # type: ignore[arg-type]
"""The one subject each event type is accepted on, ``arbiter.events.<type>``."""


def _wrong_subject(subject: str, event: Event) -> Rejection:
    """A decodable event on another type's subject. Anything that selects by subject (a NATS
    consumer or mirror filtered on ``arbiter.events.battle.completed``, stream limits, access
    rules) would otherwise see the wrong events, and a producer that mislabels the subject has a
    bug it should hear about. Only events that decode get this code: a message that does not
    (on ``arbiter.events.invalid``, where publishers put what has no readable type, or anywhere
    else) is rejected for what is wrong with it, as before."""
    name = type_name(event)
    return Rejection(
        Code.WRONG_SUBJECT,
        f"A {name} event was published on {subject}; publish it on {_SUBJECT[type(event)]} "
        "(the subject must name the event's type).",
        field="type",
        event_id=event.event_id,
        type=name,
    )


def _b64_if_binary(data: bytes, limit: int) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data[:limit]).decode()
    return None


async def run_ingest(database_url: str, nats_url: str, stop: asyncio.Event) -> None:
    """Run the ingest, restarting the loop on unexpected errors (never silently dying)."""
    while not stop.is_set():
        ingest = Ingest(database_url, nats_url)
        started = time.monotonic()
        try:
            await ingest.run(stop)
        except Exception:
            log.exception("ingest loop failed; restarting")
            await asyncio.sleep(1.0 if time.monotonic() - started > 10 else 3.0)
