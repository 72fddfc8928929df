"""Every event type end to end through NATS, and every decision the ingest takes on them."""

from __future__ import annotations

import psycopg
import pytest
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.projector import Projector

from .helpers import T0, battle, ingest_all, rejected_messages

AT = T0.isoformat()


def ev(kind: str, event_id: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "event_id": event_id, "occurred_at": AT, **fields}


def game(i: int, *ranks: tuple[str, int], **extra: object) -> dict[str, object]:
    return ev(
        "game.completed", f"game-ev-{i}", game_id=f"game-{i}",
        participants=[{"competitor": c, "rank": r} for c, r in ranks], **extra,
    )  # fmt: skip


def vote(i: int, battle_id: str, voter: str, choice: str) -> dict[str, object]:
    return ev("vote.cast", f"vote-{i}", vote_id=f"v{i}", voter=voter, battle_id=battle_id,
              choice=choice)  # fmt: skip


def score(i: int, trial_id: str, voter: str, value: int) -> dict[str, object]:
    return ev("vote.cast", f"score-{i}", vote_id=f"s{i}", voter=voter, trial_id=trial_id,
              score=value)  # fmt: skip


def trial(i: int, competitor: str, **extra: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "experiment_id": "exp", "trial_id": f"trial-{i}", "competitor": competitor,
        "prompt_index": i, "status": "completed", "metrics": {"ttfb_ms": 100.0 * i},
        "dimensions": {"persona": "p1"},
    }  # fmt: skip
    fields.update(extra)
    return ev("trial.completed", f"trial-ev-{i}", **fields)


def project_all(url: str) -> None:
    for name in PROJECTIONS:
        projector = Projector(url, PROJECTIONS[name])
        projector.catch_up()
        projector.close()


def query(url: str, q: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(q, args).fetchall()]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARBITER_TARGET_ATTEMPTS", "3")
    monkeypatch.setenv("ARBITER_TARGET_DELAY", "0.1")


async def test_every_event_type_flows_end_to_end(database_url: str, nats_url: str) -> None:
    payloads = [
        ev("arena.configured", "cfg", k=16.0),
        ev("competitor.registered", "reg-x", competitor="x", name="X", provider="acme"),
        battle(1, "x", "y", outcome=None),  # awaiting votes
        vote(1, "battle-1", "ann", "a"),
        vote(2, "battle-1", "bob", "tie"),
        game(1, ("x", 1), ("y", 2), ("z", 2)),
        trial(1, "x"),
        score(1, "trial-1", "ann", 2),
        score(2, "trial-1", "ann", 5),  # replaces ann's 2
        score(3, "trial-1", "bob", 3),
        ev("competitor.retired", "ret-z", competitor="z", reason="deprecated"),
        battle(2, "x", "y", outcome="b"),
        ev("result.voided", "void-2", target_event_id="ev-2", reason="bad audio"),
    ]
    ingest = await ingest_all(database_url, nats_url, payloads)
    assert ingest.stats.appended == len(payloads), ingest.stats
    project_all(database_url)
    ratings = dict(
        query(database_url, "SELECT competitor, games FROM arbiter_ratings.ratings "
              "WHERE arena = 'default' AND category = ''")
    )  # fmt: skip
    # two votes + one game; battle 1 had no outcome and battle 2 is voided
    assert ratings == {"x": 3, "y": 3, "z": 1}
    assert query(database_url, "SELECT retired, retired_reason FROM arbiter_ratings.competitors "
                 "WHERE competitor = 'z'") == [(True, "deprecated")]  # fmt: skip
    assert query(database_url, "SELECT votes_a, votes_b, votes_tie, voided_by FROM "
                 "arbiter_results.battles ORDER BY battle_id") == [
        (1, 0, 1, None), (0, 0, 0, "void-2")]  # fmt: skip
    assert query(database_url, "SELECT score_sum, score_votes FROM arbiter_results.trials") == [
        (8, 2)
    ]
    assert query(database_url, "SELECT count(*) FROM arbiter_results.games") == [(1,)]
    counts = dict(query(database_url, "SELECT type, count FROM arbiter_results.event_counts"))
    assert counts["vote.cast"] == 5 and counts["result.voided"] == 1
    # the void shows in history: y's rating before and after
    kinds = query(database_url, "SELECT kind FROM arbiter_ratings.rating_history "
                  "WHERE competitor = 'y' AND category = '' ORDER BY position")  # fmt: skip
    assert [k for (k,) in kinds] == ["vote", "vote", "game", "battle", "void"]


async def test_a_vote_waits_for_its_battle(database_url: str, nats_url: str) -> None:
    # The vote is published first; the ingest puts it back until the battle arrives.
    ingest = await ingest_all(
        database_url, nats_url, [vote(1, "battle-1", "ann", "a"), battle(1, "x", "y", None)]
    )
    assert ingest.stats.appended == 2 and ingest.stats.waiting >= 1
    assert await rejected_messages(nats_url) == []


async def test_every_decision_is_a_rejection_code(database_url: str, nats_url: str) -> None:
    payloads = [
        battle(1, "x", "y", outcome="a"),
        vote(1, "battle-1", "ann", "a"),
        vote(2, "battle-1", "ann", "b"),  # duplicate_vote
        vote(3, "battle-404", "ann", "a"),  # unknown_target (after retries)
        ev("result.voided", "void-404", target_event_id="nope"),  # unknown_target
        {**battle(9, "x", "y"), "battle_id": "battle-1"},  # conflict: battle recorded already
        ev("competitor.retired", "ret-y", competitor="y"),
        battle(2, "x", "y"),  # competitor_retired
        ev("arena.configured", "strict", arena="closed", strict=True),
        battle(3, "x", "stranger", arena="closed"),  # unknown_competitor
        battle(4, "p", "q"),
        # Seen in a result is not registered: a strict arena refuses them too (it took them).
        battle(5, "p", "q", arena="closed"),  # unknown_competitor
        game(1, ("x", 1), ("x", 2)),  # duplicate_participant
        score(1, "trial-1", "ann", 6),  # score_out_of_range
        ev("vote.cast", "bad-vote", vote_id="bv", voter="ann"),  # invalid_vote
        ev("result.voided", "void-1", target_event_id="ev-1"),
        ev("result.voided", "void-1b", target_event_id="ev-1"),  # already_voided
        ev("result.voided", "void-cfg", target_event_id="strict"),  # invalid_target
        ev("competitor.retired", "ret-ghost", competitor="ghost"),  # unknown_competitor
    ]
    ingest = await ingest_all(database_url, nats_url, payloads)
    codes = {m["rejection"]["event_id"]: m["rejection"]["code"]
             for m in await rejected_messages(nats_url)}  # fmt: skip
    assert codes == {
        "vote-2": "duplicate_vote",
        "vote-3": "unknown_target",
        "void-404": "unknown_target",
        "ev-9": "conflict",
        "ev-2": "competitor_retired",
        "ev-3": "unknown_competitor",
        "ev-5": "unknown_competitor",
        "game-ev-1": "duplicate_participant",
        "score-1": "score_out_of_range",
        "bad-vote": "invalid_vote",
        "void-1b": "already_voided",
        "void-cfg": "invalid_target",
        "ret-ghost": "unknown_competitor",
    }
    assert ingest.stats.appended == 6  # battles 1 and 4, vote 1, retire y, strict, void-1
    project_all(database_url)
    rated = "SELECT competitor FROM arbiter_ratings.ratings ORDER BY 1"
    assert query(database_url, rated) == [("p",), ("q",)]  # battle 1 was voided
