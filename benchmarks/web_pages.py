"""Server render time of the web pages (issue 16 point 2: each under 200 ms for an arena of 100
competitors and 100,000 results).

What is measured
----------------
The log of ``views.py`` (``--battles`` battles, default 100,000, among ``--competitors`` 100 in
arena ``bench`` over 100 days, 1 % voided; no games unless ``--games``), appended through the
event store and folded by both projectors. Then each page goes through the real app (routing,
the key and parameter guards, the queries, the Jinja render) with Litestar's in-process test
client, one request at a time, timed by ``page_timing.py``: its very first request, the median
of ``--cold`` (5) first views with every cache emptied before each (response cache,
Bradley-Terry fits, head-to-head maps: the criterion), and the median and p90 of ``--repeat``
(30) cached repeats, in milliseconds, with the page's size. In-process means no socket: what is
left out is the network, which the 200 ms goal is not about.

Pages: ``/ui/arenas/bench?system=bt`` (the Bradley-Terry board: a cold view fits the point and
100 bootstrap rounds), ``/`` (arenas), ``/ui/arenas/bench`` (Elo, 100 rows), a past board
(``as_of`` half way), ``/ui/arenas/bench/head-to-head`` (two 100 x 100 heatmaps),
``/ui/competitors/{id}`` of the top competitor (about 2,000 rating changes over 100 days) and,
for comparison, the JSON route behind the Bradley-Terry board.

A measurement, not a test: nothing is asserted. Run from the repository root:

    .venv/bin/python benchmarks/web_pages.py [--battles N] [--cold N] [--repeat N] [--home DIR]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient
from page_timing import time_page  # benchmarks/page_timing.py: cold, first and warm views
from views import run  # benchmarks/views.py: the same servers and log

__all__ = ["main"]


async def measure(database_url: str, repeat: int, cold: int) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        top = (await client.get("/leaderboard?arena=bench&limit=1")).json()
        pages = [
            "/ui/arenas/bench?system=bt",  # first: nothing else has warmed the process for it
            "/",
            "/ui/arenas/bench",
            f"/ui/arenas/bench?as_of={top['position'] // 2}",
            "/ui/arenas/bench/head-to-head",
            f"/ui/competitors/{top['rows'][0]['competitor']}",
            "/leaderboard?arena=bench&system=bt",  # the JSON route behind the board, for comparison
        ]
        for url in pages:
            await time_page(client, url, cold, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--games", type=int, default=0)
    parser.add_argument("--competitors", type=int, default=100)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30, help="warm requests per page")
    parser.add_argument("--cold", type=int, default=5, help="cold requests per page")
    parser.add_argument("--home", type=Path, help="keep the servers' data here to measure again")
    args = parser.parse_args()
    run(args, lambda url, repeat: measure(url, repeat, args.cold))


if __name__ == "__main__":
    main()
