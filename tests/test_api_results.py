"""The results routes against real PostgreSQL: battles, games, experiments and stats.

Events go through the store and both projectors; expectations are worked out by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import (
    assert_error,
    battle,
    game,
    score_vote,
    seed,
    trial,
    void,
    vote,
)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


# -- battles ------------------------------------------------------------------------------------


async def test_battles_list_filters_and_detail(database_url: str, client: AsyncTestClient) -> None:
    seed(
        database_url,
        [
            battle(
                "b1",
                "a",
                "b",
                None,
                at=1,
                judge="human",
                scenario="greeting",
                metrics={"a": {"wer": 0.1}, "b": {"wer": 0.2, "latency_ms": 300}},
                meta={"prompt": "hi"},
                source="worker-1",
            ),
            vote("vt1", "b1", "a", voter="u1", at=2),
            vote("vt2", "b1", "b", voter="u2", at=3),
            vote("vt3", "b1", "a", voter="u3", at=4),
            battle("b2", "b", "c", "tie", at=5, category="math"),
            battle("b3", "c", "d", "a", at=6, arena="other"),
            void("v1", "vt2", at=7),  # one vote taken back
            battle("b4", "a", "c", "b", at=8),
            void("v2", "b4", at=9),
        ],
    )
    r = await client.get("/battles")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 4 and page["results_position"] == 9
    assert [b["battle_id"] for b in page["battles"]] == ["b4", "b3", "b2", "b1"]  # newest first
    b1 = page["battles"][3]
    assert b1 == {
        "battle_id": "b1",
        "event_id": "ev-b1",
        "position": 1,
        "occurred_at": "2025-01-01T00:01:00Z",
        "arena": "default",
        "category": None,
        "a": "a",
        "b": "b",
        "outcome": None,
        "judge": "human",
        "scenario": "greeting",
        "votes": {"a": 2, "b": 0, "tie": 0},  # vt2 voided
        "voided_by": None,
        "auto_judged": None,  # its arena has not opted in to the auto-judge
    }
    assert page["battles"][0]["voided_by"] == "ev-v2"

    async def ids(**params: Any) -> list[str]:
        body = (await client.get("/battles", params=params)).json()
        assert body["total"] == len(body["battles"])
        return [b["battle_id"] for b in body["battles"]]

    assert await ids(competitor="a") == ["b4", "b1"]
    assert await ids(competitor="c", arena="default") == ["b4", "b2"]
    assert await ids(arena="other") == ["b3"]
    assert await ids(category="math") == ["b2"]
    assert await ids(judge="human") == ["b1"]
    assert await ids(scenario="greeting") == ["b1"]
    assert await ids(voided="true") == ["b4"]
    assert await ids(voided="false") == ["b3", "b2", "b1"]
    paged = (await client.get("/battles", params={"limit": 2, "offset": 1})).json()
    assert [b["battle_id"] for b in paged["battles"]] == ["b3", "b2"] and paged["total"] == 4

    detail = (await client.get("/battles/b1")).json()
    assert detail["metrics"] == {"a": {"wer": 0.1}, "b": {"wer": 0.2, "latency_ms": 300.0}}
    assert detail["meta"] == {"prompt": "hi"} and detail["source"] == "worker-1"
    assert detail["votes"] == {"a": 2, "b": 0, "tie": 0}
    assert [
        (v["vote_id"], v["voter"], v["choice"], v["voided_by"]) for v in detail["vote_list"]
    ] == [
        ("vt1", "u1", "a", None),
        ("vt2", "u2", "b", "ev-v1"),
        ("vt3", "u3", "a", None),
    ]
    assert detail["vote_list"][0]["position"] == 2
    # The two live human votes rated b1 (K 32 x 1.5): a won both.
    board = (await client.get("/leaderboard")).json()["rows"]
    a_row = next(row for row in board if row["competitor"] == "a")
    assert a_row["games"] == 2 and a_row["wins"] == 2
    assert a_row["wer"] == pytest.approx(0.1)  # the voided b4 carried no metrics anyway

    assert_error(await client.get("/battles/nope"), 404, "not_found")
    for bad in ("voided=maybe", "limit=0", "offset=-1", "arena=", "competitor="):
        assert_error(await client.get(f"/battles?{bad}"), 400, "bad_parameter")


async def test_battle_elo_delta(database_url: str, client: AsyncTestClient) -> None:
    """Each side's arena-wide rating change from the battle's own outcome (K 32, judge auto);
    null for a battle decided by votes and for a voided one."""
    seed(
        database_url,
        [
            battle("e1", "x", "y", "a", at=1),  # both 1500: x +16, y -16
            battle("e2", "x", "y", "tie", at=2, category="math"),  # arena-wide 1516 v 1484
            battle("e3", "x", "y", None, at=3),
            vote("ev3", "e3", "b", at=4),
            battle("e4", "y", "x", "a", at=5),
            void("ve4", "e4", at=6),
            battle("e5", "x", "z", "b", at=7, arena="other"),  # same players elsewhere
        ],
    )
    e1 = (await client.get("/battles/e1")).json()
    assert e1["elo_delta"] == {"a": pytest.approx(16.0), "b": pytest.approx(-16.0)}
    # The tie moves the arena-wide pool (the math pool starts both at 1500 and would say 0).
    expected = 1 / (1 + 10 ** (-32 / 400))
    e2 = (await client.get("/battles/e2")).json()
    assert e2["elo_delta"] == {
        "a": pytest.approx(32 * (0.5 - expected)),
        "b": pytest.approx(-32 * (0.5 - expected)),
    }
    assert e2["elo_delta"]["a"] < 0
    assert (await client.get("/battles/e3")).json()["elo_delta"] is None  # its vote moved them
    assert (await client.get("/battles/e4")).json()["elo_delta"] is None  # voided
    e5 = (await client.get("/battles/e5")).json()
    assert e5["elo_delta"] == {"a": pytest.approx(-16.0), "b": pytest.approx(16.0)}


# -- games --------------------------------------------------------------------------------------


async def test_games_list_detail_and_multiplayer_elo(
    database_url: str, client: AsyncTestClient
) -> None:
    seed(
        database_url,
        [
            game(
                "g1",
                ("c", 3, 10.0),
                ("a", 1, 30.0),
                ("b", 2, 20.0),
                at=1,
                rounds=12,
                replay_uri="s3://replays/g1.json",
                meta={"map": "small"},
            ),
            game("g2", ("d", 1), ("e", 1), ("f", 2), at=2, category="blitz"),
            game("g3", ("a", 1), ("d", 2), at=3),
            void("v1", "g3", at=4),
        ],
    )
    page = (await client.get("/games")).json()
    assert page["total"] == 3 and [g["game_id"] for g in page["games"]] == ["g3", "g2", "g1"]
    g1 = page["games"][2]
    assert [(p["competitor"], p["rank"], p["score"]) for p in g1["participants"]] == [
        ("a", 1, 30.0),
        ("b", 2, 20.0),
        ("c", 3, 10.0),
    ]
    assert (g1["rounds"], g1["replay_uri"], g1["voided_by"]) == (12, "s3://replays/g1.json", None)
    assert page["games"][0]["voided_by"] == "ev-v1"

    async def ids(**params: Any) -> list[str]:
        return [g["game_id"] for g in (await client.get("/games", params=params)).json()["games"]]

    assert await ids(competitor="a") == ["g3", "g1"]
    assert await ids(competitor="d", voided="false") == ["g2"]
    assert await ids(category="blitz") == ["g2"]
    assert await ids(arena="other") == []

    detail = (await client.get("/games/g1")).json()
    assert detail["meta"] == {"map": "small"} and detail["participants"][0]["meta"] == {}
    assert detail["results_position"] == 4
    assert_error(await client.get("/games/nope"), 404, "not_found")

    # Pairwise decomposition from 1500 each (every E = 0.5, K 32): a scores 2 of an expected 1,
    # b 1 of 1, c 0 of 1. In g2, d and e tie on the top rank: 1.5 of 1 each, f 0 of 1.
    # g3 is voided: as if it never happened.
    ratings = {
        r["competitor"]: r["rating"] for r in (await client.get("/leaderboard")).json()["rows"]
    }
    assert ratings == {"a": 1532.0, "b": 1500.0, "c": 1468.0, "d": 1516.0, "e": 1516.0, "f": 1468.0}
    blitz = (await client.get("/leaderboard", params={"category": "blitz"})).json()["rows"]
    assert [(r["competitor"], r["ties"], r["losses"]) for r in blitz] == [
        ("d", 1, 0),
        ("e", 1, 0),
        ("f", 0, 1),
    ]


# -- experiments --------------------------------------------------------------------------------


def _experiment() -> list[Any]:
    x = {"ttfb_ms": 200, "generation_time_ms": 1000, "silence_ratio": 0.1, "duration_s": 2.0}
    y = {"ttfb_ms": 1000, "generation_time_ms": 2500, "silence_ratio": 0.3, "duration_s": 2.0}
    dims = {"persona": "pirate", "style": "short"}
    return [
        trial("x0", "exp", "x", 0, at=1, metrics={**x, "cost_usd": 0.01}, dimensions=dims),
        trial("x1", "exp", "x", 1, at=2, metrics={**x, "cost_usd": 0.03}),
        trial("y0", "exp", "y", 0, at=3, metrics=y, dimensions={"persona": "pirate"}),
        trial("y1", "exp", "y", 1, at=4, metrics=y, dimensions={"persona": "nurse"}),
        trial("y2", "exp", "y", 2, status="failed", at=5, error="timeout"),
        # A bad run of x, voided: it would have dragged x's averages down.
        trial("x2", "exp", "x", 2, at=6, metrics={"ttfb_ms": 9000, "generation_time_ms": 9000}),
        void("v1", "x2", at=7),
        score_vote("s1", "x0", 5, voter="u1", at=8),
        score_vote("s2", "x0", 3, voter="u2", at=9),
        score_vote("s3", "y0", 2, voter="u1", at=10),
        trial("o0", "other", "x", 0, at=11, arena="elsewhere"),
    ]


async def test_experiment_trials(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _experiment())
    page = (await client.get("/experiments/exp/trials")).json()
    assert page["total"] == 6 and page["experiment_id"] == "exp"
    assert [t["trial_id"] for t in page["trials"]] == ["x0", "x1", "y0", "y1", "y2", "x2"]
    x0 = page["trials"][0]
    assert (x0["competitor"], x0["prompt_index"], x0["status"], x0["voided_by"]) == (
        "x",
        0,
        "completed",
        None,
    )
    assert x0["metrics"]["ttfb_ms"] == 200.0 and x0["dimensions"] == {
        "persona": "pirate",
        "style": "short",
    }
    assert (x0["score_sum"], x0["score_votes"], x0["avg_score"]) == (8, 2, 4.0)
    assert page["trials"][4]["error"] == "timeout"
    assert page["trials"][5]["voided_by"] == "ev-v1"

    async def ids(**params: Any) -> list[str]:
        body = (await client.get("/experiments/exp/trials", params=params)).json()
        return [t["trial_id"] for t in body["trials"]]

    assert await ids(competitor="y") == ["y0", "y1", "y2"]
    assert await ids(status="failed") == ["y2"]
    assert await ids(competitor="x", voided="false") == ["x0", "x1"]
    assert await ids(voided="true") == ["x2"]
    assert await ids(limit=2, offset=2) == ["y0", "y1"]
    assert_error(await client.get("/experiments/nope/trials"), 404, "not_found")
    assert_error(
        await client.get("/experiments/exp/trials", params={"status": "done"}), 400, "bad_parameter"
    )


async def test_experiment_results(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _experiment())
    r = await client.get("/experiments/exp/results")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["experiment_id"], body["voided"], body["results_position"]) == ("exp", 1, 11)
    assert (body["total"], body["completed"], body["failed"]) == (5, 4, 1)
    # x: ttfb 1 - 200/2000 = 0.9, generation 1 - 1000/5000 = 0.8, silence 0.9, duration 1:
    #    0.3*0.9 + 0.25*0.8 + 0.25*0.9 + 0.2*1 = 0.895
    # y: 0.5, 0.5, 0.7, 1: 0.15 + 0.125 + 0.175 + 0.2 = 0.65. Lead 0.245 > 0.10: high.
    assert [(x["rank"], x["competitor"], x["composite"]) for x in body["rankings"]] == [
        (1, "x", 0.895),
        (2, "y", 0.65),
    ]
    assert (body["winner"], body["confidence"], body["gap"]) == ("x", "high", 0.245)
    # Per prompt, ttfb + generation: x 1200 ms, y 3500 ms on prompts 0 and 1.
    assert body["head_to_head"] == [{"a": "x", "b": "y", "a_wins": 2, "b_wins": 0, "ties": 0}]
    x, y = body["competitors"]
    assert (x["competitor"], x["completed"], x["failed"], x["avg_ttfb_ms"]) == ("x", 2, 0, 200.0)
    assert x["total_cost_usd"] == pytest.approx(0.04) and x["avg_score"] == 4.0
    assert (y["completed"], y["failed"], y["score_votes"], y["avg_score"]) == (2, 1, 1, 2.0)
    assert_error(await client.get("/experiments/nope/results"), 404, "not_found")

    # An experiment whose every trial is voided still answers, with nothing ranked.
    seed(database_url, [trial("z0", "gone", "z", 0, at=20), void("v9", "z0", at=21)])
    gone = (await client.get("/experiments/gone/results")).json()
    assert gone["voided"] == 1 and gone["total"] == 0 and gone["rankings"] == []
    assert gone["winner"] is None and gone["confidence"] == "inconclusive"


# -- stats --------------------------------------------------------------------------------------


async def test_stats_grouped(database_url: str, client: AsyncTestClient) -> None:
    seed(database_url, _experiment())
    body = (await client.get("/stats")).json()
    assert body["group_by"] == "competitor" and body["order"] == "key"
    assert body["trials"] == 6 and body["total"] == 2  # x2 voided; o0 counts (no filter)
    x, y = body["groups"]
    assert (x["key"], x["count"], x["failures"], x["score_votes"], x["avg_score"]) == (
        "x",
        3,
        0,
        2,
        4.0,
    )
    assert x["total_cost_usd"] == pytest.approx(0.04)
    assert (y["key"], y["count"], y["failures"], y["avg_score"]) == ("y", 3, 1, 2.0)

    persona = (
        await client.get("/stats", params={"group_by": "persona", "experiment_id": "exp"})
    ).json()
    assert [(g["key"], g["count"]) for g in persona["groups"]] == [
        ("nurse", 1),
        ("pirate", 2),
        (None, 2),  # x1 and y2 carry no persona
    ]
    pirate = persona["groups"][1]
    assert pirate["score_votes"] == 3 and pirate["avg_score"] == pytest.approx(10 / 3)
    assert pirate["metrics"]["ttfb_ms"] == pytest.approx(600.0)

    by_score = (
        await client.get("/stats", params={"order": "avg_score", "arena": "default"})
    ).json()
    assert [g["key"] for g in by_score["groups"]] == ["x", "y"] and by_score["trials"] == 5
    paged = (await client.get("/stats", params={"group_by": "persona", "limit": 1})).json()
    assert paged["total"] == 3 and [g["key"] for g in paged["groups"]] == ["nurse"]
    elsewhere = (await client.get("/stats", params={"arena": "elsewhere"})).json()
    assert [(g["key"], g["count"]) for g in elsewhere["groups"]] == [("x", 1)]
    for bad in ("group_by=", "order=best", "limit=0"):
        assert_error(await client.get(f"/stats?{bad}"), 400, "bad_parameter")


async def test_stats_regroup_only_when_the_trials_change(
    database_url: str, client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every commit of the results model (a battle, several a second while events stream in)
    recomputes ``/stats``; the trials it reads seldom change, so the grouping of rows equal to
    the last ones read is reused, and any change of them (a score vote here) is grouped anew,
    in the same snapshot as the position the body reports."""
    from arbiter.services.api.queries import experiments as queries

    grouped: list[int] = []
    real = queries.group_stats

    def counted(*args: Any, **kw: Any) -> Any:
        grouped.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(queries, "group_stats", counted)
    seed(database_url, _experiment())
    path = "/stats?group_by=persona&experiment_id=exp"
    first = (await client.get(path)).json()
    assert len(grouped) == 1
    seed(database_url, [battle("b-later", "x", "y", at=30)])  # the trials are unchanged
    again = (await client.get(path)).json()
    assert again["results_position"] > first["results_position"]
    assert {**again, "results_position": 0} == {**first, "results_position": 0}
    assert len(grouped) == 1  # the same rows: the same groups, not regrouped
    seed(database_url, [score_vote("sv-later", "y1", 1, voter="u9", at=31)])
    voted = (await client.get(path)).json()
    assert len(grouped) == 2
    nurse = next(g for g in voted["groups"] if g["key"] == "nurse")
    assert (nurse["score_votes"], nurse["avg_score"]) == (1, 1.0)
