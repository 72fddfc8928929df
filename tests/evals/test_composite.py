"""Composite score, renormalisation when components are missing, and the auto-winner."""

from __future__ import annotations

import pytest
from arbiter.domain.composite import judge, seed_composite
from arbiter.evals.composite import WEIGHTS, auto_winner, composite
from arbiter.evals.scores import prosody_score, quality_score, trapezoid

pytestmark = pytest.mark.evals

FULL = {
    "semascore": 0.8,
    "wer": 0.1,
    "prosody_score": 0.7,
    "quality_score": 0.9,
    "latency_ms": 400.0,
}


def test_full_composite_uses_the_seed_weights():
    c = composite(FULL)
    expected = 0.30 * 0.8 + 0.25 * 0.9 + 0.20 * 0.7 + 0.15 * 0.9 + 0.10 * 0.6
    assert c.score == pytest.approx(expected)  # 0.8
    assert c.missing == []
    assert c.renormalised is False
    assert c.weights == pytest.approx(WEIGHTS)


def test_without_semascore_the_seed_counts_it_zero():
    metrics = {k: v for k, v in FULL.items() if k != "semascore"}
    c = composite(metrics)
    assert c.score == seed_composite(metrics) == seed_composite(dict(metrics, semascore=0.0))
    assert c.score == pytest.approx(0.8 - 0.30 * 0.8)
    assert c.missing == ["semascore"] and c.renormalised is False
    assert c.weights == WEIGHTS and "semascore" not in c.components


def test_without_semascore_the_rest_is_renormalised():
    metrics = {k: v for k, v in FULL.items() if k != "semascore"}
    c = composite(metrics, renormalise=True)
    expected = (0.25 * 0.9 + 0.20 * 0.7 + 0.15 * 0.9 + 0.10 * 0.6) / 0.70
    assert c.score == pytest.approx(expected)
    assert c.missing == ["semascore"]
    assert c.renormalised is True
    assert sum(c.weights.values()) == pytest.approx(1.0)
    assert c.weights["wer"] == pytest.approx(0.25 / 0.70)


def test_out_of_range_inputs_are_clamped_when_renormalised():
    c = composite({"semascore": -0.3, "wer": 2.5, "latency_ms": 5000.0}, renormalise=True)
    assert c.components == {"semascore": 0.0, "wer": 0.0, "latency": 0.0}
    assert c.score == 0.0
    assert composite({"latency_ms": -10.0}, renormalise=True).score == 1.0


def test_the_seed_clamps_only_a_negative_semascore():
    c = composite({"semascore": -0.3, "wer": 2.5, "latency_ms": 5000.0})
    assert c.components == {"semascore": 0.0, "wer": -1.5, "latency": 0.0}
    assert c.score == 0.25 * (1 - 2.5)


def test_nothing_measured_is_an_error():
    with pytest.raises(ValueError, match="no composite component"):
        composite({"duration_s": 3.0})


def test_winner_and_tie_threshold():
    better = dict(FULL, wer=0.0)  # +0.025 composite
    assert auto_winner(better, FULL).outcome == "a"
    assert auto_winner(FULL, better).outcome == "b"
    slightly = dict(FULL, wer=0.05)  # +0.0125: inside the 0.02 tie band
    assert auto_winner(slightly, FULL).outcome == "tie"
    assert auto_winner(slightly, FULL, tie_threshold=0.01).outcome == "a"


def test_renormalised_sides_are_compared_on_common_components():
    # b lacks semascore; a's great semascore must not decide the battle.
    a = dict(FULL, semascore=1.0, wer=0.3)
    b = {k: v for k, v in FULL.items() if k != "semascore"}
    verdict = auto_winner(a, b, renormalise=True)
    assert "semascore" not in verdict.compared_on
    assert verdict.missing == ["semascore"]
    assert verdict.outcome == "b"  # on the shared components b's lower WER wins
    # By seed 000's rule b's missing semascore counts 0, so a's 0.30 more decides it.
    seed = auto_winner(a, b)
    assert seed.outcome == "a" and seed.missing == ["semascore"]
    assert seed.compared_on == list(WEIGHTS)
    assert (seed.score_a, seed.score_b) == (seed_composite(a), seed_composite(b))


def test_auto_winner_is_the_domain_verdict():
    sema = ({"semascore": 0.80}, {"semascore": 0.74})
    assert auto_winner(*sema).outcome == judge(*sema).outcome == "tie"  # type: ignore[union-attr]
    assert auto_winner(*sema, renormalise=True).outcome == "a"


def test_trapezoid():
    assert trapezoid(0.0, 1, 2, 3, 4) == 0.0
    assert trapezoid(1.5, 1, 2, 3, 4) == pytest.approx(0.5)
    assert trapezoid(2.5, 1, 2, 3, 4) == 1.0
    assert trapezoid(3.75, 1, 2, 3, 4) == pytest.approx(0.25)
    assert trapezoid(9.0, 1, 2, 3, 4) == 0.0


def test_prosody_score_is_the_mean_of_available_parts():
    lively = {
        "f0_spread_semitones": 3.0,
        "speaking_rate_wps": 2.5,
        "pause_ratio": 0.1,
        "voiced_ratio": 0.7,
    }
    assert prosody_score(lively) == 1.0
    monotone = dict(lively, f0_spread_semitones=0.2)
    assert prosody_score(monotone) == pytest.approx(0.75)
    assert prosody_score({"pause_ratio": 0.425}) == pytest.approx(0.5)
    assert prosody_score({}) is None


def test_quality_score_formula():
    assert quality_score({"snr_db": 35.0, "active_rms_dbfs": -20.0}) == 1.0
    assert quality_score({"snr_db": 20.0, "active_rms_dbfs": -20.0}) == pytest.approx(
        0.7 * 0.5 + 0.3
    )
    half_clipped = {"snr_db": 35.0, "active_rms_dbfs": -20.0, "clipping_ratio": 0.005}
    assert quality_score(half_clipped) == pytest.approx(0.5)
    assert quality_score({"snr_db": 35.0}) == 1.0
    assert quality_score({}) is None
