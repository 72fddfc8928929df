"""Seed 000's composite score and auto-judge verdict, reproduced exactly. Pure: no I/O.

The Voice Arena backend (seed 000, ``app/services/elo.py``) scored a voice response as

    composite = 0.30 semascore + 0.25 (1 - wer) + 0.20 prosody + 0.15 quality
              + 0.10 (1 - min(latency_ms / 1000, 1))

and decided a battle with ``determine_auto_winner``: ``diff = score_a - score_b``, a tie when
``abs(diff) < 0.02``, else the side with the higher composite. Arbiter names the seed's metrics
its own way (the ingest refuses the seed's names, see :mod:`arbiter.domain.metrics`):

=================================  ======================  ==========================
seed                               Arbiter                 when missing, counts as
=================================  ======================  ==========================
``semascore`` (negative -> 0)      ``semascore``           0    (term 0)
``wer_score``                      ``wer``                 1    (term 0.25 x 0 = 0)
``overall_prosody_score``          ``prosody_score``       0    (term 0)
``speech_quality_score``           ``quality_score``       0    (term 0)
``average_latency_ms``             ``latency_ms``          1000 (term 0.10 x 0 = 0)
=================================  ======================  ==========================

Decisions, and why:

* **Missing metrics count as the seed counts them**: a missing component contributes 0 and the
  weights are *not* renormalised (issue 13 point 4). So 0.80 against 0.74 semascore, nothing
  else measured, is 0.24 against 0.222: a difference of 0.018, a tie. Renormalising would make
  it 0.80 against 0.74, a win; :mod:`arbiter.evals.composite` keeps that as an option.
* **The arithmetic is the seed's, operation for operation**, in Python floats: the same five
  products added left to right, the same ``min``, the same clamp of a negative semascore and no
  other clamp (a WER above 1, insertions, makes the term negative, as in the seed; Arbiter
  accepts WER up to 1,000). So :func:`judge` returns the seed function's verdict for the
  same numbers, bit for bit, and every fold (projector, rebuild, audit) gets the same floats.
* **The tie boundary is the seed's strict ``<``.** Issue 13 words it "0.02 or less"; the seed's
  code, which the issue says to follow exactly, ties only *below* 0.02. The two readings differ
  only when the float difference is exactly ``0.02`` (the double nearest 0.02), e.g. prosody
  0.102 against 0.002: a win here, as in the seed. A difference that is 0.02 in decimal is
  usually not that double, and falls on either side of it: WER 0 against 0.08 differs by
  0.01999999999999999 (a tie), prosody 0.2 against 0.1 by 0.020000000000000004 (a win).
  ``tests/test_seed_composite.py`` pins these cases.
* **Insufficient metrics** (the battle stays undecided): a side with no metric set, or whose set
  holds none of the five metrics above. The seed judged only evaluations that had finished, and
  a finished evaluation always measured all five; a set that measures nothing the composite
  reads is not an evaluation of it, and scoring it 0 would decide the battle on a guess. One
  side measured less than the other is not insufficient: the seed's defaults apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from msgspec import Struct

__all__ = [
    "SOURCES",
    "TIE_THRESHOLD",
    "WEIGHTS",
    "Judgement",
    "Outcome",
    "judge",
    "measured",
    "outcome_of",
    "seed_composite",
    "seed_terms",
]

Outcome = Literal["a", "b", "tie"]

#: Component -> weight (seed 000).
WEIGHTS: dict[str, float] = {
    "semascore": 0.30,
    "wer": 0.25,
    "prosody": 0.20,
    "quality": 0.15,
    "latency": 0.10,
}
#: Component -> the Arbiter metric it is computed from.
SOURCES: dict[str, str] = {
    "semascore": "semascore",
    "wer": "wer",
    "prosody": "prosody_score",
    "quality": "quality_score",
    "latency": "latency_ms",
}
#: Composites whose difference is below this (strictly) are a tie (seed 000).
TIE_THRESHOLD = 0.02


def measured(metrics: Mapping[str, float]) -> list[str]:
    """The components whose metric ``metrics`` holds, in :data:`WEIGHTS` order."""
    return [c for c, name in SOURCES.items() if name in metrics]


def seed_terms(metrics: Mapping[str, float]) -> dict[str, float]:
    """The value of each of the seed's five terms (before its weight), a missing metric counted
    as the seed counts it: semascore 0, WER 1, prosody 0, quality 0, latency 1000 ms. The one
    place the terms are written: :func:`seed_composite` weighs them, the evals show them."""
    semascore = float(metrics.get("semascore", 0.0))
    if semascore < 0:
        semascore = 0.0
    latency = float(metrics.get("latency_ms", 1000.0))
    return {
        "semascore": semascore,
        "wer": 1 - float(metrics.get("wer", 1.0)),
        "prosody": float(metrics.get("prosody_score", 0.0)),
        "quality": float(metrics.get("quality_score", 0.0)),
        "latency": 1 - min(latency / 1000, 1.0),
    }


def seed_composite(metrics: Mapping[str, float]) -> float:
    """Seed 000's composite of one metric set; a missing metric counts as the seed counts it.
    The sum runs in the seed's order, so the float result is the seed's to the bit."""
    t = seed_terms(metrics)
    return (
        0.30 * t["semascore"]
        + 0.25 * t["wer"]
        + 0.20 * t["prosody"]
        + 0.15 * t["quality"]
        + 0.10 * t["latency"]
    )


def outcome_of(score_a: float, score_b: float, tie_threshold: float = TIE_THRESHOLD) -> Outcome:
    """The seed's verdict between two composites: a tie when ``abs(a - b) < tie_threshold``."""
    diff = score_a - score_b
    if abs(diff) < tie_threshold:
        return "tie"
    return "a" if diff > 0 else "b"


class Judgement(Struct, frozen=True):
    """What the auto-judge decided, and on which composites."""

    outcome: Outcome
    composite_a: float
    composite_b: float


def judge(
    metrics_a: Mapping[str, float] | None, metrics_b: Mapping[str, float] | None
) -> Judgement | None:
    """Seed 000's verdict between two metric sets, or None when they are insufficient (a side
    without a set, or with none of the composite's five metrics): the battle stays undecided."""
    if not metrics_a or not metrics_b or not measured(metrics_a) or not measured(metrics_b):
        return None
    a, b = seed_composite(metrics_a), seed_composite(metrics_b)
    return Judgement(outcome_of(a, b), a, b)
