"""API read load benchmark: leaderboard and history latency while events stream in.

What is measured
----------------
Embedded PostgreSQL and nats-server in a fresh home (or the servers named by
``ARBITER_DATABASE_URL`` and ``ARBITER_NATS_URL``), with ``arbiter ingest``, ``arbiter project``
and ``arbiter api`` as three subprocesses, as in production. The log is seeded with N
``battle.completed`` (default 20,000, among 100 competitors in one arena; half of them also in one
of four categories). Then, while a publisher process sends R more battles per second through NATS
(default 1,000/s, in ticks of 50 ms) and the ingest and the projector fold them, three phases run
one after the other, each for D seconds (default 20):

* ``leaderboard elo``: C concurrent clients (default 16) read ``GET /leaderboard?arena=bench&
  limit=50`` in a closed loop (a client sends its next request when the last one is answered);
* ``leaderboard bt``: the same with ``system=bt`` (a Bradley-Terry fit plus 100 bootstrap rounds
  per request) at lower concurrency (``--bt-clients``, default 2);
* ``history``: ``GET /competitors/{id}/history?arena=bench&limit=100`` for a random competitor,
  ``--history-clients`` (default 4).

Reported per phase: requests, throughput (requests/s), latency p50/p90/p99/max (ms, from sending
the request to the parsed JSON body), errors (anything but a 200 with a JSON body, or an
exception), and staleness: the log head at request time minus the response's ``position`` (the
ratings read model's position), in events. The head "at request time" is the first sample, taken
after the request was sent, of a thread that polls ``max(notification_id)`` every 20 ms, so it
errs towards more staleness (by up to 20 ms of events). Also the events published and projected
during the phase, and the CPU of each process group (percent of one core).

``--workers N`` runs ``arbiter api --workers N``; ``--replica`` starts an embedded hot standby of
the (embedded) primary and points the API's reads at it (``ARBITER_READ_DATABASE_URL``), so the
staleness then includes the replica's replay delay.

The clients are Python (httpx, asyncio, one connection each) in this process, on the same machine
as everything else: on a small machine their CPU competes with the API's, so the figures are a
lower bound of what the API serves to remote clients. ``wrk`` would cost less per request; it is
not used because it is rarely installed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from arbiter.adapters.bus import Publisher
from arbiter.adapters.embedded import EmbeddedServers, EmbeddedStandby
from arbiter.services.setup import prepare_database

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_rebuild import (  # the sibling benchmark's helpers
    ARENA,
    CHUNK,
    RESULTS_DIR,
    Service,
    ServiceFailure,
    battle_chunks,
    check_alive,
    log_head,
    machine_info,
    projection_positions,
    start_service,
    stop_service,
    wait_ready,
)

HEAD_POLL_S = 0.02
TICK_S = 0.05


# -- the steady publisher (its own process, so it does not share the clients' GIL) ----------------


def publish_steady(
    nats_url: str,
    rate: int,
    competitors: int,
    seed: int,
    run_id: str,
    go: Any,
    stop: Any,
    published: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    asyncio.run(_publish_steady(nats_url, rate, competitors, seed, run_id, go, stop, published))


async def _publish_steady(
    nats_url: str,
    rate: int,
    competitors: int,
    seed: int,
    run_id: str,
    go: Any,
    stop: Any,
    published: Any,
) -> None:
    per_tick = max(1, round(rate * TICK_S))
    chunks = battle_chunks(10**9, competitors, seed, run_id, chunk=per_tick)
    async with Publisher(nats_url) as pub:
        while not go.is_set() and not stop.is_set():
            await asyncio.sleep(0.01)
        next_tick = time.monotonic()
        while not stop.is_set():
            events = next(chunks)
            await pub.publish(events)
            with published.get_lock():
                published.value += len(events)
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


# -- log head sampler ---------------------------------------------------------------------------


class HeadSampler(threading.Thread):
    """Polls the log head every 20 ms: ``head_after(t)`` is the first sample at or after ``t``."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True, name="head-sampler")
        self.database_url = database_url
        self.times: list[float] = []
        self.heads: list[int] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._halt.is_set():
                head = log_head(conn)
                self.times.append(time.perf_counter())
                self.heads.append(head)
                time.sleep(HEAD_POLL_S)

    def head_after(self, t: float) -> int | None:
        i = bisect.bisect_left(self.times, t)
        return self.heads[i] if i < len(self.heads) else None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- CPU by process group -----------------------------------------------------------------------


