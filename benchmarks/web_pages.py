"""Server render time of the web pages (issue 16 point 2: each under 200 ms for an arena of 100
competitors and 100,000 results).

What is measured
----------------
The log of ``views.py`` (``--battles`` battles, default 100,000, among ``--competitors`` 100 in
arena ``bench`` over 100 days, 1 % voided; no games unless ``--games``), appended through the
event store and folded by both projectors. Then each page is requested ``--repeat`` times (30)
through the real app (routing, the key and parameter guards, the queries, the Jinja render) with
Litestar's in-process test client, one at a time after one warm-up request; the median, p90 and
max are printed in milliseconds, with the page's size. In-process means no socket: what is left
out is the network, which the 200 ms goal is not about.

Pages: ``/`` (arenas), ``/ui/arenas/bench`` (Elo, 100 rows), the same with ``system=bt`` (the
fit cached as the JSON route caches it; its first, cold request is printed apart), a past board
(``as_of`` half way), ``/ui/arenas/bench/head-to-head`` (two 100 x 100 heatmaps) and
``/ui/competitors/{id}`` of the top competitor (about 2,000 rating changes over 100 days). Each
page's first request is printed too: the head-to-head page keeps its maps per ratings position,
so its repeats measure a pool seen before, its first one a pool that just moved.

A measurement, not a test: nothing is asserted. Run from the repository root:

    .venv/bin/python benchmarks/web_pages.py [--battles N] [--repeat N] [--home DIR]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient
from views import run, timed  # benchmarks/views.py: the same servers, log and timing

__all__ = ["main"]


async def measure(database_url: str, repeat: int) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        top = (await client.get("/leaderboard?arena=bench&limit=1")).json()["rows"][0]
        position = (await client.get("/leaderboard?arena=bench&limit=1")).json()["position"]
        started = time.perf_counter()
        cold = await client.get("/ui/arenas/bench?system=bt")
        print(f"{'/ui/arenas/bench?system=bt, first (cold fit)':58s} "
              f"{(time.perf_counter() - started) * 1000:7.1f} ms", flush=True)  # fmt: skip
        assert cold.status_code == 200, cold.text
        pages = [
            "/",
            "/ui/arenas/bench",
            "/ui/arenas/bench?system=bt",
            f"/ui/arenas/bench?as_of={position // 2}",
            "/ui/arenas/bench/head-to-head",
            f"/ui/competitors/{top['competitor']}",
        ]
        for url in pages:
            started = time.perf_counter()
            response = await client.get(url)
            first = (time.perf_counter() - started) * 1000  # head-to-head: before its maps are kept
            assert response.status_code == 200, (url, response.text[:500])
            label = f"{url} ({len(response.content) / 1024:,.0f} KiB, first {first:,.0f} ms)"
            await timed(label, repeat, lambda url=url: client.get(url))  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--games", type=int, default=0)
    parser.add_argument("--competitors", type=int, default=100)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--home", type=Path, help="keep the servers' data here to measure again")
    run(parser.parse_args(), measure)


if __name__ == "__main__":
    main()
