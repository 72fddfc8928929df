"""The log's index and ``GET /events``' filters (issue 13 point 2), against a real PostgreSQL.

The index is filled by the real results projector (in batches of one event and of all of them,
so references resolve within a batch and across batches), compared by the real audit, and read
through the real API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import Event
from arbiter.projections import PROJECTIONS
from arbiter.services.api import create_app
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector
from arbiter.services.processes.rebuild import rebuild
from litestar.testing import AsyncTestClient

from .api_events import (
    T0,
    assert_error,
    battle,
    configured,
    game,
    registered,
    retired,
    score_vote,
    trial,
    void,
    vote,
)

RESULTS = PROJECTIONS["results"]


def story() -> list[Event]:
    """Every event type, with votes and voids whose names come from earlier events."""
    return [
        registered("a", at=0),  # 1
        battle("b1", "a", "b", at=1, arena="voice", category="support", source="w1"),  # 2
        vote("v1", "b1", "a", at=2),  # 3
        void("d1", "v1", at=3),  # 4: a void of a vote names the vote's battle's competitors
        game("g1", ("c", 1), ("a", 2), at=4, arena="voice"),  # 5
        trial("t1", "x1", "c", at=5, source="w2"),  # 6
        score_vote("s1", "t1", 4, at=6),  # 7
        void("d2", "t1", at=7),  # 8
        configured("cfg", at=8, arena="voice", k=16.0),  # 9
        retired("b", at=9),  # 10
        battle("b2", "c", "d", at=10),  # 11
    ]


def _store(database_url: str, events: list[Event], batch: int) -> EventLog:
    log = EventLog(database_url)
    outcome = log.append(events)
    assert not outcome.rejected, outcome.rejected
    projector = Projector(database_url, RESULTS, event_log=log, batch_size=batch)
    try:
        projector.catch_up()
    finally:
        projector.close()
    return log


def _index(database_url: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT position, type, experiment, competitors, entities "
            "FROM arbiter_results.event_index ORDER BY position"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("batch", [1, 1000])
def test_index_rows_name_what_each_event_names(database_url: str, batch: int) -> None:
    log = _store(database_url, story(), batch)
    try:
        got = _index(database_url)
        assert got == {
            1: ("competitor.registered", None, ["a"], []),
            2: ("battle.completed", None, ["a", "b"], ["battle:b1"]),
            3: ("vote.cast", None, ["a", "b"], ["battle:b1"]),
            4: ("result.voided", None, ["a", "b"], ["battle:b1"]),
            5: ("game.completed", None, ["a", "c"], ["game:g1"]),
            6: ("trial.completed", "x1", ["c"], ["experiment:x1", "trial:t1"]),
            7: ("vote.cast", "x1", ["c"], ["experiment:x1", "trial:t1"]),
            8: ("result.voided", "x1", ["c"], ["experiment:x1", "trial:t1"]),
            9: ("arena.configured", None, [], []),
            10: ("competitor.retired", None, ["b"], []),
            11: ("battle.completed", None, ["c", "d"], ["battle:b2"]),
        }
        with psycopg.connect(database_url) as conn:
            lookups = conn.execute(
                "SELECT entity, array_agg(position ORDER BY position) "
                "FROM arbiter_results.event_entities GROUP BY entity ORDER BY entity"
            ).fetchall()
        assert lookups == [
            ("b1", [2, 3, 4]), ("b2", [11]), ("g1", [5]), ("t1", [6, 7, 8]), ("x1", [6, 7, 8]),
        ]  # fmt: skip
        assert verify(database_url, event_log=log).ok
        before = _index(database_url)
        rebuild(database_url, RESULTS, event_log=log)
        assert _index(database_url) == before
    finally:
        log.close()


def test_audit_names_a_tampered_index(database_url: str) -> None:
    log = _store(database_url, story(), 3)
    try:
        assert verify(database_url, event_log=log).ok
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM arbiter_results.event_competitors WHERE competitor = 'a' "
                "AND position = 4"
            )
            conn.execute(
                "UPDATE arbiter_results.event_index SET competitors = '{a}' WHERE position = 7"
            )
            conn.execute(
                "UPDATE arbiter_results.event_index SET experiment = NULL WHERE position = 8"
            )
        report = verify(database_url, event_log=log)
        text = "\n".join(report.mismatches)
        assert "results.event_competitors ('a', 4): missing from the read model" in text
        assert "results.event_index 7.competitors: replay ['c'], read model ['a']" in text
        assert "results.event_index 8.experiment: replay 'x1', read model None" in text
    finally:
        log.close()


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


async def _ids(client: AsyncTestClient[Any], **params: Any) -> tuple[list[str], dict[str, Any]]:
    r = await client.get("/events", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    return [e["event"]["event_id"] for e in body["events"]], body


async def test_filters(database_url: str, client: AsyncTestClient[Any]) -> None:
    _store(database_url, story(), 4).close()
    ids, body = await _ids(client, competitor="a")
    assert ids == ["ev-reg-a", "ev-b1", "ev-v1", "ev-d1", "ev-g1"]
    assert body["total"] == 5 and body["indexed"] == body["head"] == 11
    ids, body = await _ids(client, competitor="c", type=["trial.completed", "vote.cast"])
    assert ids == ["ev-t1", "ev-s1"] and body["total"] == 2
    assert (await _ids(client, competitor="c", type="trial.completed,result.voided"))[0] == [
        "ev-t1",
        "ev-d2",
    ]
    assert (await _ids(client, entity="b1"))[0] == ["ev-b1", "ev-v1", "ev-d1"]
    assert (await _ids(client, entity="x1", competitor="c"))[0] == ["ev-t1", "ev-s1", "ev-d2"]
    assert (await _ids(client, arena="voice"))[0] == ["ev-b1", "ev-g1", "ev-cfg"]
    assert (await _ids(client, category="support"))[0] == ["ev-b1"]
    assert (await _ids(client, source="w2"))[0] == ["ev-t1"]
    since, until = (T0 + timedelta(minutes=3)).isoformat(), "2025-01-01T00:06:00+00:00"
    ids, body = await _ids(client, since=since, until=until)
    assert ids == ["ev-d1", "ev-g1", "ev-t1"] and body["total"] == 3
    ids, body = await _ids(client, after=2, before=5)
    assert ids == ["ev-v1", "ev-d1"] and body["total"] == 2
    ids, body = await _ids(client, order="desc", competitor="c", limit=2)
    assert ids == ["ev-b2", "ev-d2"] and body["total"] == 5 and body["next"]
    ids, body = await _ids(client, order="desc", competitor="c", limit=2, cursor=body["next"])
    assert ids == ["ev-s1", "ev-t1"]
    ids, body = await _ids(client, order="desc", competitor="c", limit=2, cursor=body["next"])
    assert ids == ["ev-g1"] and body["next"] is None and body["total"] == 5
    assert (await _ids(client, competitor="nobody"))[1]["total"] == 0
    ids, body = await _ids(client, type="competitor.retired")
    assert ids == ["ev-ret-b"] and body["total"] == 1

    other = await client.get("/events", params={"competitor": "a", "cursor": body["next"]})
    assert assert_error(other, 400, "bad_parameter")["field"] == "cursor"
    assert_error(await client.get("/events", params={"cursor": "!!"}), 400, "bad_parameter")
    for params, field in (
        ({"since": "2025-01-01"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"order": "up"}, "order"),
        ({"type": "battle.completed,nope"}, "type"),
        ({"model": "a"}, "model"),
        ({"before": 0}, "before"),
    ):
        body = assert_error(await client.get("/events", params=params), 400, "bad_parameter")
        assert body["field"] == field, body


async def test_cursor_walks_are_stable_while_events_arrive(
    database_url: str, client: AsyncTestClient[Any]
) -> None:
    log = _store(database_url, [battle(f"p{i}", "a", f"o{i % 3}", at=i) for i in range(10)], 5)
    projector = Projector(database_url, RESULTS, event_log=log)
    try:
        asc: list[str] = []
        desc: list[str] = []
        up = {"competitor": "a", "limit": 3}
        down = {"competitor": "a", "limit": 3, "order": "desc"}
        up_cursor = down_cursor = None
        for step in range(6):
            ids, page = await _ids(client, **up, **({"cursor": up_cursor} if up_cursor else {}))
            asc += ids
            up_cursor = page["next"]
            if step == 0 or down_cursor:
                cursor = {"cursor": down_cursor} if down_cursor else {}
                ids, page = await _ids(client, **down, **cursor)
                desc += ids
                down_cursor = page["next"]
            # New events land above everything seen: the descending walk never sees them.
            log.append([battle(f"n{step}", "a", "z", at=100 + step)])
            projector.catch_up()
        assert desc == [f"ev-p{i}" for i in reversed(range(10))]
        # The ascending walk reaches the new events in order, each once.
        assert asc == [f"ev-p{i}" for i in range(10)] + [f"ev-n{i}" for i in range(len(asc) - 10)]
        assert len(asc) > 10
    finally:
        projector.close()
        log.close()
