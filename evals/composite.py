"""The composite score of a voice response and the auto-judge's verdict between two.

    composite = 0.30 semascore + 0.25 (1 - WER) + 0.20 prosody + 0.15 quality
              + 0.10 (1 - min(latency_ms / 1000, 1))

Two rules for a component that was not measured (no semantic scorer, no reference text, no
latency):

* **Seed 000's, the default** (issue 13 point 4): it counts as the seed counted it, i.e. its term
  is 0, and the weights are not rescaled. The arithmetic and the tie rule are
  :mod:`arbiter.domain.composite`'s, the very functions the ratings fold decides outcome-null
  battles with in an opted-in arena, so ``arbiter evals battle`` and the fold never disagree
  on the same metrics. 0.80 against 0.74 semascore, nothing else measured, is a tie (0.24
  against 0.222).
* **Renormalised** (``renormalise=True``, ``--renormalise`` on the CLI): the component is left
  out and the remaining weights are rescaled to sum to 1, every term clamped into 0..1 first
  (semascore and WER to [0, 1], latency at 0 below); two clips are compared on the components
  both have, so renormalisation never favours the side measured less. The same 0.80 against
  0.74 is then a win. It reads a partly measured clip as "as good as what was measured", where
  the seed reads it as "nothing for what was not".

Either way the result lists what was missing and whether renormalisation happened, so a reader
knows what a number stands on; a clip with none of the five metrics has no composite (an error
here, an undecided battle in the fold).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from arbiter.domain.composite import (
    SOURCES,
    TIE_THRESHOLD,
    WEIGHTS,
    Outcome,
    measured,
    outcome_of,
    seed_composite,
    seed_terms,
)

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


class Composite(msgspec.Struct, frozen=True):
    """A composite score and what it is made of.

    Attributes:
        score: the composite (seed rule: missing components add 0; renormalised: the
            weighted mean of the present ones).
        components: component -> its term's value (e.g. "wer" -> 1 - WER), measured ones only.
        weights: component -> the weight applied (seed rule: all five as they are;
            renormalised: the present ones, rescaled to sum to 1).
        missing: components that were not measured.
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


def _seed_terms(metrics: Mapping[str, float]) -> dict[str, float]:
    """The seed's term value of each measured component (:func:`seed_terms`, the domain's)."""
    terms = seed_terms(metrics)
    return {c: terms[c] for c in measured(metrics)}


def _nothing_measured(considered: list[str]) -> ValueError:
    return ValueError(
        "no composite component measured: need at least one of "
        + ", ".join(SOURCES[c] for c in considered)
    )


def composite(
    metrics: Mapping[str, float],
    *,
    only: frozenset[str] | set[str] | None = None,
    renormalise: bool = False,
) -> Composite:
    """Composite of one clip's metrics (keys: semascore, wer, prosody_score, quality_score,
    latency_ms; all optional), by seed 000's rule or ``renormalise``d. ``only`` restricts the
    components a renormalised composite considers (to compare two clips on common ground).
    Raises ValueError when no component is present."""
    if not renormalise:
        terms = _seed_terms(metrics)
        if not terms:
            raise _nothing_measured(list(WEIGHTS))
        return Composite(
            score=seed_composite(metrics),
            components=terms,
            weights=dict(WEIGHTS),
            missing=[c for c in WEIGHTS if c not in terms],
            renormalised=False,
        )
    values = component_values(metrics)
    considered = [c for c in WEIGHTS if only is None or c in only]
    present = [c for c in considered if c in values]
    if not present:
        raise _nothing_measured(considered)
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
    *,
    renormalise: bool = False,
) -> Verdict:
    """Decide a battle by composite: "tie" when |score_a - score_b| < tie_threshold, else the
    higher side (:func:`arbiter.domain.composite.outcome_of`). By seed 000's rule both sides
    are scored on all five components, a missing one counted as the seed counts it (``missing``
    lists those either side lacks); renormalised, on the components both have."""
    if not renormalise:
        a, b = composite(metrics_a), composite(metrics_b)
        return Verdict(
            outcome=outcome_of(a.score, b.score, tie_threshold),
            score_a=a.score,
            score_b=b.score,
            compared_on=list(WEIGHTS),
            missing=[c for c in WEIGHTS if c in a.missing or c in b.missing],
        )
    common = frozenset(component_values(metrics_a)) & frozenset(component_values(metrics_b))
    if not common:
        raise ValueError("the two clips share no measured composite component")
    a = composite(metrics_a, only=common, renormalise=True)
    b = composite(metrics_b, only=common, renormalise=True)
    return Verdict(
        outcome=outcome_of(a.score, b.score, tie_threshold),
        score_a=a.score,
        score_b=b.score,
        compared_on=[c for c in WEIGHTS if c in common],
        missing=[c for c in WEIGHTS if c not in common],
    )
