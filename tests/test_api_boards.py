"""The boards routes against real PostgreSQL: the extended leaderboard (averages, Bradley-Terry,
as_of), head-to-head, history series, registry status, matchmaking, summary and the live stream.

Events go through the store and both projectors; expectations are computed by hand (Elo from its
formula) or, for Bradley-Terry and placement, by the domain functions on counts written out here.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from arbiter.domain import bradley_terry as bt
from arbiter.domain.elo import expected_score
from arbiter.domain.placement import most_informative_pair, next_opponent
from arbiter.services.api import create_app
from arbiter.services.api.queries import bt_board
from arbiter.services.api.queries import bt_fits as api_queries
from arbiter.services.api.routes import leaderboard as api_boards
from litestar.testing import AsyncTestClient

from .api_events import (
    assert_error,
    battle,
    configured,
    game,
    registered,
    retired,
    score_vote,
    seed,
    trial,
    void,
    vote,
)
from .helpers import running_api


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def elo(a: float, b: float, score_a: float, k: float = 32.0) -> tuple[float, float]:
    delta = k * (score_a - expected_score(a, b, 400.0, 10.0))
    return a + delta, b - delta


def board(body: dict[str, Any]) -> list[tuple[str, float]]:
    return [(r["competitor"], r["rating"]) for r in body["rows"]]


# -- leaderboard: averages ----------------------------------------------------------------------


async def test_leaderboard_averages_win_rate_and_score_votes(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(
        database_url,
        [
            registered("a", name="Alpha", provider="acme"),
            battle(
                "b1",
                "a",
                "b",
                "a",
                metrics={
                    "a": {"wer": 0.1, "semascore": 0.9, "prosody_score": 0.7, "latency_ms": 300},
                    "b": {"wer": 0.3, "latency_ms": 500},
                },
            ),
            trial(
                "t1",
                "e1",
                "a",
                metrics={
                    "latency_ms": 100,
                    "cost_usd": 0.02,
                    "input_tokens": 10,
                    "output_tokens": 20,
                    "quality_score": 0.8,
                },
            ),
            trial("t2", "e1", "a", prompt=1, status="failed", metrics={"latency_ms": 9999}),
            score_vote("s1", "t1", 4, voter="u1"),
            score_vote("s2", "t1", 2, voter="u2"),
            score_vote("s3", "t1", 5, voter="u1"),  # replaces u1's 4
        ],
    )
    body = (await client.get("/leaderboard")).json()
    assert body["system"] == "elo" and body["as_of"] is None and body["bootstrap"] is None
    assert body["position"] == 7 and body["results_position"] == 7
    a, b = body["rows"]
    assert (a["rank"], a["competitor"], a["name"], a["rating"], a["win_rate"]) == (
        1,
        "a",
        "Alpha",
        1516.0,
        1.0,
    )
    assert (a["lower"], a["upper"]) == (None, None)
    # Battle side and completed trial averaged together; the failed trial's 9999 ms left out.
    assert a["latency_ms"] == pytest.approx(200.0)
    assert (a["wer"], a["semascore"], a["prosody"], a["quality"]) == (0.1, 0.9, 0.7, 0.8)
    assert (a["cost_usd"], a["input_tokens"], a["output_tokens"]) == (0.02, 10.0, 20.0)
    assert a["metrics"]["prosody_score"] == 0.7 and set(a["metrics"]) == {
        "wer",
        "semascore",
        "prosody_score",
        "latency_ms",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "quality_score",
    }
    assert a["avg_score"] == pytest.approx(3.5) and a["score_votes"] == 2  # (5 + 2) / 2
    assert (b["rating"], b["win_rate"], b["wer"], b["latency_ms"]) == (1484.0, 0.0, 0.3, 500.0)
    assert b["avg_score"] is None and b["score_votes"] == 0 and b["semascore"] is None

    # Voiding the trial takes its metrics and its score votes out of the averages.
    seed(database_url, [void("v1", "t1")])
    a = (await client.get("/leaderboard")).json()["rows"][0]
    assert a["latency_ms"] == 300.0 and a["cost_usd"] is None and a["quality"] is None
    assert a["avg_score"] is None and a["score_votes"] == 0 and a["rating"] == 1516.0


# -- leaderboard: voids and as_of ---------------------------------------------------------------


async def test_voided_battle_leaves_the_board_and_as_of_shows_earlier_boards(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(
        database_url,
        [
            battle("b1", "a", "b", "a", at=10),  # position 1
            battle("b2", "b", "c", "a", at=20),  # position 2
            void("v1", "b1", at=30),  # position 3
        ],
    )
    # Now: as if b1 never happened. b beat c from 1500 each; a has no rated result left.
    now = (await client.get("/leaderboard")).json()
    assert board(now) == [("b", 1516.0), ("c", 1484.0)] and now["total"] == 2

    at1 = (await client.get("/leaderboard", params={"as_of": 1})).json()
    assert at1["as_of"] == 1 and at1["position"] == 3 and at1["total"] == 2
    assert board(at1) == [("a", 1516.0), ("b", 1484.0)]

    b_after, c_after = elo(1484.0, 1500.0, 1.0)
    at2 = (await client.get("/leaderboard", params={"as_of": "2"})).json()
    assert [r["competitor"] for r in at2["rows"]] == ["a", "b", "c"]
    assert [r["rating"] for r in at2["rows"]] == pytest.approx([1516.0, b_after, c_after])
    assert [(r["games"], r["wins"], r["losses"]) for r in at2["rows"]] == [
        (1, 1, 0),
        (2, 1, 1),
        (1, 0, 1),
    ]
    # At the void, a's last row has no rating after it: a is off that board.
    at3 = (await client.get("/leaderboard", params={"as_of": 3})).json()
    assert board(at3) == board(now) and at3["total"] == 2
    # A position beyond the projection is capped at it.
    assert (await client.get("/leaderboard", params={"as_of": 99})).json()["as_of"] == 3

    # Times: producer time of the last change in the pool at or before it.
    at_time = (await client.get("/leaderboard", params={"as_of": "2025-01-01T00:15:00Z"})).json()
    assert at_time["as_of"] == 1 and board(at_time) == board(at1)
    offset = (
        await client.get("/leaderboard", params={"as_of": "2025-01-01T01:25:00+01:00"})
    ).json()
    assert offset["as_of"] == 2
    before = (await client.get("/leaderboard", params={"as_of": "2024-12-31T00:00:00Z"})).json()
    assert before["as_of"] == 0 and before["rows"] == [] and before["total"] == 0

    # Paging an earlier board.
    page = (await client.get("/leaderboard", params={"as_of": 2, "limit": 1, "offset": 1})).json()
    assert [(r["rank"], r["competitor"]) for r in page["rows"]] == [(2, "b")]
    assert page["total"] == 3

    # The history shows the void: no opponent, score or K, and a null rating after for a.
    hist = (await client.get("/competitors/a/history", params={"category": ""})).json()
    assert [(e["kind"], e["position"]) for e in hist["history"]] == [("battle", 1), ("void", 3)]
    voided = hist["history"][1]
    assert voided["event_id"] == "ev-v1" and voided["rating_before"] == 1516.0
    assert voided["rating_after"] is None and voided["delta"] is None
    assert voided["opponent"] is None and voided["score"] is None and voided["k"] is None
    assert (voided["games"], voided["wins"]) == (0, 0)
    b_hist = (await client.get("/competitors/b/history")).json()["history"]
    assert b_hist[-1]["kind"] == "void" and b_hist[-1]["rating_after"] == 1516.0
    assert b_hist[-1]["delta"] == pytest.approx(1516.0 - b_after)

    # The voided battle stays listed, marked.
    listed = (await client.get("/battles")).json()["battles"]
    assert [(x["battle_id"], x["voided_by"]) for x in listed] == [("b2", None), ("b1", "ev-v1")]


@pytest.fixture
def own_refit_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A refit process started for this test, which can import the test's module by name (the
    tests run with --import-mode=importlib: the repository is not on the path by default), and
    stopped after it, so the next refit starts a plain one."""

    def stop() -> None:
        if (process := api_queries._REFIT_PROCESS) is not None:
            process.shutdown()
        api_queries._REFIT_PROCESS = None

    stop()
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    api_queries.refit_process().submit(int).result(timeout=60)  # started and ready: no cold start
    yield
    stop()


