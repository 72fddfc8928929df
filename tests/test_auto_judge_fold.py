"""The auto-judge in the ratings fold (pure, no servers): which battles it decides, with which
K, how opting in and out works, and how votes on a decided battle count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from arbiter.domain.elo import pair_update
from arbiter.domain.events import ArenaConfigured, BattleCompleted, Event, VoteCast
from arbiter.projections.ratings import RatingsFold

T0 = datetime(2025, 1, 1, tzinfo=UTC)
GOOD = {"semascore": 0.9, "wer": 0.05, "prosody_score": 0.8, "quality_score": 0.9}
POOR = {"semascore": 0.5, "wer": 0.40, "prosody_score": 0.5, "quality_score": 0.6}


def battle(i: int, metrics: Any = None, arena: str = "voice", **kw: Any) -> BattleCompleted:
    fields: dict[str, Any] = {"outcome": None, "judge": "human", **kw}
    return BattleCompleted(
        event_id=f"e{i}", occurred_at=T0, arena=arena, battle_id=f"b{i}", a="x", b="y",
        metrics=metrics, **fields,
    )  # fmt: skip


def configure(i: int, arena: str = "voice", **kw: Any) -> ArenaConfigured:
    return ArenaConfigured(event_id=f"c{i}", occurred_at=T0, arena=arena, **kw)


def fold(*events: Event) -> RatingsFold:
    f = RatingsFold()
    f.apply_all(enumerate(events, start=1))
    return f


def rating(f: RatingsFold, who: str, arena: str = "voice") -> float | None:
    s = f.standings.get((arena, "", who))
    return None if s is None else s.rating


def test_an_opted_in_arena_decides_outcome_null_battles_by_composite():
    f = fold(configure(0, auto_judge=True), battle(1, {"a": GOOD, "b": POOR}))
    m = f.battles["b1"]
    assert m.score == 1.0 and m.k == 32.0  # K x weights["auto"] (1.0), not "human" (1.5)
    assert rating(f, "x") == 1516.0 and rating(f, "y") == 1484.0
    assert f.pairs[("voice", "", "x", "y")] == [1, 0, 0]
    # The same battle anywhere else, or before the opt-in, awaits votes.
    assert fold(battle(1, {"a": GOOD, "b": POOR})).battles["b1"].score is None
    before = fold(battle(1, {"a": GOOD, "b": POOR}), configure(2, auto_judge=True))
    assert before.battles["b1"].score is None and rating(before, "x") is None
    other = fold(configure(0, auto_judge=True), battle(1, {"a": GOOD, "b": POOR}, arena="else"))
    assert other.battles["b1"].score is None


def test_ties_wins_for_b_and_category_pools():
    f = fold(
        configure(0, auto_judge=True),
        battle(1, {"a": {"semascore": 0.80}, "b": {"semascore": 0.74}}),
        battle(2, {"a": POOR, "b": GOOD}, category="support"),
    )
    assert f.battles["b1"].score == 0.5  # 0.24 against 0.222: a tie
    assert f.battles["b2"].score == 0.0
    assert f.standings[("voice", "support", "y")].wins == 1


def test_insufficient_metrics_or_an_outcome_leave_the_battle_as_published():
    f = fold(
        configure(0, auto_judge=True),
        battle(1, None),
        battle(2, {"a": GOOD}),
        battle(3, {"a": GOOD, "b": {"duration_s": 2.0}}),
        battle(4, {"a": POOR, "b": GOOD}, outcome="a", judge="human"),
    )
    assert [f.battles[f"b{i}"].score for i in (1, 2, 3)] == [None, None, None]
    assert f.battles["b4"].score == 1.0 and f.battles["b4"].k == 48.0  # the published outcome


def test_opting_out_and_other_settings_keep_the_opt_in_state():
    f = fold(
        configure(0, auto_judge=True),
        configure(1, k=16.0),  # a patch that leaves auto_judge out keeps it on
        battle(2, {"a": GOOD, "b": POOR}),
        configure(3, auto_judge=False),
        battle(4, {"a": GOOD, "b": POOR}),
    )
    assert f.battles["b2"].score == 1.0 and f.battles["b2"].k == 16.0
    assert f.battles["b4"].score is None
    assert f.judged == set()


def test_votes_on_an_auto_judged_battle_rate_as_on_any_decided_battle():
    vote = VoteCast(
        event_id="v1", occurred_at=T0, vote_id="v1", voter="ann", battle_id="b1", choice="b"
    )
    f = fold(configure(0, auto_judge=True), battle(1, {"a": GOOD, "b": POOR}), vote)
    x, y, _ = pair_update(1500.0, 1500.0, 1.0, 32.0, 400.0, 10.0)
    x, y, _ = pair_update(x, y, 0.0, 48.0, 400.0, 10.0)
    assert rating(f, "x") == pytest.approx(x, abs=0) and rating(f, "y") == y
    assert f.pairs[("voice", "", "x", "y")] == [1, 1, 0]
    assert f.battles["b1"].score == 1.0  # the votes never replace the composite's verdict
