"""Elo as the seeds define it: 1500 start, K 32, scale 400, base 10, tie 0.5, judge weights."""

from __future__ import annotations

from datetime import UTC, datetime

from arbiter.domain.elo import expected_score, pair_update
from arbiter.domain.events import ArenaConfigured, BattleCompleted
from arbiter.projections.ratings import RatingsFold
from hypothesis import given
from hypothesis import strategies as st

T = datetime(2025, 1, 1, tzinfo=UTC)


def b(i: int, a: str, bb: str, outcome: str | None, **kw: object) -> BattleCompleted:
    return BattleCompleted(
        event_id=f"e{i}", occurred_at=T, battle_id=f"b{i}", a=a, b=bb, outcome=outcome, **kw
    )  # type: ignore[arg-type]


def test_seed_examples() -> None:
    assert pair_update(1500, 1500, 1.0, 32, 400, 10) == (1516.0, 1484.0, 0.5)
    assert pair_update(1500, 1500, 0.5, 32, 400, 10) == (1500.0, 1500.0, 0.5)
    assert abs(expected_score(1900, 1500, 400, 10) - 10 / 11) < 1e-12


def test_human_judge_weighs_one_and_a_half() -> None:
    fold = RatingsFold()
    fold.apply(1, b(1, "x", "y", "a", judge="human"))
    assert fold.standings[("default", "", "x")].rating == 1500 + 1.5 * 32 * 0.5


def test_arena_configuration_applies_from_its_position_on() -> None:
    fold = RatingsFold()
    fold.apply(1, b(1, "x", "y", "a"))
    fold.apply(2, ArenaConfigured(event_id="c", occurred_at=T, k=10.0, weights={"auto": 2.0}))
    fold.apply(3, b(3, "x", "z", "b"))
    z = fold.standings[("default", "", "z")]
    x_after_first = 1516.0
    e = expected_score(1500.0, x_after_first, 400, 10)
    assert z.rating == 1500.0 + 20.0 * (1.0 - e)
    assert fold.settings("default").k == 10.0 and fold.settings("other").k == 32.0


def test_category_battles_count_in_both_pools_and_null_outcome_in_none() -> None:
    fold = RatingsFold()
    fold.apply(1, b(1, "x", "y", "a", category="support"))
    fold.apply(2, b(2, "x", "y", None))
    assert fold.standings[("default", "support", "x")].games == 1
    assert fold.standings[("default", "", "x")].games == 1
    assert set(fold.competitors) == {"x", "y"}


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4),
                          st.sampled_from(["a", "b", "tie"])), max_size=60))  # fmt: skip
def test_zero_sum_and_counters(battles: list[tuple[int, int, str]]) -> None:
    fold = RatingsFold()
    n = 0
    for i, (x, y, outcome) in enumerate(battles, 1):
        if x == y:
            continue
        n += 1
        fold.apply(i, b(i, f"c{x}", f"c{y}", outcome))
    total = sum(s.rating - 1500 for s in fold.standings.values())
    assert abs(total) < 1e-6
    assert sum(s.games for s in fold.standings.values()) == 2 * n
    for s in fold.standings.values():
        assert s.wins + s.losses + s.ties == s.games


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from(["a", "b", "tie"])),
        min_size=1,
        max_size=30,
    ),
    st.floats(1, 64),
    st.floats(50, 800),
    st.floats(1.5, 20),
)
def test_fold_matches_pair_update_to_the_bit(
    battles: list[tuple[int, int, str]], k: float, scale: float, base: float
) -> None:
    """The fold writes the pairwise update out inline (its hot path); it must give exactly the
    floats of :func:`pair_update`, which the docs and the seeds define."""
    fold = RatingsFold()
    fold.apply(1, ArenaConfigured(event_id="cfg", occurred_at=T, k=k, scale=scale, base=base))
    ratings: dict[str, float] = {}
    position = 1
    for ia, ib, outcome in battles:
        if ia == ib:
            continue
        position += 1
        a, bb = f"c{ia}", f"c{ib}"
        fold.apply(position, b(position, a, bb, outcome, judge="auto"))
        ra, rb = ratings.get(a, 1500.0), ratings.get(bb, 1500.0)
        score = {"a": 1.0, "b": 0.0, "tie": 0.5}[outcome]
        ratings[a], ratings[bb], _ = pair_update(ra, rb, score, k, scale, base)
    assert {c: s.rating for (_, _, c), s in fold.standings.items()} == ratings