@pytest.mark.usefixtures("own_refit_process")
async def test_a_stale_bradley_terry_fit_is_refitted_in_the_background(
    database_url: str, client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request waits for a fit while the log moves: past BT_REFRESH_S the previous fit
    answers at once (saying its position) while a refit runs; a refit that fails makes the
    next request fit itself, so a fit the pool no longer allows is not served on."""
    api_queries.clear_bt_cache()
    seed(database_url, [battle("b1", "a", "b", "a"), battle("b2", "b", "c", "a")])
    params = {"system": "bt", "anchor": "c:1000"}
    first = (await client.get("/leaderboard", params=params)).json()
    assert first["bootstrap"]["position"] == 2
    monkeypatch.setattr(api_queries, "BT_REFRESH_S", 0.0)
    real_fit = api_queries.fit_pairs
    monkeypatch.setattr(api_queries, "fit_pairs", _slow_fit_elsewhere)
    seed(database_url, [battle("b3", "c", "a", "a")])
    started = time.monotonic()
    stale = (await client.get("/leaderboard", params=params)).json()
    assert time.monotonic() - started < 0.9  # not the slow fit's time
    assert (stale["position"], stale["bootstrap"]["position"]) == (3, 2)
    # The refit ran in a process of its own (the slow fit raises in this one), and gave the
    # floats a fit on this process's threads gives.
    refitted = await _refitted(client, params, 3)
    assert refitted["bootstrap"]["battles"] == 3
    # No refit left running (each request past the window starts one), then a fit on this
    # process's thread, from nothing cached.
    monkeypatch.setattr(api_queries, "BT_REFRESH_S", 3600.0)
    deadline = time.monotonic() + 30  # (the refits are tasks of the app's own event loop)
    while api_queries._BT_REFITS:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    api_queries.clear_bt_cache()
    monkeypatch.setattr(api_queries, "fit_pairs", real_fit)
    # The default rounds spelt out: the same fit, but not the cached answer.
    here = (await client.get("/leaderboard", params={**params, "rounds": 100})).json()
    assert here["bootstrap"]["position"] == 3
    assert here == refitted
    monkeypatch.setattr(api_queries, "BT_REFRESH_S", 0.0)

    # c's battles voided: the anchor is refused now. The refit fails, and the next request
    # says why instead of serving the fit from before.
    seed(database_url, [void("v2", "b2"), void("v3", "b3")])
    deadline = time.monotonic() + 20
    while (answer := await client.get("/leaderboard", params=params)).status_code == 200:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert_error(answer, 400, "bad_parameter")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("as_of=abc", "as_of"),
        ("as_of=-1", "as_of"),
        ("as_of=2025-01-01", "as_of"),
        ("as_of=2025-01-01T00:00:00", "as_of"),  # no offset
        ("as_of=99999999999999999999999", "as_of"),
        ("system=glicko", "system"),
        ("system=bt&limit=0", "limit"),
    ],
)
async def test_leaderboard_bad_parameters_are_400(
    client: AsyncTestClient, query: str, field: str
) -> None:
    body = assert_error(await client.get(f"/leaderboard?{query}"), 400, "bad_parameter")
    assert body["field"] == field


# -- leaderboard: Bradley-Terry -----------------------------------------------------------------


def _bt_battles() -> list[Any]:
    outcomes = [("a", "b", "a")] * 3 + [("a", "b", "b")] + [("b", "c", "a")] * 2
    outcomes += [("b", "c", "b"), ("b", "c", "tie"), ("a", "c", "a"), ("c", "a", "a")]
    return [battle(f"b{i}", a, b, o, at=i) for i, (a, b, o) in enumerate(outcomes, start=1)]


async def test_bradley_terry_board(
    database_url: str, client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_queries.clear_bt_cache()
    seed(database_url, _bt_battles())
    body = (await client.get("/leaderboard", params={"system": "bt"})).json()
    assert body["system"] == "bt" and body["total"] == 3 and body["position"] == 10
    assert body["bootstrap"] == {
        "rounds": 100, "seed": 0, "level": 0.95, "battles": 10, "position": 10,
        "anchor": None, "control": None, "left_out": None,
    }  # fmt: skip

    # The same fit from the counts written out by hand: a-b 3:1, b-c 2:1 with a tie, a-c 1:1.
    counts = bt.PairCounts.from_rows(
        [("a", "b", 3, 1, 0), ("b", "c", 2, 1, 1), ("a", "c", 1, 1, 0)]
    )
    expected = bt.leaderboard(counts, rounds=100, seed=0)
    assert [r["competitor"] for r in body["rows"]] == list(expected.competitors)
    for row, rating, lower, upper, rank in zip(
        body["rows"], expected.rating, expected.lower, expected.upper, expected.rank, strict=True
    ):
        assert row["rating"] == pytest.approx(rating, abs=1e-9)
        assert (row["lower"], row["upper"], row["rank"]) == (
            pytest.approx(lower),
            pytest.approx(upper),
            rank,
        )
        assert row["lower"] <= row["rating"] <= row["upper"]
    assert sum(r["rating"] for r in body["rows"]) / 3 == pytest.approx(1500.0)
    assert body["rows"][0]["competitor"] == "a" and body["rows"][0]["games"] == 6
    assert body["rows"][0]["wins"] == 4 and body["rows"][0]["losses"] == 2

    # Cached per (pool, position): a second read is the same object's numbers.
    assert len(api_queries._BT_CACHE) == 1
    again = await client.get("/leaderboard", params={"system": "bt", "limit": 1, "offset": 1})
    assert again.json()["rows"][0] == body["rows"][1] and len(api_queries._BT_CACHE) == 1

    # Concurrent requests on a cold cache share one fit.
    api_queries.clear_bt_cache()
    fits: list[int] = []
    real_fit = api_queries.fit_pairs

    def counting_fit(*args: Any) -> Any:
        fits.append(1)
        time.sleep(0.2)  # in the worker thread: the other requests arrive meanwhile
        return real_fit(*args)

    monkeypatch.setattr(api_queries, "fit_pairs", counting_fit)
    # (Distinct limits: four different answers, so the response cache cannot serve them.)
    answers = await asyncio.gather(
        *(client.get("/leaderboard", params={"system": "bt", "limit": 3 + i}) for i in range(4))
    )
    assert [a.json()["rows"] for a in answers] == [body["rows"]] * 4 and len(fits) == 1
    # The refit below runs in the refit process: the real fit, which it can find by name.
    monkeypatch.setattr(api_queries, "fit_pairs", real_fit)

    # While the log moves, the live fit is reused for BT_REFRESH_S, and says which position it is.
    # After it, a refit starts in the background, the old fit serving until it lands.
    fitted_at = time.monotonic()
    seed(database_url, [battle("b99", "c", "a", "a")])
    first = await client.get("/leaderboard", params={"system": "bt"})
    reused = first.json()
    assert reused["position"] == 11 and reused["bootstrap"]["position"] == 10
    assert [r["rating"] for r in reused["rows"]] == [r["rating"] for r in body["rows"]]
    assert "etag" not in first.headers
    await asyncio.sleep(max(0.0, fitted_at + api_queries.BT_REFRESH_S - time.monotonic()) + 0.05)
    fresh = await _refitted(client, {"system": "bt"}, 11)
    assert fresh["bootstrap"]["battles"] == 11

    # The arena's scale, base and initial are used.
    seed(database_url, [configured("cfg", scale=200.0, initial=1000.0)])
    scaled = (await client.get("/leaderboard", params={"system": "bt"})).json()
    counts = bt.PairCounts.from_rows(  # with b99: c beat a once more
        [("a", "b", 3, 1, 0), ("b", "c", 2, 1, 1), ("a", "c", 1, 2, 0)]
    )
    expected = bt.leaderboard(counts, rounds=100, seed=0, scale=200.0, initial=1000.0)
    assert [r["rating"] for r in scaled["rows"]] == pytest.approx(list(expected.rating))


async def test_bradley_terry_as_of_rebuilds_the_counts(
    database_url: str, client: AsyncTestClient
) -> None:
    """as_of for BT rebuilds the pair counts from history (battles, votes, each pair of a game),
    skipping results voided by then: at the current position it equals the fit of the live
    pair counts; at an earlier one it equals the fit of the counts of that time."""
    events: list[Any] = _bt_battles()  # positions 1-10
    events += [
        game("g1", ("a", 2), ("b", 1), ("c", 2), at=11),  # b beats a and c, a ties c
        battle("p1", "a", "c", None, at=12),  # awaits votes: not rated
        vote("vt1", "p1", "b", at=13),  # c beats a
        vote("vt2", "p1", "tie", voter="u2", at=14),
        void("v1", "b1", at=15),  # one of a's wins over b
        void("v2", "p1", at=16),  # the battle, with its two votes
    ]
    seed(database_url, events)
    live = (await client.get("/leaderboard", params={"system": "bt"})).json()
    rebuilt = (await client.get("/leaderboard", params={"system": "bt", "as_of": 16})).json()
    assert rebuilt["as_of"] == 16
    assert [(r["competitor"], r["games"]) for r in rebuilt["rows"]] == [
        (r["competitor"], r["games"]) for r in live["rows"]
    ]
    assert [r["rating"] for r in rebuilt["rows"]] == pytest.approx(
        [r["rating"] for r in live["rows"]]
    )
    assert live["bootstrap"]["battles"] == 9 + 3  # 10 battles - 1 voided + the game's 3 pairs

    # Position 14: b1 and p1 not voided yet; the game and both votes count.
    at14 = (await client.get("/leaderboard", params={"system": "bt", "as_of": 14})).json()
    counts = bt.PairCounts.from_rows(
        [
            ("a", "b", 3, 1 + 1, 0),  # + the game
            ("b", "c", 2 + 1, 1, 1),  # + the game
            ("a", "c", 1, 1 + 1, 1 + 1),  # + c's vote win and the tie vote; + the game's tie
        ]
    )
    expected = bt.leaderboard(counts, rounds=100, seed=0)
    assert at14["bootstrap"]["battles"] == 15
    assert [r["competitor"] for r in at14["rows"]] == list(expected.competitors)
    assert [r["rating"] for r in at14["rows"]] == pytest.approx(list(expected.rating))
    assert [r["upper"] for r in at14["rows"]] == pytest.approx(list(expected.upper))


# -- head-to-head -------------------------------------------------------------------------------


async def test_head_to_head(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [
            configured("cfg", scale=200.0),
            battle("b1", "a", "b", "a"),
            battle("b2", "b", "a", "b"),
            battle("b3", "a", "b", "tie"),
            battle("b4", "b", "a", "a"),
            battle("b5", "c", "a", "a", category="math"),
            game("g1", ("b", 1), ("c", 2)),
            battle("b6", "c", "d", "a"),
            void("v1", "b6"),
        ],
    )
    ratings = {
        r["competitor"]: r["rating"] for r in (await client.get("/leaderboard")).json()["rows"]
    }
    body = (await client.get("/head-to-head")).json()
    assert body["total"] == 3 and body["competitor"] is None and body["position"] == 9
    rows = {(r["competitor"], r["opponent"]): r for r in body["rows"]}
    assert list(rows) == [("a", "b"), ("a", "c"), ("b", "c")]  # most played first, then ids
    ab = rows[("a", "b")]
    assert (ab["games"], ab["wins"], ab["losses"], ab["ties"]) == (4, 2, 1, 1)
    assert ab["win_rate"] == pytest.approx((2 + 0.5) / 4)
    assert ab["expected_win_rate"] == pytest.approx(
        expected_score(ratings["a"], ratings["b"], 200.0, 10.0)
    )
    assert (ab["competitor_rating"], ab["opponent_rating"]) == (ratings["a"], ratings["b"])
    assert rows[("b", "c")]["wins"] == 1 and rows[("a", "c")]["losses"] == 1  # the game; c won

    mine = (await client.get("/head-to-head", params={"competitor": "b"})).json()
    assert [(r["competitor"], r["opponent"], r["wins"], r["losses"]) for r in mine["rows"]] == [
        ("b", "a", 1, 2),
        ("b", "c", 1, 0),
    ]
    assert mine["rows"][0]["win_rate"] == pytest.approx(1.5 / 4)
    page = await client.get("/head-to-head", params={"competitor": "b", "limit": 1, "offset": 1})
    assert page.json()["total"] == 2 and page.json()["rows"][0]["opponent"] == "c"
    # d's only result was voided: no pair left; the math pool has its own table.
    assert (await client.get("/head-to-head", params={"competitor": "d"})).json()["rows"] == []
    math = (await client.get("/head-to-head", params={"category": "math"})).json()
    assert [(r["competitor"], r["opponent"], r["wins"]) for r in math["rows"]] == [("a", "c", 0)]

    assert_error(await client.get("/head-to-head", params={"competitor": "zz"}), 404, "not_found")
    assert_error(await client.get("/head-to-head", params={"limit": 0}), 400, "bad_parameter")


# -- history series -----------------------------------------------------------------------------


async def test_history_buckets_by_day(database_url: str, client: AsyncTestClient) -> None:
    day1 = datetime(2025, 1, 1, 10, tzinfo=UTC)
    seed(
        database_url,
        [
            battle("b1", "a", "b", "a", at=day1),
            battle("b2", "a", "b", "a", at=day1.replace(hour=23, minute=59)),
            battle("b3", "b", "a", "a", at=datetime(2025, 1, 2, 0, 1, tzinfo=UTC)),
            battle("b4", "a", "c", "a", at=datetime(2025, 1, 2, 9, tzinfo=UTC), category="x"),
        ],
    )
    r1 = 1516.0
    r2, _ = elo(r1, 1484.0, 1.0)
    b_now = 1500.0 - (r2 - 1500.0)
    r3, _ = elo(r2, b_now, 0.0)
    r4, _ = elo(r3, 1500.0, 1.0)
    r = await client.get("/competitors/a/history", params={"bucket": "day"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket"] == "day" and body["history"] == []
    assert (body["arena"], body["category"], body["total"]) == ("default", "", 2)
    first, second = body["days"]
    assert first["day"] == "2025-01-01" and first["games"] == 2
    assert first["rating"] == pytest.approx(r2) and first["low"] == r1
    assert first["high"] == pytest.approx(r2) and first["position"] == 2
    assert (first["total_games"], first["wins"], first["losses"]) == (2, 2, 0)
    assert second["day"] == "2025-01-02" and second["games"] == 2
    assert second["rating"] == pytest.approx(r4) and second["low"] == pytest.approx(r3)
    assert (second["total_games"], second["wins"], second["losses"]) == (4, 3, 1)
    assert second["occurred_at"] == "2025-01-02T09:00:00Z"

    page = (
        await client.get("/competitors/a/history", params={"bucket": "day", "offset": 1})
    ).json()
    assert [d["day"] for d in page["days"]] == ["2025-01-02"] and page["total"] == 2
    cat = (
        await client.get("/competitors/a/history", params={"bucket": "day", "category": "x"})
    ).json()
    assert [(d["day"], d["rating"], d["games"]) for d in cat["days"]] == [("2025-01-02", 1516.0, 1)]
    # Without a bucket the rows are a series too (position, time, kind, rating after).
    rows = (await client.get("/competitors/a/history", params={"category": ""})).json()
    assert [(e["position"], e["kind"], e["rating_after"]) for e in rows["history"]] == [
        (1, "battle", r1),
        (2, "battle", pytest.approx(r2)),
        (3, "battle", pytest.approx(r3)),
        (4, "battle", pytest.approx(r4)),
    ]
    assert rows["bucket"] is None and rows["days"] is None
    week = await client.get("/competitors/a/history", params={"bucket": "week"})
    assert_error(week, 400, "bad_parameter")
    assert_error(
        await client.get("/competitors/zz/history", params={"bucket": "day"}), 404, "not_found"
    )


async def test_history_of_a_game_has_no_single_opponent(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(database_url, [game("g1", ("a", 1), ("b", 2), ("c", 3))])
    (entry,) = (await client.get("/competitors/a/history")).json()["history"]
    # Pairwise decomposition from 1500 each: a scores 2 against an expectation of 1.
    assert entry["kind"] == "game" and entry["opponent"] is None
    assert (entry["score"], entry["expected"], entry["rating_after"]) == (2.0, 1.0, 1532.0)


# -- registry -----------------------------------------------------------------------------------


async def test_competitor_status(database_url: str, client: AsyncTestClient) -> None:
    events: list[Any] = [registered("c", provider="p", meta={"slug": "c-1"}), registered("d")]
    events += [battle(f"b{i}", "a", f"x{i}", "a") for i in range(10)]
    events += [retired("d")]
    seed(database_url, events)
    listing = (await client.get("/competitors")).json()
    status = {c["competitor"]: (c["status"], c["rated_results"]) for c in listing["competitors"]}
    assert status["a"] == ("ranked", 10) and status["x0"] == ("testing", 1)
    assert status["c"] == ("untested", 0) and status["d"] == ("retired", 0)
    d = next(c for c in listing["competitors"] if c["competitor"] == "d")
    assert d["retired"] is True and d["retired_reason"] == "old"
    c = next(c for c in listing["competitors"] if c["competitor"] == "c")
    assert c["provider"] == "p" and c["meta"] == {"slug": "c-1"}
    assert listing["arena"] is None and listing["total"] == 13  # the global registry

    testing = (await client.get("/competitors", params={"status": "testing", "limit": 3})).json()
    assert testing["total"] == 10 and len(testing["competitors"]) == 3
    assert testing["status"] == "testing"
    ranked = (await client.get("/competitors", params={"status": "ranked"})).json()
    assert [c["competitor"] for c in ranked["competitors"]] == ["a"]
    # Presence is per arena (issue 13 point 7): nobody was registered or seen in `other`.
    elsewhere = (await client.get("/competitors", params={"arena": "other"})).json()
    assert elsewhere["total"] == 0 and elsewhere["competitors"] == []
    here = (await client.get("/competitors", params={"arena": "default"})).json()
    assert here["arena"] == "default" and here["total"] == 13
    detail = (await client.get("/competitors/a")).json()
    assert detail["status"] == "ranked" and detail["rated_results"] == 10
    assert (await client.get("/competitors/a", params={"arena": "other"})).json()[
        "status"
    ] == "untested"
    assert_error(await client.get("/competitors?status=gone"), 400, "bad_parameter")


# -- matchmaking --------------------------------------------------------------------------------


async def test_matchmaking_placement_and_pairs(database_url: str, client: AsyncTestClient) -> None:
    # A ladder p1 > p2 > p3 > p4 > p5 (each beat the next), and a newcomer n.
    events: list[Any] = [registered("n")]
    events += [battle(f"l{i}", f"p{i}", f"p{i + 1}", "a") for i in range(1, 5)]
    events += [battle("l5", "p1", "p3", "a")]
    seed(database_url, events)
    rows = (await client.get("/leaderboard")).json()["rows"]
    # n is on the board (registered, never played: 0 games); the walk is over the rated.
    ratings = {r["competitor"]: r["rating"] for r in rows if r["games"]}
    ladder = sorted(ratings, key=ratings.get)  # type: ignore[arg-type]
    median = ladder[2]

    first = (await client.get("/matchmaking/next", params={"competitor": "n"})).json()
    assert first["mode"] == "placement" and first["status"] == "untested"
    assert first["placement_results"] == 0 and first["candidates"] == 5
    assert first["proposal"]["opponent"] == median  # the median of the pool
    assert first["proposal"]["placement_game"] == 1 and first["proposal"]["target_rating"] == (
        pytest.approx(ratings[median])
    )

    # n beats the median: the next proposal is above it.
    seed(database_url, [battle("n1", "n", median, "a")])
    ratings = {
        r["competitor"]: r["rating"]
        for r in (await client.get("/leaderboard")).json()["rows"]
        if r["games"]
    }
    second = (await client.get("/matchmaking/next", params={"competitor": "n"})).json()
    expected = next_opponent("n", ratings, [(median, 1.0)])
    assert expected is not None
    assert second["proposal"]["opponent"] == expected.opponent
    assert ratings[second["proposal"]["opponent"]] > ratings[median]
    assert second["status"] == "testing" and second["placement_results"] == 1

    # A voided result no longer counts in placement; a retired opponent is never proposed.
    seed(database_url, [void("vn1", "n1"), retired(median)])
    third = (await client.get("/matchmaking/next", params={"competitor": "n"})).json()
    assert third["placement_results"] == 0 and third["status"] == "untested"
    assert third["proposal"]["opponent"] != median and third["candidates"] == 4
    ratings = {
        r["competitor"]: r["rating"]
        for r in (await client.get("/leaderboard")).json()["rows"]
        if r["games"]
    }
    expected = next_opponent("n", ratings, [], exclude={median})
    assert expected is not None and third["proposal"]["opponent"] == expected.opponent

    # Without a competitor: the most informative pair, from the pool's pair counts.
    pair = (await client.get("/matchmaking/next")).json()
    assert pair["mode"] == "pair" and pair["competitor"] is None
    h2h = (await client.get("/head-to-head")).json()["rows"]
    expected_pair = most_informative_pair(
        ratings,
        pair_counts={(r["competitor"], r["opponent"]): r["games"] for r in h2h},
        exclude={median},
    )
    assert expected_pair is not None
    assert (pair["proposal"]["competitor"], pair["proposal"]["opponent"]) == (
        expected_pair.competitor,
        expected_pair.opponent,
    )
    assert pair["proposal"]["information"] == pytest.approx(expected_pair.information)

    # A retired competitor gets no proposal; an unknown one is a 404.
    gone = (await client.get("/matchmaking/next", params={"competitor": median})).json()
    assert gone["proposal"] is None and gone["status"] == "retired" and "retired" in gone["reason"]
    assert_error(
        await client.get("/matchmaking/next", params={"competitor": "zz"}), 404, "not_found"
    )
    empty = (await client.get("/matchmaking/next", params={"arena": "empty"})).json()
    assert empty["proposal"] is None and empty["candidates"] == 0 and empty["reason"]
    # Placement is per arena (issue 13 point 7): n is neither registered nor seen in `empty`.
    lonely = await client.get("/matchmaking/next", params={"arena": "empty", "competitor": "n"})
    assert "arena 'empty'" in assert_error(lonely, 404, "not_found")["message"]


def _slow_fit_elsewhere(*args: Any) -> Any:
    """The pair fit, a second slower, refusing to run in the test's own process: what the
    background refit must call in its process (:func:`arbiter.services.api.queries.bt_fits.
    _elsewhere`), found there by name."""
    if multiprocessing.parent_process() is None:
        raise RuntimeError("a background refit ran in the API's own process")
    time.sleep(1.0)
    return bt_board.fit_pairs(*args)


async def _refitted(client: AsyncTestClient[Any], params: dict[str, Any], at: int) -> Any:
    """The board, once its background refit (started by the first request after BT_REFRESH_S)
    has landed: a fit of position ``at``. Until then it is the previous fit, and says so."""
    deadline = time.monotonic() + 20
    while True:
        body = (await client.get("/leaderboard", params=params)).json()
        if body["bootstrap"]["position"] == at:
            return body
        assert body["bootstrap"]["position"] < at and time.monotonic() < deadline
        await asyncio.sleep(0.05)


# -- summary ------------------------------------------------------------------------------------


async def test_summary(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [
            registered("a"),
            battle("b1", "a", "b", "a", scenario="s1"),
            battle("b2", "a", "c", None, scenario="s2"),
            vote("vt1", "b2", "b"),
            battle("b3", "b", "c", "a", arena="other", scenario="s1"),
            game("g1", ("a", 1), ("b", 2), ("c", 2)),
            trial("t1", "e1", "a"),
            trial("t2", "e1", "b", status="failed"),
            trial("t3", "e2", "c", arena="other"),
            score_vote("s1", "t1", 3),
            void("v1", "b1"),
            retired("c"),
        ],
    )
    body = (await client.get("/summary")).json()
    assert {k: body[k] for k in ("competitors", "retired", "battles", "games", "trials")} == {
        "competitors": 3,
        "retired": 1,
        "battles": 2,
        "games": 1,
        "trials": 3,
    }
    assert (body["completed_trials"], body["failed_trials"], body["experiments"]) == (2, 1, 2)
    assert (body["votes"], body["scenarios"]) == (2, 2)
    assert body["voided"] == {"battles": 1, "games": 0, "trials": 0, "votes": 0}
    assert body["events"] == {
        "battle.completed": 3,
        "competitor.registered": 1,
        "competitor.retired": 1,
        "game.completed": 1,
        "result.voided": 1,
        "trial.completed": 3,
        "vote.cast": 2,
    }
    assert body["events_total"] == 12 and body["position"] == 12
    other = (await client.get("/summary", params={"arena": "other"})).json()
    assert (other["arena"], other["battles"], other["games"], other["trials"]) == (
        "other",
        1,
        0,
        1,
    )
    assert (other["competitors"], other["votes"], other["voided"]["battles"]) == (2, 0, 0)
    # Every count of the arena's own, events by type included (registry events have no arena).
    assert other["events"] == {"battle.completed": 1, "trial.completed": 1}
    assert other["events_total"] == 2 and other["retired"] == 1  # c played in other
    default = (await client.get("/summary", params={"arena": "default"})).json()
    # b1 voided: b2 (rated by its vote) and the game remain, so a, b, c are rated.
    assert (default["competitors"], default["votes"], default["scenarios"]) == (3, 2, 1)
    assert default["events"] == {
        "battle.completed": 2,
        "game.completed": 1,
        "result.voided": 1,
        "trial.completed": 2,
        "vote.cast": 2,  # vt1 on b2, s1 on t1
    }
    assert default["events_total"] == 8
    empty = (await client.get("/summary", params={"arena": "nowhere"})).json()
    assert (empty["competitors"], empty["retired"], empty["events"]) == (0, 0, {})
    assert_error(await client.get("/summary", params={"arena": ""}), 400, "bad_parameter")


# -- the live stream ----------------------------------------------------------------------------


def _events(lines: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    out, kind, ident = [], "", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("id:"):
            ident = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            out.append((kind, ident, json.loads(line.split(":", 1)[1])))
    return out


def test_leaderboard_stream_over_http(database_url: str) -> None:
    seed(database_url, [battle("b1", "a", "b", "a")])
    with running_api(database_url, None) as base:
        url = f"{base}/leaderboard/stream"
        with httpx.stream("GET", url, params={"limit": 1}, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines: list[str] = []
            received: list[tuple[str, str, dict[str, Any]]] = []
            for line in response.iter_lines():
                lines.append(line)
                received = _events(lines)
                if len(received) == 1 and line == "":
                    kind, ident, body = received[0]
                    assert (kind, ident, body["position"]) == ("leaderboard", "1", 1)
                    assert board(body) == [("a", 1516.0)] and body["total"] == 2
                    assert api_boards.STREAMS.open == 1
                    seed(database_url, [battle("b2", "b", "a", "a")])  # a new position
                if len(received) == 2:
                    break
            kind, ident, body = received[1]
            assert (kind, ident, body["position"]) == ("leaderboard", "2", 2)
            b_new, _ = elo(1484.0, 1516.0, 1.0)
            assert board(body) == [("b", pytest.approx(b_new))]
        # The client went away: the server's generator ends.
        deadline = time.monotonic() + 10
        while api_boards.STREAMS.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api_boards.STREAMS.open == 0


def test_open_streams_share_the_position_and_each_board(database_url: str) -> None:
    """Six streams of one board in one process: the position is looked at once per moment for
    all of them and each board is computed once (it was once per stream, and each stream
    queried the position every half second), and every stream still gets both boards."""
    import threading

    from arbiter.services.api.board_feed import COUNTS, FRESH_S

    seed(database_url, [battle("b1", "a", "b", "a")])
    streams, got = 6, []
    first_seen = threading.Barrier(streams + 1, timeout=20)

    def watch(base: str) -> None:
        received: list[tuple[str, str, dict[str, Any]]] = []
        url = f"{base}/leaderboard/stream"
        with httpx.stream("GET", url, params={"limit": 2}, timeout=20) as response:
            lines: list[str] = []
            for line in response.iter_lines():
                lines.append(line)
                if line == "" and len(_events(lines)) > len(received):
                    received = _events(lines)
                    if len(received) == 1:
                        first_seen.wait()
                    else:
                        break
        got.append([(ident, body["position"]) for _, ident, body in received])

    with running_api(database_url, None) as base:
        boards, looks = COUNTS.boards, COUNTS.looks
        watchers = [threading.Thread(target=watch, args=(base,)) for _ in range(streams)]
        for watcher in watchers:
            watcher.start()
        first_seen.wait()  # every stream has its first board
        started = time.monotonic()
        seed(database_url, [battle("b2", "b", "a", "a")])  # one move of the position
        for watcher in watchers:
            watcher.join(20)
        elapsed = time.monotonic() - started
    assert got == [[("1", 1), ("2", 2)]] * streams
    assert COUNTS.boards - boards == 2  # one board per position, for all six streams
    # Unshared, six streams look every 0.5 s each; shared, about once per FRESH_S in all
    # (plus the first look of each stream, which may fall in different moments).
    assert COUNTS.looks - looks <= streams + elapsed / FRESH_S + 2, (COUNTS.looks - looks, elapsed)


async def test_stream_bad_parameters_are_400_json(client: AsyncTestClient) -> None:
    assert_error(await client.get("/leaderboard/stream?limit=0"), 400, "bad_parameter")
    assert_error(await client.get("/leaderboard/stream?arena="), 400, "bad_parameter")


# -- OpenAPI ------------------------------------------------------------------------------------


async def test_openapi_documents_the_new_routes(client: AsyncTestClient) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    for path in (
        "/leaderboard/stream",
        "/head-to-head",
        "/matchmaking/next",
        "/summary",
        "/battles",
        "/battles/{battle_id}",
        "/games",
        "/games/{game_id}",
        "/experiments/{experiment_id}/trials",
        "/experiments/{experiment_id}/results",
        "/stats",
    ):
        assert path in spec["paths"], path
    params = {p["name"] for p in spec["paths"]["/leaderboard"]["get"]["parameters"]}
    assert {"system", "as_of", "arena", "category", "limit", "offset"} <= params
    history = spec["paths"]["/competitors/{competitor_id}/history"]["get"]["parameters"]
    assert "bucket" in {p["name"] for p in history}
    schemas = spec["components"]["schemas"]
    for name in ("HeadToHeadPage", "BattleDetail", "GameDetail", "ExperimentReport", "Summary"):
        assert name in schemas, name
    assert (await client.get("/schema")).status_code == 200
