"""The auto-judge's event builders: wire shape, determinism, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from arbiter.evals.judge import battle_event, rfc3339, trial_event

pytestmark = pytest.mark.evals

SHA_A = "a" * 64
SHA_B = "b" * 64
GOOD = {"wer": 0.05, "prosody_score": 0.9, "quality_score": 0.9, "latency_ms": 300.0}
POOR = {"wer": 0.40, "prosody_score": 0.5, "quality_score": 0.6, "latency_ms": 900.0}
WHEN = datetime(2025, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)


def battle(**overrides):
    args = {
        "a": "tts-one",
        "b": "tts-two",
        "metrics_a": GOOD,
        "metrics_b": POOR,
        "audio_sha256_a": SHA_A,
        "audio_sha256_b": SHA_B,
        "occurred_at": WHEN,
    }
    args.update(overrides)
    return battle_event(**args)


def trial(**overrides):
    args = {
        "experiment_id": "exp-1",
        "trial_id": "t-7",
        "competitor": "tts-one",
        "prompt_index": 3,
        "metrics": GOOD,
        "audio_sha256": SHA_A,
        "occurred_at": WHEN,
    }
    args.update(overrides)
    return trial_event(**args)


def test_battle_event_shape():
    e = battle(category="support", scenario="refund")
    assert e["type"] == "battle.completed"
    assert e["judge"] == "auto"
    assert (e["a"], e["b"], e["outcome"]) == ("tts-one", "tts-two", "a")
    assert e["metrics"] == {"a": GOOD, "b": POOR}
    assert e["arena"] == "default"
    assert e["category"] == "support" and e["scenario"] == "refund"
    assert e["occurred_at"] == "2025-03-01T12:30:05.250Z"
    assert e["event_id"].startswith("evals-battle-") and len(e["event_id"]) <= 128
    assert e["battle_id"].startswith("auto-")
    judge = e["meta"]["auto_judge"]
    assert judge["composite_a"] > judge["composite_b"]
    assert judge["missing"] == ["semascore"] and judge["renormalised"] is False  # seed 000's rule
    assert battle(renormalise=True)["meta"]["auto_judge"]["renormalised"] is True
    json.dumps(e, allow_nan=False)  # plain JSON, finite numbers only


def test_outcome_follows_the_composite():
    assert battle(metrics_a=POOR, metrics_b=GOOD)["outcome"] == "b"
    assert battle(metrics_b=GOOD)["outcome"] == "tie"


def test_battle_event_is_deterministic():
    assert json.dumps(battle(), sort_keys=True) == json.dumps(battle(), sort_keys=True)


def test_battle_id_depends_on_identity_not_on_metrics():
    base = battle()
    assert battle(metrics_a=POOR)["event_id"] == base["event_id"]
    assert battle(audio_sha256_b="c" * 64)["event_id"] != base["event_id"]
    assert battle(a="tts-two", b="tts-one")["event_id"] != base["event_id"]
    assert battle(arena="other")["event_id"] != base["event_id"]
    assert battle(battle_id="b-1")["battle_id"] == "b-1"
    assert battle(battle_id="b-1")["event_id"] != base["event_id"]


def test_battle_rejects_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        battle(b="tts-one")
    with pytest.raises(ValueError, match="finite"):
        battle(metrics_a=dict(GOOD, wer=float("nan")))
    with pytest.raises(ValueError, match="number"):
        battle(metrics_a=dict(GOOD, wer="0.1"))
    with pytest.raises(ValueError, match="share no"):
        battle(metrics_a={"semascore": 0.5}, metrics_b={"wer": 0.1}, renormalise=True)
    with pytest.raises(ValueError, match="no composite component"):
        battle(metrics_b={"duration_s": 2.0})


def test_seed_rule_by_default_renormalised_on_request():
    """The issue's example: 0.80 against 0.74 semascore with nothing else measured."""
    sema = {"metrics_a": {"semascore": 0.80}, "metrics_b": {"semascore": 0.74}}
    seed = battle(**sema)
    assert seed["outcome"] == "tie"
    assert seed["meta"]["auto_judge"]["composite_a"] == 0.24
    assert seed["meta"]["auto_judge"]["composite_b"] == 0.222
    assert battle(**sema, renormalise=True)["outcome"] == "a"


def test_trial_event_shape_and_determinism():
    e = trial(dimensions={"persona": "calm", "style": "fast"}, category="c")
    assert e["type"] == "trial.completed"
    assert (e["experiment_id"], e["trial_id"], e["competitor"]) == ("exp-1", "t-7", "tts-one")
    assert e["prompt_index"] == 3
    assert e["status"] == "completed"
    assert e["metrics"] == GOOD
    assert e["dimensions"] == {"persona": "calm", "style": "fast"}
    assert "error" not in e
    assert e == trial(dimensions={"style": "fast", "persona": "calm"}, category="c")
    assert e["event_id"].startswith("evals-trial-")
    assert trial(prompt_index=4)["event_id"] != e["event_id"]
    assert trial(audio_sha256=SHA_B)["event_id"] != e["event_id"]


def test_failed_trial():
    e = trial(status="failed", error="empty audio", metrics={})
    assert e["status"] == "failed" and e["error"] == "empty audio"
    with pytest.raises(ValueError, match="error message"):
        trial(status="failed")
    with pytest.raises(ValueError, match="prompt_index"):
        trial(prompt_index=-1)


def test_rfc3339():
    assert rfc3339("2025-03-01T14:30:05+02:00") == "2025-03-01T12:30:05.000Z"
    assert rfc3339("2025-03-01T12:30:05Z") == "2025-03-01T12:30:05.000Z"
    assert rfc3339(datetime(2025, 3, 1, 12)) == "2025-03-01T12:00:00.000Z"  # naive = UTC
    plus5 = timezone(timedelta(hours=5))
    assert rfc3339(datetime(2025, 3, 1, 17, tzinfo=plus5)) == "2025-03-01T12:00:00.000Z"
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339("yesterday")
