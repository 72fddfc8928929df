"""The composite score of a voice response and the auto-judge's verdict between two.

    composite = 0.30 semascore + 0.25 (1 - WER) + 0.20 prosody + 0.15 quality
              + 0.10 (1 - min(latency_ms / 1000, 1))

Every term is first brought into 0..1: semascore clamped to [0, 1], WER clamped to [0, 1]
(insertions can push it past 1), latency clamped at 0 below. The result is in 0..1, higher is
better.

A component that was not measured (no semantic scorer, no reference text, no latency) is left
out and the remaining weights are rescaled to sum to 1, rather than filled with a guess: a
guessed 0 would punish a clip for a measurement nobody made. The result lists what was missing
and whether renormalisation happened, so a reader knows what a number stands on.

Two clips are compared on the components both have, so renormalisation never favours the side
that happened to be measured less.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = [
    "SOURCES",
    "TIE_THRESHOLD",
    "WEIGHTS",
    "Composite",
    "Outcome",
    "Verdict",
    "auto_winner",
    "component_values",
    "composite",
]


#: Component -> weight, as the arena's scoring has always weighed them.
WEIGHTS: dict[str, float] = {
    "semascore": 0.30,
    "wer": 0.25,
    "prosody": 0.20,
    "quality": 0.15,
    "latency": 0.10,
}
#: Component -> the metric it is computed from.
SOURCES: dict[str, str] = {
    "semascore": "semascore",
    "wer": "wer",
    "prosody": "prosody_score",
    "quality": "quality_score",
    "latency": "latency_ms",
}
#: Composites closer than this are a tie.
TIE_THRESHOLD = 0.02

Outcome = Literal["a", "b", "tie"]


class Composite(msgspec.Struct, frozen=True):
    """A composite score and what it is made of.

    Attributes:
        score: weighted mean of the present components (0..1).
        components: component -> its 0..1 value (e.g. "wer" -> 1 - WER).
        weights: component -> the weight actually applied (sums to 1).
        missing: components that were not measured, left out of the score.
        renormalised: True when anything was missing and the weights were rescaled.
    """

    score: float
    components: dict[str, float]
    weights: dict[str, float]
    missing: list[str]
    renormalised: bool


def _clamp01(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def component_values(metrics: Mapping[str, float]) -> dict[str, float]:
    """The 0..1 value of each component whose source metric is present."""
    out: dict[str, float] = {}
    if "semascore" in metrics:
        out["semascore"] = _clamp01(float(metrics["semascore"]))
    if "wer" in metrics:
        out["wer"] = 1.0 - _clamp01(float(metrics["wer"]))
    if "prosody_score" in metrics:
        out["prosody"] = _clamp01(float(metrics["prosody_score"]))
    if "quality_score" in metrics:
        out["quality"] = _clamp01(float(metrics["quality_score"]))
    if "latency_ms" in metrics:
        out["latency"] = 1.0 - _clamp01(float(metrics["latency_ms"]) / 1000.0)
    return out


def composite(
    metrics: Mapping[str, float], *, only: frozenset[str] | set[str] | None = None
) -> Composite:
    """Composite of one clip's metrics (keys: semascore, wer, prosody_score, quality_score,
    latency_ms; all optional). ``only`` restricts the components considered (used to compare
    two clips on common ground). Raises ValueError when no component is present."""
    values = component_values(metrics)
    considered = [c for c in WEIGHTS if only is None or c in only]
    present = [c for c in considered if c in values]
    if not present:
        raise ValueError(
            "no composite component measured: need at least one of "
            + ", ".join(SOURCES[c] for c in considered)
        )
    total = sum(WEIGHTS[c] for c in present)
    weights = {c: WEIGHTS[c] / total for c in present}
    missing = [c for c in WEIGHTS if c not in present]
    return Composite(
        score=sum(weights[c] * values[c] for c in present),
        components={c: values[c] for c in present},
        weights=weights,
        missing=missing,
        renormalised=bool(missing),
    )


class Verdict(msgspec.Struct, frozen=True):
    """The auto-judge's decision between clips a and b."""

    outcome: Outcome
    score_a: float
    score_b: float
    compared_on: list[str]
    missing: list[str]


def auto_winner(
    metrics_a: Mapping[str, float],
    metrics_b: Mapping[str, float],
    tie_threshold: float = TIE_THRESHOLD,
) -> Verdict:
    """Decide a battle by composite: "tie" when |score_a - score_b| < tie_threshold, else the
    higher side. Both sides are scored on the components both have."""
    common = frozenset(component_values(metrics_a)) & frozenset(component_values(metrics_b))
    if not common:
        raise ValueError("the two clips share no measured composite component")
    a = composite(metrics_a, only=common)
    b = composite(metrics_b, only=common)
    diff = a.score - b.score
    outcome: Outcome = "tie" if abs(diff) < tie_threshold else ("a" if diff > 0 else "b")
    return Verdict(
        outcome=outcome,
        score_a=a.score,
        score_b=b.score,
        compared_on=[c for c in WEIGHTS if c in common],
        missing=[c for c in WEIGHTS if c not in common],
    )
