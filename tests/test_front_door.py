"""The front door (services/api/front_door.py): a keyless repeat of a cached read is answered
before routing, with the very bytes and headers the full stack gives, counted in the metrics,
never for a keyed caller, and never with an answer of another viewer (auth ``auto`` once a key
exists)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.adapters import keys
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from .api_events import battle, seed, trial
from .test_api_cache import HOT_READS, _watching

NAMES = ["a", "b", "c", "d"]


def _events() -> list[Any]:
    battles = [battle(f"b{i}", NAMES[i % 4], NAMES[(i + 1) % 4], at=i) for i in range(12)]
    trials = [
        trial(f"t{i}", "exp1", NAMES[i % 2], prompt=i, at=20 + i, dimensions={"persona": "p"})
        for i in range(4)
    ]
    return [*battles, *trials]


def _client(database_url: str, config: AuthConfig | None = None) -> Any:
    return AsyncTestClient(app=create_app(database_url, None, auth=config))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    seed(database_url, _events())
    async with _client(database_url, AuthConfig(mode="off")) as c:
        await _watching(c)
        yield c


def _headers(answer: Any) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k != "date"}


async def test_a_keyless_repeat_is_the_stacks_answer(client: AsyncTestClient[Any]) -> None:
    door = client.app.door
    for url in HOT_READS:
        first = await client.get(url)  # the stack computes and stores it
        assert first.status_code == 200, (url, first.text)
        hits = door.hits
        again = await client.get(url)
        assert door.hits == hits + 1, url  # answered at the door
        assert again.content == first.content and _headers(again) == _headers(first), url
        etag = first.headers["etag"]
        unchanged = await client.get(url, headers={"If-None-Match": f'"other", {etag}'})
        assert unchanged.status_code == 304 and unchanged.content == b"", url
        assert unchanged.headers["etag"] == etag and door.hits == hits + 2, url
        assert unchanged.headers.get("content-length", "0") == "0"
        other = await client.get(url, headers={"If-None-Match": '"other"'})
        assert other.status_code == 200 and other.content == first.content
        assert door.hits == hits + 3, url


async def test_a_cached_page_says_private_once(client: AsyncTestClient[Any]) -> None:
    """The pages' router says ``private, no-cache`` of every page; a cached page's answer (the
    stack's and the door's) says it once, not beside a ``public`` of the validators."""
    door = client.app.door
    for url in ("/ui/stats?arena=default", "/ui/experiments/exp1"):
        first = await client.get(url)
        assert first.status_code == 200, (url, first.text)
        hits = door.hits
        again = await client.get(url)
        assert door.hits == hits + 1, url
        for answer in (first, again):
            assert answer.headers.get_list("cache-control") == ["private, no-cache"], url
            assert answer.headers["etag"] == first.headers["etag"], url


async def test_keyed_and_uncached_requests_go_through_the_stack(
    client: AsyncTestClient[Any],
) -> None:
    door = client.app.door
    url = "/leaderboard?arena=default&limit=10"
    public = await client.get(url)
    hits = door.hits
    for headers in (
        {"Cookie": "arbiter_key=ak_0.x"},
        {"Cookie": "unrelated=1"},
        {"X-API-Key": "ak_0.x"},
        {"Authorization": "Bearer ak_0.x"},
    ):
        answer = await client.get(url, headers=headers)
        assert answer.status_code in (200, 401), (headers, answer.text)
    assert door.hits == hits
    # Another spelling of the query is another answer, computed by the stack first.
    assert (await client.get("/leaderboard?limit=10&arena=default")).status_code == 200
    assert door.hits == hits
    assert (await client.head(url)).status_code == 405 and door.hits == hits  # as the stack says
    assert (await client.get(url)).content == public.content and door.hits == hits + 1


_SUMMARY_TOTAL = re.compile(
    r'^arbiter_http_requests_total\{app_name="arbiter",method="GET",path="/summary",'
    r'status_code="200"\} ([\d.]+)$',
    re.MULTILINE,
)


async def _summaries_counted(client: AsyncTestClient[Any]) -> float:
    found = _SUMMARY_TOTAL.search((await client.get("/metrics")).text)
    return float(found.group(1)) if found else 0.0


async def test_hits_are_counted_in_the_metrics(client: AsyncTestClient[Any]) -> None:
    url = "/summary?arena=default"
    await client.get(url)
    before, hits = await _summaries_counted(client), client.app.door.hits
    for _ in range(5):
        assert (await client.get(url)).status_code == 200
    assert client.app.door.hits == hits + 5
    assert await _summaries_counted(client) == before + 5


async def test_a_hit_is_in_progress_while_sent_and_counted_when_the_client_is_gone(
    client: AsyncTestClient[Any],
) -> None:
    """As the middleware counts the stack's requests: the in-progress gauge is up while the
    answer is sent, and a ``send`` that raises (the client went away) still counts the request."""
    await client.get("/summary?arena=default")
    before = await _summaries_counted(client)
    labels = {"app_name": "arbiter", "method": "GET", "path": "/summary", "status_code": "200"}

    def in_progress() -> float:
        return REGISTRY.get_sample_value("arbiter_http_requests_in_progress", labels) or 0.0

    idle, seen = in_progress(), []

    async def send(message: dict[str, Any]) -> None:
        seen.append(in_progress())
        if message["type"] == "http.response.body":
            raise OSError("the client went away")

    scope = {
        "type": "http", "method": "GET", "path": "/summary", "query_string": b"arena=default",
        "headers": [(b"host", b"testserver")],
    }  # fmt: skip
    with pytest.raises(OSError, match="went away"):
        await client.app.door.answer(scope, send)
    assert seen == [idle + 1, idle + 1]
    assert in_progress() == idle
    assert await _summaries_counted(client) == before + 1


async def test_no_answer_of_another_viewer_once_keys_are_enforced(database_url: str) -> None:
    """Auth ``auto``: before any key exists a keyless caller sees everything, private
    experiments' trials included; once a key exists (and the "any key?" answer has been looked
    up again), it sees none of them, and the door must not serve it the earlier answer."""
    seed(database_url, _events())
    url = "/stats?arena=default&group_by=competitor"
    async with _client(database_url, AuthConfig(mode="auto", cache_ttl=0.3)) as client:
        await _watching(client)
        door = client.app.door
        everyone = await client.get(url)
        assert everyone.status_code == 200 and everyone.json()["trials"] == 4, everyone.text
        hits = door.hits
        assert (await client.get(url)).content == everyone.content and door.hits == hits + 1
        keys.create(database_url, "reader", ["read"])
        await asyncio.sleep(0.35)  # the cached "no key yet" expires
        nobody = await client.get(url)
        assert nobody.status_code == 200 and nobody.json()["trials"] == 0, nobody.text
        assert door.hits == hits + 1  # the stack looked the keys up and computed anew
        again = await client.get(url)
        assert again.content == nobody.content and door.hits == hits + 2


async def test_nothing_at_the_door_with_the_cache_off(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARBITER_RESPONSE_CACHE", "off")
    seed(database_url, _events())
    async with _client(database_url, AuthConfig(mode="off")) as client:
        url = "/leaderboard?arena=default&limit=10"
        for _ in range(3):
            assert (await client.get(url)).status_code == 200
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert (await client.get(url)).status_code == 200
        assert client.app.door.hits == 0


async def test_a_path_holding_a_question_mark_has_a_key_of_its_own(database_url: str) -> None:
    """An id may hold ``?``: ``/competitors/m%3F`` (competitor ``m?``) and ``/competitors/m??``
    (competitor ``m`` with the query ``?``, a 400) must not share a cache key; nor may a hit
    skip the router's own refusals (a bad Host header)."""
    seed(database_url, [battle("q1", "m?", "m", at=0)])
    async with _client(database_url, AuthConfig(mode="off")) as client:
        await _watching(client)
        assert (await client.get("/competitors/m%3F")).json()["competitor"] == "m?"
        assert (await client.get("/competitors/m")).json()["competitor"] == "m"
        assert (await client.get("/competitors/m??")).status_code == 400
        assert (await client.get("/competitors/m", headers={"Host": "a/b"})).status_code == 400


async def test_a_long_path_is_not_remembered(client: AsyncTestClient[Any]) -> None:
    """Paths learnt before the guards are bounded in length, so made-up ids cannot fill memory."""
    long = "/competitors/" + "x" * 600
    assert (await client.get(long)).status_code == 404
    assert long not in client.app.door.routes
    assert "/competitors/a" not in client.app.door.routes
    assert (await client.get("/competitors/a")).status_code == 200
    assert "/competitors/a" in client.app.door.routes
