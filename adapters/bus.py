"""NATS JetStream: the streams, the publisher workers use, and the subjects.

* ``ARBITER`` holds every published event on ``arbiter.events.<type>``; the ingest reads it
  through the durable pull consumer ``arbiter-ingest``.
* ``ARBITER_REJECTED`` holds every refused event on ``arbiter.rejected.<type>`` with its
  rejection code, a sentence, and the original bytes: nothing is dropped silently.

Every publish sets ``Nats-Msg-Id`` to ``<event_id>:<content digest>`` (:func:`message_id`: the
SHA-256 of the bytes sent, which for an event Arbiter encodes is its canonical JSON, the digest
the event store keeps per id). JetStream drops a message whose id it saw inside its duplicate
window (two minutes), so only a byte-identical resend is dropped there; a reused event id with
other content always reaches the ingest, which rejects it as ``conflict``. With the bare event id
as message id, such a changed resend would be swallowed by JetStream and acknowledged as a
duplicate, and its content would vanish without a word. The event store's idempotent append
covers everything outside the window.

Publishing is pipelined (``publish_async`` with bounded in-flight acks): one PubAck round trip per
message would cap a publisher near 4k messages/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, NamedTuple

import msgspec
import nats
from arbiter.adapters.nats_cluster import REPLICAS_ENV, nats_servers, stream_replicas
from arbiter.adapters.publish_rounds import TRANSIENT_SEND, Round, transient
from arbiter.domain.events import Event, canonical_json, type_name
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

__all__ = [
    "INGEST_DURABLE",
    "MAX_PAYLOAD",
    "REJECTED_PREFIX",
    "REJECTED_STREAM",
    "STREAM",
    "SUBJECT_PREFIX",
    "IngestBacklog",
    "Outgoing",
    "Publisher",
    "connect",
    "encode_event",
    "ensure_streams",
    "ingest_backlog",
    "message_id",
    "subject_for",
]


log = logging.getLogger("arbiter.bus")

STREAM = "ARBITER"
SUBJECT_PREFIX = "arbiter.events"
REJECTED_STREAM = "ARBITER_REJECTED"
REJECTED_PREFIX = "arbiter.rejected"
INGEST_DURABLE = "arbiter-ingest"
MAX_PAYLOAD = 1024 * 1024
"""Stream-level cap on one message; the ingest's own limit (64 KiB) is lower and rejects."""

_TOKEN = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
_TYPE = re.compile(rb'"type"\s*:\s*"([^"\\]{1,64})"')
_ID = re.compile(rb'"event_id"\s*:\s*"([^"\\]{1,128})"')


def subject_for(type_: str | None, prefix: str = SUBJECT_PREFIX) -> str:
    """``arbiter.events.<type>``; types that are not plain dotted tokens go to ``.invalid``."""
    if type_ and _TOKEN.match(type_):
        return f"{prefix}.{type_}"
    return f"{prefix}.invalid"


async def connect(url: str, *, name: str = "arbiter", **options: Any) -> NATS:
    """Connect with reconnection on (forever, 0.5 s apart): a restarted server is not fatal.

    ``url`` may name several servers, comma-separated (:func:`nats_servers`): the nodes of a
    cluster, any of which will do, and the client moves to another when its node goes away."""

    async def on_error(exc: Exception) -> None:
        # One line, not nats-py's default traceback per failed connection attempt.
        log.warning("nats (%s): %s", name, exc or type(exc).__name__)

    defaults: dict[str, Any] = {
        "name": name,
        "error_cb": on_error,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        "allow_reconnect": True,
    }
    defaults.update(options)
    return await nats.connect(nats_servers(url), **defaults)


