"""The HTTP API against a real PostgreSQL and a real nats-server (no mocks).

The read model is seeded the way production fills it: events appended to the log, then folded by
the projector.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from arbiter.adapters.bus import STREAM, connect
from arbiter.adapters.embedded import EmbeddedNats
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import BattleCompleted, CompetitorRegistered, Event
from arbiter.projections import PROJECTIONS
from arbiter.services.api import create_app
from arbiter.services.processes.projector import Projector
from litestar.testing import AsyncTestClient

from .helpers import running_api

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def battle(i: int, a: str, b: str, outcome: str | None = "a", **kw: Any) -> BattleCompleted:
    return BattleCompleted(
        event_id=f"ev-{i}",
        occurred_at=T0 + timedelta(minutes=i),
        battle_id=f"battle-{i}",
        a=a,
        b=b,
        outcome=outcome,  # type: ignore[arg-type]
        **kw,
    )


def registered(i: int, competitor: str, **kw: Any) -> CompetitorRegistered:
    return CompetitorRegistered(
        event_id=f"ev-{i}", occurred_at=T0 + timedelta(minutes=i), competitor=competitor, **kw
    )


def append(database_url: str, events: Iterable[Event]) -> None:
    log = EventLog(database_url)
    try:
        outcome = log.append(list(events))
        assert not outcome.rejected, outcome.rejected
    finally:
        log.close()


def fold(database_url: str) -> int:
    projector = Projector(database_url, PROJECTIONS["ratings"])
    try:
        return projector.catch_up()
    finally:
        projector.close()


def seed(database_url: str, events: Iterable[Event]) -> None:
    append(database_url, events)
    fold(database_url)


def index(database_url: str) -> None:
    """Fold the results projection, which keeps the log's index ``/events`` reads."""
    projector = Projector(database_url, PROJECTIONS["results"])
    try:
        projector.catch_up()
    finally:
        projector.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wire(**fields: Any) -> bytes:
    event = {
        "type": "battle.completed",
        "event_id": "post-1",
        "occurred_at": "2025-01-01T00:00:00Z",
        "battle_id": "pb-1",
        "a": "x",
        "b": "y",
        "outcome": "a",
    }
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


async def stream_messages(nats_url: str) -> int:
    from nats.js.errors import NotFoundError

    nc = await connect(nats_url, max_reconnect_attempts=1)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    except NotFoundError:
        return 0
    finally:
        await nc.close()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    """A client for an API without NATS (reads only)."""
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


@pytest.fixture
async def nats_client(database_url: str, nats_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, nats_url)) as c:
        yield c


# -- leaderboard --------------------------------------------------------------------------------


async def test_leaderboard_after_one_battle(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [registered(1, "a", name="Alpha", provider="acme"), battle(2, "a", "b", "a")],
    )
    r = await client.get("/leaderboard")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("arena", "category", "total", "limit", "offset", "position")} == {
        "arena": "default",
        "category": "",
        "total": 2,
        "limit": 100,
        "offset": 0,
        "position": 2,
    }
    legacy = ("rank", "competitor", "name", "provider", "rating", "games", "wins", "losses")
    legacy += ("ties", "win_rate")  # the averages added later are tested in test_api_boards.py
    assert [{k: row[k] for k in legacy} for row in body["rows"]] == [
        {
            "rank": 1,
            "competitor": "a",
            "name": "Alpha",
            "provider": "acme",
            "rating": 1516.0,
            "games": 1,
            "wins": 1,
            "losses": 0,
            "ties": 0,
            "win_rate": 1.0,
        },
        {
            "rank": 2,
            "competitor": "b",
            "name": None,
            "provider": None,
            "rating": 1484.0,
            "games": 1,
            "wins": 0,
            "losses": 1,
            "ties": 0,
            "win_rate": 0.0,
        },
    ]


