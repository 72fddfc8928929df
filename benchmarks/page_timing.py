"""Page timing shared by web_pages.py and web_detail_pages.py: each page's first view with every
cache cold, the criterion of issue 16 point 2, beside its cached repeat.

For each page: ``very first`` is its first request in the process, once the app's start-up
warm-up (services/api/warm_up.py: templates compiled, a tiny fit made) is done; ``cold`` the
median of ``--cold`` more requests, each made right after every cache was emptied (the response
cache, the Bradley-Terry fits and the head-to-head page's maps), i.e. a first view with the
templates loaded; ``warm`` the median and p90 of ``--repeat`` requests in a row (what the caches
then serve). Times are wall-clock milliseconds from request to the full
body, through the whole app in-process (no socket); ``cpu`` is this process's CPU time for the
cold requests' median (all threads: the Bradley-Terry draws run in a worker thread).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from arbiter.services.api.cache import STORE
from arbiter.services.api.queries.bt_fits import clear_bt_cache
from arbiter.services.web import head_to_head
from litestar.testing import AsyncTestClient

__all__ = ["clear_caches", "time_page"]


async def clear_caches(client: AsyncTestClient[Any]) -> None:
    """Every cache a page's first view would find empty."""
    await client.app.stores.get(STORE).delete_all()
    clear_bt_cache()
    head_to_head._MAPS.clear()


async def time_page(client: AsyncTestClient[Any], url: str, cold: int, repeat: int) -> None:
    """Print one line: the very first request, the cold median (and its CPU), the warm median."""
    warming = getattr(client.app.state, "warm_up", None)
    if warming is not None:  # a server is up once its start-up warm-up is done
        warming.join()
    started = time.perf_counter()
    first = await client.get(url)
    very_first = (time.perf_counter() - started) * 1000
    assert first.status_code == 200, (url, first.status_code, first.text[:300])
    cold_ms, cold_cpu = [], []
    for _ in range(cold):
        await clear_caches(client)
        started, cpu = time.perf_counter(), time.process_time()
        response = await client.get(url)
        cold_ms.append((time.perf_counter() - started) * 1000)
        cold_cpu.append((time.process_time() - cpu) * 1000)
        assert response.status_code == 200, url
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(url)
        warm.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    warm.sort()
    p90 = warm[min(len(warm) - 1, int(len(warm) * 0.9))] if warm else float("nan")
    cold_line = (
        f"cold {statistics.median(cold_ms):6.1f} (cpu {statistics.median(cold_cpu):6.1f}, "
        f"max {max(cold_ms):6.1f})"
        if cold_ms
        else "cold      -"
    )
    warm_line = f"warm {statistics.median(warm):6.1f} p90 {p90:6.1f}" if warm else ""
    print(
        f"{url:50s} very first {very_first:6.1f}  {cold_line}  {warm_line}  "
        f"{len(first.content) / 1024:6.1f} KiB  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
