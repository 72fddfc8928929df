"""``arbiter up``: migrations, ingest, projector, webhook worker and API together in one process.

Each service runs on its own thread (the ingest on an asyncio loop, the projector in a blocking
LISTEN loop, the API under uvicorn); the main thread only waits for SIGINT or SIGTERM, then stops
them in order (API, ingest, projector) and finally the embedded servers, leaving no process
behind. Production runs the same services as separate processes (``arbiter ingest``,
``arbiter project``, ``arbiter api``; see compose.yaml).

``up`` supervises the embedded servers it started (:class:`Supervisor`): a PostgreSQL or
nats-server that dies (killed, or crashed on a full disk) is restarted with back-off, on the same
socket and port, and each step is a line on the output. The services need no help: the ingest,
the projector and the API reconnect on their own (they do the same against external servers),
and ``/health`` says ``degraded`` while a server is down.

Stopping is bounded, whatever state the servers are in (up, down, restarting): the services get
:data:`SERVICES_STOP` seconds to finish their batches, then each server gets
:data:`SERVER_STOP` seconds to stop gracefully before it is killed, so Ctrl-C ends ``up`` within
10 s. Nothing is lost by cutting a service short: the ingest acks only what is durable, and a
projector commits its rows and position together.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import uvicorn
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.adapters.urls import redact
from arbiter.services.setup import prepare_database

from .ingest import run_ingest
from .projector import run_projectors
from .runtime import Runtime, RuntimeRefusal
from .webhooks import run_webhooks

__all__ = [
    "RESTART_BACKOFF",
    "SERVER_STOP",
    "SERVICES_STOP",
    "STABLE_AFTER",
    "Services",
    "Supervisor",
    "check_port",
    "run_up",
    "stop_on_signals",
]

log = logging.getLogger("arbiter.up")

SERVICES_STOP = 3.0
"""Seconds the API, ingest and projector get, together, to stop after Ctrl-C."""
SERVER_STOP = 2.0
"""Seconds each embedded server gets to stop gracefully before it is killed."""
RESTART_BACKOFF = (0.5, 30.0)
"""First and longest wait before restarting a dead server (doubling per failed restart)."""
STABLE_AFTER = 30.0
"""A server that has run this long since its restart starts the back-off afresh if it dies."""


def check_port(host: str, port: int) -> None:
    """Refuse (:class:`RuntimeRefusal`) when the API cannot listen on ``host:port``: checked
    before any server starts, so a taken port costs nothing and leaves nothing behind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise RuntimeRefusal(f"cannot listen on {host}:{port}: {exc}; check --host") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RuntimeRefusal(
                    f"port {port} on {host} is taken by another process; nothing was started: "
                    "choose another with `arbiter up --port`"
                ) from exc
            raise RuntimeRefusal(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While ``up`` starts (and stops), SIGTERM interrupts it as Ctrl-C does, so that the
    servers already started are stopped rather than orphaned by the default action."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Supervisor:
    """Restarts the embedded servers ``up`` started when one dies, with back-off, and says so.

    Runs on its own thread: a restart may take seconds (PostgreSQL's crash recovery), during
    which the main thread must still answer Ctrl-C. ``stop()`` (then the servers' own
    ``stop()``, which interrupts a start in progress) ends it promptly.
    """

    def __init__(self, servers: EmbeddedServers, echo: Callable[[str], None]) -> None:
        self.servers = servers
        self.echo = echo
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        watched = (("nats-server", self.servers.nats), ("PostgreSQL", self.servers.postgres))
        failures = dict.fromkeys((name for name, _ in watched), 0)
        since = dict.fromkeys(failures, time.monotonic())
        while not self.stopping.wait(0.2):
            for name, server in watched:
                dead = server.exited()
                if dead is None or self.stopping.is_set():
                    continue
                if time.monotonic() - since[name] > STABLE_AFTER:
                    failures[name] = 0
                delay = min(RESTART_BACKOFF[0] * 2 ** failures[name], RESTART_BACKOFF[1])
                pid, status = dead
                self.echo(f"{name} (pid {pid}) exited with status {status}; "
                          f"restarting it in {delay:g} s")  # fmt: skip
                if self.stopping.wait(delay):
                    return
                try:
                    server.start()
                except Exception as exc:
                    if self.stopping.is_set():
                        return
                    failures[name] += 1
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    self.echo(f"{name} did not restart: {first}")
                    continue
                failures[name] += 1
                since[name] = time.monotonic()
                self.echo(f"{name} restarted (pid {server.pid})")


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
            timeout_graceful_shutdown=2,  # open streams (SSE) must not hold off Ctrl-C
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn("ingest", self._run_ingest)
        self._spawn("projector", lambda: run_projectors(self.runtime.database_url, self.stop_event))
        self._spawn("webhooks", lambda: run_webhooks(self.runtime.database_url, self.stop_event))
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

    def stop(self, timeout: float = SERVICES_STOP) -> None:
        """Ask every service to stop and wait for them, ``timeout`` seconds in all: a service
        still busy then (e.g. retrying a database that is down) is a daemon thread, cut short
        when the process exits."""
        self.server.should_exit = True
        self.loop.call_soon_threadsafe(self.ingest_stop.set)
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if alive := [t.name for t in self.threads if t.is_alive()]:
            log.warning("not stopped within %.0f s, cut short: %s", timeout, ", ".join(alive))


def run_up(runtime: Runtime, host: str, port: int, echo: Callable[[str], None]) -> None:
    """Run everything until SIGINT/SIGTERM."""
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor(runtime.servers, echo) if runtime.servers is not None else None
    services: Services | None = None
    try:
        if supervisor is not None:
            supervisor.start()
        for name in _migrate(runtime.database_url, done):
            echo(f"migrated {name}")
        if done.is_set():
            return
        services = Services(runtime, host, port)
        services.start()
        where = "embedded" if runtime.embedded else "external"
        echo(f"PostgreSQL ({where}): {redact(runtime.database_url)}")
        echo(f"NATS ({where}):       {redact(runtime.nats_url)}")
        echo(f"API:                 http://{host}:{port}  (web pages at /, OpenAPI at /schema)")
        echo("ingest and projector running; Ctrl-C or SIGTERM stops everything")
        while not done.wait(0.5):
            dead = [t.name for t in services.threads if not t.is_alive()]
            if dead:
                echo(f"service stopped unexpectedly: {', '.join(dead)}; shutting down")
                break
    finally:
        echo("stopping ...")
        if supervisor is not None:
            supervisor.stopping.set()  # no restart from here on
        if services is not None:
            services.stop()
        if runtime.servers is not None:
            runtime.servers.stop(SERVER_STOP)  # also interrupts a restart in progress
        if supervisor is not None:
            supervisor.stop(1.0)
            runtime.servers.stop(SERVER_STOP)  # type: ignore[union-attr]  # a restart that won
        for s, handler in previous.items():
            signal.signal(s, handler)


def _migrate(database_url: str, done: threading.Event) -> list[str]:
    """Apply the migrations, retrying while the database is down (a server being restarted)
    until it works or ``done`` is set."""
    delay = 0.2
    while True:
        try:
            return prepare_database(database_url)
        except psycopg.OperationalError as exc:
            if done.wait(delay):
                return []
            log.warning("migrations failed (%s); retrying in %.1fs", exc, delay)
            delay = min(delay * 2, 5.0)
