"""What every ``arbiter`` command shares: the consoles, errors with their exit codes, the servers,
progress bars, logging and the ``--wait/--no-wait`` option.

Its own room so that the command modules depend on it and never on each other or on the package
``__init__`` that assembles them (which is what made the old ``cli*.py`` files a cycle).

Exit codes: 0 ok, 1 a failure was found (an audit mismatch, rejected events on publish),
2 usage or configuration error (bad flags, bad JSON, unreachable servers).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = [
    "CLI_CONNECT_ATTEMPTS",
    "WaitOption",
    "console",
    "err",
    "fail",
    "progress_bar",
    "servers",
    "setup_logging",
]

console = Console()
err = Console(stderr=True)
CLI_CONNECT_ATTEMPTS = 6
"""A command gives up on an unreachable NATS after this many tries, 0.5 s apart."""

WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait for the ingest's verdict on each event (new, refused) while one is running.",
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (Rich markup) on stderr; the caller raises the returned exit."""
    # soft_wrap: one line however narrow the terminal, so paths and scripts' greps stay whole.
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def servers(owner: bool = False, **up_options: Any) -> Iterator[Any]:
    """The servers to use; failing to start or reach them is a configuration error (exit 2).
    ``owner`` and ``up_options``: see :func:`arbiter.services.processes.runtime.servers`."""
    # Lazy: the runtime loads the embedded-server runners, which `arbiter --help` need not pay.
    from arbiter.services.processes.runtime import RuntimeRefusal
    from arbiter.services.processes.runtime import servers as runtime_servers

    ctx = runtime_servers(owner=owner, **up_options)
    try:
        runtime = ctx.__enter__()
    except RuntimeRefusal as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:
        raise fail(f"cannot start or reach the servers: {exc}") from exc
    try:
        with psycopg.connect(runtime.database_url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        ctx.__exit__(None, None, None)
        raise fail(
            f"cannot reach PostgreSQL ({str(exc).strip()}); check ARBITER_DATABASE_URL"
        ) from exc
    try:
        yield runtime
    except BaseException as exc:
        if not ctx.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        ctx.__exit__(None, None, None)


def progress_bar() -> Progress:
    """A counting progress bar on stderr (stdout stays for results)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=err, transient=False,
    )  # fmt: skip


def setup_logging(verbose: bool, service: str) -> None:
    """Logs of a long-running command, in ``ARBITER_LOG_FORMAT`` (:mod:`arbiter.services.logs`);
    a format it does not know is a configuration error (exit 2)."""
    from arbiter.services.logs import LogFormatError, configure

    try:
        configure(service, verbose)
    except LogFormatError as exc:
        raise fail(str(exc)) from exc
