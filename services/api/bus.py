"""The API's NATS side: one :class:`Publisher`, opened on first use, shared by every request.

``POST /events`` publishes through it (``Nats-Msg-Id`` from the event id and content digest) and
``/health`` asks it how NATS and the ingest's backlog are. Its own room because NATS failures
must become the API's 503 ``unavailable`` in one place, with the connect and publish bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from arbiter.adapters.bus import IngestBacklog, Publisher, ensure_streams, ingest_backlog
from arbiter.adapters.urls import redact
from arbiter.domain.events import Event
from nats.js.errors import NoStreamResponseError

from .errors import ApiError
from .models.health import ComponentHealth
from .models.log import Accepted

__all__ = ["HEALTH_TIMEOUT", "Bus"]

log = logging.getLogger("arbiter.api")

HEALTH_TIMEOUT = 2.0
"""Seconds ``/health`` waits for each of the database and NATS."""


class Bus:
    """The API's one :class:`Publisher`, opened on first use and reused while connected."""

    RETRY_AFTER = 1.0

    def __init__(
        self, nats_url: str | None, *, connect_timeout: float = 3.0, publish_timeout: float = 5.0
    ) -> None:
        self.url = nats_url
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self._publisher: Publisher | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def publisher(self) -> Publisher:
        """The connected publisher; :class:`ApiError` 503 when NATS cannot be reached. After a
        failed connect, requests fail fast for :attr:`RETRY_AFTER` seconds instead of each
        waiting out the connect timeout."""
        if self.url is None:
            raise ApiError(503, "unavailable", "NATS is not configured for this API.")
        async with self._lock:
            current = self._publisher
            if current is not None and (current.nc is None or current.nc.is_closed):
                self._publisher = current = None
            if current is None:
                if asyncio.get_running_loop().time() < self._retry_at:
                    raise ApiError(503, "unavailable", "NATS is unavailable; try again shortly.")
                current = await self._open()
                self._publisher = current
        if current.nc is None or not current.nc.is_connected:
            raise ApiError(503, "unavailable", "The connection to NATS is down; reconnecting.")
        return current

    async def _open(self) -> Publisher:
        assert self.url is not None
        publisher = Publisher(self.url)
        try:
            # The publisher reconnects forever, its first connect included: bound that here.
            await asyncio.wait_for(publisher.open(), self.connect_timeout)
        except Exception as exc:  # any failure to connect is a 503
            if publisher.nc is not None:
                with contextlib.suppress(Exception):
                    await publisher.nc.close()
            self._retry_at = asyncio.get_running_loop().time() + self.RETRY_AFTER
            log.warning("NATS at %s unavailable: %r", redact(self.url), exc)
            raise ApiError(503, "unavailable", "NATS is unavailable; try again shortly.") from exc
        return publisher

    async def publish(self, event: Event) -> Accepted:
        publisher = await self.publisher()
        try:
            try:
                (ack,) = await publisher.publish([event], timeout=self.publish_timeout)
            except NoStreamResponseError:
                # The stream was deleted under us: recreate it, then retry once.
                assert publisher.js is not None
                await ensure_streams(publisher.js)
                (ack,) = await publisher.publish([event], timeout=self.publish_timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("publish of %s failed: %r", event.event_id, exc)
            reason = getattr(exc, "description", None)
            said = f"NATS refused the event ({reason})" if reason else "NATS did not acknowledge"
            raise ApiError(
                503,
                "unavailable",
                f"{said}; retry it with the same event_id (retries are deduplicated).",
            ) from exc
        return Accepted(event_id=event.event_id, stream_seq=ack.seq, duplicate=bool(ack.duplicate))

    async def health(self) -> tuple[ComponentHealth, IngestBacklog | None]:
        """NATS's health and, when it answers, what waits in it for the ingest."""
        try:
            publisher = await self.publisher()
            assert publisher.nc is not None and publisher.js is not None
            await publisher.nc.flush(timeout=HEALTH_TIMEOUT)
        except ApiError as exc:
            return ComponentHealth(ok=False, error=exc.body.message), None
        except Exception as exc:  # reported, not raised
            return ComponentHealth(ok=False, error=f"NATS did not answer a ping: {exc!r}"), None
        try:
            backlog = await ingest_backlog(publisher.js, HEALTH_TIMEOUT)
        except Exception as exc:  # reported, not raised
            return ComponentHealth(ok=False, error=f"JetStream did not answer: {exc!r}"), None
        return ComponentHealth(ok=True), backlog

    async def close(self) -> None:
        if self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            nc = publisher.nc
            try:
                await asyncio.wait_for(publisher.close(), 5.0)  # drains: in-flight acks land
            except Exception:  # NATS down: drop the connection (and its reconnect loop)
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
