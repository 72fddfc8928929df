"""End to end over a real nats-server and PostgreSQL: publish -> ingest -> log -> projector."""

from __future__ import annotations

import json

import psycopg
from arbiter.adapters.bus import connect
from arbiter.adapters.eventstore import EventLog

from .helpers import battle, ingest_all, project, raw, rejected_messages


def standings(url: str) -> dict[str, tuple[float, int, int, int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT competitor, rating, games, wins, losses, ties FROM arbiter_ratings.ratings "
            "WHERE arena = 'default' AND category = ''"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def head(url: str) -> int:
    with EventLog(url) as log:
        return log.store.head()


async def test_battles_flow_to_the_leaderboard(database_url: str, nats_url: str) -> None:
    events = [battle(1, "alpha", "beta", "a"), battle(2, "beta", "gamma", "tie"),
              battle(3, "gamma", "alpha", "b", category="support", judge="human")]  # fmt: skip
    ingest = await ingest_all(database_url, nats_url, events)
    assert ingest.stats.appended == 3 and ingest.stats.rejected == 0
    project(database_url)
    table = standings(database_url)
    assert table["alpha"][1:] == (2, 2, 0, 0)
    assert table["beta"][1:] == (2, 0, 1, 1)
    assert table["alpha"][0] > table["beta"][0]
    assert abs(sum(r[0] - 1500 for r in table.values())) < 1e-9


async def test_the_same_event_twice_counts_once(database_url: str, nats_url: str) -> None:
    event = raw(battle(1, "alpha", "beta", "a"))
    # Core-NATS publishes without Nats-Msg-Id, so JetStream stores both copies and the event
    # store's own idempotency is what must hold.
    nc = await connect(nats_url)
    js = nc.jetstream()
    from arbiter.adapters.bus import ensure_streams

    await ensure_streams(js)
    await nc.publish("arbiter.events.battle.completed", event)
    await nc.publish("arbiter.events.battle.completed", event)
    await nc.flush()
    await nc.close()
    ingest = await ingest_all(database_url, nats_url, [event])  # and a third time, with msg id
    assert ingest.stats.received == 3
    assert ingest.stats.appended == 1 and ingest.stats.duplicates == 2
    project(database_url)
    assert standings(database_url)["alpha"][1] == 1
    assert head(database_url) == 1


async def test_an_id_reused_with_other_content_is_a_conflict(
    database_url: str, nats_url: str
) -> None:
    first = battle(1, "alpha", "beta", "a")
    second = {**first, "outcome": "b"}
    other_event_same_battle = {**first, "event_id": "another"}
    await ingest_all(database_url, nats_url, [first])
    nc = await connect(nats_url)  # bypass the JetStream duplicate window with core publishes
    for payload in (second, other_event_same_battle):
        await nc.publish("arbiter.events.battle.completed", raw(payload))
    await nc.flush()
    await nc.close()
    ingest = await ingest_all(database_url, nats_url, [], expect=2)
    assert ingest.stats.rejected == 2
    rejected = await rejected_messages(nats_url)
    assert [r["rejection"]["code"] for r in rejected] == ["conflict", "conflict"]
    assert {r["rejection"]["event_id"] for r in rejected} == {first["event_id"], "another"}
    project(database_url)
    assert standings(database_url)["alpha"][2] == 1  # the original win stands
    assert head(database_url) == 1


async def test_each_bad_input_is_rejected_with_its_code(database_url: str, nats_url: str) -> None:
    good = battle(1, "alpha", "beta", "a")
    cases = {
        "malformed_json": b'{"type": "battle.completed", "event_id": "m1", ',
        "missing_field": raw({k: v for k, v in battle(2, "a", "b").items() if k != "a"}),
        "wrong_type": raw({**battle(3, "a", "b"), "a": ["not", "a", "string"]}),
        "same_competitor": raw(battle(4, "alpha", "alpha")),
        "unknown_outcome": raw({**battle(5, "a", "b"), "outcome": "draw"}),
        "non_finite_number": json.dumps(
            {**battle(6, "a", "b"), "metrics": {"a": {"wer": float("inf")}}}
        ).encode(),
        "too_large": raw({**battle(7, "a", "b"), "meta": {"blob": "x" * 70_000}}),
        "unknown_type": raw({**battle(8, "a", "b"), "type": "battle.teleported"}),
    }
    ingest = await ingest_all(database_url, nats_url, [raw(good), *cases.values()])
    assert ingest.stats.appended == 1
    assert ingest.stats.rejected == len(cases)
    rejected = await rejected_messages(nats_url)
    codes = [r["rejection"]["code"] for r in rejected]
    assert sorted(codes) == sorted(cases)
    for r in rejected:
        assert r["original"], r  # the original bytes travel with the rejection
        assert r["rejection"]["message"]
    by_code = {r["rejection"]["code"]: r for r in rejected}
    assert by_code["same_competitor"]["rejection"]["event_id"] == "ev-4"
    assert json.loads(by_code["unknown_outcome"]["original"])["outcome"] == "draw"
    project(database_url)
    assert set(standings(database_url)) == {"alpha", "beta"}
    assert head(database_url) == 1
