"""NATS JetStream: the streams, the publisher workers use, and the subjects.

* ``ARBITER`` holds every published event on ``arbiter.events.<type>``; the ingest reads it
  through the durable pull consumer ``arbiter-ingest``.
* ``ARBITER_REJECTED`` holds every refused event on ``arbiter.rejected.<type>`` with its
  rejection code, a sentence, and the original bytes: nothing is dropped silently.

Every publish sets ``Nats-Msg-Id`` to the event id, so JetStream drops a retry inside its
duplicate window (two minutes); the event store's idempotent append covers everything after it.
Publishing is pipelined (``publish_async`` with bounded in-flight acks): one PubAck round trip per
message would cap a publisher near 4k messages/s.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import nats
from arbiter.domain.events import Event, canonical_json, type_name
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

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


def subject_for(type_: str | None, prefix: str = SUBJECT_PREFIX) -> str:
    """``arbiter.events.<type>``; types that are not plain dotted tokens go to ``.invalid``."""
    if type_ and _TOKEN.match(type_):
        return f"{prefix}.{type_}"
    return f"{prefix}.invalid"


async def connect(url: str, *, name: str = "arbiter", **options: Any) -> NATS:
    """Connect with reconnection on (forever, 0.5 s apart): a restarted server is not fatal."""

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
    return await nats.connect(url, **defaults)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create ``ARBITER`` and ``ARBITER_REJECTED`` when absent (file storage, survive restarts)."""
    for name, subjects in (
        (STREAM, [f"{SUBJECT_PREFIX}.>"]),
        (REJECTED_STREAM, [f"{REJECTED_PREFIX}.>"]),
    ):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=subjects,
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    max_msg_size=MAX_PAYLOAD,
                    duplicate_window=120.0,
                )
            )


def encode_event(event: Event | Mapping[str, Any] | bytes) -> tuple[bytes, str | None, str | None]:
    """``(payload, event_id, type)`` of something to publish; raw bytes are sent as they are."""
    if isinstance(event, bytes):
        return event, *_peek(event)
    if isinstance(event, Mapping):
        return msgspec.json.encode(event), _str(event.get("event_id")), _str(event.get("type"))
    return canonical_json(event), event.event_id, type_name(event)


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
        id_match = re.search(rb'"event_id"\s*:\s*"([^"\\]{1,128})"', raw[:4096])
        return (
            id_match.group(1).decode() if id_match else None,
            match.group(1).decode() if match else None,
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Publisher:
    """Publishes events to ``ARBITER``, pipelined, with ``Nats-Msg-Id`` = ``event_id``.

    Use from Python (``async with Publisher(url) as p: await p.publish([...])``) or through
    ``arbiter publish``. :meth:`publish` returns once JetStream has acknowledged every message;
    a PubAck with ``duplicate=True`` means JetStream already had that event id.
    """

    def __init__(
        self, url: str, *, max_in_flight: int = 4000, reconnect_attempts: int = -1
    ) -> None:
        self.url = url
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
        self.nc = await connect(
            self.url, name="arbiter-publisher", max_reconnect_attempts=self.reconnect_attempts
        )
        self.js = self.nc.jetstream(publish_async_max_pending=self.max_in_flight)
        await ensure_streams(self.js)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    async def publish(
        self, events: Iterable[Event | Mapping[str, Any] | bytes], *, timeout: float = 30.0
    ) -> list[PubAck]:
        """Publish many events and wait for all their acks, in order."""
        assert self.js is not None, "use 'async with Publisher(url)' or call open() first"
        futures = []
        for event in events:
            payload, event_id, type_ = encode_event(event)
            headers = {"Nats-Msg-Id": event_id} if event_id else None
            futures.append(
                await self.js.publish_async(subject_for(type_), payload, headers=headers)
            )
        return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))

    async def publish_one(self, event: Event | Mapping[str, Any] | bytes) -> PubAck:
        """Publish one event and wait for its ack."""
        return (await self.publish([event]))[0]
