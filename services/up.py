"""``arbiter up``: migrations, ingest, projector and API together in one process.

Each service runs on its own thread (the ingest on an asyncio loop, the projector in a blocking
LISTEN loop, the API under uvicorn); the main thread only waits for SIGINT or SIGTERM, then stops
them in order (API, ingest, projector) and finally the embedded servers, leaving no process
behind. Production runs the same services as separate processes (``arbiter ingest``,
``arbiter project``, ``arbiter api``; see compose.yaml).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

import uvicorn
from arbiter.services.ingest import run_ingest
from arbiter.services.projector import run_projectors
from arbiter.services.runtime import Runtime
from arbiter.services.setup import prepare_database

log = logging.getLogger("arbiter.up")


class Services:
    """The three services on threads, stoppable from any thread."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        from arbiter.services.api import create_app

        self.runtime = runtime
        self.stop_event = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.ingest_stop = asyncio.Event()
        config = uvicorn.Config(
            create_app(runtime.database_url, runtime.nats_url),
            host=host, port=port, log_level="warning", lifespan="on",
            access_log=False,  # request lines may carry secrets in URLs; see README
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn("ingest", self._run_ingest)
        self._spawn("projector", lambda: run_projectors(self.runtime.database_url, self.stop_event))
        self._spawn("api", self.server.run)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _run_ingest(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(
            run_ingest(self.runtime.database_url, self.runtime.nats_url, self.ingest_stop)
        )

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.loop.call_soon_threadsafe(self.ingest_stop.set)
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)


def run_up(runtime: Runtime, host: str, port: int, echo: Callable[[str], None]) -> None:
    """Run everything until SIGINT/SIGTERM."""
    applied = prepare_database(runtime.database_url)
    for name in applied:
        echo(f"migrated {name}")
    services = Services(runtime, host, port)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        services.start()
        where = "embedded" if runtime.embedded else "external"
        echo(f"PostgreSQL ({where}): {_redact(runtime.database_url)}")
        echo(f"NATS ({where}):       {_redact(runtime.nats_url)}")
        echo(f"API:                 http://{host}:{port}  (OpenAPI at /schema)")
        echo("ingest and projector running; Ctrl-C or SIGTERM stops everything")
        while not done.wait(0.5):
            dead = [t.name for t in services.threads if not t.is_alive()]
            if dead:
                echo(f"service stopped unexpectedly: {', '.join(dead)}; shutting down")
                break
    finally:
        echo("stopping ...")
        services.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    import re

    return re.sub(r"(//[^:/@]+:)[^@/]+@", r"\1***@", url)
