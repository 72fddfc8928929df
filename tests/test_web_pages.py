"""The web pages (issue 16, points 1-2) against real PostgreSQL, without a browser: every page
renders, and each number it shows is the number the JSON route answers for the same question
(the pages call the same query functions in-process; these tests hold them to it).

Numbers are read from the cells' ``data-value`` (the raw value; the text adds separators and
units), chart marks by ``class="mark"``. The key form's rules are tested at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import battle, configured, game, registered, seed, trial, void
from .web_html import Page, parse


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def page(client: AsyncTestClient[Any], url: str, status: int = 200) -> Page:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers
    return parse(response.text)


def arena_events() -> list[Any]:
    """Two arenas: 'chat' with a category, battles, a tie, a void and a game; 'voice' with a
    trial carrying metrics."""
    return [
        registered("alpha", name="Alpha", provider="acme"),
        configured("c1", arena="chat"),
        battle("b1", "alpha", "beta", arena="chat", category="code", at=0),
        battle("b2", "alpha", "gamma", arena="chat", at=1),
        battle("b3", "beta", "gamma", "tie", arena="chat", category="code", at=2),
        battle("b4", "gamma", "alpha", arena="chat", at=3),
        battle("b5", "beta", "alpha", arena="chat", at=4),
        void("v1", "b5", at=5),
        game("g1", ("alpha", 1, 10.0), ("beta", 2, 4.0), ("gamma", 3), arena="chat", at=6),
        battle("b6", "alpha", "beta", arena="chat", at=60 * 24 * 3),  # three days later
        trial("t1", "exp", "alpha", arena="voice", metrics={"latency_ms": 420.0, "wer": 0.125}),
        trial("t2", "exp", "beta", arena="voice", metrics={"latency_ms": 380.0, "wer": 0.25}),
    ]


# -- arenas -------------------------------------------------------------------------------------


async def test_arenas_page_counts_equal_the_summary_route(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await page(client, "/")
    rows = got.by("arenas", "data-arena")
    assert set(rows) == {"chat", "voice"}
    for arena, row in rows.items():
        summary = (await client.get(f"/summary?arena={arena}")).json()
        values = {got.headers["arenas"][i]: c.value for i, c in enumerate(row.cells)}
        assert int(values["competitors"]) == summary["competitors"]
        assert int(values["battles"]) == summary["battles"]
        assert int(values["games"]) == summary["games"]
        assert int(values["trials"]) == summary["trials"]
        voided = summary["voided"]
        assert int(values["voided"]) == voided["battles"] + voided["games"] + voided["trials"]
        assert int(values["results"]) == summary["battles"] + summary["games"] + summary["trials"]
    chat = rows["chat"].cells
    assert [c.value for c in chat[1:7]] == ["3", "6", "5", "1", "0", "1"]
    assert chat[7].value.startswith("2025-01-04T00:00:00")  # b6: the latest producer time
    assert chat[7].text == "2025-01-04 00:00:00 UTC"
    assert got.elements[0] != ("a", {"href": "/ui/arenas/chat"})  # links go to the board
    assert ("a", {"href": "/ui/arenas/chat"}) in got.elements


async def test_arenas_page_says_when_there_is_nothing(client: AsyncTestClient[Any]) -> None:
    got = await page(client, "/")
    assert "No arena yet" in got.text
    assert not got.table("arenas")


# -- leaderboard --------------------------------------------------------------------------------


async def board_matches_json(client: AsyncTestClient[Any], url: str, api: str) -> Page:
    got = await page(client, url)
    body = (await client.get(api)).json()
    rows = got.table("board")
    assert [r.attrs["data-competitor"] for r in rows] == [r["competitor"] for r in body["rows"]]
    heads = got.headers["board"]
    for row, want in zip(rows, body["rows"], strict=True):
        cell = {heads[i]: c for i, c in enumerate(row.cells)}
        assert int(cell["rank"].value) == want["rank"]
        assert float(cell["rating (Elo pts)"].value) == pytest.approx(want["rating"], abs=1e-9)
        assert int(cell["results"].value) == want["games"]
        assert (int(cell["W"].value), int(cell["L"].value), int(cell["T"].value)) == (
            want["wins"], want["losses"], want["ties"],
        )  # fmt: skip
        assert float(cell["win rate (%)"].value) == pytest.approx(want["win_rate"])
        if body["system"] == "bt":
            assert float(cell["lower (pts)"].value) == pytest.approx(want["lower"])
            assert float(cell["upper (pts)"].value) == pytest.approx(want["upper"])
    return got


async def test_board_page_equals_the_leaderboard_route(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await board_matches_json(client, "/ui/arenas/chat", "/leaderboard?arena=chat")
    # Elo now: live from the stream, no whisker plot (no intervals)
    (table,) = [a for t, a in got.elements if t == "table" and a.get("id") == "board"]
    assert table["data-live"] == "/leaderboard/stream?arena=chat&category=&limit=100"
    assert not got.marks
    options = [a["value"] for t, a in got.elements if t == "option"]
    assert options == ["elo", "bt", "", "code"]  # the systems, then the pools of the arena
    await board_matches_json(
        client, "/ui/arenas/chat?category=code", "/leaderboard?arena=chat&category=code"
    )


async def test_board_page_bradley_terry_draws_one_whisker_per_competitor(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await board_matches_json(
        client, "/ui/arenas/chat?system=bt", "/leaderboard?arena=chat&system=bt"
    )
    marks = [m["data-competitor"] for m in got.marks]
    assert marks == [r.attrs["data-competitor"] for r in got.table("board")]
    assert "rating (Elo points), 95% interval" in got.text
    assert not any(a.get("data-live") for t, a in got.elements if t == "table")


async def test_board_page_as_of_shows_the_past_board(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await board_matches_json(
        client, "/ui/arenas/chat?as_of=3", "/leaderboard?arena=chat&as_of=3"
    )
    now = (await client.get("/leaderboard?arena=chat")).json()
    assert len(got.table("board")) < len(now["rows"]) or got.table("board")[0].cells[2].value != (
        str(now["rows"][0]["rating"])
    )
    assert "past board" in got.text
    assert not any(a.get("data-live") for t, a in got.elements if t == "table")
    # an empty as_of (the form's "now") is the current board
    await board_matches_json(client, "/ui/arenas/chat?as_of=", "/leaderboard?arena=chat")


async def test_board_page_metric_averages_carry_units(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, [*arena_events(), battle("b9", "alpha", "beta", arena="voice")])
    got = await page(client, "/ui/arenas/voice")
    body = (await client.get("/leaderboard?arena=voice")).json()
    heads = got.headers["board"]
    assert "latency (ms)" in heads and "WER (fraction)" in heads
    assert "cost (USD)" not in heads  # no row has one
    for row, want in zip(got.table("board"), body["rows"], strict=True):
        cell = {heads[i]: c for i, c in enumerate(row.cells)}
        assert float(cell["latency (ms)"].value) == pytest.approx(want["latency_ms"])
        assert float(cell["WER (fraction)"].value) == pytest.approx(want["wer"])
    assert {c.text for r in got.table("board") for c in r.cells} >= {"420", "0.125"}


async def test_pages_refuse_unknown_parameters_as_html(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    got = await page(client, "/ui/arenas/chat?model=alpha", 400)
    assert "bad_parameter" in got.text and "`model`" in got.text and "`category`" in got.text
    got = await page(client, "/ui/arenas/chat?as_of=yesterday", 400)
    assert "as_of" in got.text
    got = await page(client, "/ui/arenas/chat?system=glicko", 400)
    assert "system" in got.text
