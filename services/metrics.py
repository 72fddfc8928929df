"""Prometheus metrics of every Arbiter service, through ``prometheus-client``.

Two kinds, kept apart on purpose:

* **What a process does** (events accepted and rejected by the ingest, its append batches and
  their latency, the NATS consumer's backlog, each projector batch's fold latency, HTTP requests):
  counters, gauges and histograms in the process that does it, in the client library's default
  registry. ``arbiter up`` runs the ingest, projector and API as threads of one process, so its
  ``/metrics`` holds them all; ``arbiter ingest`` and ``arbiter project`` alone serve theirs with
  ``--metrics-port`` (:func:`serve_metrics`). HTTP request metrics are Litestar's own
  ``PrometheusMiddleware`` (labelled by route template, method and status), named
  ``arbiter_http_*``.
* **What the database says** (the log head, each projection's stored position, lag and
  quarantine, the last rebuild and audit): read at scrape time by :class:`StateCollector`, one
  short query, so every process that scrapes says the same numbers and none of them can drift
  from the truth (a position kept in memory would be wrong the moment another projector, or a
  rebuild, moved it).

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (several API workers behind one port), the
process metrics are merged from the workers' files by the library's ``MultiProcessCollector``;
the database metrics are read once per scrape either way. Every metric is listed, with its
meaning, in the README (section Metrics).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from arbiter.adapters.operations import latest
from arbiter.projections import PROJECTIONS, tracking
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg import sql

__all__ = [
    "APPEND_BATCH",
    "APPEND_SECONDS",
    "CONSUMER_ACK_PENDING",
    "CONSUMER_PENDING",
    "CONSUMER_REDELIVERED",
    "CONTENT_TYPE",
    "EVENTS_ACCEPTED",
    "EVENTS_DEFERRED",
    "EVENTS_DUPLICATE",
    "EVENTS_REJECTED",
    "FOLD_EVENTS",
    "FOLD_SECONDS",
    "StateCollector",
    "observe_fold",
    "render",
    "scrape_registry",
    "serve_metrics",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger("arbiter.metrics")
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS_ACCEPTED = Counter(
    "arbiter_ingest_events_accepted", "Events the ingest appended to the log, by type.", ["type"]
)
EVENTS_DUPLICATE = Counter(
    "arbiter_ingest_events_duplicate",
    "Deliveries the log already held with the same content (a resend: no effect).",
)
EVENTS_REJECTED = Counter(
    "arbiter_ingest_events_rejected",
    "Deliveries refused and sent to ARBITER_REJECTED, by rejection code.",
    ["code"],
)
EVENTS_DEFERRED = Counter(
    "arbiter_ingest_deliveries_deferred",
    "Deliveries put back because their target (a vote's battle, a void's result) was missing.",
)
APPEND_BATCH = Histogram(
    "arbiter_ingest_append_batch_events",
    "Events per append transaction of the ingest.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
APPEND_SECONDS = Histogram(
    "arbiter_ingest_append_seconds",
    "Seconds per append transaction of the ingest (decide and write, one batch).",
    buckets=_LATENCY,
)
CONSUMER_PENDING = Gauge(
    "arbiter_nats_consumer_pending",
    "Messages of the ingest's JetStream consumer not yet acknowledged (waiting or in flight).",
    multiprocess_mode="livemax",
)
CONSUMER_ACK_PENDING = Gauge(
    "arbiter_nats_consumer_ack_pending",
    "Of those, delivered and not yet acknowledged.",
    multiprocess_mode="livemax",
)
CONSUMER_REDELIVERED = Gauge(
    "arbiter_nats_consumer_redelivered",
    "Of those unacknowledged, messages delivered more than once.",
    multiprocess_mode="livemax",
)
FOLD_SECONDS = Histogram(
    "arbiter_projection_fold_seconds",
    "Seconds per projector batch (read, fold, write and commit), by projection.",
    ["projection"],
    buckets=_LATENCY,
)
FOLD_EVENTS = Counter(
    "arbiter_projection_events_folded",
    "Events a projector folded into its read model, by projection.",
    ["projection"],
)


class StateCollector(Collector):
    """The database's side, read at each scrape: log head, projection positions, lag and
    quarantine, the last rebuild and audit (:mod:`arbiter.adapters.operations`), and
    ``arbiter_database_up`` (0 when the query failed: then only that is reported)."""

    def __init__(self, database_url: str, timeout: float = 2.0) -> None:
        self.database_url = database_url
        self.timeout = timeout

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("arbiter_database_up", "1 if the last scrape's query answered.")
        try:
            head, positions, operations = self._read()
        except psycopg.Error as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "arbiter_log_head_position", "Position of the last event in the log.", value=head
        )
        families = {
            "position": ("arbiter_projection_position", "Last log position a projection folded."),
            "lag": ("arbiter_projection_lag_events", "Log head minus the projection's position."),
            "quarantined": (
                "arbiter_projection_quarantined_events",
                "Events a projector quarantined (its fold raised on them).",
            ),
        }
        out = {k: GaugeMetricFamily(n, h, labels=["projection"]) for k, (n, h) in families.items()}
        for name, position, quarantined in positions:
            out["position"].add_metric([name], position)
            out["lag"].add_metric([name], max(0, head - position))
            out["quarantined"].add_metric([name], quarantined)
        yield from out.values()
        yield from _operation_families(operations)

    def _read(self) -> tuple[int, list[tuple[str, int, int]], list[Any]]:
        with (
            psycopg.connect(
                self.database_url, autocommit=True, connect_timeout=max(1, int(self.timeout))
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT set_config('statement_timeout', %s, false)", (f"{self.timeout}s",))
            cur.execute("SELECT coalesce(max(notification_id), 0) FROM public.arbiter_events")
            head = int(cur.fetchone()[0])  # type: ignore[index]
            positions = []
            for spec in PROJECTIONS.values():
                cur.execute(
                    sql.SQL("SELECT ({}), (SELECT count(*) FROM {})").format(
                        tracking.position_query(spec.schema, spec.name),
                        sql.Identifier(spec.schema, "quarantine"),
                    )
                )
                position, quarantined = cur.fetchone()  # type: ignore[misc]
                positions.append((spec.name, int(position or 0), int(quarantined)))
            return head, positions, latest(cur)


def _operation_families(operations: list[Any]) -> Iterator[GaugeMetricFamily]:
    rebuild_s = GaugeMetricFamily(
        "arbiter_last_rebuild_seconds", "Duration of the last rebuild.", labels=["projection"]
    )
    rebuild_at = GaugeMetricFamily(
        "arbiter_last_rebuild_timestamp_seconds",
        "When the last rebuild finished (Unix time).",
        labels=["projection"],
    )
    audit_s = GaugeMetricFamily("arbiter_last_audit_seconds", "Duration of the last audit.")
    audit_at = GaugeMetricFamily(
        "arbiter_last_audit_timestamp_seconds", "When the last audit finished (Unix time)."
    )
    audit_ok = GaugeMetricFamily(
        "arbiter_last_audit_ok", "1 if the last audit found the read models equal to the log."
    )
    for op in operations:
        if op.kind == "rebuild":
            rebuild_s.add_metric([op.projection], op.seconds)
            rebuild_at.add_metric([op.projection], op.finished_at.timestamp())
        elif op.kind == "audit":
            audit_s.add_metric([], op.seconds)
            audit_at.add_metric([], op.finished_at.timestamp())
            audit_ok.add_metric([], 1 if op.ok else 0)
    yield from (rebuild_s, rebuild_at, audit_s, audit_at, audit_ok)


class _Scrape(Collector):
    """Everything one scrape reports: the process metrics (this process's, or every worker's
    when ``PROMETHEUS_MULTIPROC_DIR`` is set) and the database's state."""

    def __init__(self, database_url: str | None) -> None:
        self.state = StateCollector(database_url) if database_url is not None else None

    def collect(self) -> Iterator[Any]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            yield from merged.collect()
        else:
            yield from REGISTRY.collect()
        if self.state is not None:
            yield from self.state.collect()


def scrape_registry(database_url: str | None) -> CollectorRegistry:
    """A registry whose collection is one full scrape (see :class:`_Scrape`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(database_url))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of a scrape (blocking: run it in a thread from async code)."""
    return generate_latest(registry)


def serve_metrics(port: int, host: str, database_url: str) -> None:
    """Serve a full scrape at ``http://host:port/metrics`` (any path, as the client library's
    server does) from a daemon thread, for a service that runs without the API (``arbiter
    ingest --metrics-port``)."""
    start_http_server(port, addr=host, registry=scrape_registry(database_url))


def observe_fold(projection: str, events: int, started: float) -> None:
    """Record one projector batch of ``events`` that began at ``started`` (perf_counter)."""
    FOLD_SECONDS.labels(projection).observe(time.perf_counter() - started)
    FOLD_EVENTS.labels(projection).inc(events)
