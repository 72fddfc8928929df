"""The webhook worker (issue 13 point 3) against real PostgreSQL and a real local HTTP receiver:
signed deliveries, a receiver that is down and comes back, the SSRF refusal, two workers that
never send one delivery twice at once, and ``GET /experiments/{id}/deliveries``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from arbiter.adapters import keys
from arbiter.adapters import webhooks as store
from arbiter.adapters.embedded import find_free_port
from arbiter.domain.events import ExperimentCreated
from arbiter.domain.webhook_signature import verify
from arbiter.services.processes.audit import verify as verify_audit
from arbiter.services.processes.webhooks import WebhookConfig, WebhookWorker

from .api_events import seed, trial
from .helpers import running_api

HOME = "home-secret-for-tests"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers from a script
    (then 200)."""

    def __init__(self, port: int, answers: list[int] | None = None, pause: float = 0) -> None:
        self.port, self.answers, self.pause = port, list(answers or []), pause
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.pause)
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def declared(exp: str, url: str, source: str | None = None) -> list[Any]:
    """An experiment of two competitors and one prompt, completed by its two trials."""
    return [
        ExperimentCreated(
            event_id=f"ev-create-{exp}", occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
            experiment_id=exp, name=exp, competitors=["x", "y"], prompt_count=1,
            webhook_url=url, source=source,
        ),
        trial(f"{exp}-t1", exp, "x", metrics={"ttfb_ms": 100.0}, source=source),
        trial(f"{exp}-t2", exp, "y", metrics={"ttfb_ms": 300.0}, source=source),
    ]  # fmt: skip


def config(**kw: Any) -> WebhookConfig:
    base: dict[str, Any] = {"allow_private": True, "retry_delay": 0.2, "home_secret": HOME}
    return WebhookConfig(**{**base, **kw})


def deliveries(url: str, exp: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.state, d.attempts, a.status_code, a.error FROM arbiter_webhooks.deliveries d "
            "LEFT JOIN arbiter_webhooks.attempts a USING (delivery_id) "
            "WHERE d.experiment_id = %s ORDER BY a.attempt",
            (exp,),
        ).fetchall()
    return [dict(zip(("state", "attempts", "code", "error"), r, strict=True)) for r in rows]


def test_a_completed_experiment_is_delivered_signed(database_url: str) -> None:
    port = find_free_port()
    hook = f"http://127.0.0.1:{port}/hook?team=1"
    seed(database_url, [*declared("open", hook), *declared("keyed", hook, "key:ak_0000000a")])
    worker = WebhookWorker(database_url, config())
    with Receiver(port).running() as receiver:
        assert worker.step() == 2
        assert worker.step() == 0  # nothing is sent twice
    worker.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        key_secret = store.secret_for(conn, "key:ak_0000000a", HOME)
    assert key_secret != HOME and key_secret.startswith("whsec_")
    sent = {
        json.loads(body)["experiment"]["experiment_id"]: (h, body) for h, body in receiver.requests
    }
    for exp, secret in (("open", HOME), ("keyed", key_secret)):
        headers, body = sent[exp]
        stamp = int(headers["X-Arbiter-Timestamp"])
        assert verify(secret, stamp, body, headers["X-Arbiter-Signature"])
        assert not verify("another", stamp, body, headers["X-Arbiter-Signature"])
        doc = json.loads(body)
        assert headers["Idempotency-Key"] == doc["delivery_id"]
        assert doc["experiment"]["status"] == "completed" and doc["experiment"]["trials"] == 2
        assert doc["results"]["rankings"][0]["competitor"] == "x"  # the faster ttfb
    assert deliveries(database_url, "open") == [
        {"state": "delivered", "attempts": 1, "code": 200, "error": None}
    ]
    # Deliveries are operational state in their own schema: the audit neither reads nor minds it.
    report = verify_audit(database_url)
    assert report.ok, report.mismatches
    assert not any("webhooks" in m or "deliveries" in m for m in report.mismatches)