async def ensure_streams(js: JetStreamContext, replicas: int | None = None) -> None:
    """Create ``ARBITER`` and ``ARBITER_REJECTED`` when absent (file storage, survive restarts).

    ``replicas`` (default: ``ARBITER_STREAM_REPLICAS``, :func:`stream_replicas`) is how many
    cluster nodes keep each stream. When it is given and an existing stream has another count,
    the stream is updated to it: JetStream changes a stream's replicas in place (it copies the
    data to the new peers, or drops peers), so raising the setting to 3 after moving to a
    cluster is all it takes. When it is not given, existing streams keep what they have."""
    wanted = stream_replicas() if replicas is None else replicas
    for name, subjects in (
        (STREAM, [f"{SUBJECT_PREFIX}.>"]),
        (REJECTED_STREAM, [f"{REJECTED_PREFIX}.>"]),
    ):
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            config = StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                max_msg_size=MAX_PAYLOAD,
                duplicate_window=120.0,
                num_replicas=wanted or 1,
            )
            await _stream_call(js.add_stream(config), name, wanted)
            continue
        if wanted is not None and (info.config.num_replicas or 1) != wanted:
            log.warning(
                "stream %s has %s replica(s); updating it to %d (%s)",
                name, info.config.num_replicas or 1, wanted, REPLICAS_ENV,
            )  # fmt: skip
            info.config.num_replicas = wanted
            await _stream_call(js.update_stream(info.config), name, wanted)


async def _stream_call(call: Awaitable[object], name: str, replicas: int | None) -> None:
    """Create or update a stream; a server that cannot hold that many replicas (a single
    server, a cluster with fewer nodes) is an error that names the setting to change."""
    try:
        await call
    except APIError as exc:
        if replicas is not None and replicas > 1:
            exc.description = (
                f"{exc.description}; stream {name} wants {replicas} replicas "
                f"({REPLICAS_ENV}): run a NATS cluster of at least {replicas} JetStream nodes, "
                f"or set {REPLICAS_ENV} to 1 on a single server"
            )
        raise


class Outgoing(NamedTuple):
    """One message ready to publish: its bytes, and the id and type it says it has."""

    payload: bytes
    event_id: str | None
    type: str | None

    @property
    def msg_id(self) -> str | None:
        if self.event_id is None:
            return None
        return message_id(self.event_id, hashlib.sha256(self.payload).digest())


def message_id(event_id: str, digest: bytes) -> str:
    """``Nats-Msg-Id`` of an event: its id and the SHA-256 of the bytes sent (for an event
    Arbiter encodes, its canonical JSON: the digest the event store records). Only a resend of
    the very same bytes is dropped by JetStream; the same event spelled with other spacing or key
    order reaches the ingest, which finds the same canonical digest and treats it as the
    duplicate it is."""
    return f"{event_id}:{digest.hex()}"


def encode_event(event: Event | Mapping[str, Any] | bytes) -> Outgoing:
    """The message to publish for an event, a JSON object, or raw bytes (sent as they are, even
    when they are no valid event: the ingest then rejects them with the reason)."""
    if isinstance(event, Mapping):  # its top-level id and type are at hand: no decode
        return Outgoing(
            msgspec.json.encode(event), _str(event.get("event_id")), _str(event.get("type"))
        )
    if isinstance(event, bytes):
        return Outgoing(event, *_peek(event))
    return Outgoing(canonical_json(event), event.event_id, type_name(event))


class _Head(msgspec.Struct):
    event_id: Any = None
    type: Any = None


_HEAD = msgspec.json.Decoder(_Head)


