"""A void equals a log without the voided result: pure, in memory, over random mixes of battles,
pairwise votes and N-player games, with checkpoints exercised (pools longer than one interval)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from arbiter.domain.events import (
    BattleCompleted,
    Event,
    GameCompleted,
    Participant,
    ResultVoided,
    VoteCast,
)
from arbiter.projections import ratings

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = [f"m{i}" for i in range(8)]


def _results(rng: random.Random, n: int) -> list[Event]:
    out: list[Event] = []
    battles: list[BattleCompleted] = []
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        r = rng.random()
        if r < 0.5 or not battles:
            a, b = rng.sample(NAMES, 2)
            e: Event = BattleCompleted(
                event_id=f"e{i}", occurred_at=at, battle_id=f"b{i}", a=a, b=b,
                outcome=rng.choice(["a", "b", "tie", None]), category=rng.choice([None, "x"]),
            )  # fmt: skip
            battles.append(e)  # type: ignore[arg-type]
        elif r < 0.7:
            battle = rng.choice(battles)
            e = VoteCast(
                event_id=f"e{i}", occurred_at=at, vote_id=f"v{i}", voter=f"u{i}",
                battle_id=battle.battle_id, choice=rng.choice(["a", "b", "tie"]),
            )  # fmt: skip
        else:
            players = rng.sample(NAMES, rng.randint(2, 6))
            e = GameCompleted(
                event_id=f"e{i}", occurred_at=at, game_id=f"g{i}", category=rng.choice([None, "y"]),
                participants=[Participant(competitor=p, rank=rng.randint(1, 3)) for p in players],
            )  # fmt: skip
        out.append(e)
    return out


def _fold(events: list[tuple[int, Event]]) -> ratings.RatingsFold:
    fold = ratings.RatingsFold()
    for position, event in events:
        fold.apply(position, event)
        fold.take_changes()
    return fold


@pytest.mark.parametrize("seed", range(6))
def test_void_equals_log_without_the_result(seed: int) -> None:
    rng = random.Random(seed)
    results = _results(rng, 3000)
    targets = rng.sample(range(len(results)), 4)
    # Two voids land mid-log (after their targets), two at the end.
    cut = max(targets[0], targets[1]) + 1
    voids = [
        ResultVoided(event_id=f"void{j}", occurred_at=T0, target_event_id=results[t].event_id)
        for j, t in enumerate(targets)
    ]
    log = list(enumerate([*results[:cut], *voids[:2], *results[cut:], *voids[2:]], start=1))
    with_voids = _fold(log)

    dead = {results[t].event_id for t in targets}
    dead_battles = {
        results[t].battle_id for t in targets if isinstance(results[t], BattleCompleted)
    }
    without = _fold([
        (p, e) for p, e in log
        if e.event_id not in dead and not isinstance(e, ResultVoided)
        and not (isinstance(e, VoteCast) and e.battle_id in dead_battles)
    ])  # fmt: skip
    assert with_voids.rows()["ratings"] == without.rows()["ratings"]
    assert with_voids.rows()["pairs"] == without.rows()["pairs"]
    assert any(p.checkpoints for p in with_voids.pools.values())


def test_void_history_rows_show_before_and_after() -> None:
    fold = ratings.RatingsFold()
    battle = BattleCompleted(
        event_id="e1", occurred_at=T0, battle_id="b1", a="x", b="y", outcome="a"
    )
    fold.apply(1, battle)
    fold.apply(2, VoteCast(event_id="e2", occurred_at=T0, vote_id="v", voter="u", battle_id="b1",
                           choice="a"))  # fmt: skip
    fold.take_changes()
    x_before = fold.standings[("default", "", "x")].rating
    fold.apply(3, ResultVoided(event_id="e3", occurred_at=T0, target_event_id="e1"))
    changes = fold.take_changes()
    # The battle and its vote are gone: nobody is rated in the pool any more.
    assert fold.standings == {}
    assert changes.removed == {("default", "", "x"), ("default", "", "y")}
    voids = [h for h in changes.history if h[6] == "void"]
    assert {h[0] for h in voids} == {"x", "y"}
    x_row = next(h for h in voids if h[0] == "x")
    assert x_row[11] == x_before and x_row[12] is None
    # A vote on the voided battle counts for nothing.
    fold.apply(4, VoteCast(event_id="e4", occurred_at=T0, vote_id="w", voter="z", battle_id="b1",
                           choice="b"))  # fmt: skip
    assert fold.standings == {}