def cpu_seconds(pid: int | None, tree: bool = False) -> float:
    if pid is None:
        return 0.0
    total = 0.0
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        procs = [proc, *(proc.children(recursive=True) if tree else [])]
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def cpu_snapshot(groups: dict[str, tuple[int | None, bool]]) -> dict[str, float]:
    out = {name: cpu_seconds(pid, tree) for name, (pid, tree) in groups.items()}
    busy = psutil.cpu_times()
    out["machine busy"] = sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)
    return out


def cpu_percent(cpu0: dict[str, float], cpu1: dict[str, float], wall: float) -> dict[str, float]:
    """Percent of one core per group, plus "other processes": the machine's busy time that none
    of the groups used (other work on the host: a disturbed run shows here)."""
    out = {k: 100.0 * (cpu1[k] - cpu0[k]) / wall for k in cpu0}
    ours = sum(v for k, v in out.items() if k != "machine busy")
    out["other processes"] = max(0.0, out["machine busy"] - ours)
    return out


# -- clients ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    staleness: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    published: int = 0
    projected: int = 0
    cpu: dict[str, float] = field(default_factory=dict)


async def client_loop(
    base_url: str,
    path: Any,
    params: dict[str, Any],
    until: float,
    phase: Phase,
    sent: list[tuple[float, int]],
    rng: random.Random,
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                response = await client.get(path(rng), params=params)
                body = response.json() if response.status_code == 200 else None
            except Exception as exc:  # counted, not fatal: the run reports it
                key = type(exc).__name__
                phase.errors[key] = phase.errors.get(key, 0) + 1
                continue
            latency = (time.perf_counter() - t0) * 1000.0
            if body is None or "position" not in body:
                key = f"HTTP {response.status_code}"
                phase.errors[key] = phase.errors.get(key, 0) + 1
                continue
            phase.latencies_ms.append(latency)
            sent.append((t0, int(body["position"])))


async def run_phase(
    base_url: str,
    phase: Phase,
    path: Any,
    params: dict[str, Any],
    seconds: float,
    heads: HeadSampler,
) -> None:
    sent: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(
        *(
            client_loop(base_url, path, params, until, phase, sent, random.Random(i))
            for i in range(phase.clients)
        )
    )
    phase.seconds = time.perf_counter() - t0
    await asyncio.sleep(2 * HEAD_POLL_S)  # a head sample after the last request
    for t_sent, position in sent:
        head = heads.head_after(t_sent)
        if head is not None:
            phase.staleness.append(max(0, head - position))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(phase: Phase) -> dict[str, Any]:
    lat = phase.latencies_ms
    return {
        "phase": phase.name,
        "clients": phase.clients,
        "seconds": round(phase.seconds, 2),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / phase.seconds, 1) if phase.seconds else 0.0,
        "p50_ms": round(percentile(lat, 0.5), 2),
        "p90_ms": round(percentile(lat, 0.9), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "errors": sum(phase.errors.values()),
        "error_kinds": phase.errors,
        "staleness_p50": round(percentile([float(s) for s in phase.staleness], 0.5)),
        "staleness_max": max(phase.staleness) if phase.staleness else None,
        "published_per_s": round(phase.published / phase.seconds) if phase.seconds else 0,
        "projected_per_s": round(phase.projected / phase.seconds) if phase.seconds else 0,
        "cpu_percent": {k: round(v, 1) for k, v in phase.cpu.items()},
    }


# -- main ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(env: dict[str, str], home: Path, port: int, workers: int = 1) -> Service:
    log_file = home / "api.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "arbiter.services.cli",
                "api",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service("api", proc, log_file)


async def seed_and_wait(
    args: argparse.Namespace,
    database_url: str,
    nats_url: str,
    services: list[Service],
    run_id: str,
) -> str:
    async with Publisher(nats_url) as pub:
        assert pub.nc is not None
        v = pub.nc.connected_server_version
        nats_version = f"{v.major}.{v.minor}.{v.patch}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            base = log_head(conn)
        await wait_ready(pub, database_url, base, services, args.ready_timeout)
        t0 = time.perf_counter()
        for chunk in battle_chunks(args.battles, args.competitors, args.seed, run_id, CHUNK):
            await pub.publish(chunk)
        target = base + args.battles
        with psycopg.connect(database_url, autocommit=True) as conn:
            while min(projection_positions(conn).values()) < target:
                check_alive(services, "while seeding")
                if time.perf_counter() - t0 > 600:
                    raise ServiceFailure("seeding did not finish in 600 s")
                await asyncio.sleep(0.1)
        print(f"seeded {args.battles:,} battles in {time.perf_counter() - t0:.1f}s", flush=True)
    return nats_version


async def wait_api(base_url: str, services: list[Service], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:
            check_alive(services, "while the API started")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServiceFailure(f"the API did not answer in {timeout:.0f}s")
            await asyncio.sleep(0.2)


async def load_phases(
    args: argparse.Namespace,
    base_url: str,
    database_url: str,
    heads: HeadSampler,
    groups: dict[str, tuple[int | None, bool]],
    published: Any,
) -> list[Phase]:
    competitors = [f"m{i:03d}" for i in range(args.competitors)]
    board = {"arena": ARENA, "limit": 50}
    plan = [
        (Phase("leaderboard elo", args.clients), lambda _r: "/leaderboard", board),
        (
            Phase("leaderboard bt", args.bt_clients),
            lambda _r: "/leaderboard",
            {**board, "system": "bt"},
        ),
        (
            Phase("history", args.history_clients),
            lambda r: f"/competitors/{r.choice(competitors)}/history",
            {"arena": ARENA, "limit": 100},
        ),
    ]
    phases = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        for phase, path, params in plan:
            if phase.clients < 1:
                continue
            print(f"{phase.name}: {phase.clients} clients for {args.duration:.0f}s ...", flush=True)
            pub0, proj0 = published.value, projection_positions(conn)["ratings"]
            cpu0, w0 = cpu_snapshot(groups), time.perf_counter()
            await run_phase(base_url, phase, path, params, args.duration, heads)
            cpu1, w1 = cpu_snapshot(groups), time.perf_counter()
            phase.published = published.value - pub0
            phase.projected = projection_positions(conn)["ratings"] - proj0
            phase.cpu = cpu_percent(cpu0, cpu1, w1 - w0)
            phases.append(phase)
    return phases


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
        f"(usable {m['usable_cores']}, cgroup limit {m['cgroup_cpu_limit']}), {m['ram_gib']} GiB, "
        f"{m['python']}, PostgreSQL {m['postgresql']['server_version']}, "
        f"nats-server {m['nats_server']}",
        f"load average at start: {m['load_average_at_start']}; API workers "
        f"{results['config']['workers']}, reads from "
        f"{'a replica' if results['config']['replica'] else 'the primary'}",
        f"seeded {results['config']['battles']:,} battles, {results['config']['competitors']} "
        f"competitors; streaming {results['config']['rate']:,} battles/s during the phases",
        "NOTE: the clients are Python httpx in this process, on the same cores as the API, the "
        "ingest, the projector and the databases: their CPU competes with the server's.",
        "",
        f"{'phase':<16} {'clients':>7} {'req':>6} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'stale p50':>9} {'stale max':>9} "
        f"{'pub/s':>6} {'proj/s':>6}",
    ]
    for s in results["phases"]:
        lines.append(
            f"{s['phase']:<16} {s['clients']:>7} {s['requests']:>6} {s['requests_per_s']:>7.1f} "
            f"{s['p50_ms']:>7.1f} {s['p90_ms']:>7.1f} {s['p99_ms']:>7.1f} {s['max_ms'] or 0:>7.1f} "
            f"{s['errors']:>6} {s['staleness_p50']:>9} {s['staleness_max'] or 0:>9} "
            f"{s['published_per_s']:>6} {s['projected_per_s']:>6}"
        )
    lines.append("")
    lines.append("CPU, % of one core, per phase:")
    for s in results["phases"]:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_percent"].items())
        lines.append(f"  {s['phase']}: {cpu}")
    lines.append("staleness: log head at request time minus the response's position, in events")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--battles", type=int, default=20_000, help="battles seeded before the load")
    p.add_argument("--competitors", type=int, default=100, help="competitors in the arena")
    p.add_argument("--clients", type=int, default=16, help="concurrent /leaderboard clients")
    p.add_argument("--bt-clients", type=int, default=2, help="clients for system=bt (0: skip)")
    p.add_argument("--history-clients", type=int, default=4, help="clients for history (0: skip)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    p.add_argument("--rate", type=int, default=1_000, help="battles/s streamed in (0: none)")
    p.add_argument("--seed", type=int, default=1, help="workload RNG seed")
    p.add_argument("--home", type=Path, help="embedded servers' home (default: a fresh temp dir)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp home (and its logs)")
    p.add_argument("--ready-timeout", type=float, default=60.0, help="service start timeout (s)")
    p.add_argument("--no-json", action="store_true", help="do not write the JSON results file")
    p.add_argument("--workers", type=int, default=1, help="API processes (arbiter api --workers)")
    p.add_argument("--replica", action="store_true", help="API reads from an embedded standby")
    args = p.parse_args(argv)
    if args.battles < 1 or args.competitors < 51 or args.clients < 1 or args.duration <= 0:
        p.error("--battles, --clients >= 1, --competitors >= 51 (a page of 50), --duration > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = datetime.now(UTC)
    load_at_start = os.getloadavg()
    external_db = os.environ.get("ARBITER_DATABASE_URL")
    external_nats = os.environ.get("ARBITER_NATS_URL")
    external = bool(external_db and external_nats)
    run_id = started_at.strftime("%Y%m%dT%H%M%S%f")
    temp_home = args.home is None
    home = Path(tempfile.mkdtemp(prefix="arbiter-load-")) if temp_home else args.home.absolute()
    home.mkdir(parents=True, exist_ok=True)
    servers: EmbeddedServers | None = None
    standby: EmbeddedStandby | None = None
    services: list[Service] = []
    heads: HeadSampler | None = None
    ctx = multiprocessing.get_context("spawn")
    go, stop, published = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    publisher: Any = None
    keep_home = args.keep_home
    try:
        if external:
            assert external_db and external_nats
            database_url, nats_url = external_db, external_nats
        else:
            servers = EmbeddedServers(home)
            database_url, nats_url = servers.start()
        print(f"servers: {nats_url}; logs in {home}", flush=True)
        prepare_database(database_url)
        env = dict(os.environ)
        env.update(
            ARBITER_DATABASE_URL=database_url, ARBITER_NATS_URL=nats_url, ARBITER_HOME=str(home)
        )
        services.append(start_service("ingest", "ingest", env, home))
        # The projector after the ingest is ready (see ingest_rebuild.py: both create the event
        # store's table); wait_ready without the projector first.
        asyncio.run(_ingest_ready(nats_url, database_url, services, args.ready_timeout))
        services.append(start_service("projector", "project", env, home))
        nats_version = asyncio.run(seed_and_wait(args, database_url, nats_url, services, run_id))
        port = free_port()
        if args.replica:
            standby = EmbeddedStandby(home / "standby", database_url)
            env["ARBITER_READ_DATABASE_URL"] = standby.start()
        services.append(start_api(env, home, port, args.workers))
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_api(base_url, services, args.ready_timeout))

        heads = HeadSampler(database_url)
        heads.start()
        if args.rate > 0:
            publisher = ctx.Process(
                target=publish_steady,
                args=(
                    nats_url,
                    args.rate,
                    args.competitors,
                    args.seed + 1,
                    f"{run_id}-live",
                    go,
                    stop,
                    published,
                ),
                daemon=True,
            )
            publisher.start()
        groups: dict[str, tuple[int | None, bool]] = {
            "api": (services[2].proc.pid, args.workers > 1),
            "ingest": (services[0].proc.pid, False),
            "projector": (services[1].proc.pid, False),
            "publisher": (publisher.pid if publisher else None, False),
            "clients (this process)": (os.getpid(), False),
            "nats-server": (servers.nats.pid if servers else None, False),
            "postgres": (servers.postgres.pid if servers else None, True),
            "standby": (standby.pid if standby else None, True),
        }
        go.set()
        time.sleep(2.0)  # the stream reaches its rate before the first phase
        phases = asyncio.run(load_phases(args, base_url, database_url, heads, groups, published))
        stop.set()
        check_alive(services, "during the load")

        results = {
            "benchmark": "api_load",
            "started_at": started_at.isoformat(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": machine_info(database_url, nats_version, home, load_at_start),
            "phases": [summary(p) for p in phases],
        }
        print()
        print(render(results))
        if not args.no_json:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = RESULTS_DIR / f"api_load-{started_at.strftime('%Y%m%dT%H%M%S')}.json"
            out.write_text(json.dumps(results, indent=2))
            print(f"\nresults: {out}")
        errors = sum(s["errors"] for s in results["phases"])
        return 1 if errors else 0
    except ServiceFailure as exc:
        keep_home = True
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        # Every step on its own: one failing must not leave the services or servers running.
        stop.set()
        for service in reversed(services):
            with contextlib.suppress(Exception):
                stop_service(service)
        if publisher is not None:
            with contextlib.suppress(Exception):
                publisher.join(10)
                if publisher.is_alive():
                    publisher.kill()
        if heads is not None:
            with contextlib.suppress(Exception):
                heads.stop()
        if standby is not None:
            standby.stop()
        if servers is not None:
            servers.stop()
        if temp_home and not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        elif keep_home:
            print(f"home kept: {home}")


async def _ingest_ready(
    nats_url: str, database_url: str, services: list[Service], timeout: float
) -> None:
    async with Publisher(nats_url) as pub:
        await wait_ready(pub, database_url, 0, services, timeout, projector=False)


if __name__ == "__main__":
    sys.exit(main())