def _peek(raw: bytes) -> tuple[str | None, str | None]:
    """The top-level ``event_id`` and ``type`` of raw JSON, read by a decoder (a regex would
    take a ``"type"`` key inside ``meta`` that sorts first, and the message would go to another
    type's subject: a ``wrong_subject`` rejection). A message that is not a JSON object gets
    regex guesses, and its rejection names what is wrong with it."""
    try:
        head = _HEAD.decode(raw)
        return _str(head.event_id), _str(head.type)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        match = _TYPE.search(raw[:2048])
        id_match = _ID.search(raw[:4096])
        return (
            id_match.group(1).decode() if id_match else None,
            match.group(1).decode() if match else None,
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Publisher:
    """Publishes events to ``ARBITER``, pipelined, with ``Nats-Msg-Id`` = :func:`message_id`.

    Use from Python (``async with Publisher(url) as p: await p.publish([...])``) or through
    ``arbiter publish``. :meth:`publish` returns once JetStream has acknowledged every message;
    a PubAck with ``duplicate=True`` means JetStream already had that very event (id and content)
    in its duplicate window; its ``seq`` is then the first copy's.
    """

    RESEND_AFTER = 2.0
    """Seconds without any ack after which the unanswered messages of a batch are resent."""
    RESEND_PAUSE = 0.25
    """Seconds before the first resend, doubled for each further one up to
    :attr:`RESEND_AFTER`: a cluster re-electing a leader needs a moment, and a batch resent
    every quarter second would only add load while it does."""

    def __init__(
        self, url: str, *, max_in_flight: int = 4000, reconnect_attempts: int = -1
    ) -> None:
        self.url = url
        self.resent = 0
        """Messages sent again because their ack did not come (a node lost, a re-election)."""
        self.max_in_flight = max_in_flight
        self.reconnect_attempts = reconnect_attempts
        """-1 (a long-lived worker): retry forever. A command line tool passes a few, so that
        an unreachable server is an error after seconds, not a hang."""
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None

    async def __aenter__(self) -> Publisher:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self._refusal: APIError | None = None
        self._round_now = Round(self.max_in_flight)

        async def on_error(exc: Exception) -> None:
            # nats-py raises a JetStream refusal of an async publish (a full disk's "insufficient
            # resources", a stream limit) inside its reply handler, so the refusal reaches only
            # this callback and the publish's future never resolves. Keep it: :meth:`publish`
            # fails at once with the server's reason instead of timing out without one.
            if isinstance(exc, APIError) and not transient(exc):
                if self._refusal is not None:
                    return  # one line per refused batch, not one per message
                self._refusal = exc
                self._round_now.wake()
            log.warning("nats (arbiter-publisher): %s", exc or type(exc).__name__)

        self.nc = await connect(
            self.url,
            name="arbiter-publisher",
            max_reconnect_attempts=self.reconnect_attempts,
            error_cb=on_error,
        )
        self.js = self.nc.jetstream(publish_async_max_pending=self.max_in_flight)
        await ensure_streams(self.js)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    async def publish(
        self,
        events: Iterable[Outgoing | Event | Mapping[str, Any] | bytes],
        *,
        timeout: float = 30.0,
    ) -> list[PubAck]:
        """Publish many events and wait for all their acks, in order.

        Messages whose ack does not come are sent again, until ``timeout``: on a cluster the
        node this client was on may die, or a stream's leader be re-elected, and a message then
        gets no answer, or "no responders", or "JetStream temporarily unavailable". A round ends
        when every ack is in, or when none has come for :attr:`RESEND_AFTER` seconds; the
        messages still unanswered are resent (after :attr:`RESEND_PAUSE`, growing). A resend is
        safe: its ``Nats-Msg-Id`` is the same, so JetStream stores it once (a second copy is
        acknowledged as a duplicate with the first one's sequence), and the event store's
        idempotent append covers what outlives the duplicate window.

        Raises the server's :class:`APIError` as soon as JetStream refuses a message for good
        (a full disk, a limit), and :class:`TimeoutError` when acks do not come within
        ``timeout``."""
        assert self.js is not None, "use 'async with Publisher(url)' or call open() first"
        outs = [e if isinstance(e, Outgoing) else encode_event(e) for e in events]
        acks: list[PubAck | None] = [None] * len(outs)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        todo = list(range(len(outs)))
        pause = self.RESEND_PAUSE
        while True:
            todo = await self._round(outs, todo, acks, deadline)
            if not todo:
                return acks  # type: ignore[return-value]  # every slot is filled
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"NATS did not acknowledge {len(todo)} of {len(outs)} message(s) in {timeout} s"
                )
            self.resent += len(todo)
            log.warning("resending %d unacknowledged message(s): %s", len(todo), self._why)
            if self._no_stream:
                await self._restore_streams(left)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, self.RESEND_AFTER)

    async def _round(
        self, outs: list[Outgoing], todo: list[int], acks: list[PubAck | None], deadline: float
    ) -> list[int]:
        """Send ``todo`` once and collect acks into ``acks``; return the indexes to resend."""
        assert self.js is not None
        self._refusal = None
        self._why = ""
        self._no_stream = False
        round_ = self._round_now = Round(self.max_in_flight)
        futures: dict[int, asyncio.Future[PubAck]] = {}
        try:
            for i in todo:
                if self._refusal is not None:
                    raise self._refusal
                # Our own window, so that publish_async never waits for a slot (unbounded there;
                # a per-message wait_for with a timeout would cost a task per message).
                if round_.full() and not await self._progress(round_.room, round_, deadline):
                    break
                out = outs[i]
                msg_id = out.msg_id
                future = await self.js.publish_async(
                    subject_for(out.type),
                    out.payload,
                    headers={"Nats-Msg-Id": msg_id} if msg_id else None,
                )
                round_.track(future)
                futures[i] = future
            else:
                round_.sent()
                await self._progress(round_.finished, round_, deadline)
        except TRANSIENT_SEND as exc:
            self._why = f"not sent: {exc!r}"  # no connection: resent next round
        if self._refusal is not None:
            self._cancel(futures.values())
            raise self._refusal
        retry = [i for i in todo if i not in futures]
        for i, future in futures.items():
            if not future.done() or future.cancelled():
                retry.append(i)
            elif (error := future.exception()) is None:
                acks[i] = future.result()
            elif transient(error):
                self._why = repr(error)
                self._no_stream |= isinstance(error, NoStreamResponseError)
                retry.append(i)
            else:
                self._cancel(futures.values())
                raise error
        self._cancel(futures.values())
        return sorted(retry)

    async def _restore_streams(self, left: float) -> None:
        """After "no responders", which means no stream leader for the subject: a re-election
        on a cluster (which passes), or the stream deleted (which only creating it again mends).
        Make sure the streams exist; a JetStream that does not answer now is asked again at
        the next resend."""
        assert self.js is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ensure_streams(self.js), min(left, self.RESEND_AFTER))

    async def _progress(self, event: asyncio.Event, round_: Round, deadline: float) -> bool:
        """Wait for ``event`` (room in the window, or every ack in) while acks keep coming;
        False, with the reason noted, when none came for :attr:`RESEND_AFTER` seconds, the
        deadline passed, or JetStream refused a message. One timer per wait, not per ack."""
        loop = asyncio.get_running_loop()
        seen = round_.settled
        while not event.is_set() and self._refusal is None:
            wait = min(self.RESEND_AFTER, deadline - loop.time())
            if wait <= 0:
                self._why = "out of time"
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)
            if not event.is_set() and round_.settled == seen:
                self._why = f"no ack for {self.RESEND_AFTER} s"
                return False
            seen = round_.settled
        return self._refusal is None

    @staticmethod
    def _cancel(futures: Iterable[asyncio.Future[PubAck]]) -> None:
        """Give up waiting for these acks (frees their in-flight slots)."""
        for future in futures:
            future.cancel()

    async def publish_one(self, event: Event | Mapping[str, Any] | bytes) -> PubAck:
        """Publish one event and wait for its ack."""
        return (await self.publish([event]))[0]


