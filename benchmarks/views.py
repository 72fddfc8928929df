"""Read cost of the views of issue 13 point 8: ``/leaderboard/history`` and the game score
totals (leaderboard rows of a game pool, ``/competitors/{id}`` with its recent games).

What is measured
----------------
Embedded PostgreSQL in a fresh home (or the one named by ``ARBITER_DATABASE_URL``). The log gets
``--battles`` battles (default 100,000) among ``--competitors`` (100) in arena ``bench``, their
producer times spread evenly over ``--days`` (100) days, and ``--games`` 4-player games (20,000)
with scores among 20 competitors in arena ``snake``, with 1% of each voided. Everything is
appended through the event store (its decisions included) and folded by the two projectors, as
in production. Then each read runs ``--repeat`` times (30) through the API's own query
functions on its connection pool, one at a time, after one warm-up call, and the median, p90 and
max are printed (milliseconds, from the call to the assembled body; no HTTP). Also the server
time of the history's SQL (``EXPLAIN ANALYZE``), which excludes the transfer of its rows.

Reads: ``/leaderboard/history`` of ``bench`` with the top 20 and the top 100 competitors (every
day of the log: ``since`` its first day), and the last 30 days of the top 100;
``/leaderboard?arena=snake`` (Elo, 20 rows, the totals included) and the same without the
totals' two queries, for their cost alone; ``/competitors/{id}`` of a snake player with its 10
latest games (it is in about 4,000).

A measurement, not a test: nothing is asserted. Run from the repository root:

    .venv/bin/python benchmarks/views.py [--battles N] [--games N] [--days N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted, Event, GameCompleted, Participant, ResultVoided
from arbiter.projections import PROJECTIONS
from arbiter.services.api.privacy import EVERYONE
from arbiter.services.api.queries import game_scores, leaderboard_history
from arbiter.services.api.queries import leaderboard as boards
from arbiter.services.api.store import ReadStore
from arbiter.services.processes.projector import Projector
from arbiter.services.setup import prepare_database

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 5_000


def log_events(battles: int, games: int, competitors: int, days: int) -> list[Event]:
    rng = random.Random(7)
    span = timedelta(days=days).total_seconds()
    strength = [rng.gauss(0, 200) for _ in range(competitors)]
    out: list[Event] = []
    for i in range(battles):
        a, b = rng.sample(range(competitors), 2)
        p = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
        out.append(BattleCompleted(
            event_id=f"b{i}", occurred_at=T0 + timedelta(seconds=span * i / battles),
            arena="bench", battle_id=f"b{i}", a=f"m{a:03d}", b=f"m{b:03d}",
            outcome="a" if rng.random() < p else "b",
        ))  # fmt: skip
    for i in range(games):
        players = rng.sample(range(20), 4)
        out.append(GameCompleted(
            event_id=f"g{i}", occurred_at=T0 + timedelta(seconds=span * i / max(games, 1)),
            arena="snake", game_id=f"g{i}",
            participants=[Participant(competitor=f"s{p:02d}", rank=r + 1,
                                      score=float(rng.randint(0, 40)))
                          for r, p in enumerate(players)],
        ))  # fmt: skip
    voids = [e.event_id for e in out if rng.random() < 0.01]
    out += [
        ResultVoided(event_id=f"v{i}", occurred_at=T0 + timedelta(days=days), target_event_id=t)
        for i, t in enumerate(voids)
    ]
    return out


def load(database_url: str, events: list[Event]) -> None:
    started = time.perf_counter()
    with EventLog(database_url) as log:
        for i in range(0, len(events), CHUNK):
            outcome = log.append(events[i : i + CHUNK])
            assert not outcome.rejected, outcome.rejected[:3]
    print(f"appended {len(events):,} events in {time.perf_counter() - started:.1f} s", flush=True)
    for name in ("ratings", "results"):
        started = time.perf_counter()
        projector = Projector(database_url, PROJECTIONS[name])
        try:
            projector.catch_up()
        finally:
            projector.close()
        print(f"folded {name} in {time.perf_counter() - started:.1f} s", flush=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


async def timed(name: str, repeat: int, call: Callable[[], Awaitable[Any]]) -> None:
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(
        f"{name:58s} median {statistics.median(times):7.1f} ms  p90 {p90:7.1f}  "
        f"max {times[-1]:7.1f}",
        flush=True,
    )


def explain_history(database_url: str, limit: int) -> None:
    with psycopg.connect(database_url) as conn:
        top = [r[0] for r in conn.execute(
            "SELECT competitor FROM arbiter_ratings.ratings WHERE arena = 'bench' "
            "AND category = '' ORDER BY rating DESC, competitor LIMIT %s", (limit,)
        ).fetchall()]  # fmt: skip
        days = {"since": T0.date() - timedelta(days=300), "until": T0.date() + timedelta(days=365)}
        params = {"arena": "bench", "category": "", "competitors": top, **days}
        query = leaderboard_history._POINTS.as_string(conn)
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
    total = next(r[0] for r in plan if r[0].startswith("Execution Time"))
    print(f"  history SQL, top {limit}, server side: {total}", flush=True)


async def measure(database_url: str, repeat: int) -> None:
    reads = ReadStore(database_url)
    await reads.open()
    try:

        async def history(limit: int, since: Any = T0.date(), until: Any = None) -> Any:
            return await leaderboard_history.board_history(
                reads, "bench", "", limit, 0, since=since, until=until
            )

        body = await history(100)
        points = sum(len(s.days) for s in body.series)
        print(f"history window {body.since}..{body.until}: {points:,} points for 100 competitors")
        await timed("/leaderboard/history?arena=bench (top 20, every day)", repeat,
                    lambda: history(20))  # fmt: skip
        await timed("/leaderboard/history?arena=bench&limit=100 (every day)", repeat,
                    lambda: history(100))  # fmt: skip
        last = max(p.day for s in body.series for p in s.days)
        await timed("/leaderboard/history?arena=bench&limit=100 (last 30 days)", repeat,
                    lambda: history(100, last - timedelta(days=29), last))  # fmt: skip
        explain_history(database_url, 20)
        explain_history(database_url, 100)

        def board() -> Awaitable[Any]:
            return boards.leaderboard(reads, "snake", "", 20, 0, viewer=EVERYONE)

        await timed("/leaderboard?arena=snake (with game totals)", repeat, board)
        real = game_scores.board_totals

        async def no_totals(*_: Any) -> None:
            return None

        boards.board_totals = no_totals  # type: ignore[assignment]
        try:
            await timed("/leaderboard?arena=snake (totals' queries left out)", repeat, board)
        finally:
            boards.board_totals = real  # type: ignore[assignment]
        found = await reads.competitor("s00", "snake")
        assert found is not None
        await timed("/competitors/s00 totals + 10 recent games (of ~4,000)", repeat,
                    lambda: game_scores.with_games(reads, found, 10))  # fmt: skip
    finally:
        await reads.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--games", type=int, default=20_000)
    parser.add_argument("--competitors", type=int, default=100)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--home",
        type=Path,
        help="keep the embedded servers' data here; a later run with the same home measures "
        "again without loading the log anew",
    )
    run(parser.parse_args(), measure)


def run(args: argparse.Namespace, measure: Callable[[str, int], Awaitable[None]]) -> None:
    """Start the servers (or use ``ARBITER_DATABASE_URL``), load the log unless ``args.home``
    holds one already, and ``measure(database_url, args.repeat)``; shared with web_pages.py."""
    print(f"{platform.platform()}; python {platform.python_version()}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()}", flush=True)  # fmt: skip
    home = args.home or Path(tempfile.mkdtemp(prefix="arbiter-views-"))
    home.mkdir(parents=True, exist_ok=True)
    servers = None
    try:
        database_url = os.environ.get("ARBITER_DATABASE_URL")
        if not database_url:
            servers = EmbeddedServers(home)
            database_url, _ = servers.start()
        prepare_database(database_url)
        with psycopg.connect(database_url) as conn:
            loaded = conn.execute("SELECT count(*) FROM arbiter_events").fetchone()
        if loaded and loaded[0]:
            print(f"measuring the {loaded[0]:,} events already in {home}", flush=True)
        else:
            load(database_url, log_events(args.battles, args.games, args.competitors, args.days))
        asyncio.run(measure(database_url, args.repeat))
    finally:
        if servers is not None:
            servers.stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
