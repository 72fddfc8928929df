"""``arbiter webhooks``: POST each completed experiment's results to its ``webhook_url``.

The loop, every ``ARBITER_WEBHOOK_POLL`` seconds (default 1) or at once after work:

1. **Queue.** Experiments of the results read model that are ``completed``
   (:func:`arbiter.projections.experiments.status_query`), declare a ``webhook_url`` and have no
   delivery to it yet get one: the body (the experiment's status and seed 001's results over its
   trials that are not voided) is built and frozen then, so every attempt sends the same bytes
   under the same ``Idempotency-Key`` (the delivery id, derived from the experiment and URL:
   two workers queueing at once make one row). The read model is polled rather than woken by
   the log's NOTIFY, which fires before the projector has folded the event.
2. **Send.** A due delivery is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and its lock
   held while it is sent and its attempt recorded in the same transaction: two workers never
   send the same delivery at once, and a worker killed mid-send leaves it pending (sent again:
   at least once). A 2xx answer is delivered; anything else (another status, a refused
   connection, a timeout) is retried after ``ARBITER_WEBHOOK_RETRY_DELAY`` seconds (default 1)
   doubling per attempt up to 300 s, until ``ARBITER_WEBHOOK_MAX_ATTEMPTS`` (default 10) attempts
   made it ``failed``. A URL or address refused by the SSRF rules
   (:mod:`arbiter.adapters.webhook_http`) is recorded as a failed attempt and not retried.

Each attempt is signed (:mod:`arbiter.domain.webhook_signature`) with the owner's secret
(:mod:`arbiter.adapters.webhooks`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from arbiter.adapters import webhooks as store
from arbiter.adapters.webhook_http import Outcome, Refused, post
from arbiter.domain.experiments import experiment_results
from arbiter.domain.webhook_signature import sign
from arbiter.projections import PROJECTIONS, tracking
from arbiter.projections.experiments import (
    STATUS_COLUMNS,
    TRIAL_COLUMNS,
    status_query,
    trial_record,
)
from psycopg import sql

__all__ = ["WebhookConfig", "WebhookWorker", "run_webhooks"]

log = logging.getLogger("arbiter.webhooks")
_RESULTS = PROJECTIONS["results"].schema
_JSON = msgspec.json.Encoder(order="sorted")
MAX_DELAY = 300.0


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WebhookConfig:
    allow_private: bool = False
    max_attempts: int = 10
    retry_delay: float = 1.0
    timeout: float = 10.0
    poll: float = 1.0
    home_secret: str | None = None

    @classmethod
    def from_env(cls) -> WebhookConfig:
        env = os.environ.get
        return cls(
            allow_private=_flag("ARBITER_WEBHOOK_ALLOW_PRIVATE"),
            max_attempts=max(1, int(env("ARBITER_WEBHOOK_MAX_ATTEMPTS", "10"))),
            retry_delay=max(0.0, float(env("ARBITER_WEBHOOK_RETRY_DELAY", "1"))),
            timeout=max(0.1, float(env("ARBITER_WEBHOOK_TIMEOUT", "10"))),
            poll=max(0.05, float(env("ARBITER_WEBHOOK_POLL", "1"))),
            home_secret=env("ARBITER_WEBHOOK_SECRET") or None,
        )

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        # The exponent capped: 2 ** 1024 as a float overflows, and MAX_ATTEMPTS has no ceiling.
        return min(MAX_DELAY, self.retry_delay * 2 ** min(attempts - 1, 64))


def delivery_id(experiment_id: str, url: str) -> str:
    digest = hashlib.sha256(f"{experiment_id}\x1f{url}".encode()).hexdigest()
    return f"whd_{digest[:32]}"


_DUE = sql.SQL(
    "SELECT x.experiment_id FROM {experiments} x WHERE x.webhook_url IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM {deliveries} d WHERE d.experiment_id = x.experiment_id "
    "AND d.url = x.webhook_url)"
)
_TRIALS = sql.SQL(
    "SELECT {} FROM {} WHERE experiment_id = %s AND voided_by IS NULL ORDER BY position"
)
"""The experiment's live trials, read as ``GET /experiments/{id}/results`` reads them
(:data:`~arbiter.projections.experiments.TRIAL_COLUMNS`), so the body's results are its."""