class IngestBacklog(msgspec.Struct, omit_defaults=True):
    """What waits in NATS for the ingest (its durable consumer): events not in the log yet.

    ``pending`` counts them all: not yet delivered plus delivered and not acknowledged
    (``ack_pending``: being appended, waiting for their target, or held by an ingest that died
    and due for redelivery). ``redelivered``: of those unacknowledged, how many were delivered
    more than once. Before any ingest has made the consumer, every message in the stream waits.
    """

    pending: int
    ack_pending: int
    redelivered: int
    error: str | None = None


async def ingest_backlog(js: JetStreamContext, timeout: float) -> IngestBacklog:
    """The ingest consumer's backlog (:class:`IngestBacklog`); one JetStream API request."""
    try:
        info = await js.consumer_info(STREAM, INGEST_DURABLE, timeout=timeout)
    except NotFoundError:
        try:
            stream = await js.stream_info(STREAM)
        except NotFoundError:
            return IngestBacklog(0, 0, 0, f"no stream {STREAM} yet: nothing was published")
        waiting = int(stream.state.messages)
        return IngestBacklog(
            waiting, 0, 0, f"no consumer {INGEST_DURABLE} yet: no ingest has run on {STREAM}"
        )
    ack_pending = int(info.num_ack_pending or 0)
    return IngestBacklog(
        int(info.num_pending or 0) + ack_pending, ack_pending, int(info.num_redelivered or 0)
    )
