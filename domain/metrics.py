"""What a metric value may be: the range of each metric Arbiter knows, and the bound on the rest.

``battle.completed`` (each side) and ``trial.completed`` carry ``metrics``: a name -> number map.
Every read model averages or sums those numbers (per competitor, per experiment, per stats
group), so one absurd value would otherwise make an answer meaningless for everyone, or, past the
float range, break it: two trials with ``latency_ms: 1e308`` once made ``/stats`` a 500 forever
(``math.fsum`` overflowed). So the ingest refuses a value outside its range (``invalid_value``):

* A metric Arbiter knows by name (DESIGN.md's trial metrics, the leaderboard's named columns, the
  evals' timing, ratio and score metrics) has the range its meaning allows, in
  :data:`METRIC_RANGES`. Ceilings are generous: a latency of a whole day is still accepted.
* Any other name stays allowed (metrics are open-ended), finite and within ``±FREE_LIMIT``:
  10^15 is beyond any real measurement, and a sum of such values cannot overflow a float before
  10^293 of them.
* A name that a seed used for a metric Arbiter names otherwise (``wer_score`` for ``wer``) is
  refused with Arbiter's name, rather than stored under a name no read model looks at.

With every accepted value within 10^15 in magnitude, every aggregate (sums, means, the
head-to-head latency sums) stays far inside the float range. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "DAY_MS",
    "DAY_S",
    "FREE_LIMIT",
    "MAX_TOKENS",
    "METRIC_RANGES",
    "SEED_METRIC_NAMES",
    "MetricRange",
    "first_problem",
    "metric_problem",
]


FREE_LIMIT = 1e15
"""Largest magnitude of a metric Arbiter does not know by name."""

DAY_MS = 86_400_000.0
DAY_S = 86_400.0
MAX_TOKENS = float(2**53)
"""Token counts are integers; below 2^53 every one is exact as a float."""


class MetricRange(NamedTuple):
    """The accepted values of one known metric: ``low <= x <= high`` (``high`` excluded when
    ``open_high``), whole numbers only when ``integer``."""

    low: float
    high: float
    meaning: str
    integer: bool = False
    open_high: bool = False

    def admits(self, value: float) -> bool:
        if self.integer and not value.is_integer():
            return False
        return self.low <= value < self.high if self.open_high else self.low <= value <= self.high

    def describe(self) -> str:
        low, high = _show(self.low), _show(self.high)
        if self.integer:
            return f"a whole number from {low} up to (not including) {high} ({self.meaning})"
        return f"between {low} and {high} ({self.meaning})"


def _show(x: float) -> str:
    return f"{x:,.0f}" if x.is_integer() else f"{x:g}"


_LATENCY = MetricRange(0.0, DAY_MS, "milliseconds, up to one day")
_SECONDS = MetricRange(0.0, DAY_S, "seconds, up to one day")
_RATIO = MetricRange(0.0, 1.0, "a fraction")
_SCORE = MetricRange(0.0, 1.0, "a score")
_ERROR_RATE = MetricRange(0.0, 1000.0, "errors per reference unit; above 1 means insertions")
_TOKENS = MetricRange(0.0, MAX_TOKENS, "a token count", integer=True, open_high=True)

METRIC_RANGES: dict[str, MetricRange] = {
    # DESIGN.md's trial metrics (seeds 001 and 004) and the leaderboard's named averages.
    "ttfb_ms": _LATENCY,
    "generation_time_ms": _LATENCY,
    "latency_ms": _LATENCY,
    "duration_s": _SECONDS,
    "silence_ratio": _RATIO,
    "cost_usd": MetricRange(0.0, 1_000_000.0, "US dollars for one result"),
    "input_tokens": _TOKENS,
    "output_tokens": _TOKENS,
    "wer": _ERROR_RATE,
    "cer": _ERROR_RATE,
    "semascore": _SCORE,
    "prosody": _SCORE,
    "quality": _SCORE,
    # What the voice evals publish (arbiter.evals.evaluate), where the meaning fixes a range.
    "prosody_score": _SCORE,
    "quality_score": _SCORE,
    "composite": _SCORE,
    "speech_duration_s": _SECONDS,
    "leading_silence_s": _SECONDS,
    "trailing_silence_s": _SECONDS,
    "pause_ratio": _RATIO,
    "voiced_ratio": _RATIO,
    "clipping_ratio": _RATIO,
}
"""Known metric -> its accepted range. Names not listed are free metrics (``±FREE_LIMIT``)."""

SEED_METRIC_NAMES: dict[str, str] = {
    "wer_score": "wer",  # seed 000 metrics_json
    "overall_prosody_score": "prosody_score",  # seed 000
    "speech_quality_score": "quality_score",  # seed 000
    "average_latency_ms": "latency_ms",  # seed 000
    "duration_seconds": "duration_s",  # seed 001 trials
    "total_duration_seconds": "duration_s",  # seed 000 overall_metrics
}
"""A seed's name for a metric -> Arbiter's name for it. Refused, naming Arbiter's."""


def metric_problem(name: str, value: float) -> str | None:
    """Why ``value`` is not an acceptable value of metric ``name`` (a sentence without the
    field's path), or ``None`` when it is. ``value`` is known to be a float."""
    if name in SEED_METRIC_NAMES:
        return (
            f"is a seed's name for the metric Arbiter calls `{SEED_METRIC_NAMES[name]}`; "
            "send it under that name"
        )
    if not math.isfinite(value):
        return None  # the caller's own (non_finite_number) rule says this
    known = METRIC_RANGES.get(name)
    if known is not None:
        return None if known.admits(value) else f"is {value!r}; it must be {known.describe()}"
    if abs(value) > FREE_LIMIT:
        return (
            f"is {value!r}; a metric Arbiter does not know by name must lie within ±{FREE_LIMIT:g}"
        )
    return None


def first_problem(values: Mapping[str, float]) -> tuple[str, str] | None:
    """The first ``(name, reason)`` of ``values`` that is not acceptable, in name order (so the
    same message names the same metric whatever the producer's key order)."""
    for name in sorted(values):
        reason = metric_problem(name, values[name])
        if reason is not None:
            return name, reason
    return None
