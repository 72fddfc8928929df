"""``/metrics``: Prometheus text exposition of this process's metrics and the database's state
(:mod:`arbiter.services.metrics`). Open like ``/health``: it names no arena, competitor or key,
only counts, positions and durations."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusConfig

from ...metrics import CONTENT_TYPE, render

__all__ = ["METRICS_PATH", "metrics", "request_metrics"]

METRICS_PATH = "/metrics"


def request_metrics() -> PrometheusConfig:
    """Litestar's request metrics, as ``arbiter_http_requests_total``,
    ``arbiter_http_request_duration_seconds``, ``arbiter_http_requests_in_progress`` and
    ``arbiter_http_requests_error_total``, labelled by route template (``/competitors/{id}``,
    never the raw path, so the series stay few), method and status. Unmatched paths (404s of
    any URL a client makes up) are left out for the same reason, and so are scrapes."""
    return PrometheusConfig(
        app_name="arbiter",
        prefix="arbiter_http",
        group_path=True,
        exclude_unhandled_paths=True,
        exclude=[f"^{METRICS_PATH}$"],  # anchored: searched anywhere, it left out /x/metrics-v2
    )


@get(
    METRICS_PATH,
    summary="Prometheus metrics",
    media_type=CONTENT_TYPE,
    opt={"scope": "none"},
    tags=["health"],
)
async def metrics(state: State) -> Response[bytes]:
    """Every metric of this process (ingest, projector and API under ``arbiter up``; each API
    worker's with ``PROMETHEUS_MULTIPROC_DIR``) and the database's state: the log head, each
    projection's position, lag and quarantine, the last rebuild and audit. Documented in the
    README, section Metrics."""
    body = await asyncio.to_thread(render, state["metrics"])
    return Response(body, media_type=CONTENT_TYPE)
