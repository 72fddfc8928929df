"""Read-side fixes against real PostgreSQL: a standing's rank is its place on ``/leaderboard``
(registered competitors that never played included), the competitor page's chart draws the
latest days, an empty ``arena`` on the history route is a 400, and the log's result links
encode the result's id as one path segment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from arbiter.services.api.store import ReadStore
from arbiter.services.web import competitor as competitor_module
from litestar.testing import AsyncTestClient

from .api_events import assert_error, battle, configured, game, registered, seed
from .web_html import Page, parse


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def page(client: AsyncTestClient[Any], url: str) -> Page:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return parse(response.text)


# -- 1. the standing's rank is the leaderboard's ------------------------------------------------


async def test_standing_rank_counts_the_unplayed_competitors_the_board_lists(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, [
        registered("c"),
        registered("x"),
        battle("b1", "a", "b", "b"),  # b 1516, a 1484
        battle("b2", "d", "e", "tie"),  # d and e stay at 1500, tied with c and x: by id
        battle("b3", "a", "b", "b", category="code", at=1),  # a category pool: no unplayed rows
        configured("cfg", arena="chat", initial=1490.0, at=2),
        registered("u", arena="chat", at=2),  # unplayed in chat at 1490
        battle("b4", "a", "b", "a", arena="chat", at=3),  # a above u, b below it
    ])  # fmt: skip
    expected: dict[tuple[str, str, str], int] = {}
    for arena, category in (("default", ""), ("default", "code"), ("chat", "")):
        params = {"arena": arena, "category": category, "limit": 100}
        board = (await client.get("/leaderboard", params=params)).json()
        for row in board["rows"]:
            expected[(row["competitor"], arena, category)] = row["rank"]
    board_default = {k[0]: v for k, v in expected.items() if k[1:] == ("default", "")}
    assert board_default == {"b": 1, "c": 2, "d": 3, "e": 4, "x": 5, "a": 6}
    assert "u" in {k[0] for k in expected if k[1] == "chat"}
    assert not any(k[0] in {"c", "x"} for k in expected if k[2] == "code")

    for competitor in ("a", "b", "d", "e"):
        body = (await client.get(f"/competitors/{competitor}")).json()
        ranks = {(competitor, s["arena"], s["category"]): s["rank"] for s in body["standings"]}
        assert ranks == {k: v for k, v in expected.items() if k[0] == competitor}, competitor
        got = await page(client, f"/ui/competitors/{competitor}")
        col = got.column("standings", "rank")
        on_page = {
            (competitor, r.attrs["data-arena"], r.attrs["data-category"]): int(r.cells[col].value)
            for r in got.table("standings")
        }
        assert on_page == ranks, competitor
    assert expected[("a", "default", "")] == 6 and expected[("b", "chat", "")] == 3


# -- 2. the chart draws the latest days -----------------------------------------------------------


async def test_chart_draws_the_latest_days_and_says_older_ones_are_left_out(
    database_url: str, client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(competitor_module, "MAX_CHART_DAYS", 3)
    day = 60 * 24
    seed(database_url, [battle(f"b{i}", "a", "b", "a", at=i * day) for i in range(5)])
    days = (
        await client.get("/competitors/a/history", params={"bucket": "day", "limit": 10})
    ).json()["days"]
    assert len(days) == 5
    got = await page(client, "/ui/competitors/a")
    (path,) = [m for m in got.marks if m["tag"] == "path" and m.get("data-series") == "(all)"]
    assert path["d"].count("L") == 2  # three points
    # The line ends at the latest day's rating (the dot on the last point says it).
    latest = f"(all): {days[-1]['rating']:.1f} Elo points"
    oldest_kept = f"(all): {days[2]['rating']:.1f} Elo points"
    assert latest != oldest_kept and latest in got.text
    notes = [a for tag, a in got.elements if "data-left-out" in a]
    assert notes == [{"data-series": "(all)", "data-left-out": "2"}]
    assert "Only the latest 3 UTC days" in got.text

    monkeypatch.setattr(competitor_module, "MAX_CHART_DAYS", 5)  # all of them: no note
    got = await page(client, "/ui/competitors/a")
    assert not [a for tag, a in got.elements if "data-left-out" in a]


async def test_latest_days_come_in_chronological_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(competitor_module, "MAX_CHART_DAYS", 2)
    seed(database_url, [battle(f"b{i}", "a", "b", "a", at=i * 60 * 24) for i in range(4)])
    store = ReadStore(database_url, max_size=1)
    await store.open()
    try:
        days, older = await competitor_module.latest_days(store, "a", "default", "")
        assert (await competitor_module.latest_days(store, "zz", "default", "")) == ([], 0)
    finally:
        await store.close()
    assert older == 2 and [d.day.isoformat() for d in days] == ["2025-01-03", "2025-01-04"]


# -- 3. an empty arena on the history route -------------------------------------------------------


@pytest.mark.parametrize("query", ["arena=", "arena=&bucket=day"])
async def test_history_refuses_an_empty_arena(
    database_url: str, client: AsyncTestClient[Any], query: str
) -> None:
    seed(database_url, [battle("b1", "a", "b")])
    body = assert_error(await client.get(f"/competitors/a/history?{query}"), 400, "bad_parameter")
    assert body["field"] == "arena"
    assert (await client.get("/competitors/a/history?arena=default&bucket=day")).status_code == 200


# -- 4. the log's result links ------------------------------------------------------------------


async def test_log_result_links_encode_the_id(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, [
        battle("b#1", "a", "b"),
        battle("b?x=1", "a", "b", at=1),
        battle("b", "b", "a", at=2),  # what `b#1` opened
        game("g/1", ("a", 1), ("b", 2), at=3),
    ])  # fmt: skip
    expected = {"/ui/battles/b%231", "/ui/battles/b%3Fx%3D1", "/ui/battles/b", "/ui/games/g%2F1"}
    got = await page(client, "/ui/log")
    links = {
        a["href"]
        for tag, a in got.elements
        if tag == "a" and a.get("href", "").startswith(("/ui/battles/", "/ui/games/"))
    }
    assert links == expected
    for label, href in (("b#1", "/ui/battles/b%231"), ("b?x=1", "/ui/battles/b%3Fx%3D1")):
        response = await client.get(href)
        assert response.status_code == 200 and label in response.text, href
        event = await page(client, f"/ui/log/ev-{label.replace('#', '%23').replace('?', '%3F')}")
        hrefs = [a["href"] for tag, a in event.elements if tag == "a"]
        assert href in hrefs
        assert f"/ui/battles/{label}" in event.text  # the link's text is the id as written
    battle_b = (await client.get("/ui/battles/b")).text
    assert "b#1" not in battle_b
