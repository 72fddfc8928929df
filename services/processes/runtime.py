"""Where the servers are: configuration from the environment, or the embedded default.

* ``ARBITER_DATABASE_URL`` / ``ARBITER_NATS_URL`` name external servers.
* Unset, ``arbiter up`` starts the embedded PostgreSQL and nats-server under ``ARBITER_HOME``
  (default ``./.arbiter``) and records their URLs in ``ARBITER_HOME/runtime.json`` while it runs,
  so that other commands (``arbiter leaderboard``, ``publish``, ``audit``) in another terminal
  use those same servers.

One process owns a home's embedded servers at a time, and only the owner starts or stops them.
Ownership is an exclusive ``flock`` on ``ARBITER_HOME/lock``, held for the owner's whole life
(the kernel drops it when the process dies, even by SIGKILL, so a crash never leaves a stale
claim; the file itself names the holder's pid and command, for messages only):

* ``arbiter up`` takes the lock before anything else; a second ``up`` on the same home exits 2
  naming the holder's pid, and never touches the first one's servers or ``runtime.json``.
* Every other command, while a holder has recorded its servers, uses them as they are. If they do
  not answer (PostgreSQL at its connection limit, or being restarted), the command fails with a
  reason (exit 2): it never starts servers on a home another process holds, because starting
  them would first stop the holder's ("leftovers" of a killed owner look exactly like them).
* With no ``up`` running, a command may still start the embedded servers for its own duration,
  as it always could, but only while it holds the lock itself; a second such command at the
  same time exits 2 naming the first (two owners of one PGDATA would stop each other).

With external URLs set there is nothing to own: no lock is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from arbiter.adapters.embedded import EmbeddedServers, PortTaken

__all__ = [
    "LOCK_RETRY",
    "UP_START_WAIT",
    "HomeBusy",
    "HomeLock",
    "Runtime",
    "RuntimeRefusal",
    "busy_message",
    "configured_urls",
    "held",
    "holder",
    "home",
    "lock_file",
    "runtime_file",
    "servers",
]

UP_START_WAIT = 60.0
"""How long a command waits for a starting ``arbiter up`` to record its servers."""
LOCK_RETRY = 1.0
"""How long a lock attempt retries: a health probe holds the lock (shared) for microseconds."""


class RuntimeRefusal(Exception):
    """A command cannot run as asked; the message says why and what to do (exit 2)."""


class HomeBusy(RuntimeRefusal):
    """Another process holds ``ARBITER_HOME``."""


@dataclass(frozen=True)
class Runtime:
    database_url: str
    nats_url: str
    embedded: bool
    servers: EmbeddedServers | None = None
    """The embedded servers this process started (``arbiter up`` supervises them)."""


def home() -> Path:
    return Path(os.environ.get("ARBITER_HOME", ".arbiter")).expanduser().absolute()


def runtime_file() -> Path:
    return home() / "runtime.json"


def lock_file() -> Path:
    return home() / "lock"


def _command() -> str:
    """What this process is, for another process's messages (``arbiter up``, ...)."""
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return f"arbiter {sub}".strip()


class HomeLock:
    """The exclusive claim on a home (module docstring). Not inherited by child processes: the
    file is opened close-on-exec and the embedded servers are started with ``close_fds``, so a
    nats-server orphaned by a killed ``up`` does not keep holding the home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, command: str, wait: float = LOCK_RETRY) -> None:
        """Take the lock or raise :class:`HomeBusy` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise HomeBusy(busy_message(self.path.parent, holder(self.path))) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "command": command}
        os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


def held(path: Path) -> bool:
    """Whether some process holds the lock (a shared attempt fails against an exclusive one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def holder(path: Path) -> dict[str, object]:
    """The holder's record (pid, command); empty if it cannot be read (being written)."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
        time.sleep(0.01)
    return {}


def busy_message(where: Path, who: dict[str, object]) -> str:
    name = f"`{who.get('command', 'arbiter')}` (pid {who.get('pid', 'unknown')})"
    return (
        f"ARBITER_HOME {where} is held by {name}, which owns its embedded servers; "
        "stop it first, or give this command another ARBITER_HOME"
    )


