"""Experiment scoring (seed 001): composite, rankings, head-to-head, winner and confidence.

Pure tests: no servers. Numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools

import pytest
from arbiter.domain.experiments import (
    ExperimentResults,
    ScoreComponents,
    TrialRecord,
    compare_latency,
    composite_score,
    confidence_for_gap,
    experiment_results,
    score_components,
)
from hypothesis import given, settings
from hypothesis import strategies as st

_ids = itertools.count()


def trial(
    competitor: str,
    prompt: int = 0,
    status: str = "completed",
    score_sum: int = 0,
    score_votes: int = 0,
    **metrics: float,
) -> TrialRecord:
    return TrialRecord(
        trial_id=f"t{next(_ids)}",
        competitor=competitor,
        prompt_index=prompt,
        status=status,
        metrics=metrics,
        score_sum=score_sum,
        score_votes=score_votes,
    )


def by_gen_time(competitor: str, gen_ms: float, prompt: int = 0) -> TrialRecord:
    """A trial whose composite is 0.85 - gen_ms * 0.00005.

    No ttfb (default 1000 -> 0.5 -> 0.15), silence 0 (-> 1 -> 0.25), duration present (0.20),
    generation time 0.25 * (1 - gen / 5000).
    """
    return trial(competitor, prompt, generation_time_ms=gen_ms, silence_ratio=0.0, duration_s=1.0)


def summary(results: ExperimentResults, competitor: str):
    return next(s for s in results.competitors if s.competitor == competitor)


# --- composite and normalisation ----------------------------------------------------------------


def test_composite_hand_computed() -> None:
    # avg ttfb 600 -> 1 - 600/2000 = 0.7; avg gen 1250 -> 1 - 1250/5000 = 0.75;
    # avg silence 0.2 -> 0.8; duration present -> 1.
    # 0.30*0.7 + 0.25*0.75 + 0.25*0.8 + 0.20*1 = 0.21 + 0.1875 + 0.2 + 0.2 = 0.7975
    trials = [
        trial("a", 0, ttfb_ms=500, generation_time_ms=1000, silence_ratio=0.1, duration_s=2.0),
        trial("a", 1, ttfb_ms=700, generation_time_ms=1500, silence_ratio=0.3),
    ]
    s = summary(experiment_results(trials), "a")
    assert s.components == ScoreComponents(
        ttfb=0.7, generation_time=0.75, duration=1.0, silence=0.8
    )
    assert s.composite == 0.7975
    assert (s.avg_ttfb_ms, s.avg_generation_time_ms) == (600, 1250)
    assert s.avg_silence_ratio == pytest.approx(0.2)
    assert s.avg_duration_s == 2.0


def test_composite_defaults_when_nothing_measured() -> None:
    # ttfb 1000 -> 0.5, gen 2000 -> 0.6, silence 0.5 -> 0.5, no duration -> 0:
    # 0.15 + 0.15 + 0.125 + 0 = 0.425
    s = summary(experiment_results([trial("a")]), "a")
    assert s.components == ScoreComponents(ttfb=0.5, generation_time=0.6, duration=0.0, silence=0.5)
    assert s.composite == 0.425


def test_normalisation_saturates_at_the_scales() -> None:
    # ttfb >= 2000 and gen >= 5000 score 0; silence 0 scores 1; 0.25 + 0.20 = 0.45
    c = score_components(2000.0, 9000.0, 0.0, has_duration=True)
    assert c == ScoreComponents(ttfb=0.0, generation_time=0.0, duration=1.0, silence=1.0)
    assert composite_score(c) == 0.45
    # instant and silent-free is the maximum, 1.0
    assert composite_score(score_components(0.0, 0.0, 0.0, has_duration=True)) == 1.0
    # out-of-range inputs are clamped to 0..1 rather than scoring above 1
    assert score_components(-500.0, -1.0, -0.5, has_duration=False).ttfb == 1.0
    assert score_components(None, None, 1.5, has_duration=False).silence == 0.0


def test_composite_is_absolute_not_relative() -> None:
    # Adding a competitor does not change another's composite (fixed scales, no min-max).
    alone = summary(experiment_results([by_gen_time("a", 1000)]), "a").composite
    together = experiment_results([by_gen_time("a", 1000), by_gen_time("b", 10)])
    assert alone == summary(together, "a").composite == 0.8


# --- failed trials ------------------------------------------------------------------------------


def test_failed_trials_counted_not_averaged() -> None:
    trials = [
        trial("a", 0, ttfb_ms=100, cost_usd=0.01),
        trial("a", 1, status="failed", ttfb_ms=5000, cost_usd=0.02),
        trial("b", 0, status="failed"),
        trial("b", 1, status="failed"),
    ]
    r = experiment_results(trials)
    a, b = summary(r, "a"), summary(r, "b")
    assert (a.completed, a.failed, a.avg_ttfb_ms) == (1, 1, 100)
    assert a.avg_cost_usd == 0.01 and a.total_cost_usd == pytest.approx(0.03)
    assert a.metrics == {"ttfb_ms": 100, "cost_usd": 0.01}
    # b has nothing to score: listed, not ranked, not in head-to-head
    assert (b.completed, b.failed, b.composite, b.components, b.avg_ttfb_ms) == (
        0,
        2,
        None,
        None,
        None,
    )
    assert [x.competitor for x in r.rankings] == ["a"]
    assert r.head_to_head == []
    assert (r.total, r.completed, r.failed) == (4, 1, 3)


def test_votes_averaged_over_individual_votes() -> None:
    trials = [trial("a", 0, score_sum=10, score_votes=2), trial("a", 1, score_sum=1, score_votes=1)]
    s = summary(experiment_results(trials), "a")
    assert (s.avg_score, s.score_votes) == (11 / 3, 3)
    assert summary(experiment_results([trial("a")]), "a").avg_score is None


# --- head-to-head -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b_total", "expected"),
    [(1049, (0, 0, 1)), (1050, (1, 0, 0)), (1051, (1, 0, 0)), (951, (0, 0, 1)), (950, (0, 1, 0))],
)
def test_tie_threshold_is_strictly_under_50ms(b_total: float, expected: tuple[int, ...]) -> None:
    # a: ttfb 100 + gen 900 = 1000. Seed: abs(a - b) < 50 is a tie, so exactly 50 is decided.
    trials = [
        trial("a", 0, ttfb_ms=100, generation_time_ms=900),
        trial("b", 0, ttfb_ms=50, generation_time_ms=b_total - 50),
    ]
    (pair,) = experiment_results(trials).head_to_head
    assert (pair.a, pair.b) == ("a", "b")
    assert (pair.a_wins, pair.b_wins, pair.ties) == expected


def test_compare_latency_operator() -> None:
    assert compare_latency(0.0, 49.0) == "tie"
    assert compare_latency(0.0, 50.0) == "a"
    assert compare_latency(51.0, 0.0) == "b"


def test_head_to_head_per_prompt_pairs_and_missing_metrics() -> None:
    trials = [
        # prompt 0: a 1000 vs b 1200 -> a; c absent
        trial("a", 0, ttfb_ms=200, generation_time_ms=800),
        trial("b", 0, ttfb_ms=200, generation_time_ms=1000),
        # prompt 1: a unmeasured (9999 + 9999) vs b 1000 -> b; c measured 0 + 0 beats both
        trial("a", 1),
        trial("b", 1, ttfb_ms=0, generation_time_ms=1000),
        trial("c", 1, ttfb_ms=0, generation_time_ms=0),
        # prompt 2: b failed, so only a vs c counts: 500 vs 520 -> tie
        trial("a", 2, ttfb_ms=100, generation_time_ms=400),
        trial("b", 2, status="failed", ttfb_ms=1, generation_time_ms=1),
        trial("c", 2, ttfb_ms=120, generation_time_ms=400),
    ]
    table = {
        (h.a, h.b): (h.a_wins, h.b_wins, h.ties) for h in experiment_results(trials).head_to_head
    }
    assert table == {("a", "b"): (1, 1, 0), ("a", "c"): (0, 1, 1), ("b", "c"): (0, 1, 0)}


def test_repeat_trials_on_a_prompt_are_averaged() -> None:
    # a runs prompt 0 twice: (1000 + 1200) / 2 = 1100 vs b 1100 -> tie, in any arrival order
    trials = [
        trial("a", 0, ttfb_ms=0, generation_time_ms=1000),
        trial("a", 0, ttfb_ms=0, generation_time_ms=1200),
        trial("b", 0, ttfb_ms=0, generation_time_ms=1100),
    ]
    for order in (trials, trials[::-1]):
        (pair,) = experiment_results(order).head_to_head
        assert (pair.a_wins, pair.b_wins, pair.ties) == (0, 0, 1)


# --- rankings, winner, confidence ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("gap", "band"),
    [
        (0.1001, "high"),
        (0.10, "medium"),
        (0.0501, "medium"),
        (0.05, "low"),
        (0.0201, "low"),
        (0.02, "inconclusive"),
        (0.0, "inconclusive"),
    ],
)
def test_confidence_bands_are_strict(gap: float, band: str) -> None:
    assert confidence_for_gap(gap) == band


@pytest.mark.parametrize(
    ("second_gen_ms", "gap", "winner", "band"),
    [
        (2002, 0.1001, "a", "high"),  # 0.85 vs 0.7499
        (2000, 0.1, "a", "medium"),  # 0.85 vs 0.75
        (1002, 0.0501, "a", "medium"),
        (1000, 0.05, "a", "low"),
        (402, 0.0201, "a", "low"),
        (400, 0.02, None, "inconclusive"),
        (0, 0.0, None, "inconclusive"),
    ],
)
def test_winner_and_confidence_from_composite_gap(
    second_gen_ms: float, gap: float, winner: str | None, band: str
) -> None:
    r = experiment_results([by_gen_time("a", 0), by_gen_time("b", second_gen_ms)])
    assert r.rankings[0].composite == 0.85
    assert (r.gap, r.winner, r.confidence) == (gap, winner, band)


def test_gap_is_not_moved_by_float_noise() -> None:
    # 0.8 - 0.7 == 0.10000000000000009 in floats; the seed would have called it "high".
    r = experiment_results([by_gen_time("x", 1000), by_gen_time("y", 3000)])
    assert [x.composite for x in r.rankings] == [0.8, 0.7]
    assert (r.gap, r.winner, r.confidence) == (0.1, "x", "medium")


def test_rankings_order_and_shared_ranks() -> None:
    trials = [by_gen_time("c", 1000), by_gen_time("b", 0), by_gen_time("a", 1000)]
    r = experiment_results(trials)
    assert [(x.rank, x.competitor, x.composite) for x in r.rankings] == [
        (1, "b", 0.85),
        (2, "a", 0.8),
        (2, "c", 0.8),
    ]
    assert (r.winner, r.confidence) == ("b", "low")  # gap 0.05 is not > 0.05


def test_tied_leaders_have_no_winner() -> None:
    r = experiment_results([by_gen_time("b", 500), by_gen_time("a", 500)])
    assert [(x.rank, x.competitor) for x in r.rankings] == [(1, "a"), (1, "b")]
    assert (r.gap, r.winner, r.confidence) == (0.0, None, "inconclusive")


def test_fewer_than_two_ranked_is_inconclusive() -> None:
    empty = experiment_results([])
    assert (empty.rankings, empty.winner, empty.confidence, empty.gap) == (
        [],
        None,
        "inconclusive",
        None,
    )
    assert (empty.total, empty.completed, empty.failed) == (0, 0, 0)
    alone = experiment_results([by_gen_time("a", 0), trial("b", status="failed")])
    assert [(x.rank, x.competitor) for x in alone.rankings] == [(1, "a")]
    assert (alone.winner, alone.confidence, alone.gap) == (None, "inconclusive", None)


# --- properties ---------------------------------------------------------------------------------

_metric = st.one_of(
    st.integers(min_value=0, max_value=6000).map(float),
    st.floats(min_value=0, max_value=6000, allow_nan=False, allow_infinity=False),
)
_trials = st.lists(
    st.builds(
        lambda i, c, p, s, m, v: TrialRecord(
            trial_id=f"t{i}",
            competitor=c,
            prompt_index=p,
            status=s,
            metrics=m,
            score_sum=sum(v),
            score_votes=len(v),
        ),
        st.integers(),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=0, max_value=4),
        st.sampled_from(["completed", "completed", "failed"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "ttfb_ms",
                    "generation_time_ms",
                    "duration_s",
                    "silence_ratio",
                    "cost_usd",
                    "latency_ms",
                ]
            ),
            _metric,
        ),
        st.lists(st.integers(min_value=1, max_value=5), max_size=4),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_trials, st.randoms(use_true_random=False))
def test_results_invariant_under_permutation(trials: list[TrialRecord], rnd) -> None:
    shuffled = list(trials)
    rnd.shuffle(shuffled)
    assert experiment_results(shuffled) == experiment_results(trials)


@settings(max_examples=200, deadline=None)
@given(_trials)
def test_results_are_consistent(trials: list[TrialRecord]) -> None:
    r = experiment_results(trials)
    assert r.completed + r.failed == r.total == len(trials)
    assert sum(s.completed + s.failed for s in r.competitors) == len(trials)
    composites = [x.composite for x in r.rankings]
    assert composites == sorted(composites, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in composites)
    n = len(r.rankings)
    assert len(r.head_to_head) == n * (n - 1) // 2
    assert (r.winner is None) == (r.confidence == "inconclusive")
    for pair in r.head_to_head:
        assert pair.a < pair.b
