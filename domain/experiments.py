"""Experiment results: per-competitor aggregates, composite score, rankings, head-to-head, winner.

An experiment runs every competitor on the same numbered prompts; each run is a trial
(``trial.completed``). This module turns the trials of one experiment into the read model behind
``GET /experiments/{id}/results``. It is pure: the projector, a rebuild and the API all call it with
the same trials and must get the same answer, whatever order the trials arrive in. To make that
hold to the last bit, every sum is ``math.fsum`` (exactly rounded, so independent of order; see
:mod:`.aggregates`, which also keeps sums and means from overflowing) and every tie is broken by
competitor id.

The scoring follows the experiments seed (seed 001, "Task 6: Scoring Service"):

* Only completed trials feed the averages and the score; failed trials are counted, nothing more.
* Each competitor's averages are normalised to 0..1, 1 being best, against *fixed* scales (not
  relative to the other competitors), and combined with fixed weights. See
  :func:`composite_score` for the numbers.
* Composites are rounded to 4 decimals before ranking and before the winner's gap is taken, as in
  the seed, so the published score is the one the decision was made on.
* Head-to-head compares, per prompt, ``ttfb_ms + generation_time_ms``; a gap under 50 ms is a tie.
* The winner is the top composite when its lead over the second exceeds 0.02; the lead sets the
  confidence (> 0.10 high, > 0.05 medium, > 0.02 low, otherwise inconclusive with no winner).

Where the seed's code had accidents, this module keeps the intent and says so where it differs:
failed trials really are counted (the seed dropped them before counting), a measured 0 ms is a
0 and not "missing" (the seed's ``x or 9999``), and normalised values are clamped to 0..1 (for
valid inputs, non-negative latencies and silence ratios within 0..1, the results are identical).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from msgspec import Struct, field

from .aggregates import mean, total

__all__ = [
    "COMPLETED",
    "COMPOSITE_DECIMALS",
    "CONFIDENCE_BANDS",
    "DEFAULT_GEN_TIME_MS",
    "DEFAULT_SILENCE_RATIO",
    "DEFAULT_TTFB_MS",
    "DURATION",
    "GEN_TIME",
    "GEN_TIME_SCALE_MS",
    "MISSING_LATENCY_MS",
    "SILENCE",
    "TIE_THRESHOLD_MS",
    "TTFB",
    "TTFB_SCALE_MS",
    "WEIGHT_DURATION",
    "WEIGHT_GEN_TIME",
    "WEIGHT_SILENCE",
    "WEIGHT_TTFB",
    "CompetitorSummary",
    "Confidence",
    "ExperimentResults",
    "HeadToHead",
    "Ranking",
    "ScoreComponents",
    "TrialRecord",
    "compare_latency",
    "composite_score",
    "confidence_for_gap",
    "experiment_results",
    "h2h_latency",
    "head_to_head",
    "score_components",
]


COMPLETED = "completed"
"""The ``trial.completed`` status that makes a trial count; every other status counts as failed."""

Confidence = Literal["high", "medium", "low", "inconclusive"]

# --- seed 001 constants -------------------------------------------------------------------------

WEIGHT_TTFB = 0.30
"""Weight of time-to-first-byte (seed 001 ``WEIGHTS["ttfb"]``); lower latency is better."""
WEIGHT_GEN_TIME = 0.25
"""Weight of generation time (seed 001 ``WEIGHTS["gen_time"]``); lower is better."""
WEIGHT_DURATION = 0.20
"""Weight of the duration term (seed 001 ``WEIGHTS["duration_accuracy"]``)."""
WEIGHT_SILENCE = 0.25
"""Weight of silence (seed 001 ``WEIGHTS["silence"]``); a lower silence ratio is better."""

TTFB_SCALE_MS = 2000.0
"""Average ttfb at or above which the ttfb term is 0: ``norm = 1 - min(ttfb / 2000, 1)``."""
GEN_TIME_SCALE_MS = 5000.0
"""Average generation time at or above which the term is 0: ``norm = 1 - min(gen / 5000, 1)``."""
DEFAULT_TTFB_MS = 1000.0
"""Average ttfb assumed when no completed trial measured one (seed: ``... if ttfbs else 1000``)."""
DEFAULT_GEN_TIME_MS = 2000.0
"""Average generation time assumed when none was measured (seed: ``... if gen_times else 2000``)."""
DEFAULT_SILENCE_RATIO = 0.5
"""Average silence ratio assumed when none was measured (seed: ``... if silences else 0.5``)."""

MISSING_LATENCY_MS = 9999.0
"""Head-to-head stand-in for an unmeasured ttfb or generation time (seed: ``or 9999``)."""
TIE_THRESHOLD_MS = 50.0
"""Head-to-head: latency sums closer than this (strictly, ``abs(a - b) < 50``) are a tie."""

CONFIDENCE_BANDS: tuple[tuple[float, Confidence], ...] = (
    (0.10, "high"),
    (0.05, "medium"),
    (0.02, "low"),
)
"""Lead of the best composite over the second: strictly greater than the bound gives the band."""

COMPOSITE_DECIMALS = 4
"""Composites are published, ranked and compared at 4 decimals (seed: ``round(composite, 4)``)."""

# Metric keys in ``trial.completed`` (DESIGN.md); seed 001 called duration ``duration_seconds``.
TTFB = "ttfb_ms"
GEN_TIME = "generation_time_ms"
DURATION = "duration_s"
SILENCE = "silence_ratio"


# --- inputs and outputs -------------------------------------------------------------------------


class TrialRecord(Struct, frozen=True, kw_only=True):
    """One trial as the read model knows it: the ``trial.completed`` event plus its score votes.

    ``score_sum`` and ``score_votes`` are the sum and number of the current score votes
    (``vote.cast`` with ``trial_id``, 1-5; a voter's later vote replaces the earlier one). A sum
    rather than an average, so that averages over many trials weight every vote equally.
    """

    trial_id: str
    competitor: str
    prompt_index: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)
    score_sum: int = 0
    score_votes: int = 0

    @property
    def completed(self) -> bool:
        """Whether the trial produced a result; only these feed averages and scores."""
        return self.status == COMPLETED


class ScoreComponents(Struct, frozen=True, kw_only=True):
    """The four normalised terms of the composite, each 0..1 with 1 best, before weighting."""

    ttfb: float
    generation_time: float
    duration: float
    silence: float


class CompetitorSummary(Struct, frozen=True, kw_only=True):
    """Everything known about one competitor in one experiment.

    Averages are over completed trials that measured the metric (``None`` when none did).
    ``metrics`` holds the average of every metric any completed trial reported, so a metric
    the score does not use (cost, wer, ...) is still visible. ``composite`` and ``components`` are
    ``None`` for a competitor without a completed trial: it has nothing to be scored on and is not
    ranked. Votes count on every trial, whatever its status: a vote is a person's judgement.
    """

    competitor: str
    completed: int
    failed: int
    avg_ttfb_ms: float | None
    avg_generation_time_ms: float | None
    avg_duration_s: float | None
    avg_silence_ratio: float | None
    avg_latency_ms: float | None
    avg_cost_usd: float | None
    total_cost_usd: float
    metrics: dict[str, float]
    avg_score: float | None
    score_votes: int
    composite: float | None
    components: ScoreComponents | None


class Ranking(Struct, frozen=True, kw_only=True):
    """One row of the ranking: competition rank (equal composites share a rank, "1224")."""

    rank: int
    competitor: str
    composite: float
    components: ScoreComponents


class HeadToHead(Struct, frozen=True, kw_only=True):
    """Per-prompt comparison of two competitors, ``a < b`` by id; lower latency sum wins."""

    a: str
    b: str
    a_wins: int
    b_wins: int
    ties: int


class ExperimentResults(Struct, frozen=True, kw_only=True):
    """The results read model of one experiment.

    ``competitors`` lists every competitor that has a trial, by id; ``rankings`` only those with a
    completed trial, best first. ``gap`` is the (4-decimal) lead of the first over the second
    ranked composite, ``None`` with fewer than two ranked competitors.
    """

    competitors: list[CompetitorSummary]
    rankings: list[Ranking]
    head_to_head: list[HeadToHead]
    winner: str | None
    confidence: Confidence
    gap: float | None
    total: int
    completed: int
    failed: int


# --- math ----------------------------------------------------------------------------------------


def _clamp01(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _metric_values(trials: Iterable[TrialRecord], name: str) -> list[float]:
    return [t.metrics[name] for t in trials if name in t.metrics]


def score_components(
    avg_ttfb_ms: float | None,
    avg_generation_time_ms: float | None,
    avg_silence_ratio: float | None,
    has_duration: bool,
) -> ScoreComponents:
    """Normalise a competitor's averages to 0..1 (1 best) on the seed's fixed scales.

    * ttfb: ``1 - min(avg_ttfb / 2000, 1)``; unmeasured counts as 1000 ms (so 0.5).
    * generation time: ``1 - min(avg_gen / 5000, 1)``; unmeasured counts as 2000 ms (so 0.6).
    * silence: ``1 - avg_silence_ratio``; unmeasured counts as 0.5 (so 0.5).
    * duration: 1 when any completed trial reported a duration (the seed's "presence of audio";
      its weight is named ``duration_accuracy`` but v1 scores only presence), else 0.

    Each term is clamped to 0..1, the seed's stated range; for valid inputs it never binds.
    """
    ttfb = DEFAULT_TTFB_MS if avg_ttfb_ms is None else avg_ttfb_ms
    gen = DEFAULT_GEN_TIME_MS if avg_generation_time_ms is None else avg_generation_time_ms
    silence = DEFAULT_SILENCE_RATIO if avg_silence_ratio is None else avg_silence_ratio
    return ScoreComponents(
        ttfb=_clamp01(1.0 - min(ttfb / TTFB_SCALE_MS, 1.0)),
        generation_time=_clamp01(1.0 - min(gen / GEN_TIME_SCALE_MS, 1.0)),
        duration=1.0 if has_duration else 0.0,
        silence=_clamp01(1.0 - silence),
    )


def composite_score(components: ScoreComponents) -> float:
    """Weighted sum of the normalised terms, rounded to 4 decimals (seed 001 weights).

    ``0.30 * ttfb + 0.25 * generation_time + 0.25 * silence + 0.20 * duration``; the weights sum
    to 1, so the composite is 0..1. Rounded because the seed ranks and picks the winner on the
    rounded value, and a published score should be the one the decision used.
    """
    raw = math.fsum(
        (
            WEIGHT_TTFB * components.ttfb,
            WEIGHT_GEN_TIME * components.generation_time,
            WEIGHT_SILENCE * components.silence,
            WEIGHT_DURATION * components.duration,
        )
    )
    return round(raw, COMPOSITE_DECIMALS)


def confidence_for_gap(gap: float) -> Confidence:
    """Confidence band for the leader's composite gap: > 0.10 high, > 0.05 medium, > 0.02 low.

    Strict comparisons, as in the seed: a lead of exactly 0.10 is "medium". The gap should be
    rounded to 4 decimals first (see :func:`experiment_results`) so that float noise from the
    subtraction (0.8 - 0.7 = 0.10000000000000009) cannot move a result across a band.
    """
    for bound, band in CONFIDENCE_BANDS:
        if gap > bound:
            return band
    return "inconclusive"


def h2h_latency(trial: TrialRecord) -> float:
    """The head-to-head measure of one trial: ``ttfb_ms + generation_time_ms``, lower is better.

    An unmeasured term counts as 9999 ms (seed 001), so a trial that did not report its latency
    loses to one that did. Unlike the seed's ``x or 9999``, a measured 0 stays 0.
    """
    ttfb = trial.metrics.get(TTFB, MISSING_LATENCY_MS)
    gen = trial.metrics.get(GEN_TIME, MISSING_LATENCY_MS)
    return ttfb + gen


def compare_latency(a_ms: float, b_ms: float) -> Literal["a", "b", "tie"]:
    """One prompt's verdict: a tie when ``abs(a - b) < 50`` ms (strict), else the lower wins.

    Exactly 50 ms apart is therefore a win, as with the seed's ``abs(score_a - score_b) < 50``.
    """
    if abs(a_ms - b_ms) < TIE_THRESHOLD_MS:
        return "tie"
    return "a" if a_ms < b_ms else "b"


def _summarise(competitor: str, trials: Sequence[TrialRecord]) -> CompetitorSummary:
    done = [t for t in trials if t.completed]
    avg_ttfb = mean(_metric_values(done, TTFB))
    avg_gen = mean(_metric_values(done, GEN_TIME))
    avg_silence = mean(_metric_values(done, SILENCE))
    durations = _metric_values(done, DURATION)
    names = sorted({name for t in done for name in t.metrics})
    averages = {name: mean(_metric_values(done, name)) for name in names}
    votes = sum(t.score_votes for t in trials)
    if done:
        components: ScoreComponents | None = score_components(
            avg_ttfb, avg_gen, avg_silence, bool(durations)
        )
        composite: float | None = composite_score(components)
    else:
        components, composite = None, None
    return CompetitorSummary(
        competitor=competitor,
        completed=len(done),
        failed=len(trials) - len(done),
        avg_ttfb_ms=avg_ttfb,
        avg_generation_time_ms=avg_gen,
        avg_duration_s=mean(durations),
        avg_silence_ratio=avg_silence,
        avg_latency_ms=mean(_metric_values(done, "latency_ms")),
        avg_cost_usd=mean(_metric_values(done, "cost_usd")),
        total_cost_usd=total(_metric_values(trials, "cost_usd")),
        metrics={name: value for name, value in averages.items() if value is not None},
        avg_score=sum(t.score_sum for t in trials) / votes if votes else None,
        score_votes=votes,
        composite=composite,
        components=components,
    )


def _rank(summaries: Sequence[CompetitorSummary]) -> list[Ranking]:
    scored = [
        (s.composite, s.competitor, s.components)
        for s in summaries
        if s.composite is not None and s.components is not None
    ]
    scored.sort(key=lambda row: (-row[0], row[1]))
    rankings: list[Ranking] = []
    for position, (composite, competitor, components) in enumerate(scored, start=1):
        shares_rank = bool(rankings) and rankings[-1].composite == composite
        rank = rankings[-1].rank if shares_rank else position
        rankings.append(
            Ranking(rank=rank, competitor=competitor, composite=composite, components=components)
        )
    return rankings


def head_to_head(trials: Sequence[TrialRecord], competitors: Sequence[str]) -> list[HeadToHead]:
    """Every pair of ``competitors`` (sorted ids, ``a < b``) compared prompt by prompt.

    A prompt counts for a pair when both have a completed trial for it. A competitor with several
    completed trials on the same prompt (a repeat run) is represented by their average latency
    sum; the seed kept whichever came last, which would make the result depend on arrival order.
    Pairs that never met are listed with zeros, so the table is always complete.
    """
    latencies: dict[tuple[str, int], list[float]] = {}
    for t in trials:
        if t.completed:
            latencies.setdefault((t.competitor, t.prompt_index), []).append(h2h_latency(t))
    per_prompt: dict[int, dict[str, float]] = {}
    for (competitor, prompt), values in latencies.items():
        average = mean(values)  # never None: every list holds at least one latency
        assert average is not None
        per_prompt.setdefault(prompt, {})[competitor] = average

    names = sorted(set(competitors))
    wins, losses, ties = _prompt_verdicts(per_prompt, names)
    a_index, b_index = np.triu_indices(len(names), 1)  # (0, 1), (0, 2), ...: combinations' order
    return [
        HeadToHead(a=names[a], b=names[b], a_wins=aw, b_wins=bw, ties=tied)
        for a, b, aw, bw, tied in zip(
            a_index.tolist(),
            b_index.tolist(),
            wins[a_index, b_index].tolist(),
            losses[a_index, b_index].tolist(),
            ties[a_index, b_index].tolist(),
            strict=True,
        )
    ]


_VERDICT_CELLS = 1 << 22
"""Prompts are compared in blocks of about this many (prompt, competitor, competitor) cells."""


def _prompt_verdicts(
    per_prompt: dict[int, dict[str, float]], names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(wins, losses, ties)``, ``names`` x ``names`` counts over the prompts both competitors
    have a latency for, by :func:`compare_latency`'s rule with ``x`` as ``a``: ``wins[x, y]``
    prompts it gives to ``x`` (``x < y`` and not tied), ``losses[x, y]`` those it gives to
    ``y`` (every other untied one: the rule's ``else``, NaN included), ``ties[x, y]``.

    Every pair on every prompt at once, as a prompt x competitor matrix: with 100 competitors
    and 50 prompts the pair-by-pair loop in Python was most of
    ``GET /experiments/{id}/results`` (60 ms of CPU on every request). The same comparisons in
    float64, so the same verdicts: tests/test_experiment_head_to_head.py checks them against
    the pair-by-pair rule on random trials."""
    column = {name: k for k, name in enumerate(names)}
    c = len(names)
    latency = np.zeros((len(per_prompt), c))
    present = np.zeros((len(per_prompt), c), dtype=bool)
    for row, by_competitor in enumerate(per_prompt.values()):
        for competitor, value in by_competitor.items():
            k = column.get(competitor)
            if k is not None:  # a trial of a competitor the caller did not list
                latency[row, k] = value
                present[row, k] = True
    wins = np.zeros((c, c), dtype=np.int64)
    ties = np.zeros((c, c), dtype=np.int64)
    losses = np.zeros((c, c), dtype=np.int64)
    block = max(1, _VERDICT_CELLS // max(1, c * c))
    for first in range(0, latency.shape[0], block):
        x = latency[first : first + block, :, None]
        y = latency[first : first + block, None, :]
        both = present[first : first + block, :, None] & present[first : first + block, None, :]
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, not a tie, as in the rule
            tied = both & (np.abs(x - y) < TIE_THRESHOLD_MS)
        ties += tied.sum(axis=0)
        decided = both & ~tied
        less = x < y
        wins += (decided & less).sum(axis=0)
        losses += (decided & ~less).sum(axis=0)
    return wins, losses, ties


def experiment_results(trials: Sequence[TrialRecord]) -> ExperimentResults:
    """Aggregate one experiment's trials into its results (see the module docstring).

    Winner rule: with two or more ranked competitors, the top one wins when its lead over the
    second exceeds 0.02, with the band as confidence; a smaller lead (including a shared first
    rank) gives no winner and "inconclusive". With fewer than two ranked competitors there is
    nothing to compare: no winner, "inconclusive", ``gap`` ``None``; the lone competitor is still
    ranked (the seed returned an empty ranking here, hiding the numbers a user came to see).
    """
    by_competitor: dict[str, list[TrialRecord]] = {}
    for t in trials:
        by_competitor.setdefault(t.competitor, []).append(t)
    summaries = [_summarise(c, by_competitor[c]) for c in sorted(by_competitor)]
    rankings = _rank(summaries)

    winner: str | None = None
    confidence: Confidence = "inconclusive"
    gap: float | None = None
    if len(rankings) >= 2:
        gap = round(rankings[0].composite - rankings[1].composite, COMPOSITE_DECIMALS)
        confidence = confidence_for_gap(gap)
        if confidence != "inconclusive":
            winner = rankings[0].competitor

    completed = sum(1 for t in trials if t.completed)
    return ExperimentResults(
        competitors=summaries,
        rankings=rankings,
        head_to_head=head_to_head(trials, [r.competitor for r in rankings]),
        winner=winner,
        confidence=confidence,
        gap=gap,
        total=len(trials),
        completed=completed,
        failed=len(trials) - completed,
    )