def _recorded() -> dict[str, object] | None:
    """What the holder of the home recorded (URLs and pid), if it did."""
    try:
        data = json.loads(runtime_file().read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and {"database_url", "nats_url"} <= data.keys():
        return data
    return None


def configured_urls() -> tuple[str, str]:
    """The URLs to check, never starting servers: the environment's, else those a running
    ``arbiter up`` recorded; raises :class:`LookupError` when there are none."""
    db = os.environ.get("ARBITER_DATABASE_URL")
    nats_url = os.environ.get("ARBITER_NATS_URL")
    if db and nats_url:
        return db, nats_url
    recorded = _recorded() if held(lock_file()) else None
    if recorded is None:
        raise LookupError(
            "no servers configured: set ARBITER_DATABASE_URL and ARBITER_NATS_URL, "
            "or run `arbiter up` (its servers are found through ARBITER_HOME)"
        )
    return db or str(recorded["database_url"]), nats_url or str(recorded["nats_url"])


def _held_servers() -> tuple[str, str]:
    """The servers of the process holding the home; :class:`RuntimeRefusal` if unusable.

    An ``arbiter up`` that is still starting gets :data:`UP_START_WAIT` seconds to record its
    servers; one whose PostgreSQL does not answer is reported, never replaced.
    """
    deadline = time.monotonic() + UP_START_WAIT
    while True:
        who = holder(lock_file())
        recorded = _recorded()
        if recorded is not None and recorded.get("pid") == who.get("pid"):
            break
        if not held(lock_file()):
            raise _Free
        if who.get("command") != "arbiter up" or time.monotonic() > deadline:
            raise HomeBusy(busy_message(home(), who))
        time.sleep(0.2)
    url = str(recorded["database_url"])
    try:
        with psycopg.connect(url, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RuntimeRefusal(
            f"`arbiter up` (pid {recorded.get('pid')}) holds ARBITER_HOME {home()} but its "
            f"PostgreSQL does not answer ({reason}); nothing was started or stopped: "
            "try again in a moment, or see its output"
        ) from exc
    return url, str(recorded["nats_url"])


class _Free(Exception):
    """The home's holder went away while we looked: take the lock ourselves."""


@contextmanager
def servers(
    *,
    owner: bool = False,
    nats_port: int | None = None,
    preflight: Callable[[], None] | None = None,
) -> Iterator[Runtime]:
    """Yield the servers to use; start embedded ones when no URL is configured.

    ``owner`` (``arbiter up``) holds the home for its whole life and records the embedded URLs
    for other commands; its NATS listens on ``nats_port``. ``preflight`` runs once the home is
    held and before any server starts (``up`` checks its API port there).
    """
    db = os.environ.get("ARBITER_DATABASE_URL")
    nats_url = os.environ.get("ARBITER_NATS_URL")
    if db and nats_url:
        if preflight is not None:
            preflight()
        yield Runtime(db, nats_url, embedded=False)
        return
    lock = HomeLock(lock_file())
    while True:
        try:
            lock.acquire(_command(), wait=LOCK_RETRY if owner else 0.0)
            break
        except HomeBusy:
            if owner:
                raise
        try:  # another process holds the home: use its servers, or refuse
            held_db, held_nats = _held_servers()
        except _Free:
            continue
        yield Runtime(db or held_db, nats_url or held_nats, embedded=True)
        return
    try:
        # We hold the home: a runtime.json here was left by an owner that was killed.
        runtime_file().unlink(missing_ok=True)
        if preflight is not None:
            preflight()
        embedded = EmbeddedServers(home(), nats_port=nats_port)
        try:
            emb_db, emb_nats = embedded.start()
        except PortTaken as exc:
            raise RuntimeRefusal(
                f"port {exc.port} on 127.0.0.1, where the embedded NATS listens, is taken by "
                "another process; nothing was started: choose another with `arbiter up "
                "--nats-port`"
            ) from exc
        try:
            if owner:
                runtime_file().write_text(
                    json.dumps({"database_url": emb_db, "nats_url": emb_nats, "pid": os.getpid()})
                )
            yield Runtime(db or emb_db, nats_url or emb_nats, embedded=True, servers=embedded)
        finally:
            runtime_file().unlink(missing_ok=True)
            embedded.stop()
    finally:
        lock.release()
