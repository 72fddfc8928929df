"""The web pages (issue 16, points 1-2) against real PostgreSQL, without a browser: every page
renders, and each number it shows is the number the JSON route answers for the same question
(the pages call the same query functions in-process; these tests hold them to it).

Numbers are read from the cells' ``data-value`` (the raw value; the text adds separators and
units), chart marks by ``class="mark"``. The key form's rules are tested at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arbiter.adapters import keys
from arbiter.services.api import create_app
from arbiter.services.api.auth import AuthConfig
from arbiter.services.web.charts import (
    Series,
    Whisker,
    heatmap,
    lines,
    nice_ticks,
    palette,
    whiskers,
)
from litestar.testing import AsyncTestClient

from .api_events import battle, configured, game, registered, seed, trial, void
from .helpers import running_api
from .web_html import Page, parse


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


# -- head-to-head -------------------------------------------------------------------------------


async def test_head_to_head_page_heatmaps_equal_the_head_to_head_route(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await page(client, "/ui/arenas/chat/head-to-head")
    body = (await client.get("/head-to-head?arena=chat&limit=1000")).json()
    board = (await client.get("/leaderboard?arena=chat")).json()
    order = [r["competitor"] for r in board["rows"]]
    cells = [m for m in got.marks if m["tag"] == "rect"]
    # two maps of n x n cells, rows and columns in board order
    assert len(cells) == 2 * len(order) ** 2
    win_map, count_map = cells[: len(order) ** 2], cells[len(order) ** 2 :]
    assert [(m["data-a"], m["data-b"]) for m in win_map[: len(order)]] == [
        (order[0], b) for b in order
    ]
    wins = {(m["data-a"], m["data-b"]): m.get("data-value") for m in win_map}
    counts = {(m["data-a"], m["data-b"]): m.get("data-value") for m in count_map}
    met = set()
    for pair in body["rows"]:
        a, b = pair["competitor"], pair["opponent"]
        met |= {(a, b), (b, a)}
        assert float(wins[a, b]) == pytest.approx(pair["win_rate"], abs=1e-6)
        assert float(wins[b, a]) == pytest.approx(1 - pair["win_rate"], abs=1e-6)
        assert float(counts[a, b]) == float(counts[b, a]) == pair["games"]
    assert {k for k, v in wins.items() if v is None} == {
        (a, b) for a in order for b in order if (a, b) not in met
    }  # the diagonal, and pairs that never met, are empty cells
    table = got.table("pairs")
    assert [(r.attrs["data-a"], r.attrs["data-b"]) for r in table] == [
        (p["competitor"], p["opponent"]) for p in body["rows"]
    ]
    assert [int(r.cells[2].value) for r in table] == [p["games"] for p in body["rows"]]
    assert "win fraction (row vs column)" in got.text and "results (row vs column)" in got.text


async def test_head_to_head_page_of_an_empty_pool(client: AsyncTestClient[Any]) -> None:
    got = await page(client, "/ui/arenas/nowhere/head-to-head")
    assert "No two competitors have met" in got.text and not got.marks


# -- competitor ---------------------------------------------------------------------------------


async def test_competitor_page_equals_the_competitor_routes(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    got = await page(client, "/ui/competitors/alpha")
    detail = (await client.get("/competitors/alpha?recent_games=20")).json()
    standings = got.table("standings")
    assert [(r.attrs["data-arena"], r.attrs["data-category"]) for r in standings] == [
        (s["arena"], s["category"]) for s in detail["standings"]
    ]
    for row, want in zip(standings, detail["standings"], strict=True):
        values = [c.value for c in row.cells[2:9]]
        assert int(values[0]) == want["rank"]
        assert float(values[1]) == pytest.approx(want["rating"], abs=1e-9)
        assert [int(v) for v in values[2:6]] == [
            want["games"], want["wins"], want["losses"], want["ties"]
        ]  # fmt: skip
        assert float(values[6]) == pytest.approx(want["win_rate"])
    assert "Alpha" in got.text and "provider acme" in got.text
    # it plays in chat only: its status there, not "untested" in the default arena
    in_chat = (await client.get("/competitors/alpha?arena=chat")).json()
    assert in_chat["status"] == "testing" and detail["status"] == "untested"
    status = [a["data-status"] for t, a in got.elements if "data-status" in a]
    assert status == ["testing"] and "status in chat testing" in got.text
    there = await page(client, "/ui/competitors/alpha?arena=default")
    assert [a["data-status"] for t, a in there.elements if "data-status" in a] == ["untested"]

    # the latest changes, newest first, each linked to its event, explained by the Elo update
    history = (await client.get("/competitors/alpha/history?limit=1000")).json()["history"]
    changes = got.table("changes")
    assert [r.attrs["data-event"] for r in changes] == [h["event_id"] for h in history][::-1]
    for row, want in zip(changes, reversed(history), strict=True):
        link = ("a", {"href": f"/ui/log/{want['event_id']}"})
        assert link in got.elements
        assert float(row.cells[6].value) == pytest.approx(want["delta"])
        why = row.cells[7].text
        if want["kind"] == "void":
            assert why.startswith("recomputed after a voided result")
        else:
            before, after = f"{want['rating_before']:.2f}", f"{want['rating_after']:.2f}"
            assert why.startswith(f"{before} + {want['k']:g} × ({want['score']:g} − ")
            assert why.endswith(f"= {after}")
            assert want["rating_before"] + want["k"] * (
                want["score"] - want["expected"]
            ) == pytest.approx(want["rating_after"])

    # one chart per arena, one line per category (its pools), and the recent battles and games
    lines_ = [m for m in got.marks if m["tag"] == "path"]
    pools = {(s["arena"], s["category"] or "(all)") for s in detail["standings"]}
    assert {("chat", m["data-series"]) for m in lines_} == pools
    assert all(m["data-competitor"] == "alpha" for m in lines_)
    battles = (await client.get("/battles?competitor=alpha&limit=20")).json()["battles"]
    assert [r.attrs["data-battle"] for r in got.table("battles")] == [
        b["battle_id"] for b in battles
    ]
    results = {r.attrs["data-battle"]: r.cells[4].text for r in got.table("battles")}
    assert results == {
        "b6": "won", "b5": "voided", "b4": "lost", "b2": "won", "b1": "won"
    }  # fmt: skip
    games = got.table("games")
    assert [r.attrs["data-game"] for r in games] == [g["game_id"] for g in detail["recent_games"]]
    assert [(r.cells[3].value, r.cells[4].value) for r in games] == [("1", "10.0")]


async def test_competitor_page_of_an_unknown_competitor_is_a_404_page(
    client: AsyncTestClient[Any],
) -> None:
    got = await page(client, "/ui/competitors/nobody", 404)
    assert "Unknown competitor 'nobody'" in got.text


# -- keys ---------------------------------------------------------------------------------------

PRIVATE = AuthConfig(mode="on", public_reads=False, cache_ttl=0)


@pytest.fixture
async def private_client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None, auth=PRIVATE)) as c:
        yield c


def set_cookie(response: Any) -> str:
    (header,) = response.headers.get_list("set-cookie")
    return str(header)


async def test_pages_ask_for_a_key_and_keep_it_in_a_session_cookie(
    database_url: str, private_client: AsyncTestClient[Any]
) -> None:
    seed(database_url, arena_events())
    _, token = keys.create(database_url, "reader", ["read"])
    client = private_client
    # no key: the page is the key form (401), sent back to where it was asked
    got = await page(client, "/ui/arenas/chat?category=code", 401)
    forms = [a for t, a in got.elements if t == "form" and a.get("class") == "key-form"]
    assert forms == [{"class": "key-form", "method": "post", "action": "/ui/key"}]
    back = {"type": "hidden", "name": "next", "value": "/ui/arenas/chat?category=code"}
    assert ("input", back) in got.elements
    assert not got.table("board")
    # a wrong key is refused on the spot, with the reason, and nothing is kept
    wrong = await client.post("/ui/key", data={"key": "ak_nope.secret", "next": "/ui/stats"})
    assert wrong.status_code == 401 and "not valid" in parse(wrong.text).text
    assert ("input", {**back, "value": "/ui/stats"}) in parse(wrong.text).elements
    assert "set-cookie" not in wrong.headers
    # the right key: a session cookie (no Max-Age or Expires), HttpOnly, SameSite=Strict, Path=/
    kept = await client.post(
        "/ui/key", data={"key": token, "next": "/ui/arenas/chat?category=code"},
        follow_redirects=False,
    )  # fmt: skip
    assert kept.status_code == 303 and kept.headers["location"] == "/ui/arenas/chat?category=code"
    cookie = set_cookie(kept)
    parts = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert cookie.startswith(f"arbiter_key={token};") or cookie.startswith(f'arbiter_key="{token}"')
    assert {"httponly", "path", "samesite"} <= parts and not parts & {"max-age", "expires"}
    assert "samesite=strict" in cookie.lower() and "Path=/" in cookie
    # with the cookie every page and the live stream's auth answer; the JSON API does not take it
    assert client.cookies.get("arbiter_key")
    for url in ("/", "/ui/arenas/chat", "/ui/arenas/chat/head-to-head", "/ui/competitors/alpha"):
        await page(client, url)
    shown = await client.get("/ui/arenas/chat")
    assert set(shown.headers["cache-control"].split(", ")) == {"private", "no-cache"}
    assert (await client.get("/leaderboard?arena=chat")).status_code == 401
    assert (await client.get("/summary")).status_code == 401
    posted = await client.post("/events", json={"type": "battle.completed"})
    assert posted.status_code == 401  # no write rides on the cookie (CSRF)
    assert (await client.get("/leaderboard?arena=chat", headers=bearer(token))).status_code == 200
    # forgetting the key clears the cookie
    forgot = await client.post("/ui/key", data={"key": "", "next": "/"}, follow_redirects=False)
    assert forgot.status_code == 303 and "Max-Age=0" in set_cookie(forgot)
    await page(client, "/", 401)


async def test_key_form_refuses_other_origins_and_foreign_redirects(
    database_url: str, private_client: AsyncTestClient[Any]
) -> None:
    _, token = keys.create(database_url, "reader", ["read"])
    foreign = await private_client.post(
        "/ui/key", data={"key": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        kept = await private_client.post(
            "/ui/key", data={"key": token, "next": target}, follow_redirects=False
        )
        assert kept.status_code == 303 and kept.headers["location"] == "/", target


async def test_a_private_experiments_trials_count_only_for_its_owner(
    database_url: str, private_client: AsyncTestClient[Any]
) -> None:
    owner_key, owner = keys.create(database_url, "owner", ["read", "publish"])
    _, other = keys.create(database_url, "other", ["read"])
    seed(
        database_url,
        [
            battle("b1", "alpha", "beta", arena="voice"),
            trial("t1", "secret", "alpha", arena="voice", source=f"key:{owner_key.key_id}"),
        ],
    )
    seen = {}
    for who, token in (("owner", owner), ("other", other)):
        private_client.cookies.set("arbiter_key", token)
        got = await page(private_client, "/")
        trials = got.by("arenas", "data-arena")["voice"].cells[5].value
        summary = (await private_client.get("/summary?arena=voice", headers=bearer(token))).json()
        assert int(trials) == summary["trials"]
        seen[who] = int(trials)
    assert seen == {"owner": 1, "other": 0}


async def test_static_files_load_without_a_key_and_nothing_comes_from_elsewhere(
    database_url: str, private_client: AsyncTestClient[Any]
) -> None:
    css = await private_client.get("/ui/static/app.css")
    for step, colour in enumerate(palette()):  # the heatmap's colour classes
        assert f".q{step} {{ fill: {colour}; }}" in css.text
    js = await private_client.get("/ui/static/app.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "EventSource" in js.text and "sortable" in js.text
    got = await page(private_client, "/", 401)
    linked = [a.get("src") or a.get("href") for t, a in got.elements if t in ("script", "link")]
    assert linked == ["/ui/static/app.css", "/ui/static/app.js"]


# -- charts (pure) ------------------------------------------------------------------------------


def test_charts_mark_every_datum_and_escape_every_name() -> None:
    drawn = parse(
        whiskers([Whisker("a<b", 1510.0, 1490.0, 1530.0), Whisker("c", 1490.0, None, None)])
    )
    assert [m["data-competitor"] for m in drawn.marks] == ["a<b", "c"]
    assert "<b" not in whiskers([Whisker("a<b", 1.0)]).replace("<b>", "")  # escaped
    assert len([e for e in drawn.elements if e[1].get("class") == "whisker"]) == 1  # c: none
    cells = parse(heatmap([[None, 0.75], [0.25, None]], ["x", '"y'], lambda v: f"{v:.0%}")).marks
    assert [(m["data-a"], m["data-b"], m.get("data-value")) for m in cells] == [
        ("x", "x", None), ("x", '"y', "0.75"), ('"y', "x", "0.25"), ('"y', '"y', None)
    ]  # fmt: skip
    series = [Series("(all)", "a", [(1.0, 1500.0), (2.0, 1510.0)]), Series("code", "a", [])]
    assert [m["data-series"] for m in parse(lines(series)).marks] == ["(all)"]
    assert nice_ticks(1481.0, 1533.0, 5) == [1490.0, 1500.0, 1510.0, 1520.0, 1530.0]
    for svg in (whiskers([]), lines([]), heatmap([], [], str)):
        assert 'viewBox="' in svg and not parse(svg).marks


def test_the_live_boards_stream_takes_the_page_cookie_over_http(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board page's EventSource sends the cookie, not a header: the stream must take it
    (and, over a real server, the page must point at it)."""
    monkeypatch.setenv("ARBITER_AUTH", "on")
    monkeypatch.setenv("ARBITER_PUBLIC_READS", "false")
    seed(database_url, arena_events())
    _, token = keys.create(database_url, "reader", ["read"])
    with running_api(database_url, None) as base, httpx.Client(base_url=base, timeout=10) as web:
        assert web.get("/ui/arenas/chat").status_code == 401
        assert web.post("/ui/key", data={"key": token}).status_code == 303
        live = [a["data-live"] for t, a in parse(web.get("/ui/arenas/chat").text).elements
                if t == "table" and "data-live" in a]  # fmt: skip
        assert live == ["/leaderboard/stream?arena=chat&category=&limit=100"]
        with web.stream("GET", live[0]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    break
        body = json.loads(lines[-1].split(":", 1)[1])
        expected = web.get("/leaderboard?arena=chat&limit=100", headers=bearer(token)).json()
        assert body["rows"] == expected["rows"]
        web.cookies.clear()
        assert web.get(live[0]).status_code == 401  # no cookie, no header: no stream


async def test_head_to_head_page_follows_the_log(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """The maps are kept per ratings position: a new result (a new position) is drawn at once."""
    seed(database_url, arena_events())

    def count(got: Page, a: str, b: str) -> str | None:
        cells = [m for m in got.marks if m["tag"] == "rect"]
        counts = cells[len(cells) // 2 :]
        return next(m.get("data-value") for m in counts if (m["data-a"], m["data-b"]) == (a, b))

    before = await page(client, "/ui/arenas/chat/head-to-head")
    again = await page(client, "/ui/arenas/chat/head-to-head")
    # b1, b6 and the game g1 (b5 is voided)
    assert count(before, "alpha", "beta") == count(again, "alpha", "beta") == "3"
    seed(database_url, [battle("b7", "beta", "alpha", arena="chat", at=60 * 24 * 4)])
    after = await page(client, "/ui/arenas/chat/head-to-head")
    assert count(after, "alpha", "beta") == "4"
    body = (await client.get("/head-to-head?arena=chat&competitor=alpha")).json()
    assert [r["games"] for r in body["rows"] if r["opponent"] == "beta"] == [4]


async def test_head_to_head_page_follows_a_rebuild_at_the_same_position(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """A rebuild swaps in a fresh ratings model that can end at the position the old one was
    at: the maps drawn from the old model are not shown for the new one."""
    import psycopg
    from arbiter.projections import PROJECTIONS
    from arbiter.services.processes.rebuild import rebuild

    seed(database_url, arena_events())
    with psycopg.connect(database_url, autocommit=True) as conn:  # a model gone wrong
        conn.execute("UPDATE arbiter_ratings.pairs SET x_wins = x_wins + 40 WHERE arena = 'chat'")
    wrong = await page(client, "/ui/arenas/chat/head-to-head")
    cells = [m for m in wrong.marks if m["tag"] == "rect"]
    wrong_counts = {
        (m["data-a"], m["data-b"]): m.get("data-value") for m in cells[len(cells) // 2 :]
    }
    assert wrong_counts[("alpha", "beta")] != "3"
    rebuild(database_url, PROJECTIONS["ratings"])  # same log, same position, new generation
    right = await page(client, "/ui/arenas/chat/head-to-head")
    cells = [m for m in right.marks if m["tag"] == "rect"]
    counts = {(m["data-a"], m["data-b"]): m.get("data-value") for m in cells[len(cells) // 2 :]}
    assert counts[("alpha", "beta")] == "3"
