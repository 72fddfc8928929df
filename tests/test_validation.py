"""Validation: every bad input becomes a rejection with a stable code and a useful sentence."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from arbiter.domain.events import BattleCompleted
from arbiter.domain.rejections import Code, Rejection
from arbiter.domain.validation import MAX_EVENT_BYTES, decode_event

from .helpers import battle, raw

NOW = datetime(2026, 6, 1, tzinfo=UTC)
GOOD = battle(1, "m1", "m2")


def reject(payload: bytes) -> Rejection:
    result = decode_event(payload, now=NOW)
    assert isinstance(result, Rejection), result
    assert result.message.endswith(".") and len(result.message) > 20
    return result


def test_valid_battle_decodes_typed() -> None:
    event = decode_event(raw(GOOD), now=NOW)
    assert isinstance(event, BattleCompleted)
    assert (event.a, event.b, event.outcome, event.arena, event.judge) == (
        "m1",
        "m2",
        "a",
        "default",
        "auto",
    )


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b"{not json", Code.MALFORMED_JSON, None),
        (b"", Code.MALFORMED_JSON, None),
        (b"[1, 2]", Code.NOT_AN_OBJECT, None),
        (raw({k: v for k, v in GOOD.items() if k != "b"}), Code.MISSING_FIELD, "b"),
        (raw({k: v for k, v in GOOD.items() if k != "type"}), Code.UNKNOWN_TYPE, "type"),
        (raw({**GOOD, "type": "battle.exploded"}), Code.UNKNOWN_TYPE, "type"),
        (raw({**GOOD, "a": 42}), Code.WRONG_TYPE, "a"),
        (raw({**GOOD, "b": "m1"}), Code.SAME_COMPETITOR, "b"),
        (raw({**GOOD, "outcome": "draw"}), Code.UNKNOWN_OUTCOME, "outcome"),
        (raw({**GOOD, "outcom": "a"}), Code.UNKNOWN_FIELD, "outcom"),
        (raw({**GOOD, "event_id": ""}), Code.INVALID_VALUE, "event_id"),
        (raw({**GOOD, "event_id": "x" * 129}), Code.INVALID_VALUE, "event_id"),
        (raw({**GOOD, "occurred_at": "2025-01-01T00:00:00"}), Code.INVALID_TIMESTAMP,
         "occurred_at"),
        (raw({**GOOD, "occurred_at": "9999-01-01T00:00:00Z"}), Code.INVALID_TIMESTAMP,
         "occurred_at"),
        (raw({**GOOD, "metrics": {"a": {"wer": 1e999}}}), Code.NON_FINITE_NUMBER, None),
        (json.dumps({**GOOD, "metrics": {"a": {"wer": float("nan")}}}).encode(),
         Code.NON_FINITE_NUMBER, "metrics.a.wer"),
        (raw({**GOOD, "meta": {"x": "y" * (MAX_EVENT_BYTES + 1)}}), Code.TOO_LARGE, None),
    ],
)  # fmt: skip
def test_bad_inputs_get_codes(payload: bytes, code: Code, field: str | None) -> None:
    rejection = reject(payload)
    assert rejection.code == code, rejection
    if field is not None:
        assert rejection.field == field


def test_rejection_carries_ids_when_readable() -> None:
    rejection = reject(raw({**GOOD, "b": "m1"}))
    assert rejection.event_id == GOOD["event_id"]
    assert rejection.type == "battle.completed"
    too_big = reject(raw({**GOOD, "meta": {"x": "y" * MAX_EVENT_BYTES}}))
    assert too_big.event_id == GOOD["event_id"]


def test_key_order_and_spacing_do_not_change_meaning() -> None:
    from arbiter.adapters.eventstore import digest

    a = decode_event(raw(GOOD), now=NOW)
    b = decode_event(json.dumps(dict(reversed(GOOD.items())), indent=2).encode(), now=NOW)
    assert isinstance(a, BattleCompleted) and isinstance(b, BattleCompleted)
    assert digest(a) == digest(b)
    c = decode_event(raw({**GOOD, "outcome": "b"}), now=NOW)
    assert isinstance(c, BattleCompleted) and digest(c) != digest(a)
