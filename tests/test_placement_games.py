"""Placement counts games (seed 003, issue 13 point 1), against real PostgreSQL.

Seed 003 places a new model with ten *games*: each ``game.completed`` of a competitor in
placement is one placement result, scored by the ranks (win, tie, loss), and the walk moves up
after a win and down after a loss as it does for battles. Any game of the competitor counts,
with or without the proposed opponent (``arbiter.domain.placement`` says why). Expectations come
from the domain's :func:`next_opponent` on the results written out here, the ratings read back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.domain.placement import PLACEMENT_GAMES, game_result, next_opponent
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import battle, game, registered, seed, void


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def _ratings(client: AsyncTestClient[Any]) -> dict[str, float]:
    rows = (await client.get("/leaderboard", params={"limit": 100})).json()["rows"]
    return {r["competitor"]: r["rating"] for r in rows}


async def _next(client: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await client.get("/matchmaking/next", params={"competitor": "n"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _check(client: AsyncTestClient[Any], results: list[tuple[str, float]]) -> str:
    """The API's proposal is the domain's on these results; returns the proposed opponent."""
    body = await _next(client)
    assert body["placement_results"] == min(len(results), PLACEMENT_GAMES)
    expected = next_opponent("n", await _ratings(client), results[:PLACEMENT_GAMES])
    assert expected is not None
    assert body["proposal"]["opponent"] == expected.opponent
    assert body["proposal"]["placement_game"] == min(len(results), PLACEMENT_GAMES) + 1
    opponent: str = body["proposal"]["opponent"]
    return opponent


def _ladder() -> list[Any]:
    # p1 > p2 > ... > p9, each beat the next (and p1 beat p3, p3 beat p5 to spread them).
    events: list[Any] = [registered("n")]
    events += [battle(f"l{i}", f"p{i}", f"p{i + 1}", "a") for i in range(1, 9)]
    events += [battle("l9", "p1", "p3", "a"), battle("l10", "p3", "p5", "a")]
    return events


async def test_ten_placement_games_rank_the_competitor(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _ladder())
    first = await _next(client)
    assert first["status"] == "untested" and first["placement_results"] == 0
    ratings = await _ratings(client)
    median = first["proposal"]["opponent"]

    # A game won against the proposed (median) opponent: the walk goes up.
    seed(database_url, [game("g1", ("n", 1), (median, 2))])
    results = [(median, 1.0)]
    up = await _check(client, results)
    ratings = await _ratings(client)
    assert ratings[up] > ratings[median]
    assert (await _next(client))["status"] == "testing"

    # A game lost to it: the walk goes down, below the one it lost to.
    seed(database_url, [game("g2", ("n", 2), (up, 1))])
    results.append((up, 0.0))
    down = await _check(client, results)
    ratings = await _ratings(client)
    assert ratings[down] < ratings[up]

    # A tie (the same rank): half a point, the walk stays level.
    seed(database_url, [game("g3", ("n", 1), (down, 1))])
    results.append((down, 0.5))
    await _check(client, results)

    # A game without the proposed opponent counts too, against whom it played.
    proposed = (await _next(client))["proposal"]["opponent"]
    other = next(c for c in ("p1", "p9") if c != proposed)
    seed(database_url, [game("g4", (other, 2), ("n", 1))])
    results.append((other, 1.0))
    await _check(client, results)

    # A game of three is one result: the mean of its pairwise scores, against its neighbour.
    seed(database_url, [game("g5", ("p2", 1), ("n", 2), ("p8", 3))])
    results.append(("p2", 0.5))
    assert game_result("n", ["p2", "n", "p8"], [1, 2, 3]) == ("p2", 0.5)
    await _check(client, results)

    # The rest of the ten against the proposed opponents, alternating wins and losses.
    for g in range(6, PLACEMENT_GAMES + 1):
        opponent = (await _next(client))["proposal"]["opponent"]
        won = g % 2 == 0
        seed(database_url, [game(f"g{g}", ("n", 1 if won else 2), (opponent, 2 if won else 1))])
        results.append((opponent, 1.0 if won else 0.0))
        body = await _next(client)
        assert body["status"] == ("ranked" if g == PLACEMENT_GAMES else "testing")
        await _check(client, results)
    done = await _next(client)
    assert done["status"] == "ranked" and done["placement_results"] == PLACEMENT_GAMES
    assert "over" in done["proposal"]["reason"]

    # A voided game is out of the walk, as a voided battle is.
    seed(database_url, [void("vg1", "g1")])
    body = await _next(client)
    assert body["placement_results"] == PLACEMENT_GAMES - 1 and body["status"] == "testing"
    expected = next_opponent("n", await _ratings(client), results[1:])
    assert expected is not None and body["proposal"]["opponent"] == expected.opponent


async def test_battles_and_games_share_one_walk(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    seed(database_url, _ladder())
    median = (await _next(client))["proposal"]["opponent"]
    seed(database_url, [battle("b1", "n", median, "a")])
    up = await _check(client, [(median, 1.0)])
    seed(database_url, [game("g1", ("n", 2), (up, 1))])
    await _check(client, [(median, 1.0), (up, 0.0)])
