"""How long the experiment status query takes (``GET /experiments``, ``GET /experiments/{id}``
and the webhook worker's look for newly completed experiments), by the size of the trials table.

Embedded PostgreSQL in a fresh home (or ``ARBITER_DATABASE_URL``): E declared experiments of
4 competitors x P prompts, each with all its trials (so all are completed), folded by the real
results projector; then each query runs R times and the median and max are printed (ms). The
status is derived when read from the ``trials`` table, so the list over every experiment costs
a pass over the trials; one experiment, and the worker's query (experiments with a webhook and
no delivery yet), read only their own trials through the ``(experiment_id, position)`` index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import Event, ExperimentCreated, TrialCompleted
from arbiter.projections import PROJECTIONS
from arbiter.projections.experiments import status_query
from arbiter.services.processes.projector import Projector
from arbiter.services.processes.webhooks import WebhookConfig, WebhookWorker
from arbiter.services.setup import prepare_database
from psycopg import sql

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SCHEMA = PROJECTIONS["results"].schema


def _events(experiments: int, prompts: int) -> list[Event]:
    out: list[Event] = []
    competitors = ["a", "b", "c", "d"]
    for x in range(experiments):
        out.append(ExperimentCreated(
            event_id=f"c{x}", occurred_at=T0, experiment_id=f"x{x}", name=f"x{x}",
            competitors=competitors, prompt_count=prompts,
            webhook_url="https://example.invalid/hook" if x % 2 else None,
        ))  # fmt: skip
        for p in range(prompts):
            for c in competitors:
                out.append(TrialCompleted(
                    event_id=f"t{x}-{p}-{c}", occurred_at=T0, experiment_id=f"x{x}",
                    trial_id=f"t{x}-{p}-{c}", competitor=c, prompt_index=p, status="completed",
                    metrics={"ttfb_ms": 100.0 + p},
                ))  # fmt: skip
    return out


def _time(run: object, repeat: int) -> tuple[float, float]:
    took = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="arbiter-bench-"))
    servers = None
    url = os.environ.get("ARBITER_DATABASE_URL")
    try:
        if url is None:
            servers = EmbeddedServers(home)
            url, _ = servers.start()
        prepare_database(url)
        events = _events(args.experiments, args.prompts)
        with EventLog(url) as log:
            for i in range(0, len(events), 5000):
                log.append(events[i : i + 5000])
            projector = Projector(url, PROJECTIONS["results"], event_log=log)
            projector.catch_up()
            projector.close()
        with psycopg.connect(url, autocommit=True) as conn:  # as autovacuum would, by now
            conn.execute(sql.SQL("ANALYZE {}.trials").format(sql.Identifier(SCHEMA)))
            conn.execute(sql.SQL("ANALYZE {}.experiments").format(sql.Identifier(SCHEMA)))
        trials = len(events) - args.experiments
        print(f"{args.experiments} experiments, {trials} trials")
        with psycopg.connect(url) as conn:
            everything = sql.SQL("SELECT * FROM ({}) e ORDER BY first_position DESC LIMIT 100")
            page = everything.format(status_query(SCHEMA))
            one = status_query(SCHEMA, sql.SQL("SELECT 'x7'::text"))
            if os.environ.get("BENCH_EXPLAIN"):
                plan = conn.execute(sql.SQL("EXPLAIN ANALYZE ") + page).fetchall()
                print("\n".join(r[0] for r in plan))
            for name, query in (("list, first 100 of all", page), ("one experiment", one)):
                median, worst = _time(lambda q=query: conn.execute(q).fetchall(), args.repeat)
                print(f"{name}: median {median:.1f} ms, max {worst:.1f} ms")
        worker = WebhookWorker(url, WebhookConfig())
        median, worst = _time(worker.queue, 1)
        print(f"worker queues {args.experiments // 2} deliveries: {median:.0f} ms")

        def look() -> None:
            worker.seen = None  # as if the results model had moved
            worker.queue()

        median, worst = _time(look, args.repeat)
        print(f"worker's look with nothing new: median {median:.1f} ms, max {worst:.1f} ms")
        worker.close()
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
