"""Pure builders of the auto-judge's wire events (wire format v1, see DESIGN.md).

No I/O, no clock, no randomness: the same inputs always give the same dict, byte for byte once
serialised. That is what makes a rerun safe. The ingest is idempotent on ``event_id``; a resend
with the same id and the same content is a no-op, with other content it is rejected. So:

- ``event_id`` is derived from the identity of what was judged (event type, arena, category,
  ids, competitors and the SHA-256 of each audio file), never from a counter or the time;
- ``occurred_at`` is supplied by the caller (the manifest runner uses the audio files' mtime
  unless the manifest gives one), never read from the clock here.

Metrics do not enter the id: re-evaluating the same audio with a changed setup yields the same
id with different content, which the ingest rejects instead of counting the battle twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from arbiter.evals.composite import TIE_THRESHOLD, auto_winner

__all__ = [
    "JUDGE",
    "SOURCE",
    "battle_event",
    "battle_event_id",
    "derived_battle_id",
    "rfc3339",
    "trial_event",
    "trial_event_id",
]


SOURCE = "arbiter.evals"
JUDGE = "auto"


def rfc3339(value: datetime | str) -> str:
    """An RFC 3339 UTC timestamp with millisecond precision, e.g. 2025-01-31T12:00:00.000Z.

    Accepts an aware datetime, a naive one (taken as UTC), or an ISO 8601 string.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digest(*parts: object) -> str:
    """SHA-256 hex of the parts as a canonical JSON array."""
    blob = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _check_id(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ValueError(f"{name} must be a non-empty string of at most 128 characters")
    return value


def _check_metrics(label: str, metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{label}.{key} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{label}.{key} must be finite, got {value}")
        out[str(key)] = value
    return out


def battle_event_id(
    *,
    a: str,
    b: str,
    audio_sha256_a: str,
    audio_sha256_b: str,
    battle_id: str | None = None,
    arena: str = "default",
    category: str | None = None,
) -> str:
    """Deterministic event id of an auto-judged battle ("evals-battle-" + 40 hex)."""
    h = _digest(
        "battle.completed", arena, category, battle_id, a, b, audio_sha256_a, audio_sha256_b
    )
    return f"evals-battle-{h[:40]}"


def derived_battle_id(event_id: str) -> str:
    """The battle id used when the caller has none: stable, and tied to the event id."""
    return "auto-" + event_id.removeprefix("evals-battle-")[:32]


def trial_event_id(
    *,
    experiment_id: str,
    trial_id: str,
    competitor: str,
    prompt_index: int,
    audio_sha256: str,
    arena: str = "default",
) -> str:
    """Deterministic event id of an evaluated trial ("evals-trial-" + 40 hex)."""
    h = _digest(
        "trial.completed", arena, experiment_id, trial_id, competitor, prompt_index, audio_sha256
    )
    return f"evals-trial-{h[:40]}"


def battle_event(
    *,
    a: str,
    b: str,
    metrics_a: Mapping[str, float],
    metrics_b: Mapping[str, float],
    audio_sha256_a: str,
    audio_sha256_b: str,
    occurred_at: datetime | str,
    battle_id: str | None = None,
    arena: str = "default",
    category: str | None = None,
    scenario: str | None = None,
    source: str = SOURCE,
    tie_threshold: float = TIE_THRESHOLD,
    meta: Mapping[str, Any] | None = None,
    renormalise: bool = False,
) -> dict[str, Any]:
    """A ``battle.completed`` event judged "auto": the outcome is the composite verdict, by
    seed 000's rule unless ``renormalise`` (see :mod:`arbiter.evals.composite`).

    ``meta.auto_judge`` records the composites, the components compared on, the ones missing
    (counted at the seed's defaults, or left out when ``renormalised``) and the tie threshold,
    so anyone can re-derive the outcome from the event alone.
    """
    _check_id("a", a)
    _check_id("b", b)
    if a == b:
        raise ValueError("a battle needs two distinct competitors")
    ma = _check_metrics("metrics.a", metrics_a)
    mb = _check_metrics("metrics.b", metrics_b)
    verdict = auto_winner(ma, mb, tie_threshold, renormalise=renormalise)
    event_id = battle_event_id(
        a=a,
        b=b,
        audio_sha256_a=audio_sha256_a,
        audio_sha256_b=audio_sha256_b,
        battle_id=battle_id,
        arena=arena,
        category=category,
    )
    info = {
        "auto_judge": {
            "composite_a": round(verdict.score_a, 6),
            "composite_b": round(verdict.score_b, 6),
            "compared_on": verdict.compared_on,
            "missing": verdict.missing,
            "renormalised": renormalise and bool(verdict.missing),
            "tie_threshold": tie_threshold,
        },
        "audio_sha256": {"a": audio_sha256_a, "b": audio_sha256_b},
    }
    event: dict[str, Any] = {
        "type": "battle.completed",
        "event_id": event_id,
        "occurred_at": rfc3339(occurred_at),
        "source": source,
        "arena": arena,
        "battle_id": _check_id("battle_id", battle_id or derived_battle_id(event_id)),
        "a": a,
        "b": b,
        "outcome": verdict.outcome,
        "judge": JUDGE,
        "metrics": {"a": ma, "b": mb},
        "meta": {**info, **dict(meta or {})},
    }
    if category is not None:
        event["category"] = category
    if scenario is not None:
        event["scenario"] = scenario
    return event


def trial_event(
    *,
    experiment_id: str,
    trial_id: str,
    competitor: str,
    prompt_index: int,
    metrics: Mapping[str, float],
    audio_sha256: str,
    occurred_at: datetime | str,
    arena: str = "default",
    category: str | None = None,
    dimensions: Mapping[str, str] | None = None,
    status: str = "completed",
    error: str | None = None,
    source: str = SOURCE,
) -> dict[str, Any]:
    """A ``trial.completed`` event carrying a clip's metrics.

    ``status="failed"`` with an ``error`` records a trial whose audio could not be evaluated
    (unreadable or empty output is a result about the competitor, not a worker crash).
    """
    for name, value in (
        ("experiment_id", experiment_id),
        ("trial_id", trial_id),
        ("competitor", competitor),
    ):
        _check_id(name, value)
    if isinstance(prompt_index, bool) or not isinstance(prompt_index, int) or prompt_index < 0:
        raise ValueError("prompt_index must be a non-negative integer")
    if status not in ("completed", "failed"):
        raise ValueError('status must be "completed" or "failed"')
    if status == "failed" and not error:
        raise ValueError("a failed trial needs an error message")
    event: dict[str, Any] = {
        "type": "trial.completed",
        "event_id": trial_event_id(
            experiment_id=experiment_id,
            trial_id=trial_id,
            competitor=competitor,
            prompt_index=prompt_index,
            audio_sha256=audio_sha256,
            arena=arena,
        ),
        "occurred_at": rfc3339(occurred_at),
        "source": source,
        "arena": arena,
        "experiment_id": experiment_id,
        "trial_id": trial_id,
        "competitor": competitor,
        "prompt_index": prompt_index,
        "status": status,
        "metrics": _check_metrics("metrics", metrics),
    }
    if error is not None:
        event["error"] = error
    if category is not None:
        event["category"] = category
    if dimensions:
        dims = {str(k): str(v) for k, v in dimensions.items()}
        event["dimensions"] = dict(sorted(dims.items()))
    return event
