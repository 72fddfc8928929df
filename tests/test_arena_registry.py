"""The registry is per arena (issue 13 point 7), against real PostgreSQL and the real folds.

Presence and status are per arena: ``/competitors?arena=X`` lists only the competitors
registered in X (``competitor.registered`` with ``arena`` X) or seen in X's results, with their
status there; without ``arena`` the global registry. A competitor registered in an arena and
never played is on its Elo leaderboard at the arena's initial rating (as configured at the
board's position), 0 games, provisional; placement asks for a competitor's presence in the arena.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.domain.events import CompetitorRegistered
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import T0, assert_error, battle, configured, game, retired, seed, void


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _reg(competitor: str, arena: str) -> CompetitorRegistered:
    return CompetitorRegistered(
        event_id=f"ev-reg-{competitor}-{arena}", occurred_at=T0, competitor=competitor, arena=arena
    )


def _eight_and_many() -> list[Any]:
    """Arena ``snake``: 8 registered competitors, 3 of them played; arena ``other``: 60 more
    registered, some played there."""
    events: list[Any] = [_reg(f"s{i}", "snake") for i in range(8)]
    events += [_reg(f"o{i}", "other") for i in range(60)]
    events += [battle("sb1", "s0", "s1", "a", arena="snake")]
    events += [game("sg1", ("s2", 1), ("s0", 2), arena="snake")]
    events += [battle(f"ob{i}", f"o{i}", f"o{i + 1}", "b", arena="other") for i in range(5)]
    # s0 also played in `other` (without a registration there): seen there.
    events += [battle("ob-x", "s0", "o0", "tie", arena="other")]
    return events


async def test_competitors_of_an_arena_are_its_members_with_their_status_there(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _eight_and_many())
    body = (await client.get("/competitors", params={"arena": "snake", "limit": 1000})).json()
    assert body["arena"] == "snake" and body["total"] == 8
    rows = {r["competitor"]: r for r in body["competitors"]}
    assert set(rows) == {f"s{i}" for i in range(8)}
    assert rows["s0"]["rated_results"] == 2 and rows["s0"]["status"] == "testing"
    assert rows["s3"]["rated_results"] == 0 and rows["s3"]["status"] == "untested"
    assert all(r["registered"] for r in rows.values())

    untested = (
        await client.get("/competitors", params={"arena": "snake", "status": "untested"})
    ).json()
    assert {r["competitor"] for r in untested["competitors"]} == {f"s{i}" for i in range(3, 8)}
    assert untested["total"] == 5  # not 66: the other arena's competitors are not in snake

    other = (await client.get("/competitors", params={"arena": "other", "limit": 1000})).json()
    assert other["total"] == 61  # 60 registered there, and s0 seen there
    s0 = next(r for r in other["competitors"] if r["competitor"] == "s0")
    assert s0["registered"] is False and s0["rated_results"] == 1

    # Without arena: the global registry, each at its most advanced status in any arena.
    everyone = (await client.get("/competitors", params={"limit": 1000})).json()
    assert everyone["arena"] is None and everyone["total"] == 68
    nowhere = (await client.get("/competitors", params={"status": "untested"})).json()
    assert nowhere["total"] == 68 - 3 - 6  # s0, s1, s2 and o0..o5 have rated results

    assert (await client.get("/competitors", params={"arena": "nowhere"})).json()["total"] == 0


async def test_registered_never_played_competitors_are_on_the_elo_board(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, [configured("cfg", arena="snake", initial=1000.0), *_eight_and_many()])
    board = (await client.get("/leaderboard", params={"arena": "snake"})).json()
    assert board["total"] == 8
    rows = {r["competitor"]: r for r in board["rows"]}
    for i in range(3, 8):
        row = rows[f"s{i}"]
        assert row["rating"] == 1000.0 and row["games"] == 0 and row["provisional"] is True
    assert rows["s0"]["games"] == 2 and rows["s0"]["provisional"] is True
    ratings = [r["rating"] for r in board["rows"]]
    assert ratings == sorted(ratings, reverse=True)
    assert [r["rank"] for r in board["rows"]] == list(range(1, 9))

    # Seen only (s0 in `other`) is a standing, not an unplayed row; category pools list players.
    other = (await client.get("/leaderboard", params={"arena": "other", "limit": 100})).json()
    assert other["total"] == 61
    category = await client.get("/leaderboard", params={"arena": "snake", "category": "x"})
    assert category.json()["total"] == 0

    # Bradley-Terry estimates only from comparisons: the unplayed are not on it.
    bt = (await client.get("/leaderboard", params={"arena": "snake", "system": "bt"})).json()
    assert {r["competitor"] for r in bt["rows"]} == {"s0", "s1", "s2"}


async def test_unplayed_rows_follow_the_log_position(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    """As of a past position: only those registered by then, at the initial then in force; a
    competitor whose every result was voided is back at the initial rating."""
    seed(
        database_url,
        [
            configured("c1", arena="a", initial=1200.0),  # 1
            _reg("x", "a"),  # 2
            configured("c2", arena="a", initial=900.0),  # 3
            _reg("y", "a"),  # 4
            battle("b1", "x", "z", "a", arena="a"),  # 5
            void("v1", "b1"),  # 6
            retired("y"),  # 7
        ],
    )

    async def board(as_of: int | None) -> dict[str, tuple[float, int]]:
        params: dict[str, Any] = {"arena": "a"}
        if as_of is not None:
            params["as_of"] = as_of
        body = (await client.get("/leaderboard", params=params)).json()
        return {r["competitor"]: (r["rating"], r["games"]) for r in body["rows"]}

    assert await board(1) == {}
    assert await board(2) == {"x": (1200.0, 0)}
    assert await board(3) == {"x": (900.0, 0)}
    at5 = await board(5)
    assert at5["y"] == (900.0, 0) and at5["x"][1] == 1 and at5["x"][0] > 900.0
    assert "z" in at5
    # After the void neither x nor z has a standing; x is registered (back at the initial),
    # z was only seen there. Retired y stays listed.
    assert await board(None) == {"x": (900.0, 0), "y": (900.0, 0)}


async def test_placement_needs_the_competitor_in_the_arena(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _eight_and_many())
    placed = await client.get("/matchmaking/next", params={"competitor": "s5", "arena": "snake"})
    assert placed.status_code == 200, placed.text
    assert placed.json()["status"] == "untested"
    assert placed.json()["proposal"]["opponent"] in {"s0", "s1", "s2"}
    elsewhere = await client.get("/matchmaking/next", params={"competitor": "s5", "arena": "other"})
    body = assert_error(elsewhere, 404, "not_found")
    assert "arena 'other'" in body["message"]
    # Seen in a result of the arena is presence enough: s0 played in `other`.
    seen = await client.get("/matchmaking/next", params={"competitor": "s0", "arena": "other"})
    assert seen.status_code == 200 and seen.json()["status"] == "testing"
