"""How ``arbiter evals battle`` and ``trial`` publish: a NATS publisher on its own event-loop
thread (audio is evaluated on the main thread meanwhile), its bounded first connect, and the
validate-then-publish-or-print step with its exit codes.

Its own room because it is the evals commands' only I/O besides the audio, and ``evals run``
opens the same publisher for its batches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from typing import Any

import typer
from arbiter.adapters.urls import redact
from rich.markup import escape

from .common import servers
from .evals_shared import fail_literal, output, validate

__all__ = ["CONNECT_TIMEOUT", "open_publisher", "publish_or_print"]

CONNECT_TIMEOUT = 10.0


class _BackgroundPublisher:
    """A :class:`~arbiter.adapters.bus.Publisher` on its own event-loop thread, so the NATS
    connection stays served (pings, reconnects) while the main thread evaluates audio. Its
    first connect is bounded: the publisher itself would retry an unreachable server forever."""

    def __init__(self, nats_url: str, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        from arbiter.adapters.bus import Publisher  # lazy: loads NATS; --help need not

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.publisher = Publisher(nats_url)
        try:
            self._call(_probe(nats_url, connect_timeout), connect_timeout + 1)
            self._call(self.publisher.open(), connect_timeout)
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer from NATS within {timeout:g} s") from None

    def publish(self, payloads: list[bytes]) -> list[Any]:
        """Publish and wait for JetStream's acks (``Nats-Msg-Id`` = event id)."""
        return self._call(self.publisher.publish(payloads), 60)  # type: ignore[no-any-return]

    def _stop(self) -> None:
        nc = self.publisher.nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                self._call(nc.close(), 5)
        with contextlib.suppress(Exception):
            self._call(_cancel_pending(), 5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def close(self) -> None:
        try:
            self._call(self.publisher.close(), 10)  # drains: in-flight acks land
        except Exception:
            pass  # closed below regardless
        finally:
            self._stop()


async def _probe(nats_url: str, timeout: float) -> None:
    """One quiet connection attempt, without retries: raises when NATS cannot be reached."""
    import nats  # lazy: loads NATS; --help need not
    from arbiter.adapters.nats_cluster import nats_servers

    async def quiet(_: Exception) -> None:
        return None

    nc = await nats.connect(
        nats_servers(nats_url), allow_reconnect=False, max_reconnect_attempts=1,
        connect_timeout=timeout, error_cb=quiet, name="arbiter-evals-probe",
    )  # fmt: skip
    await nc.close()


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def open_publisher(nats_url: str) -> _BackgroundPublisher:
    try:
        return _BackgroundPublisher(nats_url)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise fail_literal(
            f"cannot reach NATS at {redact(nats_url)} ({reason}); check ARBITER_NATS_URL"
        ) from exc


def _publish_now(payloads: list[bytes]) -> list[Any]:
    """Publish events to the configured (or embedded) NATS; exit 2 when it cannot be reached,
    1 when it does not acknowledge them."""
    with servers() as rt:
        sender = open_publisher(rt.nats_url)
        try:
            return sender.publish(payloads)
        except Exception as exc:
            raise fail_literal(f"publishing to NATS failed: {exc}", 1) from exc
        finally:
            sender.close()


def publish_or_print(event: dict[str, Any], dry_run: bool) -> None:
    good, problems = validate([event])
    if problems:
        for line in problems:
            output(True).print(f"[red]refused by the ingest's rules[/red] {escape(line)}")
        raise typer.Exit(1)
    if dry_run:
        typer.echo(json.dumps(event, indent=2, ensure_ascii=False))
        return
    (ack,) = _publish_now(good)
    note = " (already published: JetStream deduplicated it)" if ack.duplicate else ""
    output().print(f"published {event['type']} event_id {event['event_id']}{note}", markup=False)
