"""What the identifier rule costs ``decode_event``, the ingest's hot path, per event.

Each case is decoded with the rule and without it (both of its checks replaced by no-ops), best
of 9 runs of 50,000 decodes; the difference is the rule's cost. Compact ASCII JSON (what
``Publisher`` sends) is cleared by the byte scan; JSON with spaces is checked field by field;
non-ASCII identifiers are checked and normalised to NFC.

    .venv/bin/python benchmarks/decode_identifiers.py
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from arbiter.domain import validation

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BATTLE = {
    "type": "battle.completed", "event_id": "ev-123456", "occurred_at": "2026-01-01T00:00:00Z",
    "battle_id": "b-123456", "a": "model-17", "b": "model-42", "outcome": "a", "arena": "bench",
    "category": "support", "judge": "human", "source": "bench-worker",
}  # fmt: skip
TRIAL = {
    "type": "trial.completed", "event_id": "t-1", "occurred_at": "2026-01-01T00:00:00Z",
    "experiment_id": "x1", "trial_id": "t-1", "competitor": "model-3", "prompt_index": 4,
    "status": "completed", "metrics": {"ttfb_ms": 120.0, "latency_ms": 340.5},
    "dimensions": {"persona": "nurse", "style": "calm"},
}  # fmt: skip
NON_ASCII = {**BATTLE, "a": "cafe\u0301-x", "b": "\u65e5\u672c\u8a9e"}
SPACED: Callable[[Any], bytes] = lambda e: json.dumps(e).encode()  # noqa: E731
CASES: list[tuple[str, dict[str, Any], Callable[[Any], bytes]]] = [
    ("battle, compact", BATTLE, msgspec.json.encode),
    ("trial, compact", TRIAL, msgspec.json.encode),
    ("battle, json.dumps", BATTLE, SPACED),
    ("trial, json.dumps", TRIAL, SPACED),
    (
        "battle, non-ASCII (NFD)",
        {**BATTLE, "a": "cafe\u0301-x", "b": "日本語"},
        msgspec.json.encode,
    ),
]


def best(raw: bytes, n: int = 50_000) -> float:
    """Microseconds per decode, best of 9 runs."""
    runs = []
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(n):
            validation.decode_event(raw, now=NOW)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


def main() -> None:
    print(f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    check, scan = validation.check_identifiers, validation.plain_bytes
    for name, event, encode in CASES:
        raw = encode(event)
        validation.check_identifiers, validation.plain_bytes = (lambda e: e), (lambda r, e: True)
        without = best(raw)
        validation.check_identifiers, validation.plain_bytes = check, scan
        with_rule = best(raw)
        print(f"{name:26s} {without:5.2f} us without, {with_rule:5.2f} us with: "
              f"+{with_rule - without:.2f} us")  # fmt: skip


if __name__ == "__main__":
    main()
