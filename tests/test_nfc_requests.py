"""Request ids in any Unicode spelling find what the ingest stored in NFC: the ingest makes
``café`` (precomposed) and ``cafe`` + a combining accent one competitor, so reads must too.
Before :mod:`arbiter.services.api.normal_form`, the other spelling answered a 404, an empty
board or a total of 0 (found by a review). Real PostgreSQL, the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import battle, seed

NFC_NAME, NFD_NAME = "caf\u00e9", "cafe\u0301"
NFC_ARENA, NFD_ARENA = "ar\u00e9na", "are\u0301na"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    seed(database_url, [battle("b1", NFC_NAME, "tea", "a", arena=NFC_ARENA)])
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def test_a_decomposed_spelling_finds_the_stored_competitor_and_arena(
    client: AsyncTestClient[Any],
) -> None:
    for name in (NFC_NAME, NFD_NAME):
        answer = await client.get(f"/competitors/{name}")
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["competitor"] == NFC_NAME
    for arena in (NFC_ARENA, NFD_ARENA):
        board = (await client.get("/leaderboard", params={"arena": arena})).json()
        assert [r["competitor"] for r in board["rows"]] == [NFC_NAME, "tea"], arena
        events = (await client.get("/events", params={"competitor": NFD_NAME})).json()
        assert events["total"] == 1


async def test_query_values_keep_their_meaning(client: AsyncTestClient[Any]) -> None:
    """Only non-ASCII text is rewritten: an escaped ``&`` stays inside its value (a competitor
    named ``a&b`` is not a second parameter), and a refusal still names the parameter."""
    answer = await client.get("/events", params={"competitor": "a&b", "arena": NFD_ARENA})
    assert answer.status_code == 200 and answer.json()["total"] == 0, answer.text
    refused = await client.get("/leaderboard", params={"arena": NFD_ARENA, "limit": "0"})
    assert refused.status_code == 400 and "limit" in refused.text


async def test_ids_holding_a_slash_are_reached_by_their_encoded_path(database_url: str) -> None:
    """``org/model`` is a common model name and the ingest takes it. ``%2F`` was decoded before
    routing: ``/competitors/org%2Fmodel`` matched nothing (404) and ``/competitors/x%2Fhistory``
    answered competitor x's history (a wrong answer without a word)."""
    seed(database_url, [
        battle("b1", "org/model", "x", "a"),
        battle("sl/ash", "x/history", "x", "b"),
    ])  # fmt: skip
    async with AsyncTestClient(app=create_app(database_url, None)) as client:
        answer = await client.get("/competitors/org%2Fmodel")
        assert answer.status_code == 200, answer.text
        assert answer.json()["competitor"] == "org/model"
        answer = await client.get("/competitors/x%2Fhistory")
        assert answer.status_code == 200, answer.text
        assert answer.json()["competitor"] == "x/history"  # not x's history
        # A NUL the client sent is not the slash's stand-in: no alias of x/history.
        nul = await client.get("/competitors/x%00history")
        assert nul.status_code == 400 and "NUL" in nul.text, (nul.url, nul.text[:300])
        history = (await client.get("/competitors/x/history")).json()
        assert history["competitor"] == "x"
        assert (await client.get("/battles/sl%2Fash")).json()["battle_id"] == "sl/ash"
        page = await client.get("/ui/competitors/org%2Fmodel")
        assert page.status_code == 200 and "org/model" in page.text
