"""``/metrics``: scrape, publish N events (some invalid), scrape again, and the counters moved by
exactly what was published; real ``arbiter ingest`` and ``arbiter project`` processes with
``--metrics-port``, and the API's own ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arbiter.adapters.bus import Publisher
from arbiter.projections import PROJECTIONS
from arbiter.services.api import create_app
from arbiter.services.processes.audit import verify
from arbiter.services.processes.rebuild import rebuild
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from .helpers import battle, raw

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> Samples:
    return parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


@pytest.fixture
def services(database_url: str, nats_url: str) -> Iterator[tuple[int, int]]:
    env = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url}
    ports = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "arbiter.services.cli", command, "--metrics-port", str(port)],
            env=env,
        )
        for command, port in zip(("ingest", "project"), ports, strict=True)
    ]
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            while True:
                try:
                    scrape(port)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "metrics port never answered"
                    time.sleep(0.2)
        yield ports
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


async def test_counters_move_by_exactly_what_was_published(
    services: tuple[int, int], nats_url: str
) -> None:
    ingest_port, project_port = services
    # The first batch: a baseline that has every series (the consumer exists, projections moved).
    async with Publisher(nats_url) as pub:
        await pub.publish([raw(battle("warm", "a", "b"))])
    await _until(lambda: value(scrape(project_port), "arbiter_projection_position",
                               projection="results") == 1)  # fmt: skip
    before_i, before_p = scrape(ingest_port), scrape(project_port)

    good = [raw(battle(i, "a", "b")) for i in range(7)]
    bad = [raw(battle("same-1", "x", "x")), raw(battle("same-2", "y", "y")), b"{not json"]
    async with Publisher(nats_url) as pub:
        await pub.publish(good + bad)
    await _until(lambda: all(
        value(scrape(project_port), "arbiter_projection_position", projection=name) == 8
        for name in PROJECTIONS
    ))  # fmt: skip
    malformed = {"name": "arbiter_ingest_events_rejected_total", "code": "malformed_json"}
    await _until(lambda: value(scrape(ingest_port), **malformed) > value(before_i, **malformed))
    after_i, after_p = scrape(ingest_port), scrape(project_port)

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    accepted = "arbiter_ingest_events_accepted_total"
    rejected = "arbiter_ingest_events_rejected_total"
    assert moved(before_i, after_i, accepted, type="battle.completed") == 7
    assert moved(before_i, after_i, rejected, code="same_competitor") == 2
    assert moved(before_i, after_i, rejected, code="malformed_json") == 1
    assert sum(v for (n, _), v in after_i.items() if n == rejected) == 3
    assert moved(before_i, after_i, "arbiter_ingest_events_duplicate_total") == 0
    # the two same-competitor battles are refused by validation, before the append
    assert moved(before_i, after_i, "arbiter_ingest_append_batch_events_sum") == 7
    assert moved(before_i, after_i, "arbiter_ingest_append_seconds_count") >= 1
    for name in PROJECTIONS:
        assert moved(before_p, after_p, "arbiter_projection_events_folded_total",
                     projection=name) == 7  # fmt: skip
        assert value(after_p, "arbiter_projection_lag_events", projection=name) == 0
        assert moved(before_p, after_p, "arbiter_projection_fold_seconds_count",
                     projection=name) >= 1  # fmt: skip
    assert value(after_p, "arbiter_log_head_position") == 8
    await _until(lambda: value(scrape(ingest_port), "arbiter_nats_consumer_pending") == 0
                 and ("arbiter_nats_consumer_redelivered", ()) in scrape(ingest_port))  # fmt: skip


async def _until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.2)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def test_the_api_serves_requests_state_and_the_last_rebuild_and_audit(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    before = parse((await client.get("/metrics")).text)
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    assert (await client.get("/competitors/nobody")).status_code == 404
    # A path that merely contains /metrics is a request like any other (the exclusion of the
    # scrapes is of /metrics itself), counted under its route: 2 of the route's 404s.
    assert (await client.get("/competitors/metrics-v2")).status_code == 404
    await asyncio.to_thread(rebuild, database_url, PROJECTIONS["ratings"])
    report = await asyncio.to_thread(verify, database_url)
    assert report.ok
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = parse(r.text)
    requests = "arbiter_http_requests_total"
    labels = {"app_name": "arbiter", "method": "GET"}
    assert (
        value(after, requests, path="/health", status_code="200", **labels)
        - value(before, requests, path="/health", status_code="200", **labels)
        == 3
    )
    assert value(after, requests, path="/competitors/{competitor_id}", status_code="404",
                 **labels) - value(before, requests, path="/competitors/{competitor_id}",
                                   status_code="404", **labels) == 2  # fmt: skip
    assert not any(n == requests and dict(k).get("path") == "/metrics" for n, k in after)
    assert value(after, "arbiter_database_up") == 1
    assert value(after, "arbiter_last_audit_ok") == 1
    assert value(after, "arbiter_last_audit_seconds") > 0
    assert value(after, "arbiter_last_rebuild_seconds", projection="ratings") > 0
    assert value(after, "arbiter_last_rebuild_timestamp_seconds", projection="ratings") > (
        time.time() - 600
    )
    assert ("arbiter_last_rebuild_seconds", (("projection", "results"),)) not in after


_NAME = re.compile(r"\barbiter_[a-z_]+")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


async def test_the_dashboard_and_the_readme_name_only_metrics_that_exist(
    client: AsyncTestClient[Any],
) -> None:
    await client.get("/health")
    text = (await client.get("/metrics")).text
    exposed = {_family(f.name) for f in text_string_to_metric_families(text)}
    root = Path(__file__).resolve().parent.parent
    dashboard = json.loads((root / "dashboards" / "arbiter-grafana.json").read_text())
    used = {
        _family(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in _NAME.findall(target["expr"])
    }
    assert len(used) >= 15 and used <= exposed, used - exposed
    readme = (root / "README.md").read_text()
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = {_family(n) for n in re.findall(r"^\| `(arbiter_[a-z_]+)", section, re.M)}
    # Litestar's middleware makes its error counter at the first request that raises.
    lazy = {"arbiter_http_requests_error"}
    assert documented - lazy == {n for n in exposed if n.startswith("arbiter_")} - lazy
