"""The response cache: an answer is computed once per read-model state and served from memory
until a projector commits; ETag / If-None-Match give 304; the cached answer is the uncached one;
who asks is part of the key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from arbiter.services.api import create_app
from arbiter.services.api.cache import CACHED_PATHS, response_cache_enabled
from arbiter.services.api.queries import bt_fits as api_queries
from litestar.testing import AsyncTestClient

from .test_api import append, battle, fold, index, seed

NAMES = ["a", "b", "c", "d"]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    seed(database_url, [battle(i, NAMES[i % 4], NAMES[(i + 1) % 4]) for i in range(20)])
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        await _watching(c)
        yield c


async def _watching(client: AsyncTestClient[Any], moved_from: Any = None) -> None:
    """Wait until the app's watch listens (and, given a state, has seen it move)."""
    watch = client.app.state["watch"]
    deadline = time.monotonic() + 20
    while watch.state is None or watch.state == moved_from:
        assert time.monotonic() < deadline, "the watch never saw the read models"
        await asyncio.sleep(0.02)


async def test_answers_come_from_memory_until_a_projector_commits(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    url = "/leaderboard?arena=default&limit=10"
    first = await client.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, no-cache"
    # Change a rating behind the projector's back (no commit through tracking, no NOTIFY):
    # the cache keeps answering what it computed, which proves it is a cache hit.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE arbiter_ratings.ratings SET rating = rating + 1000")
    again = await client.get(url)
    assert again.content == first.content and again.headers["etag"] == etag
    # The query string is part of the key as sent: another spelling is computed afresh (and
    # sees the tampered table), a blank value is still refused.
    other = await client.get("/leaderboard?limit=10&arena=default")
    assert other.content != first.content and other.headers["etag"] != etag
    assert (await client.get("/leaderboard?arena=&limit=10")).status_code == 400
    not_modified = await client.get(url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    # A projector commit moves the state: the next answer is computed afresh.
    state = client.app.state["watch"].state
    append(database_url, [battle(100, "a", "b")])
    await asyncio.to_thread(fold, database_url)
    await _watching(client, moved_from=state)
    fresh = await client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    body = fresh.json()
    assert body["position"] == 21
    assert max(r["rating"] for r in body["rows"]) > 2000  # the tampered table, now read


async def test_cached_answers_equal_uncached_ones(
    client: AsyncTestClient[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [
        "/leaderboard?limit=3",
        "/leaderboard?system=bt",
        "/competitors/a",
        "/competitors/a/history?limit=5",
        "/head-to-head?competitor=a",
        "/summary",
        "/stats?group_by=competitor",
    ]
    cached = [(await client.get(u)) for u in urls]
    cached_again = [(await client.get(u)) for u in urls]
    monkeypatch.setenv("ARBITER_RESPONSE_CACHE", "off")
    assert not response_cache_enabled()
    async with AsyncTestClient(app=create_app(database_url, None)) as plain:
        for url, hit, miss in zip(urls, cached_again, cached, strict=True):
            fresh = await plain.get(url)
            assert fresh.status_code == hit.status_code == 200, (url, fresh.text)
            assert "etag" not in fresh.headers
            if "system=bt" not in url:  # the bootstrap's draw is its own; the fit is not
                assert hit.content == miss.content == fresh.content, url
    assert len(CACHED_PATHS) == 6


async def test_errors_are_not_cached_and_unknown_settings_refused(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = await client.get("/competitors/nobody")
    assert missing.status_code == 404 and "etag" not in missing.headers
    monkeypatch.setenv("ARBITER_RESPONSE_CACHE", "sometimes")
    with pytest.raises(ValueError, match="on or off"):
        response_cache_enabled()


async def test_an_answer_to_a_keyed_visitor_is_private(client: AsyncTestClient[Any]) -> None:
    """A key in the pages' cookie makes the answer that viewer's, as a key in a header does:
    a shared cache must not keep it for others."""
    public = await client.get("/summary")
    assert public.headers["cache-control"] == "public, no-cache"
    assert "Cookie" in public.headers["vary"]
    keyed = await client.get("/summary", headers={"Cookie": "arbiter_key=ak_0.x"})
    assert keyed.headers["cache-control"] == "private, no-cache"


HOT_READS = {
    "/leaderboard?arena=default&limit=10": ("position", "results_position"),
    "/competitors/a?arena=default": ("position", "results_position"),
    "/summary?arena=default": ("position", "results_position"),
    "/competitors/a/history?arena=default&limit=5": ("position",),
    "/head-to-head?arena=default&competitor=a": ("position",),
    "/stats?arena=default&group_by=persona": ("results_position",),
}
"""Each cached hot read, and the positions its body shows: of the projections it reads."""


async def _tags(client: AsyncTestClient[Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    out = {}
    for url in HOT_READS:
        answer = await client.get(url)
        assert answer.status_code == 200, (url, answer.text)
        out[url] = (answer.headers["etag"], answer.json())
    return out


async def test_each_route_is_keyed_on_the_projections_it_reads(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    """A commit of one projection makes every route that reads it answer afresh (its body at
    the new position) and leaves the cached answers of the routes that do not read it."""
    state = client.app.state["watch"].state
    index(database_url)  # the results model at the log's head too
    await _watching(client, moved_from=state)
    before = await _tags(client)
    assert await _tags(client) == before  # served from the cache

    def moved(after: dict[str, tuple[str, dict[str, Any]]]) -> set[str]:
        return {url for url in HOT_READS if after[url][0] != before[url][0]}

    async def committed(projector: Callable[[str], Any]) -> dict[str, tuple[str, Any]]:
        state = client.app.state["watch"].state
        await asyncio.to_thread(projector, database_url)
        await _watching(client, moved_from=state)
        return await _tags(client)

    append(database_url, [battle(100, "a", "b")])  # position 21
    after = await committed(fold)  # the ratings model only
    ratings_readers = {u for u, shown in HOT_READS.items() if "position" in shown}
    assert moved(after) == ratings_readers
    for url in ratings_readers:
        assert after[url][1]["position"] == 21, url
    assert after["/stats?arena=default&group_by=persona"][1]["results_position"] == 20

    before = after
    after = await committed(index)  # now the results model
    results_readers = {u for u, shown in HOT_READS.items() if "results_position" in shown}
    assert moved(after) == results_readers
    for url in results_readers:
        assert after[url][1]["results_position"] == 21, url


async def test_a_board_on_a_reused_fit_is_cached_until_its_reuse_ends(
    client: AsyncTestClient[Any], database_url: str
) -> None:
    """``system=bt`` while the log moves: the answer built on a reused fit is served from the
    cache for the rest of the fit's reuse window (not recomputed per request), without an
    ETag; after the window the same state is answered with a fresh fit (refitted in the
    background), with one."""
    url = "/leaderboard?arena=default&system=bt"
    cold = await client.get(url)
    fitted_at = time.monotonic()
    assert cold.json()["bootstrap"]["position"] == 20 and "etag" in cold.headers
    state = client.app.state["watch"].state
    append(database_url, [battle(100, "a", "b")])
    await asyncio.to_thread(fold, database_url)
    await _watching(client, moved_from=state)
    reused = await client.get(url)
    body = reused.json()
    assert (body["position"], body["bootstrap"]["position"]) == (21, 20)
    assert "etag" not in reused.headers
    # Changed behind the projector's back: a cache hit keeps showing what it computed.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE arbiter_ratings.competitors SET name = 'renamed'")
    hit = await client.get(url, headers={"If-None-Match": "*"})
    assert hit.status_code == 200 and hit.content == reused.content
    assert "etag" not in hit.headers and "x-arbiter-untagged" not in hit.headers
    # After the window, the first request starts a refit in the background and is answered with
    # the old fit (cached for a moment only); once the refit lands, a fresh fit, with a tag.
    await asyncio.sleep(max(0.0, fitted_at + api_queries.BT_REFRESH_S - time.monotonic()) + 0.1)
    deadline = time.monotonic() + 20
    while (late := await client.get(url)).json()["bootstrap"]["position"] == 20:
        assert "etag" not in late.headers and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    fresh = late.json()
    assert (fresh["position"], fresh["bootstrap"]["position"]) == (21, 21)
    assert {r["name"] for r in fresh["rows"]} == {"renamed"} and "etag" in late.headers