async def test_leaderboard_pools_paging_and_ties(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(
        database_url,
        [
            battle(1, "a", "b", "a", category="math"),
            battle(2, "c", "d", "tie"),  # c and d stay level at 1500: ordered by id
            battle(3, "e", "f", None),  # awaiting votes: moves nothing, rates nobody
        ],
    )
    board = (await client.get("/leaderboard")).json()
    assert [(r["rank"], r["competitor"], r["rating"]) for r in board["rows"]] == [
        (1, "a", 1516.0),
        (2, "c", 1500.0),
        (3, "d", 1500.0),
        (4, "b", 1484.0),
    ]
    assert board["rows"][1]["ties"] == 1 and board["rows"][1]["win_rate"] == 0.0

    page = (await client.get("/leaderboard", params={"limit": 2, "offset": 1})).json()
    assert [(r["rank"], r["competitor"]) for r in page["rows"]] == [(2, "c"), (3, "d")]
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 1

    math = (await client.get("/leaderboard", params={"category": "math"})).json()
    assert math["category"] == "math" and math["total"] == 2
    assert [(r["competitor"], r["rating"]) for r in math["rows"]] == [("a", 1516.0), ("b", 1484.0)]

    empty = (await client.get("/leaderboard", params={"arena": "nowhere"})).json()
    assert empty["total"] == 0 and empty["rows"] == [] and empty["position"] == 3

    beyond = (await client.get("/leaderboard", params={"offset": 50})).json()
    assert beyond["total"] == 4 and beyond["rows"] == []


# -- competitors --------------------------------------------------------------------------------


async def test_competitors_list_and_detail(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [
            registered(1, "a", name="Alpha", provider="acme", meta={"size": "7b"}),
            battle(2, "a", "b", "a", category="math"),
            battle(3, "c", "a", "b"),
        ],
    )
    listing = (await client.get("/competitors")).json()
    assert listing["total"] == 3 and listing["position"] == 3
    assert [c["competitor"] for c in listing["competitors"]] == ["a", "b", "c"]
    first = listing["competitors"][0]
    assert first == {
        "competitor": "a",
        "name": "Alpha",
        "provider": "acme",
        "meta": {"size": "7b"},
        "registered": True,
        "first_position": 1,
        "last_position": 1,
        "retired": False,
        "retired_reason": None,
        "status": "testing",
        "rated_results": 2,
    }
    assert listing["competitors"][1]["registered"] is False
    page = (await client.get("/competitors", params={"limit": 1, "offset": 2})).json()
    assert [c["competitor"] for c in page["competitors"]] == ["c"] and page["total"] == 3

    detail = (await client.get("/competitors/a")).json()
    assert detail["competitor"] == "a" and detail["name"] == "Alpha" and detail["position"] == 3
    pools = {(s["arena"], s["category"]): s for s in detail["standings"]}
    assert set(pools) == {("default", ""), ("default", "math")}
    overall = pools[("default", "")]
    assert overall["rank"] == 1 and overall["games"] == 2 and overall["wins"] == 2
    assert overall["win_rate"] == 1.0 and overall["last_position"] == 3
    assert pools[("default", "math")]["rating"] == 1516.0

    # b lost its only battle: last in the arena-wide pool, behind c (1484.7...) too.
    b_detail = (await client.get("/competitors/b")).json()
    ranks = {(s["arena"], s["category"]): s["rank"] for s in b_detail["standings"]}
    board = (await client.get("/leaderboard")).json()["rows"]
    assert ranks[("default", "")] == next(r["rank"] for r in board if r["competitor"] == "b")
    assert ranks[("default", "math")] == 2

    body = assert_error(await client.get("/competitors/nobody"), 404, "not_found")
    assert "nobody" in body["message"]


async def test_history(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [battle(1, "a", "b", "a", category="math"), battle(2, "b", "a", "tie")],
    )
    r = await client.get("/competitors/a/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["competitor"] == "a" and body["total"] == 3 and body["position"] == 2
    entries = body["history"]
    assert [(e["position"], e["category"]) for e in entries] == [(1, ""), (1, "math"), (2, "")]
    first = entries[0]
    assert first == {
        "position": 1,
        "event_id": "ev-1",
        "occurred_at": "2025-01-01T00:01:00Z",
        "arena": "default",
        "category": "",
        "opponent": "b",
        "score": 1.0,
        "expected": 0.5,
        "k": 32.0,
        "rating_before": 1500.0,
        "rating_after": 1516.0,
        "delta": 16.0,
        "kind": "battle",
        "games": 1,
        "wins": 1,
        "losses": 0,
        "ties": 0,
    }
    tie = entries[2]
    assert tie["opponent"] == "b" and tie["score"] == 0.5
    assert tie["delta"] == pytest.approx(tie["rating_after"] - tie["rating_before"])
    assert tie["delta"] < 0  # a was ahead, so a tie costs it

    math = (await client.get("/competitors/a/history", params={"category": "math"})).json()
    assert [e["position"] for e in math["history"]] == [1] and math["total"] == 1
    overall = (
        await client.get(
            "/competitors/a/history",
            params={"arena": "default", "category": "", "limit": 1, "offset": 1},
        )
    ).json()
    assert [e["position"] for e in overall["history"]] == [2] and overall["total"] == 2
    other = (await client.get("/competitors/a/history", params={"arena": "other"})).json()
    assert other["history"] == [] and other["total"] == 0

    assert_error(await client.get("/competitors/nobody/history"), 404, "not_found")


# -- the log ------------------------------------------------------------------------------------


async def test_events_paging_and_lookup(database_url: str, client: AsyncTestClient) -> None:
    events: list[Event] = [registered(0, "a", name="Alpha")]
    events += [battle(i, "a", "b", "a") for i in range(1, 8)]
    append(database_url, events)
    index(database_url)

    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await client.get("/events", params={"after": after, "limit": 3})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["head"] == 8 and page["after"] == after
        if not page["events"]:
            assert page["next_after"] == after
            break
        seen += page["events"]
        after = page["next_after"]
        assert after == page["events"][-1]["position"]
    assert [e["position"] for e in seen] == list(range(1, 9))
    assert [e["event"]["event_id"] for e in seen] == [f"ev-{i}" for i in range(8)]
    assert seen[0]["event"] == {
        "type": "competitor.registered",
        "event_id": "ev-0",
        "occurred_at": "2025-01-01T00:00:00Z",
        "source": None,
        "arena": "default",
        "category": None,
        "competitor": "a",
        "name": "Alpha",
        "provider": None,
        "meta": {},
    }
    assert datetime.fromisoformat(seen[0]["recorded_at"]).tzinfo is not None

    one = (await client.get("/events/ev-5")).json()
    assert one["position"] == 6 and one["event"]["battle_id"] == "battle-5"
    assert one["event"]["type"] == "battle.completed" and one["event"]["outcome"] == "a"
    body = assert_error(await client.get("/events/ev-404"), 404, "not_found")
    assert "ev-404" in body["message"]


async def test_events_type_filter_pages_through_the_index(
    database_url: str, client: AsyncTestClient
) -> None:
    events: list[Event] = []
    for i in range(1, 31):
        if i % 4 == 0:
            # Its meta holds "type": "battle.completed": the index knows its real type.
            events.append(registered(i, f"c{i}", meta={"type": "battle.completed"}))
        else:
            events.append(battle(i, f"c{i}", "z", "a"))
    append(database_url, events)
    index(database_url)
    expected = [i for i in range(1, 31) if i % 4]

    first = (await client.get("/events", params={"type": "battle.completed"})).json()
    assert [e["position"] for e in first["events"]] == expected
    assert first["type"] == "battle.completed" and first["next_after"] == 30
    assert first["total"] == len(expected) and first["indexed"] == first["head"] == 30

    regs = (await client.get("/events", params={"type": "competitor.registered"})).json()
    assert [e["position"] for e in regs["events"]] == [4, 8, 12, 16, 20, 24, 28]

    # Pages are full (the index holds only matches), and never skip or repeat.
    got: list[int] = []
    after = 0
    while after < 30:
        params = {"type": "battle.completed", "after": after, "limit": 4}
        page = (await client.get("/events", params=params)).json()
        assert len(page["events"]) == min(4, len([i for i in expected if i > after]))
        assert page["total"] == len([i for i in expected if i > after])
        got += [e["position"] for e in page["events"]]
        assert page["next_after"] > after
        after = page["next_after"]
    assert got == expected

    assert (await client.get("/events", params={"type": "battle.completed", "after": 30})).json()[
        "next_after"
    ] == 30
    body = assert_error(await client.get("/events", params={"type": "nope"}), 400, "bad_parameter")
    assert body["field"] == "type"


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/leaderboard?limit=-1", "limit"),
        ("/leaderboard?limit=abc", "limit"),
        ("/leaderboard?limit=0", "limit"),
        ("/leaderboard?limit=1001", "limit"),
        ("/leaderboard?offset=-1", "offset"),
        ("/leaderboard?offset=1.5", "offset"),
        ("/leaderboard?arena=", "arena"),
        ("/competitors?limit=x", "limit"),
        ("/competitors/a/history?limit=5000", "limit"),
        ("/events?after=-1", "after"),
        ("/events?limit=99999999999999999999999", "limit"),
    ],
)
async def test_bad_query_parameters_are_400(client: AsyncTestClient, path: str, field: str) -> None:
    body = assert_error(await client.get(path), 400, "bad_parameter")
    assert body["field"] == field and f"`{field}`" in body["message"]


