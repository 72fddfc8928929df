"""Single flight: identical reads that miss the response cache together are computed once, and
every one of them gets the same answer as before. Served by uvicorn (the test client handles one
request at a time, so nothing would ever race there)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from arbiter.services.api import make_server
from arbiter.services.api.queries import leaderboard as api_queries
from litestar import Litestar

from .helpers import find_free_port
from .test_api import battle, seed

NAMES = ["a", "b", "c", "d"]


@contextlib.contextmanager
def serving(database_url: str) -> Iterator[tuple[str, Litestar]]:
    port = find_free_port()
    server = make_server(database_url, None, "127.0.0.1", port)
    app: Litestar = server.config.app
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not (server.started and app.state["watch"].state) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started and app.state["watch"].state, "the API did not start watching"
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _checkouts(app: Litestar) -> int:
    """Connections handed out by the read pool so far: one or more per computed answer, none
    for an answer from the cache."""
    return int(app.state["reads"].pool.get_stats().get("requests_num", 0))


def test_identical_misses_are_computed_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url, [battle(i, NAMES[i % 4], NAMES[(i + 1) % 4]) for i in range(20)])
    # A board computed only once the other requests of its race wait for it (or after 5 s), so
    # that they do race: a live board reads in two round trips, and on a loaded machine even a
    # fixed 0.3 s was done before the last of sixteen arrived, which then hit the stored answer.
    compute = api_queries.leaderboard
    served: list[Litestar] = []
    racing: list[bool] = []  # set for the sixteen

    async def slow_board(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 5
        await asyncio.sleep(0.3)
        while racing and served[0].state["flights"].waited < 15 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return await compute(*args, **kwargs)

    monkeypatch.setattr(api_queries, "leaderboard", slow_board)
    with serving(database_url) as (base_url, app):
        served.append(app)

        async def scenario() -> tuple[int, int, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                # A first board loads what the app keeps for good (arena settings...); then what
                # one computation costs, on a spelling nobody asked yet.
                assert (await client.get("/leaderboard?limit=7")).status_code == 200
                before = _checkouts(app)
                assert (await client.get("/leaderboard?limit=9&arena=default")).status_code == 200
                one = _checkouts(app) - before
                # Sixteen at once, all missing the cache at one state.
                url = "/leaderboard?arena=default&limit=9"
                before = _checkouts(app)
                racing.append(True)
                answers = await asyncio.gather(*(client.get(url) for _ in range(16)))
                return one, _checkouts(app) - before, answers

        one, sixteen, answers = asyncio.run(scenario())
        assert one >= 1
        assert sixteen == one  # without single flight: one computation per request that raced
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert len({a.headers["etag"] for a in answers}) == 1
        flights = app.state["flights"]
        assert flights.waited >= 1 and not flights.running
