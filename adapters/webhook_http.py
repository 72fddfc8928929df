"""One webhook POST: resolve, refuse what must not be reached, connect to the very address
that was checked, send, time it. Standard library only (``http.client``), so the webhook worker
adds no runtime dependency.

The host is resolved once and the connection goes to one of the resolved addresses, never to
the name again: resolving twice would let a name that answers "public" to the check and
"127.0.0.1" to the connection (DNS rebinding) reach the host's own network. Every resolved
address must pass :func:`arbiter.domain.webhook_urls.address_problem` (unless private targets are
allowed). HTTPS verifies the certificate for the URL's host name (SNI), with the system's
trust store. Redirects are not followed (a 3xx is a failed attempt): following one would reach
an address nobody checked. The timeout bounds the whole attempt, not each read
(:class:`_Deadline`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from arbiter.domain.webhook_urls import address_problem, url_problem

__all__ = ["Outcome", "Refused", "post"]


class Refused(Exception):
    """The URL or its resolved address may not be reached; retrying would not change that."""


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _lookup(host: str, port: int, timeout: float) -> list[tuple[object, ...]]:
    """``getaddrinfo`` with a bound on the wait. It takes no timeout itself, and a resolver that
    does not answer would hold the delivery worker for as long as the system's resolver retries
    (tens of seconds per attempt). The lookup runs in a daemon thread, so one left behind
    finishes or is dropped with the process, never holding up its exit."""
    found: list[list[tuple[object, ...]] | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the waiting thread
            found.append(exc)
        done.set()

    threading.Thread(target=run, name="webhook-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise OSError(f"cannot resolve {host!r}: no answer within {timeout:g} s")
    if isinstance(found[0], socket.gaierror):
        raise OSError(f"cannot resolve {host!r}: {found[0].strerror or found[0]}") from found[0]
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def _resolve(host: str, port: int, allow_private: bool, timeout: float) -> list[str]:
    """The addresses to try, in the resolver's order; :class:`Refused` if any address of the
    name is refused, an ``OSError`` if the name does not resolve within ``timeout`` seconds."""
    infos = _lookup(host, port, timeout)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            problem = address_problem(address.split("%", 1)[0])
            if problem is not None:
                raise Refused(f"{host} resolves to {problem}")
    return addresses


def _connected(
    host: str, port: int, addresses: list[str], timeout: float, tls: bool, deadline: _Deadline
) -> http.client.HTTPConnection:
    """A connection to the first of the checked ``addresses`` that accepts one: a name that
    resolves to an IPv6 address first, on a host without IPv6, failed every attempt though its
    IPv4 address answered. Only connecting moves on to the next; nothing is sent twice."""
    for i, address in enumerate(addresses):
        conn = (_PinnedTLS if tls else _Pinned)(host, port, address, timeout, deadline)
        try:
            conn.connect()
        except OSError:
            conn.close()
            if i == len(addresses) - 1 or deadline.expired.is_set():
                raise
            continue
        return conn
    raise OSError(f"{host} resolves to no address")  # pragma: no cover - getaddrinfo gives one


class _Deadline:
    """The attempt's whole time limit. A socket timeout bounds each read, not the attempt: a
    receiver sending one byte of its headers every 0.8 s held a 1 s attempt for as long as it
    liked (the delivery row locked, every other delivery waiting) and then counted as
    delivered. At the deadline the socket is shut down, so the read in progress fails."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = threading.Event()
        self.sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.001), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> socket.socket:
        """``sock``, shut down at the deadline (at once if it has passed)."""
        self.sockets.append(sock)
        if self.expired.is_set():
            self._shut(sock)
        return sock

    def _expire(self) -> None:
        self.expired.set()
        for sock in self.sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # closed already, or never connected
            sock.shutdown(socket.SHUT_RDWR)


class _Pinned(http.client.HTTPConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, deadline: _Deadline
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address, self._deadline = address, deadline

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._deadline.watch(raw)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, deadline: _Deadline
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address, self._deadline = address, deadline

    def connect(self) -> None:
        raw = self._deadline.watch(
            socket.create_connection((self._address, self.port), self.timeout)
        )
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool
) -> Outcome:
    """POST ``body`` to ``url``; the outcome of the attempt (a refusal raises :class:`Refused`)."""
    problem = url_problem(url)
    if problem is not None:
        raise Refused(problem)
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.perf_counter()
    deadline = _Deadline(0.0)
    try:
        addresses = _resolve(host, port, allow_private, timeout)  # bounded by ``timeout`` itself
        deadline = _Deadline(timeout - (time.perf_counter() - started))  # what is left of it
        with deadline:
            conn = _connected(host, port, addresses, timeout, tls, deadline)
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                code = response.status
            finally:
                conn.close()
            if deadline.expired.is_set():  # an answer read as the deadline struck: too late
                raise TimeoutError("answered after the deadline")
    except Refused:
        raise
    except (OSError, http.client.HTTPException, UnicodeError) as exc:
        # UnicodeError: a URL whose path holds a non-ASCII character cannot be put on the
        # request line; a failed attempt, recorded and retried like any, not a dead worker.
        elapsed = (time.perf_counter() - started) * 1000
        if deadline.expired.is_set():
            return Outcome(None, f"timeout: no complete answer within {timeout:g} s", elapsed)
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    return Outcome(code, None if 200 <= code < 300 else f"HTTP {code}", elapsed)
