"""The auto-judge end to end (issue 13 point 4): an arena opts in over NATS, outcome-null battles
with metrics go through the real ingest and projectors (restarted between batches, so the opt-in
must survive a reload), and the API shows the verdicts, the composites and the ratings they
moved; the audit re-derives all of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.audit import verify
from arbiter.services.processes.projector import Projector

from .helpers import T0, battle, ingest_all, running_api

GOOD = {"semascore": 0.9, "wer": 0.05, "prosody_score": 0.8, "quality_score": 0.9}
POOR = {"semascore": 0.5, "wer": 0.40, "prosody_score": 0.5, "quality_score": 0.6}


def configure(i: int, arena: str, **settings: Any) -> dict[str, Any]:
    return {"type": "arena.configured", "event_id": f"cfg-{i}", "arena": arena,
            "occurred_at": (T0 + timedelta(seconds=i)).isoformat(), **settings}  # fmt: skip


def judged(i: int, a: str, b: str, metrics: Any, arena: str = "voice") -> dict[str, Any]:
    return battle(i, a, b, None, arena=arena, judge="human", metrics=metrics)


def project_both(database_url: str) -> None:
    """Fresh projectors each time: each loads its model from the tables, as after a restart."""
    for name in ("ratings", "results"):
        projector = Projector(database_url, PROJECTIONS[name], batch_size=2)
        projector.catch_up()
        projector.close()


async def test_opted_in_arena_battles_are_judged_by_composite(
    database_url: str, nats_url: str
) -> None:
    first = [
        configure(1, "voice", auto_judge=True),
        judged(1, "x", "y", {"a": GOOD, "b": POOR}),
        judged(2, "x", "y", {"a": {"semascore": 0.80}, "b": {"semascore": 0.74}}),
        judged(3, "x", "y", {"a": GOOD}),  # b unmeasured: awaits votes
        judged(4, "x", "y", {"a": GOOD, "b": POOR}, arena="plain"),  # not opted in
    ]
    ingest = await ingest_all(database_url, nats_url, first)
    assert ingest.stats.appended == len(first) and ingest.stats.rejected == 0
    project_both(database_url)
    # After the restart: still opted in until the arena says otherwise.
    second = [
        judged(5, "y", "x", {"a": GOOD, "b": POOR}),
        configure(2, "voice", auto_judge=False),
        judged(6, "x", "y", {"a": GOOD, "b": POOR}),
    ]
    ingest = await ingest_all(database_url, nats_url, second)
    assert ingest.stats.appended == len(second)
    project_both(database_url)

    with running_api(database_url, nats_url) as base, httpx.Client(base_url=base) as http:
        one = http.get("/battles/battle-1").json()
        assert one["outcome"] is None  # as published
        assert one["auto_judged"] == {
            "outcome": "a",
            "composite_a": pytest.approx(0.27 + 0.2375 + 0.16 + 0.135),
            "composite_b": pytest.approx(0.15 + 0.15 + 0.10 + 0.09),
        }
        assert one["elo_delta"] == {"a": 16.0, "b": -16.0}  # K 32 x auto weight 1.0
        two = http.get("/battles/battle-2").json()["auto_judged"]
        assert two["outcome"] == "tie"
        assert (two["composite_a"], two["composite_b"]) == (0.30 * 0.80, 0.30 * 0.74)
        for undecided in ("battle-3", "battle-4", "battle-6"):
            body = http.get(f"/battles/{undecided}").json()
            assert body["auto_judged"] is None and body["elo_delta"] is None, undecided
        assert http.get("/battles/battle-5").json()["auto_judged"]["outcome"] == "a"

        rows = http.get("/battles", params={"arena": "voice"}).json()["battles"]
        listed = {r["battle_id"]: r["auto_judged"] for r in rows}
        assert {k: v and v["outcome"] for k, v in listed.items()} == {
            "battle-1": "a", "battle-2": "tie", "battle-3": None, "battle-5": "a",
            "battle-6": None,
        }  # fmt: skip

        board = http.get("/leaderboard", params={"arena": "voice"}).json()["rows"]
        counts = {r["competitor"]: (r["games"], r["wins"], r["losses"], r["ties"]) for r in board}
        assert counts == {"x": (3, 1, 1, 1), "y": (3, 1, 1, 1)}
        assert http.get("/leaderboard", params={"arena": "plain"}).json()["rows"] == []
        bt = http.get("/leaderboard", params={"arena": "voice", "system": "bt"}).json()["rows"]
        assert {r["competitor"] for r in bt} == {"x", "y"}
    assert verify(database_url).ok
