"""API hot-read benchmark: ``arbiter api`` against a same-bytes Litestar route, driven by wrk.

What is measured
----------------
Embedded PostgreSQL and nats-server in a fresh home (or the servers named by
``ARBITER_DATABASE_URL`` and ``ARBITER_NATS_URL``), with ``arbiter ingest``, ``arbiter project``
and ``arbiter api`` as three subprocesses, as in production. The log is seeded with N
``battle.completed`` (default 20,000, among 100 competitors in one arena) plus M events of the
``mixed`` workload of ``ingest_rebuild.py`` (default 2,000: games, votes, voids and trials with
metrics and dimensions, so ``/stats`` and ``/summary`` have something to count).

Then, for each route of :data:`ROUTES` (the six hot reads of issue 15, the leaderboard twice:
Elo and ``system=bt``), in two phases, ``idle`` (nothing written) and ``streaming`` (a publisher
process sends R battles per second through NATS, default 1,000/s in ticks of 50 ms, and the ingest
and the projector fold them):

1. one GET of the route from ``arbiter api``: its body (the bytes the yardstick will serve);
2. ``wrk -t2 -c16 -d{D}s --latency`` against ``arbiter api``;
3. a fresh ``same_bytes_app.py`` process (a Litestar app, uvicorn run as ``arbiter api`` runs,
   whose one route answers those bytes from memory) and the same wrk command against it.

Both are measured in the same run, one right after the other, so they share the machine's load:
their ratio is the figure to compare across machines, not the requests/s alone. wrk is C, costs
far less per request than any Python client, and reports its latency distribution (p50, p75,
p90, p99, parsed here). "errors" are wrk's non-2xx-or-3xx responses (no request sends
``If-None-Match``, so every answer is a 200 when right) plus its socket errors.

``--no-cache`` starts the API with ``ARBITER_RESPONSE_CACHE=off`` (every answer computed per
request): the difference with a default run is what the response cache saves.

``--workers N`` runs ``arbiter api --workers N``; ``--replica`` starts an embedded hot standby of
the (embedded) primary and points the API's reads at it (``ARBITER_READ_DATABASE_URL``).

wrk: Debian's package (``apt-get install -y wrk``), or ``--wrk PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
    mixed_chunks,
    projection_positions,
    start_service,
    stop_service,
    wait_ready,
)

TICK_S = 0.05
SAME_BYTES_APP = Path(__file__).resolve().parent / "same_bytes_app.py"
PHASES = ("idle", "streaming")

ROUTES: tuple[tuple[str, str], ...] = (
    ("leaderboard elo", f"/leaderboard?arena={ARENA}&limit=50"),
    ("leaderboard bt", f"/leaderboard?arena={ARENA}&limit=50&system=bt"),
    ("competitor", f"/competitors/m000?arena={ARENA}"),
    ("history", f"/competitors/m000/history?arena={ARENA}&limit=100"),
    ("head-to-head", f"/head-to-head?arena={ARENA}&competitor=m000"),
    ("summary", f"/summary?arena={ARENA}"),
    ("stats", f"/stats?arena={ARENA}&group_by=persona"),
)
"""(name, path and query): one fixed URL per route, as wrk sends one URL. A hot read is one many
clients ask at once (a dashboard's board, one model's page), which is what the cache is for."""


# -- the steady publisher (its own process) -------------------------------------------------------


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


# -- wrk ------------------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def to_ms(text: str) -> float:
    """wrk's duration (``850.00us``, ``1.20ms``, ``2.01s``) in milliseconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests, requests/s, the latency distribution and the errors of a ``wrk --latency`` run.
    A line it does not find is an error (a wrk whose output changed must not read as zeros)."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output without {pattern!r}:\n{output}")
        return match

    out: dict[str, Any] = {
        "requests": int(find(r"^\s*(\d+) requests in ").group(1)),
        "requests_per_s": round(float(find(r"^Requests/sec:\s*([\d.]+)").group(1)), 1),
        "mean_ms": round(to_ms(find(r"^\s*Latency\s+(\S+)").group(1)), 3),
        "max_ms": round(to_ms(find(r"^\s*Latency\s+\S+\s+\S+\s+(\S+)").group(1)), 3),
    }
    for q in ("50", "75", "90", "99"):
        out[f"p{q}_ms"] = round(to_ms(find(rf"^\s*{q}%\s+(\S+)").group(1)), 3)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    out["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    out["socket_errors"] = sum(int(g) for g in sockets.groups()) if sockets else 0
    out["errors"] = out["non_2xx"] + out["socket_errors"]
    return out


def run_wrk(wrk: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if done.returncode != 0:
        raise ServiceFailure(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return parse_wrk(done.stdout)


# -- the same-bytes yardstick ---------------------------------------------------------------------


def start_yardstick(path: str, body: bytes, home: Path, port: int) -> Service:
    body_file = home / "yardstick-body.json"
    body_file.write_bytes(body)
    log_file = home / "yardstick.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(SAME_BYTES_APP),
                "--port",
                str(port),
                "--path",
                path.split("?", 1)[0],
                "--body",
                str(body_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service("yardstick", proc, log_file)


def fetch(url: str) -> httpx.Response:
    with httpx.Client(timeout=120) as client:
        return client.get(url)


def wait_http(url: str, services: list[Service], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while True:
            check_alive(services, f"while waiting for {url}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServiceFailure(f"{url} did not answer in {timeout:.0f}s")
            time.sleep(0.2)


# -- one phase ------------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    wrk: str
    home: Path
    api_url: str
    database_url: str
    services: list[Service]
    groups: dict[str, tuple[int | None, bool]]
    published: Any


def measure_route(ctx: Context, phase: str, name: str, path: str) -> dict[str, Any]:
    """wrk against the API, then against a fresh yardstick serving the bytes the API answered."""
    first = fetch(ctx.api_url + path)
    if first.status_code != 200:
        raise ServiceFailure(f"{path}: HTTP {first.status_code}: {first.text[:500]}")
    body = first.content
    with psycopg.connect(ctx.database_url, autocommit=True) as conn:
        pub0, proj0 = ctx.published.value, projection_positions(conn)["ratings"]
        cpu0, w0 = cpu_snapshot(ctx.groups), time.perf_counter()
        api = run_wrk(ctx.wrk, ctx.api_url + path, ctx.args)
        cpu1, w1 = cpu_snapshot(ctx.groups), time.perf_counter()
        published = ctx.published.value - pub0
        projected = projection_positions(conn)["ratings"] - proj0
    port = free_port()
    yardstick = start_yardstick(path, body, ctx.home, port)
    try:
        ref_url = f"http://127.0.0.1:{port}"
        wait_http(ref_url + path, [*ctx.services, yardstick], ctx.args.ready_timeout)
        if (echo := fetch(ref_url + path).content) != body:
            raise ServiceFailure(f"the yardstick answered {len(echo)} bytes, not {len(body)}")
        ref = run_wrk(ctx.wrk, ref_url + path, ctx.args)
    finally:
        stop_service(yardstick)
    ratio = api["requests_per_s"] / ref["requests_per_s"] if ref["requests_per_s"] else 0.0
    return {
        "phase": phase,
        "route": name,
        "path": path,
        "bytes": len(body),
        "api": api,
        "same_bytes": ref,
        "ratio": round(ratio, 3),
        "published_per_s": round(published / (w1 - w0)),
        "projected_per_s": round(projected / (w1 - w0)),
        "cpu_percent": {k: round(v, 1) for k, v in cpu_percent(cpu0, cpu1, w1 - w0).items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_phase(ctx: Context, phase: str) -> list[dict[str, Any]]:
    rows = []
    for name, path in ROUTES:
        if ctx.args.routes and name not in ctx.args.routes:
            continue
        print(f"{phase}: {name}: {path} ...", flush=True)
        row = measure_route(ctx, phase, name, path)
        print(f"  {render_row(row)}", flush=True)
        rows.append(row)
    return rows


def render_row(r: dict[str, Any]) -> str:
    a, y = r["api"], r["same_bytes"]
    return (
        f"{r['phase']:<9} {r['route']:<15} {r['bytes']:>7} {a['requests_per_s']:>8.0f} "
        f"{y['requests_per_s']:>8.0f} {r['ratio']:>6.2f} {a['p50_ms']:>7.2f} {a['p99_ms']:>7.2f} "
        f"{y['p99_ms']:>7.2f} {a['errors']:>6} {y['errors']:>6} {r['projected_per_s']:>6}"
    )


HEADER = (
    f"{'phase':<9} {'route':<15} {'bytes':>7} {'api r/s':>8} {'ref r/s':>8} {'ratio':>6} "
    f"{'api p50':>7} {'api p99':>7} {'ref p99':>7} {'api er':>6} {'ref er':>6} {'proj/s':>6}"
)


def render(results: dict[str, Any]) -> str:
    m, c = results["machine"], results["config"]
    lines = [
        f"machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
        f"(usable {m['usable_cores']}, cgroup limit {m['cgroup_cpu_limit']}), {m['ram_gib']} GiB, "
        f"{m['python']}, PostgreSQL {m['postgresql']['server_version']}, "
        f"nats-server {m['nats_server']}, {results['wrk']}",
        f"load average at start: {m['load_average_at_start']}, at the end: "
        f"{results['load_average_at_end']}",
        f"seeded {c['battles']:,} battles + {c['mixed']:,} mixed events, {c['competitors']} "
        f"competitors; streaming phase: {c['rate']:,} battles/s; response cache "
        f"{'OFF' if c['no_cache'] else 'on'}; wrk -t{c['threads']} -c{c['connections']} "
        f"-d{c['duration']}s; API workers {c['workers']}, reads from "
        f"{'a replica' if c['replica'] else 'the primary'}",
        "ref: the same bytes from a one-route Litestar app (same uvicorn settings), measured "
        "right after; ratio = api r/s / ref r/s; latencies in ms; er: non-2xx + socket errors",
        "",
        HEADER,
        *(render_row(r) for r in results["rows"]),
    ]
    return "\n".join(lines)


# -- setup ----------------------------------------------------------------------------------------


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
    """Publishes the seed (battles, then the mixed events) and waits until both projections
    have folded it; returns nats-server's version."""
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
        counts: dict[str, int] = {}
        mixed = mixed_chunks(args.mixed, args.competitors, args.seed, f"{run_id}-mix", counts)
        for chunk in mixed:
            await pub.publish(chunk)
        target = base + args.battles + args.mixed
        with psycopg.connect(database_url, autocommit=True) as conn:
            while min(projection_positions(conn).values()) < target:
                check_alive(services, "while seeding")
                if time.perf_counter() - t0 > 900:
                    raise ServiceFailure("seeding did not finish in 900 s")
                await asyncio.sleep(0.1)
        print(
            f"seeded {args.battles:,} battles and {args.mixed:,} mixed events "
            f"({counts.get('trial.completed', 0):,} trials) in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    return nats_version


async def _ingest_ready(
    nats_url: str, database_url: str, services: list[Service], timeout: float
) -> None:
    async with Publisher(nats_url) as pub:
        await wait_ready(pub, database_url, 0, services, timeout, projector=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--battles", type=int, default=20_000, help="battles seeded before the load")
    p.add_argument("--mixed", type=int, default=2_000, help="mixed events seeded (trials...)")
    p.add_argument("--competitors", type=int, default=100, help="competitors in the arena")
    p.add_argument("--threads", type=int, default=2, help="wrk -t")
    p.add_argument("--connections", type=int, default=16, help="wrk -c")
    p.add_argument("--duration", type=int, default=20, help="wrk -d, seconds per measurement")
    p.add_argument("--rate", type=int, default=1_000, help="battles/s while streaming (0: skip)")
    p.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    p.add_argument("--routes", nargs="+", choices=[n for n, _ in ROUTES], help="default: all")
    p.add_argument("--no-cache", action="store_true", help="ARBITER_RESPONSE_CACHE=off")
    p.add_argument("--wrk", default=shutil.which("wrk"), help="wrk binary (apt-get install wrk)")
    p.add_argument("--seed", type=int, default=1, help="workload RNG seed")
    p.add_argument("--home", type=Path, help="embedded servers' home (default: a fresh temp dir)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp home (and its logs)")
    p.add_argument("--ready-timeout", type=float, default=60.0, help="service start timeout (s)")
    p.add_argument("--no-json", action="store_true", help="do not write the JSON results file")
    p.add_argument("--workers", type=int, default=1, help="API processes (arbiter api --workers)")
    p.add_argument("--replica", action="store_true", help="API reads from an embedded standby")
    args = p.parse_args(argv)
    if args.battles < 1 or args.mixed < 0 or args.competitors < 51 or args.duration < 1:
        p.error("--battles >= 1, --mixed >= 0, --competitors >= 51 (a page of 50), --duration >= 1")
    if not args.wrk:
        p.error("wrk not found: apt-get install -y wrk (Debian/Ubuntu), or --wrk PATH")
    if args.rate <= 0 and "streaming" in args.phases:
        args.phases.remove("streaming")
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
    ctx_mp = multiprocessing.get_context("spawn")
    go, stop, published = ctx_mp.Event(), ctx_mp.Event(), ctx_mp.Value("q", 0)
    publisher: Any = None
    keep_home = args.keep_home
    wrk_version = subprocess.run([args.wrk, "-v"], capture_output=True, text=True)
    wrk = (wrk_version.stdout + wrk_version.stderr).strip().splitlines()[0]
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
        api_env = {**env, "ARBITER_RESPONSE_CACHE": "off" if args.no_cache else "on"}
        if args.replica:
            standby = EmbeddedStandby(home / "standby", database_url)
            api_env["ARBITER_READ_DATABASE_URL"] = standby.start()
        services.append(start_api(api_env, home, port, args.workers))
        api_url = f"http://127.0.0.1:{port}"
        wait_http(api_url + "/health", services, args.ready_timeout)

        if "streaming" in args.phases:
            publisher = ctx_mp.Process(
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
            "nats-server": (servers.nats.pid if servers else None, False),
            "postgres": (servers.postgres.pid if servers else None, True),
            "standby": (standby.pid if standby else None, True),
        }
        ctx = Context(args, args.wrk, home, api_url, database_url, services, groups, published)
        rows: list[dict[str, Any]] = []
        for phase in args.phases:
            if phase == "streaming":
                go.set()
                time.sleep(2.0)  # the stream reaches its rate before the first measurement
            rows += run_phase(ctx, phase)
        stop.set()
        check_alive(services, "during the load")

        results = {
            "benchmark": "api_load",
            "started_at": started_at.isoformat(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": machine_info(database_url, nats_version, home, load_at_start),
            "wrk": wrk,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "rows": rows,
        }
        print()
        print(render(results))
        if not args.no_json:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            tag = "-nocache" if args.no_cache else ""
            out = RESULTS_DIR / f"api_load{tag}-{started_at.strftime('%Y%m%dT%H%M%S')}.json"
            out.write_text(json.dumps(results, indent=2))
            print(f"\nresults: {out}")
        return 1 if any(r["api"]["errors"] or r["same_bytes"]["errors"] for r in rows) else 0
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
        if standby is not None:
            standby.stop()
        if servers is not None:
            servers.stop()
        if temp_home and not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        elif keep_home:
            print(f"home kept: {home}")


if __name__ == "__main__":
    sys.exit(main())
