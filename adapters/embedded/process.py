"""What both embedded servers share: their errors, the process we start, and how we watch it.

PostgreSQL and nats-server are run the same way (a child in its own session, reaped by
``stop()``, its log tail quoted when it fails), so that machinery lives here once and the two
server modules hold only what is particular to each.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil

__all__ = [
    "EmbeddedError",
    "PortTaken",
    "ServerProcess",
    "Started",
    "log_tail",
    "pid_alive",
    "wait_gone",
]


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped; the message includes its log tail."""


class PortTaken(EmbeddedError):
    """nats-server could not listen on the port it was given (another process holds it)."""

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, for error messages: the reason a server failed is always there."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until each process has exited (or is a zombie awaiting its parent's reaping)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        while pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (non-zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class Started:
    """Use as a context manager: ``start()`` on entry, ``stop()`` on exit."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(Started):
    """What both embedded servers share: the process we started and its pid while it runs."""

    _proc: subprocess.Popen[bytes] | None

    def start(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's pid while the process we started runs (the postmaster for PostgreSQL)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the server we started is running."""
        return self.pid is not None

    def exited(self) -> tuple[int, int] | None:
        """``(pid, exit status)`` when the server we started has died on its own (killed,
        crashed) and ``stop()`` has not been called since: what a supervisor restarts."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return None
        return proc.pid, proc.returncode
