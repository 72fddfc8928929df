"""Grouped stats (seed 004): counts, failures, averages, cost, and score votes per group.

Pure tests: no servers.
"""

from __future__ import annotations

import itertools

import pytest
from arbiter.domain.experiments import TrialRecord
from arbiter.domain.stats import StatsGroup, group_stats
from hypothesis import given, settings
from hypothesis import strategies as st

_ids = itertools.count()


def row(
    competitor: str,
    status: str = "completed",
    dims: dict[str, str] | None = None,
    votes: tuple[int, ...] = (),
    **metrics: float,
) -> TrialRecord:
    return TrialRecord(
        trial_id=f"t{next(_ids)}",
        competitor=competitor,
        prompt_index=0,
        status=status,
        metrics=metrics,
        dimensions=dims or {},
        score_sum=sum(votes),
        score_votes=len(votes),
    )


ROWS = [
    row(
        "m1",
        dims={"persona": "p1", "style": "terse"},
        votes=(5, 5),
        latency_ms=100,
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.5,
    ),
    row("m1", dims={"persona": "p2"}, votes=(1,), latency_ms=300, input_tokens=30, cost_usd=0.25),
    row("m1", status="failed", dims={"persona": "p1"}, latency_ms=9000, cost_usd=0.125),
    row("m2", dims={"style": "terse"}, latency_ms=50, output_tokens=40),
]


def by_key(groups: list[StatsGroup]) -> dict[str | None, StatsGroup]:
    return {g.key: g for g in groups}


def test_group_by_competitor() -> None:
    groups = group_stats(ROWS, "competitor")
    assert [g.key for g in groups] == ["m1", "m2"]
    m1, m2 = groups
    assert (m1.count, m1.failures) == (3, 1)
    # the failed row's 9000 ms timeout is not a latency: (100 + 300) / 2
    assert m1.avg_latency_ms == 200
    assert (m1.avg_input_tokens, m1.avg_output_tokens) == (20, 20)
    # cost is paid on failures too: 0.5 + 0.25 + 0.125
    assert m1.total_cost_usd == 0.875
    # votes: (5 + 5 + 1) / 3, not the average of per-trial averages (5 + 1) / 2
    assert (m1.avg_score, m1.score_votes) == (11 / 3, 3)
    assert m1.metrics == {
        "latency_ms": 200,
        "input_tokens": 20,
        "output_tokens": 20,
        "cost_usd": 0.375,
    }
    assert (m2.count, m2.failures, m2.avg_latency_ms, m2.avg_input_tokens) == (1, 0, 50, None)
    assert (m2.total_cost_usd, m2.avg_score, m2.score_votes) == (0.0, None, 0)


def test_default_group_is_competitor() -> None:
    assert group_stats(ROWS) == group_stats(ROWS, "competitor")


def test_group_by_dimension_with_missing_values() -> None:
    groups = group_stats(ROWS, "persona")
    # keys sorted, the group of rows without the dimension last
    assert [g.key for g in groups] == ["p1", "p2", None]
    g = by_key(groups)
    assert (g["p1"].count, g["p1"].failures, g["p1"].avg_latency_ms) == (2, 1, 100)
    assert (g["p2"].count, g[None].count) == (1, 1)
    assert sum(x.count for x in groups) == len(ROWS)

    style = by_key(group_stats(ROWS, "style"))
    assert set(style) == {"terse", None}
    assert (style["terse"].count, style["terse"].avg_latency_ms) == (2, 75)
    assert style[None].count == 2


def test_a_dimension_no_trial_carries_is_refused() -> None:
    # It once answered one null group holding every trial, which read like an answer (issue 11).
    with pytest.raises(ValueError, match=r"'input_type'.*4 trials.*`persona`, `style`"):
        group_stats(ROWS, "input_type")
    with pytest.raises(ValueError, match="`model` is the seeds' name for `competitor`"):
        group_stats(ROWS, "model")
    # Nothing in scope: nothing to check the key against, and nothing to group.
    assert group_stats([], "input_type") == []


def test_order_by_avg_score() -> None:
    rows = [
        row("a", votes=(3,)),
        row("b"),
        row("c", votes=(5,)),
        row("d", votes=(3,)),
    ]
    assert [g.key for g in group_stats(rows, "competitor", order="avg_score")] == [
        "c",
        "a",
        "d",
        "b",
    ]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="group_by"):
        group_stats(ROWS, "")
    with pytest.raises(ValueError, match="order"):
        group_stats(ROWS, "competitor", order="cost")  # type: ignore[arg-type]
    assert group_stats([], "persona") == []


def test_zero_is_an_average_not_missing() -> None:
    (g,) = group_stats([row("a", latency_ms=0, cost_usd=0.0)], "competitor")
    assert (g.avg_latency_ms, g.total_cost_usd) == (0.0, 0.0)


_rows = st.lists(
    st.builds(
        lambda c, s, d, m, v: TrialRecord(
            trial_id="t",
            competitor=c,
            prompt_index=0,
            status=s,
            metrics=m,
            dimensions=d,
            score_sum=sum(v),
            score_votes=len(v),
        ),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["completed", "failed"]),
        st.dictionaries(st.sampled_from(["persona", "style"]), st.sampled_from(["x", "y", "z"])),
        st.dictionaries(
            st.sampled_from(["latency_ms", "input_tokens", "output_tokens", "cost_usd"]),
            st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
        ),
        st.lists(st.integers(min_value=1, max_value=5), max_size=3),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    _rows, st.sampled_from(["competitor", "persona", "style"]), st.randoms(use_true_random=False)
)
def test_stats_invariant_under_permutation(rows: list[TrialRecord], group_by: str, rnd) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    if rows and group_by != "competitor" and not any(group_by in r.dimensions for r in rows):
        with pytest.raises(ValueError, match="group_by"):
            group_stats(shuffled, group_by)
        return
    groups = group_stats(rows, group_by)
    assert group_stats(shuffled, group_by) == groups
    assert sum(g.count for g in groups) == len(rows)
    assert sum(g.score_votes for g in groups) == sum(r.score_votes for r in rows)
    for g in groups:
        assert g.avg_score is None or 1 <= g.avg_score <= 5