class WebhookWorker:
    def __init__(self, database_url: str, config: WebhookConfig | None = None) -> None:
        self.database_url = database_url
        self.config = config or WebhookConfig.from_env()
        self.conn: psycopg.Connection[Any] | None = None
        self.seen: int | None = None
        """The results model's position at the last look that queued everything it found:
        nothing can have completed while it stays the same."""

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.database_url, autocommit=True)
            self.conn.execute("SET TIME ZONE 'UTC'")
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def step(self) -> int:
        """Queue what completed, then send every due delivery; the attempts made."""
        self.queue()
        sent = 0
        while self.send_one():
            sent += 1
        return sent

    def queue(self) -> int:
        """Queue a delivery for each completed experiment with a webhook and none yet; a look
        costs one query, skipped while the results model has not moved."""
        conn = self._connect()
        with conn.cursor() as cur:
            position = tracking.position(cur, _RESULTS, "results")
        if position == self.seen:
            return 0
        ids = _DUE.format(
            experiments=sql.Identifier(_RESULTS, "experiments"),
            deliveries=store.table("deliveries"),
        )
        rows = conn.execute(
            sql.SQL("SELECT * FROM ({}) e WHERE status = 'completed'").format(
                status_query(_RESULTS, ids)
            )
        ).fetchall()
        for row in rows:
            status = dict(zip(STATUS_COLUMNS, row, strict=True))
            trials = conn.execute(
                _TRIALS.format(TRIAL_COLUMNS, sql.Identifier(_RESULTS, "trials")),
                (status["experiment_id"],),
            ).fetchall()
            self._enqueue(conn, status, trials)
        self.seen = position
        return len(rows)

    def _enqueue(
        self, conn: psycopg.Connection[Any], status: dict[str, Any], trials: list[Any]
    ) -> None:
        records = [trial_record(t) for t in trials]
        experiment_id, url = status["experiment_id"], status["webhook_url"]
        d_id = delivery_id(experiment_id, url)
        experiment = {k: v for k, v in status.items() if k not in ("owner", "first_position")}
        body = _JSON.encode(
            {
                "type": "experiment.completed",
                "delivery_id": d_id,
                "experiment": experiment,
                "results": msgspec.to_builtins(experiment_results(records)),
            }
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (delivery_id, experiment_id, url, owner, body, next_attempt_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING"
            ).format(store.table("deliveries")),
            (d_id, experiment_id, url, status["owner"], body),
        )
        log.info("webhook for experiment %s queued (%s)", experiment_id, d_id)

    def send_one(self) -> bool:
        """Claim one due delivery, send it, record the attempt; False when none is due."""
        conn = self._connect()
        with conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "SELECT delivery_id, url, owner, body, attempts FROM {} "
                    "WHERE state = 'pending' AND next_attempt_at <= now() "
                    "ORDER BY next_attempt_at, delivery_id LIMIT 1 FOR UPDATE SKIP LOCKED"
                ).format(store.table("deliveries"))
            ).fetchone()
            if row is None:
                return False
            d_id, url, owner, body, attempts = row
            body = bytes(body)
            n = attempts + 1
            secret = store.secret_for(conn, owner, self.config.home_secret)
            started = datetime.now(UTC)
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "arbiter-webhooks",
                "Idempotency-Key": d_id,
                "X-Arbiter-Event": "experiment.completed",
                "X-Arbiter-Delivery": d_id,
                "X-Arbiter-Attempt": str(n),
                "X-Arbiter-Timestamp": str(stamp),
                "X-Arbiter-Signature": sign(secret, stamp, body),
            }
            refused = False
            try:
                outcome = post(
                    url,
                    body,
                    headers,
                    timeout=self.config.timeout,
                    allow_private=self.config.allow_private,
                )
            except Refused as exc:
                refused = True
                elapsed = (datetime.now(UTC) - started).total_seconds() * 1000
                outcome = Outcome(None, f"refused: {exc}", elapsed)
            self._record(conn, d_id, n, started, outcome, refused)
        return True

    def _record(
        self,
        conn: psycopg.Connection[Any],
        d_id: str,
        n: int,
        started: datetime,
        outcome: Outcome,
        refused: bool,
    ) -> None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (delivery_id, attempt, started_at, duration_ms, status_code, "
                "error) VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(store.table("attempts")),
            (d_id, n, started, outcome.duration_ms, outcome.status_code, outcome.error),
        )
        if outcome.ok:
            state, next_at = "delivered", None
        elif refused or n >= self.config.max_attempts:
            state, next_at = "failed", None
        else:
            state = "pending"
            next_at = datetime.now(UTC) + timedelta(seconds=self.config.delay(n))
        conn.execute(
            sql.SQL(
                "UPDATE {} SET state = %s, attempts = %s, next_attempt_at = %s, "
                "last_error = %s, delivered_at = CASE WHEN %s THEN now() END "
                "WHERE delivery_id = %s"
            ).format(store.table("deliveries")),
            (state, n, next_at, outcome.error, outcome.ok, d_id),
        )
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "webhook %s attempt %d: %s",
            d_id,
            n,
            outcome.status_code if outcome.ok else outcome.error,
        )

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: a step, then a pause of ``poll`` seconds (none after work)."""
        try:
            while not stop.is_set():
                try:
                    worked = self.step()
                except psycopg.Error as exc:  # the database restarting: try again soon
                    log.warning("webhooks: %s", exc)
                    if self.conn is not None:
                        self.conn.close()
                    self.seen = None
                    worked = 0
                if not worked:
                    stop.wait(self.config.poll)
        finally:
            self.close()


def run_webhooks(database_url: str, stop: threading.Event) -> None:
    WebhookWorker(database_url).run(stop)
