"""Server render time of the experiment, stats, event log and result pages (issue 16 point 2:
under 200 ms for an arena of 100 competitors and 100,000 results; the arena pages are
``web_pages.py``'s).

What is measured
----------------
Embedded PostgreSQL in a fresh home (or ``--home``, reused when it already holds a log). The log
gets ``views.py``'s data (``--battles`` battles among ``--competitors`` in arena ``bench``, 1 %
voided, and 4-player games in arena ``snake``) and an experiment ``bench-exp`` of every
competitor on ``--prompts`` prompts (100 x 50 = 5,000 trials with latency, cost, token metrics
and two dimensions), appended through the event store and folded by both projectors. Then every
page goes through the whole app in-process (Litestar's test client: routing, guards, queries,
Jinja rendering; no socket), one request at a time, timed by ``page_timing.py``: its very first
request, the median of ``--cold`` (5) first views with every cache emptied before each (the
criterion: the experiment and stats pages are otherwise kept in the response cache until the
read models move) and the median and p90 of ``--repeat`` (20) cached repeats, in milliseconds,
with the page's size.

A measurement, not a test: nothing is asserted. Run from the repository root:

    .venv/bin/python benchmarks/web_detail_pages.py [--battles N] [--prompts N] [--cold N] \\
        [--repeat N]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from datetime import timedelta
from pathlib import Path

import psycopg
from arbiter.domain.events import Event, TrialCompleted
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient
from page_timing import time_page  # benchmarks/page_timing.py: cold, first and warm views
from views import T0, load, run  # benchmarks/views.py: the same servers and arena log


def trials(competitors: int, prompts: int) -> list[Event]:
    rng = random.Random(11)
    out: list[Event] = []
    for p in range(prompts):
        for c in range(competitors):
            failed = rng.random() < 0.03
            out.append(TrialCompleted(
                event_id=f"t{p}-{c}", occurred_at=T0 + timedelta(seconds=p), arena="bench-tts",
                experiment_id="bench-exp", trial_id=f"t{p}-{c}", competitor=f"m{c:03d}",
                prompt_index=p, status="failed" if failed else "completed",
                metrics={} if failed else {
                    "ttfb_ms": rng.uniform(150, 600), "generation_time_ms": rng.uniform(800, 2500),
                    "duration_s": rng.uniform(2, 6), "silence_ratio": rng.uniform(0.05, 0.3),
                    "cost_usd": rng.uniform(0.001, 0.01), "latency_ms": rng.uniform(300, 900),
                },
                dimensions={"persona": rng.choice(["agent", "caller", "narrator"]),
                            "style": rng.choice(["calm", "excited"])},
            ))  # fmt: skip
    return out


PAGES = (
    "/ui/experiments/bench-exp",
    "/ui/stats",
    "/ui/stats?group_by=persona",
    "/ui/stats?experiment_id=bench-exp&order=avg_score",
    "/ui/log",
    "/ui/log?limit=1000",
    "/ui/log?type=trial.completed",
    "/ui/log/b500",
    "/ui/battles/b500",
    "/ui/games/g100",
    # the JSON routes behind the heaviest pages, for comparison (the query's share)
    "/experiments/bench-exp/results",
    "/stats",
    "/stats?group_by=persona",
)


async def measure(database_url: str, repeat: int, cold: int) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        for path in PAGES:
            await time_page(client, path, cold, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--games", type=int, default=2_000)
    parser.add_argument("--competitors", type=int, default=100)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20, help="warm requests per page")
    parser.add_argument("--cold", type=int, default=5, help="cold requests per page")
    parser.add_argument("--home", type=Path, help="keep the data here, to measure again later")
    args = parser.parse_args()
    os.environ["ARBITER_AUTH"] = "off"

    async def with_trials(database_url: str, repeat: int) -> None:
        with psycopg.connect(database_url) as conn:
            found = conn.execute(
                "SELECT count(*) FROM arbiter_event_ids WHERE event_id = 't0-0'"
            ).fetchone()
        if not (found and found[0]):
            load(database_url, trials(args.competitors, args.prompts))
        await measure(database_url, repeat, args.cold)

    run(args, with_trials)  # views.py: servers, the arena's log, then with_trials


if __name__ == "__main__":
    main()