async def test_unknown_routes_and_methods_are_json(client: AsyncTestClient) -> None:
    assert_error(await client.get("/nope"), 404, "not_found")
    assert_error(await client.get("/competitors/a/b/c"), 404, "not_found")
    assert_error(await client.delete("/leaderboard"), 405, "method_not_allowed")


async def test_a_bug_is_a_json_500(database_url: str, client: AsyncTestClient) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE arbiter_ratings.competitors CASCADE")
    body = assert_error(await client.get("/competitors"), 500, "internal")
    assert "competitors" not in body["message"]  # no internals leak


async def test_database_down_is_503() -> None:
    url = f"postgresql://arbiter@127.0.0.1:{closed_port()}/arbiter?connect_timeout=1"
    app = create_app(url, None, pool_timeout=0.5)
    async with AsyncTestClient(app=app) as c:
        r = await c.get("/health")
        assert r.status_code == 503
        health = r.json()
        assert health["status"] == "degraded" and health["database"]["ok"] is False
        assert health["database"]["error"]
        assert health["projections"] == []
        r = await c.get("/leaderboard")
        assert_error(r, 503, "unavailable")
        assert r.headers.get("retry-after") == "1"
        assert_error(await c.get("/events/x"), 503, "unavailable")


# -- health and OpenAPI -------------------------------------------------------------------------


