"""The response cache: an answer is computed once per read-model state and served from memory
until a projector commits; ETag / If-None-Match give 304; the cached answer is the uncached one;
who asks is part of the key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from arbiter.services.api import create_app
from arbiter.services.api.cache import CACHED_PATHS, response_cache_enabled
from litestar.testing import AsyncTestClient

from .test_api import append, battle, fold, seed

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
