"""Seed 000's composite and auto-judge verdict (arbiter.domain.composite): the seed's numbers,
its missing-metric rule, the 0.02 boundary, and properties over random metric sets."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from arbiter.domain.composite import (
    SOURCES,
    TIE_THRESHOLD,
    WEIGHTS,
    judge,
    measured,
    outcome_of,
    seed_composite,
)
from hypothesis import given
from hypothesis import strategies as st

FULL = {"semascore": 0.85, "wer": 0.2, "prosody_score": 0.6, "quality_score": 0.75}
FULL["latency_ms"] = 250.0
DEFAULTS = {"semascore": 0.0, "wer": 1.0, "prosody_score": 0.0, "quality_score": 0.0}
DEFAULTS["latency_ms"] = 1000.0


def test_the_seed_weights_and_formula():
    assert WEIGHTS == {"semascore": 0.3, "wer": 0.25, "prosody": 0.2, "quality": 0.15,
                       "latency": 0.1}  # fmt: skip
    assert TIE_THRESHOLD == 0.02
    # 0.255 + 0.2 + 0.12 + 0.1125 + 0.075, added left to right as the seed adds them.
    expected = 0.30 * 0.85 + 0.25 * (1 - 0.2) + 0.20 * 0.6 + 0.15 * 0.75 + 0.10 * (1 - 0.25)
    assert seed_composite(FULL) == expected
    assert seed_composite(FULL) == pytest.approx(0.7625)
    assert seed_composite({"latency_ms": 5000.0}) == 0.0  # latency term floors at 0
    assert seed_composite({"semascore": -0.5}) == 0.0  # the seed clamps a negative semascore
    assert seed_composite({"wer": 3.0}) == 0.25 * (1 - 3.0)  # and nothing else: WER > 1 costs


def test_semascore_080_against_074_is_a_tie_not_a_win():
    """The issue's example: renormalised, these would be 0.80 against 0.74 (a win); the seed
    counts the missing metrics as 0 and compares 0.24 with 0.222."""
    verdict = judge({"semascore": 0.80}, {"semascore": 0.74})
    assert verdict is not None
    assert verdict.outcome == "tie"
    assert (verdict.composite_a, verdict.composite_b) == (0.30 * 0.80, 0.30 * 0.74)
    assert judge({"semascore": 0.74}, {"semascore": 0.80}).outcome == "tie"  # type: ignore[union-attr]


def test_missing_metrics_count_as_the_seed_counts_them():
    for name, default in DEFAULTS.items():
        partial = {k: v for k, v in FULL.items() if k != name}
        assert seed_composite(partial) == seed_composite({**partial, name: default}), name
    assert seed_composite({}) == 0.0
    # Full against the same set less semascore: 0.24 apart, a win, never renormalised away.
    less = {k: v for k, v in FULL.items() if k != "semascore"}
    assert judge(FULL, less).outcome == "a"  # type: ignore[union-attr]


def test_the_tie_boundary_is_the_seeds_strict_less_than():
    assert outcome_of(0.02, 0.0) == "a"
    assert outcome_of(0.0, 0.02) == "b"
    assert outcome_of(math.nextafter(0.02, 0.0), 0.0) == "tie"
    assert outcome_of(0.5, 0.5) == "tie"
    # A float difference of exactly 0.02 is not a tie (the seed's ``abs(diff) < 0.02``).
    exact = judge({"prosody_score": 0.102}, {"prosody_score": 0.002})
    assert exact is not None and exact.composite_a - exact.composite_b == 0.02
    assert exact.outcome == "a"
    # Differences that are 0.02 in decimal land on either side of the double 0.02.
    below = judge({"wer": 0.0}, {"wer": 0.08})
    assert below is not None and below.composite_a - below.composite_b < 0.02
    assert below.outcome == "tie"
    above = judge({"prosody_score": 0.2}, {"prosody_score": 0.1})
    assert above is not None and above.composite_a - above.composite_b > 0.02
    assert above.outcome == "a"


def test_insufficient_metrics_leave_the_battle_undecided():
    assert judge(None, FULL) is None
    assert judge(FULL, None) is None
    assert judge({}, FULL) is None
    assert judge(FULL, {"duration_s": 3.0, "snr_db": 20.0}) is None  # nothing the composite reads
    assert judge({"latency_ms": 100.0}, {"duration_s": 3.0, "wer": 0.5}) is not None
    assert measured({"wer": 0.1, "latency_ms": 3.0, "x": 1.0}) == ["wer", "latency"]


# -- properties ---------------------------------------------------------------------------------

_RANGES = {
    "semascore": st.floats(0, 1),
    "wer": st.floats(0, 1000),
    "prosody_score": st.floats(0, 1),
    "quality_score": st.floats(0, 1),
    "latency_ms": st.floats(0, 86_400_000),
}
METRICS = st.fixed_dictionaries({}, optional=_RANGES)
"""Any subset of the five metrics, each anywhere in the range the ingest accepts."""


def _exact(metrics: dict[str, float]) -> Fraction:
    """The composite in exact rational arithmetic, written independently of the seed's code."""
    full = {**DEFAULTS, **metrics}
    terms = {
        "semascore": Fraction(max(full["semascore"], 0.0)),
        "wer": 1 - Fraction(full["wer"]),
        "prosody": Fraction(full["prosody_score"]),
        "quality": Fraction(full["quality_score"]),
        "latency": 1 - min(Fraction(full["latency_ms"]) / 1000, Fraction(1)),
    }
    return sum((Fraction(WEIGHTS[c]) * terms[c] for c in WEIGHTS), Fraction(0))


@given(a=METRICS, b=METRICS)
def test_verdict_properties(a: dict[str, float], b: dict[str, float]) -> None:
    verdict, mirror = judge(a, b), judge(b, a)
    if not measured(a) or not measured(b):
        assert verdict is None and mirror is None
        return
    assert verdict is not None and mirror is not None
    # Swapping the sides mirrors the verdict, composites included.
    assert mirror.outcome == {"a": "b", "b": "a", "tie": "tie"}[verdict.outcome]
    assert (mirror.composite_a, mirror.composite_b) == (verdict.composite_b, verdict.composite_a)
    # The verdict is the seed's rule on the composites shown.
    diff = verdict.composite_a - verdict.composite_b
    assert (verdict.outcome == "tie") == (abs(diff) < TIE_THRESHOLD)
    # The float composite is the exact one to within rounding, so away from the boundary the
    # verdict is the one exact arithmetic gives.
    exact = _exact(a) - _exact(b)
    assert abs(float(exact) - diff) <= 1e-9 * max(1.0, abs(float(exact)))
    if abs(abs(exact) - Fraction(TIE_THRESHOLD)) > Fraction(1, 10**6):
        expected = "tie" if abs(exact) < Fraction(TIE_THRESHOLD) else ("a" if exact > 0 else "b")
        assert verdict.outcome == expected


@given(m=METRICS)
def test_a_missing_metric_is_its_seed_default(m: dict[str, float]) -> None:
    assert seed_composite(m) == seed_composite({**DEFAULTS, **m})
    assert set(measured(m)) == {c for c, name in SOURCES.items() if name in m}
