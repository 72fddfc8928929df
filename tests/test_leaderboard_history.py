"""``GET /leaderboard/history`` against real PostgreSQL: every competitor's Elo rating per UTC
day of a pool, voids included, its window and its bounds. Ratings are computed here from the
Elo formula."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arbiter.domain.elo import expected_score
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import assert_error, battle, seed, void


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def elo(a: float, b: float, score_a: float) -> tuple[float, float]:
    delta = 32.0 * (score_a - expected_score(a, b, 400.0, 10.0))
    return a + delta, b - delta


def day(d: int, hour: int = 12) -> datetime:
    return datetime(2025, 1, d, hour, tzinfo=UTC)


def points(series: dict[str, Any]) -> list[tuple[str, Any, int, int]]:
    return [(p["day"], p["rating"], p["games"], p["position"]) for p in series["days"]]


async def test_daily_ratings_with_a_void(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [
            battle("b1", "a", "b", "a", at=day(1, 10)),
            battle("b2", "a", "c", "a", at=day(1, 23)),
            battle("b3", "b", "a", "a", at=day(2, 9)),
            void("v1", "b1", at=day(3, 8)),
        ],
    )
    a1, b1 = elo(1500, 1500, 1)
    a2, c2 = elo(a1, 1500, 1)
    b3, a3 = elo(b1, a2, 1)
    # The void replays the pool without b1, on day 3: b2 then b3 from 1500 each.
    a4, c4 = elo(1500, 1500, 1)
    b4, a4 = elo(1500, a4, 1)
    r = await client.get("/leaderboard/history", params={"since": "2024-01-04"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["arena"], body["category"], body["system"]) == ("default", "", "elo")
    assert (body["since"], body["until"]) == ("2024-01-04", "2025-01-03")  # 365 days later
    assert (body["total"], body["limit"], body["offset"], body["position"]) == (3, 20, 0, 4)
    series = {s["competitor"]: s for s in body["series"]}
    assert [s["competitor"] for s in body["series"]] == ["b", "a", "c"]  # by rating now
    assert series["a"]["rating"] == pytest.approx(a4) and series["a"]["before"] is None
    assert points(series["a"]) == [
        ("2025-01-01", pytest.approx(a2), 2, 2),
        ("2025-01-02", pytest.approx(a3), 3, 3),
        ("2025-01-03", pytest.approx(a4), 2, 4),
    ]
    assert points(series["b"]) == [
        ("2025-01-01", pytest.approx(b1), 1, 1),
        ("2025-01-02", pytest.approx(b3), 2, 3),
        ("2025-01-03", pytest.approx(b4), 1, 4),
    ]
    assert points(series["c"]) == [
        ("2025-01-01", pytest.approx(c2), 1, 2),
        ("2025-01-03", pytest.approx(c4), 1, 4),
    ]

    window = await client.get(
        "/leaderboard/history", params={"since": "2025-01-02", "until": "2025-01-02"}
    )
    series = {s["competitor"]: s for s in window.json()["series"]}
    a_before = series["a"]["before"]
    assert (a_before["day"], a_before["rating"], a_before["position"]) == (
        "2025-01-01",
        pytest.approx(a2),
        2,
    )
    assert points(series["a"]) == [("2025-01-02", pytest.approx(a3), 3, 3)]
    assert points(series["c"]) == [] and series["c"]["before"]["position"] == 2

    # Without a window: the 366 days up to today; these results are older, so each line starts
    # at its `before` point, its last change, and stays flat.
    today = datetime.now(UTC).date()
    page = (await client.get("/leaderboard/history", params={"limit": 1, "offset": 1})).json()
    assert (page["since"], page["until"]) == (str(today - timedelta(days=365)), str(today))
    assert [s["competitor"] for s in page["series"]] == ["a"] and page["total"] == 3
    (a,) = page["series"]
    assert (a["before"]["day"], a["before"]["position"], a["days"]) == ("2025-01-03", 4, [])
    named = await client.get(
        "/leaderboard/history",
        params=[("competitor", "c"), ("competitor", "a"), ("since", "2025-01-01")],
    )
    assert [s["competitor"] for s in named.json()["series"]] == ["a", "c"]
    assert named.json()["total"] == 2


async def test_a_day_ends_with_its_last_change_in_log_order(
    database_url: str, client: AsyncTestClient
) -> None:
    """A result logged after a later-dated one still belongs to its own day; the day's point is
    the rating after the day's last change in log order."""
    seed(
        database_url,
        [
            battle("late1", "x", "y", "a", at=day(2)),
            battle("late2", "x", "y", "a", at=day(1)),
        ],
    )
    x1, y1 = elo(1500, 1500, 1)
    x2, _ = elo(x1, y1, 1)
    body = (await client.get("/leaderboard/history", params={"until": "2025-01-02"})).json()
    x = next(s for s in body["series"] if s["competitor"] == "x")
    assert points(x) == [
        ("2025-01-01", pytest.approx(x2), 2, 2),
        ("2025-01-02", pytest.approx(x1), 1, 1),
    ]


async def test_bounds_and_refusals(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, [battle("b1", "a", "b", "a", at=day(1))])
    empty = (await client.get("/leaderboard/history", params={"arena": "nowhere"})).json()
    assert (empty["total"], empty["series"]) == (0, [])
    year = {"since": "2024-01-01", "until": "2024-12-31"}  # 366 days (leap year)
    assert (await client.get("/leaderboard/history", params=year)).status_code == 200
    # With `since` only, the window ends today, or 365 days after `since`.
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    for since, until in (("2020-01-01", "2020-12-31"), (str(tomorrow), str(tomorrow))):
        body = (await client.get("/leaderboard/history", params={"since": since})).json()
        assert (body["since"], body["until"]) == (since, until)
    body = (await client.get("/leaderboard/history", params={"until": "2025-01-01"})).json()
    assert (body["since"], body["until"]) == ("2024-01-02", "2025-01-01")
    # The window stays within the calendar.
    body = (await client.get("/leaderboard/history", params={"until": "0001-01-05"})).json()
    assert (body["since"], body["until"]) == ("0001-01-01", "0001-01-05")
    body = (await client.get("/leaderboard/history", params={"since": "9999-12-30"})).json()
    assert (body["since"], body["until"]) == ("9999-12-30", "9999-12-30")
    for params in (
        {"since": "2024-01-01", "until": "2025-01-01"},  # 367 days
        {"since": "2025-01-02", "until": "2025-01-01"},
        {"since": "2025-13-01"},
        {"limit": 101},
        {"system": "bt"},
        {"model": "a"},
        [("competitor", f"c{i}") for i in range(101)],
    ):
        assert_error(await client.get("/leaderboard/history", params=params), 400, "bad_parameter")
    assert_error(
        await client.get("/leaderboard/history", params={"competitor": "zz"}), 404, "not_found"
    )
