"""The commands that run Arbiter's long-running processes: ``up`` (all of them together), and
``ingest``, ``project``, ``api``, ``webhooks`` alone, plus ``migrate`` which prepares the
database they use.

Its own room because these commands only start and stop processes whose code lives elsewhere
(:mod:`arbiter.services.processes.up`, :mod:`~arbiter.services.processes.ingest`, ...); they
print almost nothing.
Each imports its process inside the command: those modules load eventsourcing, NATS, uvicorn and
Litestar (0.05 to 0.4 s each), which ``arbiter --help`` and every other command need not pay.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from .common import console, fail, servers, setup_logging

__all__ = ["api", "ingest", "migrate", "project", "up", "webhooks"]

MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=1, max=65535,
        help="Serve Prometheus metrics on this port (GET /metrics); off when not given. "
        "Under `arbiter up` the API's /metrics has them.",
    ),
]  # fmt: skip
MetricsHost = Annotated[str, typer.Option(help="Address the metrics port binds to.")]


def up(
    host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    nats_port: Annotated[
        int,
        typer.Option(
            help="Port of the embedded NATS (127.0.0.1), the same on every run; not NATS's "
            "usual 4222, which a NATS already running on the machine may hold."
        ),
    ] = 14222,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run migrations, ingest, projector, webhooks and API (embedded servers by default)."""
    from arbiter.services.processes.up import check_port, run_up, stop_on_signals  # lazy: see above

    _check_pacing()
    setup_logging(verbose, "up")
    with (
        stop_on_signals(),
        servers(
            owner=True, nats_port=nats_port, preflight=lambda: check_port(host, port)
        ) as runtime,
    ):
        run_up(runtime, host, port, console.print)
    console.print("stopped")


def migrate() -> None:
    """Create the event store and apply pending read-model migrations."""
    from arbiter.services.setup import prepare_database  # lazy: see above

    with servers() as rt:
        applied = prepare_database(rt.database_url)
    console.print("\n".join(applied) if applied else "schema is up to date")


def ingest(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run the ingest service alone (NATS -> event store)."""
    from arbiter.services.processes.ingest import run_ingest  # lazy: see above

    setup_logging(verbose, "ingest")
    with servers() as rt:
        _serve_metrics(metrics_port, metrics_host, rt.database_url)
        asyncio.run(_until_signal(lambda stop: run_ingest(rt.database_url, rt.nats_url, stop)))


def project(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run the projector alone (event store -> read models)."""
    from arbiter.services.processes.projector import run_projectors  # lazy: see above

    _check_pacing()
    _until_stopped(verbose, "projector", run_projectors, metrics_port, metrics_host)


def webhooks(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the webhook worker alone (completed experiments -> their webhook_url)."""
    from arbiter.services.processes.webhooks import run_webhooks  # lazy: see above

    _until_stopped(verbose, "webhooks", run_webhooks)


def _check_pacing() -> None:
    """Refuse a bad ``ARBITER_PROJECTOR_TICK_MS`` before any server starts (the projector
    thread reads it later, where the error would only stop the service)."""
    from arbiter.services.processes.pacing import tick_from_env

    try:
        tick_from_env()
    except ValueError as exc:  # the value is the user's: no Rich markup in it
        raise fail(escape(str(exc))) from None


def _until_stopped(
    verbose: bool,
    service: str,
    run: Callable[[str, threading.Event], None],
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Migrate, then ``run(database_url, stop)`` until SIGINT or SIGTERM sets ``stop``."""
    from arbiter.services.setup import prepare_database

    setup_logging(verbose, service)
    with servers() as rt:
        prepare_database(rt.database_url)
        _serve_metrics(metrics_port, metrics_host, rt.database_url)
        stop = threading.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
        run(rt.database_url, stop)


def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="API processes behind the one port (metrics merged across them); reads go to "
            "ARBITER_READ_DATABASE_URL when set.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API alone."""
    from arbiter.services.api import serve  # lazy: see above
    from arbiter.services.api.workers import serve_workers

    setup_logging(verbose, "api")
    with servers() as rt:
        if workers == 1:
            serve(rt.database_url, rt.nats_url, host, port)
        else:
            serve_workers(rt.database_url, rt.nats_url, host, port, workers)


def _serve_metrics(port: int | None, host: str, database_url: str) -> None:
    """Prometheus metrics of a service run alone (the API serves its own at ``/metrics``)."""
    if port is None:
        return
    from arbiter.services.metrics import serve_metrics  # lazy: see above

    try:
        serve_metrics(port, host, database_url)
    except OSError as exc:
        raise fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc


async def _until_signal(factory: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    await factory(stop)
