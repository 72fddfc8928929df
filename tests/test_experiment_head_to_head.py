"""The experiment head-to-head computed on a prompt x competitor matrix (domain/experiments.py)
gives the very counts of the rule applied pair by pair, prompt by prompt, on random trials: ties
at and around the 50 ms threshold, failed trials, prompts a competitor never ran, repeat runs
averaged, unmeasured latencies (the 9999 ms stand-in), sums that overflow to infinity, listed
competitors without trials and trials of unlisted ones. (Voided trials never reach the domain:
the query leaves them out, tests/test_api_results.py::test_experiment_results.) Pure."""

from __future__ import annotations

from arbiter.domain.aggregates import mean
from arbiter.domain.experiments import TrialRecord, compare_latency, head_to_head
from hypothesis import given, settings
from hypothesis import strategies as st

LATENCIES = (0.0, 10.0, 49.999, 50.0, 60.0, 100.0, 1e308)
"""Few values, so that equal sums, sums exactly 50 apart and infinite ones all come up."""


def pair_by_pair(trials: list[TrialRecord], competitors: list[str]) -> list[tuple]:
    """The straightforward computation, written apart from the module's: per prompt, each
    competitor's mean latency sum over its completed trials; per pair and prompt both ran, one
    verdict of :func:`compare_latency`."""
    sums: dict[tuple[str, int], list[float]] = {}
    for t in trials:
        if t.status == "completed":
            ttfb = t.metrics.get("ttfb_ms", 9999.0)
            gen = t.metrics.get("generation_time_ms", 9999.0)
            sums.setdefault((t.competitor, t.prompt_index), []).append(ttfb + gen)
    means = {key: mean(v) for key, v in sums.items()}  # the averaging rule: not what changed
    prompts = sorted({p for _, p in means})
    names = sorted(set(competitors))
    table = []
    for x, a in enumerate(names):
        for b in names[x + 1 :]:
            verdicts = [
                compare_latency(means[a, p], means[b, p])
                for p in prompts
                if (a, p) in means and (b, p) in means
            ]
            table.append((a, b, verdicts.count("a"), verdicts.count("b"), verdicts.count("tie")))
    return table


@st.composite
def experiments(draw: st.DrawFn) -> tuple[list[TrialRecord], list[str]]:
    names = [f"c{k}" for k in range(draw(st.integers(0, 7)))]
    trials = []
    for k in range(draw(st.integers(0, 60))):
        metrics = {}
        if draw(st.booleans()) or not draw(st.booleans()):
            metrics["ttfb_ms"] = draw(st.sampled_from(LATENCIES))
        if draw(st.integers(0, 3)):
            metrics["generation_time_ms"] = draw(st.sampled_from(LATENCIES))
        trials.append(
            TrialRecord(
                trial_id=f"t{k}",
                competitor=draw(st.sampled_from([*names, "unlisted"])),
                prompt_index=draw(st.integers(0, 5)),
                status=draw(st.sampled_from(["completed", "completed", "completed", "failed"])),
                metrics=metrics,
            )
        )
    listed = names + [f"idle{k}" for k in range(draw(st.integers(0, 2)))]
    return trials, draw(st.permutations(listed))


@settings(max_examples=300, deadline=None)
@given(experiments())
def test_head_to_head_is_the_pair_by_pair_rule(case: tuple[list[TrialRecord], list[str]]) -> None:
    trials, competitors = case
    got = [(h.a, h.b, h.a_wins, h.b_wins, h.ties) for h in head_to_head(trials, competitors)]
    assert got == pair_by_pair(trials, competitors)


def test_a_bench_sized_experiment_is_the_pair_by_pair_rule() -> None:
    """100 competitors x 50 prompts with random latencies (benchmarks/web_detail_pages.py's
    shape), some failed: 4,950 pairs, every count the same."""
    import random

    rng = random.Random(5)
    trials = [
        TrialRecord(
            trial_id=f"t{p}-{c}",
            competitor=f"m{c:03d}",
            prompt_index=p,
            status="failed" if rng.random() < 0.03 else "completed",
            metrics={"ttfb_ms": rng.uniform(150, 600), "generation_time_ms": rng.uniform(800, 900)},
        )
        for p in range(50)
        for c in range(100)
    ]
    competitors = [f"m{c:03d}" for c in range(100)]
    got = [(h.a, h.b, h.a_wins, h.b_wins, h.ties) for h in head_to_head(trials, competitors)]
    want = pair_by_pair(trials, competitors)
    assert len(got) == 4950 and got == want
    assert sum(row[4] for row in got) > 0  # the uniform spread makes ties too
