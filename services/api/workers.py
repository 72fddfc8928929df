"""``arbiter api --workers N``: N API processes behind one port.

uvicorn's supervisor binds the socket once and starts N worker processes that accept on it (the
kernel hands each new connection to one of them); it restarts a worker that dies and stops them
all on SIGINT/SIGTERM. A worker is a fresh interpreter, so it cannot be handed an app object: it
imports :func:`app_from_env`, which builds the app from the environment the supervisor set
(``ARBITER_DATABASE_URL``, ``ARBITER_NATS_URL``, and every other ``ARBITER_*`` setting as given).

Each worker has its own pools, response cache and key cache: nothing the API keeps in memory is
shared, and nothing needs to be (the cache follows the database's state in each process; a key
revoked through one worker is refused by the others within ``ARBITER_AUTH_CACHE_TTL``).
Each runs ``ARBITER_EVAL_WORKERS`` evaluation runners too; they share the jobs table safely.

Metrics: ``PROMETHEUS_MULTIPROC_DIR`` is set to a fresh private directory before any worker
starts, so each worker's counters, histograms and gauges go to files there and every worker's
``/metrics`` answers the merge of all of them (:mod:`arbiter.services.metrics`); the directory
is removed when the supervisor stops, so a later run never adds in a previous run's counts.

``arbiter up`` keeps one API thread: it runs the ingest and projectors in the same process, and
its metrics are that process's registry. Scale the API with ``arbiter api --workers`` beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import uvicorn
from litestar import Litestar

from .app import create_app

__all__ = ["app_from_env", "serve_workers"]

_FACTORY = "arbiter.services.api.workers:app_from_env"


def app_from_env() -> Litestar:
    """The app of one worker, configured by the supervisor's environment."""
    database_url = os.environ["ARBITER_DATABASE_URL"]
    return create_app(database_url, os.environ.get("ARBITER_NATS_URL") or None)


def serve_workers(
    database_url: str, nats_url: str | None, host: str, port: int, workers: int
) -> None:
    """Run ``workers`` API processes on ``host:port`` until interrupted."""
    metrics_dir = tempfile.mkdtemp(prefix="arbiter-api-metrics-")
    saved = {k: os.environ.get(k) for k in ("PROMETHEUS_MULTIPROC_DIR", "ARBITER_DATABASE_URL",
                                            "ARBITER_NATS_URL")}  # fmt: skip
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ["ARBITER_DATABASE_URL"] = database_url
    if nats_url:
        os.environ["ARBITER_NATS_URL"] = nats_url
    try:
        uvicorn.run(
            _FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)
