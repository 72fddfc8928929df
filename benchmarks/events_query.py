"""``GET /events`` latency over a long log: the log's index at work (issue 13 point 2).

What is measured
----------------
Embedded PostgreSQL in a fresh home (or the server named by ``ARBITER_DATABASE_URL``). The log
is filled with N events (default 1,000,000) of the ``mixed`` workload of ``ingest_rebuild.py``
(games, battles, pairwise votes, trials, score votes, voids; 100 competitors), written straight
through the event store's checked batch append (``EventLog.append``, 5,000 per call, with every
decision the ingest makes) and not through NATS, to keep the set-up short. Then the results read
model, and with it the log's index, is built by ``arbiter rebuild``'s code (``rebuild``), and
``VACUUM ANALYZE`` runs as autovacuum would after such a load.

``arbiter api`` is started as a subprocess and one client (httpx, sequential, in this process)
sends R requests (default 200) of each query below, in rounds (every query once per round, so
a disturbance of the machine hits all of them alike); a request's latency runs from sending it
to the parsed JSON body. Reported per query: p50, p90, p99 and max (ms), and the mean ``total``
and page size it answered.

* ``competitor``: ``competitor=<random of 100>&limit=100``, the first page;
* ``competitor desc``: the same, newest first;
* ``competitor deep``: the same after the middle of the log (``after`` = head / 2);
* ``competitor cursor``: a next page, by the ``next`` cursor of a first page;
* ``competitor+type``: ``competitor`` and ``type=vote.cast,result.voided``;
* ``entity``: ``entity=<a random battle id>`` (the battle, its votes and voids);
* ``type``: ``type=trial.completed&limit=100``;
* ``arena+since``: ``arena=bench&since=<random time>&limit=100``;
* ``all``: no filter, ``limit=100``, after a random position.

``--home DIR --keep-home`` keeps the database; ``--home DIR --reuse`` queries it again without
filling it.

Every ``total`` is an exact count (see ``services/api/queries/events.py``), so queries whose
filter matches many events pay for counting them; that is measured here, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import Event
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.rebuild import rebuild
from arbiter.services.setup import prepare_database

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import free_port, start_api  # the sibling benchmarks' helpers
from ingest_rebuild import ARENA, RESULTS_DIR, machine_info, mixed_chunks, stop_service

_EVENTS = msgspec.json.Decoder(list[Event])  # type: ignore[arg-type]


def fill(database_url: str, n: int, competitors: int, seed: int) -> dict[str, int]:
    """Append the workload in batches; returns the counts by kind."""
    counts: dict[str, int] = {}
    t0 = time.perf_counter()
    done = 0
    with EventLog(database_url) as log:
        for chunk in mixed_chunks(n, competitors, seed, f"seed{seed}", counts):
            events = _EVENTS.decode(msgspec.json.encode(chunk))
            outcome = log.append(events)
            if outcome.rejected:
                raise SystemExit(f"the store rejected {len(outcome.rejected)} events")
            done += len(events)
            if done % 100_000 < len(events):
                print(f"  appended {done:,} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_queries(base: str, head: int, rounds: int, competitors: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"m{i:03d}" for i in range(competitors)]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    latencies: dict[str, list[float]] = {}
    totals: dict[str, list[int]] = {}
    sizes: dict[str, list[int]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:

        def get(label: str, params: dict[str, Any]) -> dict[str, Any]:
            t = time.perf_counter()
            r = client.get("/events", params=params)
            body: dict[str, Any] = r.json()
            elapsed = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise SystemExit(f"{label}: {r.status_code} {r.text[:300]}")
            latencies.setdefault(label, []).append(elapsed)
            totals.setdefault(label, []).append(body["total"])
            sizes.setdefault(label, []).append(len(body["events"]))
            return body

        battles = [
            row["event"]["battle_id"]
            for row in client.get(
                "/events", params={"type": "battle.completed", "limit": 1000}
            ).json()["events"]
        ]
        for _ in range(3):  # warm the pool and the caches a little, unmeasured
            client.get("/events", params={"competitor": names[0], "limit": 100})
        for _ in range(rounds):
            who = rng.choice(names)
            get("competitor", {"competitor": who, "limit": 100})
            get("competitor desc", {"competitor": who, "limit": 100, "order": "desc"})
            get("competitor deep", {"competitor": who, "limit": 100, "after": head // 2})
            first = client.get("/events", params={"competitor": who, "limit": 100}).json()
            get("competitor cursor", {"competitor": who, "limit": 100, "cursor": first["next"]})
            get(
                "competitor+type",
                {"competitor": who, "limit": 100, "type": "vote.cast,result.voided"},
            )
            get("entity", {"entity": rng.choice(battles), "limit": 100})
            get("type", {"type": "trial.completed", "limit": 100})
            since = start + timedelta(seconds=rng.randrange(max(1, head)))
            get("arena+since", {"arena": ARENA, "since": since.isoformat(), "limit": 100})
            get("all", {"limit": 100, "after": rng.randrange(head)})
    out = {}
    for label, values in latencies.items():
        out[label] = {
            "requests": len(values),
            "p50_ms": round(percentile(values, 0.50), 2),
            "p90_ms": round(percentile(values, 0.90), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
            "mean_total": round(statistics.mean(totals[label])),
            "mean_page": round(statistics.mean(sizes[label]), 1),
        }
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        f"{results['events']:,} events in the log; append {results['append_s']:.0f}s, results "
        f"rebuild (with the index) {results['rebuild_s']:.0f}s",
        "| query | requests | p50 ms | p90 ms | p99 ms | max ms | mean total | mean page |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results["queries"].items():
        lines.append(
            f"| {label} | {r['requests']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
            f"{r['max_ms']} | {r['mean_total']:,} | {r['mean_page']} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--competitors", type=int, default=100)
    p.add_argument("--rounds", type=int, default=200, help="requests per query")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--home", type=Path, help="embedded servers' home (default: a fresh temp dir)")
    p.add_argument("--keep-home", action="store_true")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="query the log and index already in --home (a run with --keep-home) again",
    )
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reuse and args.home is None:
        raise SystemExit("--reuse needs --home")
    load_at_start = os.getloadavg()
    external = os.environ.get("ARBITER_DATABASE_URL")
    home = args.home or Path(tempfile.mkdtemp(prefix="arbiter-events-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    servers = None if external else EmbeddedServers(home)
    api = None
    try:
        database_url = external or servers.start()[0]  # type: ignore[union-attr]
        prepare_database(database_url)
        counts: dict[str, int] = {}
        append_s = rebuild_s = 0.0
        if not args.reuse:
            t0 = time.perf_counter()
            counts = fill(database_url, args.events, args.competitors, args.seed)
            append_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            rebuild(database_url, PROJECTIONS["results"])
            rebuild_s = time.perf_counter() - t0
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE arbiter_results.event_index")
            conn.execute("VACUUM ANALYZE arbiter_results.event_competitors")
            conn.execute("VACUUM ANALYZE arbiter_results.event_entities")
            conn.execute("VACUUM ANALYZE arbiter_events")
            row = conn.execute("SELECT max(notification_id) FROM arbiter_events").fetchone()
            head = int(row[0]) if row else 0
        print(f"log of {head:,} events; append {append_s:.0f}s, rebuild {rebuild_s:.0f}s")
        port = free_port()
        env = dict(os.environ, ARBITER_DATABASE_URL=database_url, ARBITER_HOME=str(home))
        env.pop("ARBITER_NATS_URL", None)
        api = start_api(env, home, port)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/events", params={"limit": 1}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API did not answer; see {home / 'api.log'}")
            time.sleep(0.2)
        queries = run_queries(base, head, args.rounds, args.competitors, args.seed)
        results = {
            "events": head,
            "counts": counts,
            "append_s": append_s,
            "rebuild_s": rebuild_s,
            "queries": queries,
            "load_at_start": load_at_start,
            "machine": machine_info(database_url, "-", home, load_at_start),
        }
        print(render(results))
        if not args.no_json:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            out = RESULTS_DIR / f"events_query-{stamp}.json"
            out.write_text(json.dumps(results, indent=2, default=str))
            print(f"results in {out}")
        return 0
    finally:
        if api is not None:
            stop_service(api)
        if servers is not None:
            servers.stop()
        if args.home is None and not args.keep_home and not args.reuse:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