def test_a_receiver_that_is_down_and_comes_back(database_url: str) -> None:
    port = find_free_port()
    seed(database_url, declared("e", f"http://127.0.0.1:{port}/hook"))
    worker = WebhookWorker(database_url, config())
    assert worker.step() == 1  # nobody listens: connection refused, retried later
    first = deliveries(database_url, "e")
    assert first[0]["state"] == "pending" and first[0]["code"] is None and first[0]["error"]
    with Receiver(port, answers=[503]).running() as receiver:
        for _ in range(100):
            worker.step()
            if deliveries(database_url, "e")[0]["state"] != "pending":
                break
            time.sleep(0.1)
    worker.close()
    got = deliveries(database_url, "e")
    assert [(r["code"], r["state"]) for r in got] == [
        (None, "delivered"),
        (503, "delivered"),
        (200, "delivered"),
    ]
    assert got[0]["attempts"] == 3
    (h1, b1), (h2, b2) = receiver.requests
    assert b1 == b2 and h1["Idempotency-Key"] == h2["Idempotency-Key"]
    assert (h1["X-Arbiter-Attempt"], h2["X-Arbiter-Attempt"]) == ("2", "3")
    with running_api(database_url, None) as base:
        body = httpx.get(f"{base}/experiments/e/deliveries").json()
    (delivery,) = body["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["history"]] == [None, 503, 200]
    assert delivery["history"][0]["error"] and delivery["history"][0]["duration_ms"] >= 0


def test_a_private_address_is_refused_and_recorded(database_url: str) -> None:
    port = find_free_port()
    seed(database_url, declared("e", f"http://127.0.0.1:{port}/hook"))
    worker = WebhookWorker(database_url, config(allow_private=False))
    with Receiver(port).running() as receiver:
        assert worker.step() == 1
        assert worker.step() == 0  # not retried
    worker.close()
    assert receiver.requests == []
    (attempt,) = deliveries(database_url, "e")
    assert attempt["state"] == "failed" and attempt["code"] is None
    assert "refused" in attempt["error"] and "loopback" in attempt["error"]


def test_two_workers_never_send_one_delivery_twice(database_url: str) -> None:
    port = find_free_port()
    events = [e for i in range(6) for e in declared(f"e{i}", f"http://127.0.0.1:{port}/h")]
    seed(database_url, events)
    workers = [WebhookWorker(database_url, config()) for _ in range(2)]
    with Receiver(port, pause=0.2).running() as receiver:
        threads = [threading.Thread(target=w.step) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for w in workers:
        w.close()
    keys = [h["Idempotency-Key"] for h, _ in receiver.requests]
    assert len(keys) == 6 and len(set(keys)) == 6


def test_the_command_delivers_with_the_secret_it_prints(database_url: str, nats_url: str) -> None:
    """``arbiter webhooks`` as a process (configured by the environment) delivers, signed with
    the key's secret that ``arbiter webhook-secret --key`` prints, and stops on SIGTERM."""
    key, _ = keys.create(database_url, "owner", ["publish"])
    port = find_free_port()
    seed(database_url, declared("e", f"http://127.0.0.1:{port}/h", f"key:{key.key_id}"))
    env = {
        **os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url,
        "ARBITER_WEBHOOK_ALLOW_PRIVATE": "true", "ARBITER_WEBHOOK_POLL": "0.2",
    }  # fmt: skip
    cli = [sys.executable, "-m", "arbiter.services.cli"]
    with Receiver(port).running() as receiver:
        worker = subprocess.Popen([*cli, "webhooks"], env=env)
        try:
            for _ in range(300):
                if receiver.requests:
                    break
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
    printed = subprocess.run(
        [*cli, "webhook-secret", "--key", key.key_id], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout.strip()  # fmt: skip
    ((headers, body),) = receiver.requests
    stamp = int(headers["X-Arbiter-Timestamp"])
    assert printed.startswith("whsec_")
    assert verify(printed, stamp, body, headers["X-Arbiter-Signature"])
    unknown = subprocess.run(
        [*cli, "webhook-secret", "--key", "ak_nothere"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert unknown.returncode == 2 and "ak_nothere" in unknown.stdout + unknown.stderr


def test_a_non_ascii_path_is_a_failed_attempt_not_a_dead_worker() -> None:
    """A URL whose path holds a non-ASCII character passes validation but cannot be put on
    the request line: the attempt fails with the reason (it raised UnicodeEncodeError, which
    ended the worker's thread)."""
    from arbiter.adapters.webhook_http import post

    port = find_free_port()
    with Receiver(port).running() as receiver:
        outcome = post(
            f"http://127.0.0.1:{port}/résultats", b"{}", {}, timeout=2.0, allow_private=True
        )
    assert outcome.status_code is None and "UnicodeEncodeError" in (outcome.error or ""), outcome
    assert receiver.requests == []


def test_a_resolver_that_does_not_answer_is_a_failed_attempt_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``getaddrinfo`` takes no timeout: a name server that never answers held the delivery
    worker for the system resolver's own retries. The wait is now bounded by the attempt's
    timeout. (The resolver is the operating system's; a silent one is stood in for by a lookup
    that blocks until the test lets it go.)"""
    import socket

    from arbiter.adapters.webhook_http import post

    release = threading.Event()
    resolve = socket.getaddrinfo

    def silent(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "silent.example":
            release.wait(30)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    started = time.monotonic()
    try:
        outcome = post("http://silent.example/hook", b"{}", {}, timeout=0.3, allow_private=False)
    finally:
        release.set()
    waited = time.monotonic() - started
    assert outcome.status_code is None and "no answer within 0.3 s" in (outcome.error or "")
    assert waited < 5, waited


def test_a_receiver_that_drips_its_answer_is_a_failed_attempt_at_the_timeout() -> None:
    """The timeout bounded each read, not the attempt: a receiver sending a byte of its headers
    every 0.3 s, each gap under the 1 s timeout, held the attempt for as long as it dripped (the
    delivery row locked, every other delivery waiting) and then counted as delivered."""
    import socket

    from arbiter.adapters.webhook_http import post

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            try:
                for _ in range(20):
                    time.sleep(0.3)
                    conn.sendall(b"X")
                conn.sendall(b": y\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass  # the client hung up at its deadline

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    outcome = post(f"http://127.0.0.1:{port}/", b"{}", {}, timeout=1.0, allow_private=True)
    waited = time.monotonic() - started
    server.close()
    assert outcome.status_code is None, outcome
    assert "no complete answer within 1 s" in (outcome.error or ""), outcome
    assert waited < 3, waited  # not the 6 s of dripping


def test_an_address_that_refuses_is_passed_over_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first resolved address was tried: a name resolving to an IPv6 address first,
    on a host without IPv6, failed every attempt though its next address answered. (The
    resolver is stood in for: 127.0.0.2, where nothing listens, first; then the receiver.)"""
    import socket

    from arbiter.adapters.webhook_http import post

    port = find_free_port()
    resolve = socket.getaddrinfo

    def two(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "two.test":
            return resolve(host, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in ("127.0.0.2", "127.0.0.1")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two)
    with Receiver(port).running() as receiver:
        outcome = post(f"http://two.test:{port}/hook", b"{}", {}, timeout=5, allow_private=True)
    assert outcome.ok, outcome
    assert len(receiver.requests) == 1  # sent once, to the address that answered


def test_the_retry_delay_never_overflows() -> None:
    cfg = config()
    assert cfg.delay(1) == cfg.retry_delay
    assert cfg.delay(1_025) == cfg.delay(10**9) == min(300.0, cfg.retry_delay * 2**64)