async def test_health_reports_projection_lag(
    database_url: str, nats_client: AsyncTestClient
) -> None:
    seed(database_url, [battle(i, "a", "b") for i in range(1, 4)])
    append(database_url, [battle(i, "a", "b") for i in range(4, 6)])  # recorded, not folded
    r = await nats_client.get("/health")
    assert r.status_code == 200, r.text
    health = r.json()
    assert health["status"] == "ok"
    assert health["database"] == {"ok": True} and health["nats"] == {"ok": True}
    by_name = {p["name"]: p for p in health["projections"]}
    assert set(by_name) == {"ratings", "results"}
    ratings = by_name["ratings"]
    assert (ratings["position"], ratings["head"], ratings["lag_events"]) == (3, 5, 2)
    assert datetime.fromisoformat(ratings["updated_at"]).tzinfo is not None
    fold(database_url)
    caught_up = next(
        p
        for p in (await nats_client.get("/health")).json()["projections"]
        if p["name"] == "ratings"
    )
    assert caught_up["lag_events"] == 0 and caught_up["position"] == 5


async def test_health_without_nats_is_degraded_but_200(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "degraded" and health["database"]["ok"] is True
    assert health["nats"]["ok"] is False and "not configured" in health["nats"]["error"]
    assert health["projections"][0]["lag_events"] == 0


async def test_openapi_documents_the_routes(client: AsyncTestClient) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    for path in (
        "/health",
        "/leaderboard",
        "/competitors",
        "/competitors/{competitor_id}",
        "/competitors/{competitor_id}/history",
        "/events",
        "/events/{event_id}",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for name in ("Leaderboard", "LeaderboardRow", "History", "EventPage", "ErrorBody", "Health"):
        assert name in schemas, name
    post = spec["paths"]["/events"]["post"]
    assert set(post["responses"]) >= {"202", "400", "413", "503"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["discriminator"]
    bad = spec["paths"]["/leaderboard"]["get"]["responses"]["400"]
    assert bad["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


# -- POST /events -------------------------------------------------------------------------------


async def test_post_event_publishes_to_the_stream(
    nats_url: str, nats_client: AsyncTestClient
) -> None:
    r = await nats_client.post(
        "/events", content=wire(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"event_id": "post-1", "stream_seq": 1, "duplicate": False}
    # A retry of the same event inside JetStream's window is acknowledged as a duplicate.
    again = await nats_client.post("/events", content=wire())
    assert again.status_code == 202
    assert again.json() == {"event_id": "post-1", "stream_seq": 1, "duplicate": True}
    second = await nats_client.post("/events", content=wire(event_id="post-2", battle_id="pb-2"))
    assert second.json()["stream_seq"] == 2
    assert await stream_messages(nats_url) == 2

    # The stream deleted under a connected publisher: it is recreated and the event published.
    nc = await connect(nats_url)
    try:
        await nc.jetstream().delete_stream(STREAM)
    finally:
        await nc.close()
    third = await nats_client.post("/events", content=wire(event_id="post-3", battle_id="pb-3"))
    assert third.status_code == 202, third.text
    assert third.json()["stream_seq"] == 1
    assert await stream_messages(nats_url) == 1


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (wire(b="x"), "same_competitor", "b"),
        (b'{"type": "battle.completed", "event_id": ', "malformed_json", None),
        (b"", "malformed_json", None),
        (wire(type="battle.finished"), "unknown_type", "type"),
        (wire(a=...), "missing_field", "a"),
        (wire(outcom="a"), "unknown_field", "outcom"),
        (wire(outcome="win"), "unknown_outcome", "outcome"),
        (wire(occurred_at="2025-01-01T00:00:00"), "invalid_timestamp", "occurred_at"),
        (b"[1, 2]", "not_an_object", None),
    ],
)
async def test_post_invalid_event_is_400_and_not_published(
    nats_url: str, nats_client: AsyncTestClient, body: bytes, code: str, field: str | None
) -> None:
    r = await nats_client.post("/events", content=body)
    err = assert_error(r, 400, code)
    assert err.get("field") == field
    if code == "same_competitor":
        assert err["event_id"] == "post-1" and err["type"] == "battle.completed"
    assert await stream_messages(nats_url) == 0


async def test_post_too_large_is_413(nats_url: str, nats_client: AsyncTestClient) -> None:
    big = wire(meta={"blob": "x" * (64 * 1024)})
    assert_error(await nats_client.post("/events", content=big), 413, "too_large")
    # Exactly at the limit is still read (and here accepted).
    event = json.loads(wire())
    event["meta"] = {"blob": ""}
    pad = 64 * 1024 - len(json.dumps(event).encode())
    event["meta"]["blob"] = "x" * pad
    exact = json.dumps(event).encode()
    assert len(exact) == 64 * 1024
    r = await nats_client.post("/events", content=exact)
    assert r.status_code == 202, r.text
    assert await stream_messages(nats_url) == 1


async def test_post_without_nats_is_503(database_url: str) -> None:
    app = create_app(database_url, f"nats://127.0.0.1:{closed_port()}", nats_timeout=0.5)
    async with AsyncTestClient(app=app) as c:
        assert_error(await c.post("/events", content=wire()), 503, "unavailable")
        # Validation still runs first: a bad event is a 400 even with NATS down.
        assert_error(await c.post("/events", content=wire(b="x")), 400, "same_competitor")
        health = await c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["nats"]["ok"] is False
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        assert_error(await c.post("/events", content=wire()), 503, "unavailable")


async def test_post_survives_a_nats_restart(database_url: str, tmp_path: Path) -> None:
    """A private nats-server: stopped, POST is a fast 503; back, the same publisher recovers."""
    server = EmbeddedNats(tmp_path / "nats")
    url = server.start()
    try:
        async with AsyncTestClient(app=create_app(database_url, url)) as c:
            first = await c.post("/events", content=wire())
            assert first.status_code == 202, first.text
            server.stop()
            started = time.monotonic()
            down = await c.post("/events", content=wire(event_id="post-2", battle_id="pb-2"))
            assert_error(down, 503, "unavailable")
            assert time.monotonic() - started < 5
            health = (await c.get("/health")).json()
            assert health["status"] == "degraded" and health["nats"]["ok"] is False
            server.start()  # same port, same store
            deadline = time.monotonic() + 20
            while True:
                again = await c.post("/events", content=wire(event_id="post-2", battle_id="pb-2"))
                if again.status_code == 202 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert again.status_code == 202, again.text
            assert again.json()["stream_seq"] == 2 and again.json()["duplicate"] is False
            assert (await c.get("/health")).json()["nats"] == {"ok": True}
    finally:
        server.stop()


# -- serving ------------------------------------------------------------------------------------


def test_make_server_serves_over_http(database_url: str) -> None:
    with running_api(database_url, None) as base:
        r = httpx.get(f"{base}/leaderboard", timeout=10)
        assert r.status_code == 200 and r.json()["rows"] == []
        assert httpx.get(f"{base}/nope", timeout=10).json()["code"] == "not_found"
