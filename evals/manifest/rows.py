"""A manifest's columns and its typed rows: what a battle row and a trial row may hold.

The column sets are the contract of the manifest format (see :mod:`arbiter.evals.manifest`):
an unknown column is refused, so they are defined once, here, next to the rows they become.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "BATTLE_COLUMNS",
    "COMMON_COLUMNS",
    "DIMENSION_PREFIX",
    "METRIC_PREFIX",
    "TRIAL_COLUMNS",
    "TRIAL_PASSTHROUGH",
    "BattleRow",
    "ManifestError",
    "Row",
    "TrialRow",
]

COMMON_COLUMNS = frozenset({"kind", "arena", "category", "occurred_at", "reference"})
BATTLE_COLUMNS = COMMON_COLUMNS | {
    "audio_a",
    "audio_b",
    "competitor_a",
    "competitor_b",
    "battle_id",
    "scenario",
    "latency_a_ms",
    "latency_b_ms",
    "semascore_a",
    "semascore_b",
}
TRIAL_PASSTHROUGH = ("ttfb_ms", "generation_time_ms", "cost_usd", "input_tokens", "output_tokens")
TRIAL_COLUMNS = COMMON_COLUMNS | {
    "audio",
    "competitor",
    "experiment_id",
    "trial_id",
    "prompt_index",
    "latency_ms",
    "semascore",
    *TRIAL_PASSTHROUGH,
}
METRIC_PREFIX = "metric_"
DIMENSION_PREFIX = "dim_"


class ManifestError(ValueError):
    """The manifest cannot be used as written; the message lists every bad row."""


@dataclass(frozen=True, slots=True)
class BattleRow:
    """A battle to judge: two clips of the same prompt by two competitors."""

    line: int
    audio_a: Path
    audio_b: Path
    competitor_a: str
    competitor_b: str
    arena: str = "default"
    category: str | None = None
    battle_id: str | None = None
    scenario: str | None = None
    reference: str | None = None
    latency_a_ms: float | None = None
    latency_b_ms: float | None = None
    semascore_a: float | None = None
    semascore_b: float | None = None
    occurred_at: str | None = None

    kind: Literal["battle"] = "battle"


@dataclass(frozen=True, slots=True)
class TrialRow:
    """A trial to measure: one clip by one competitor for one prompt of an experiment."""

    line: int
    audio: Path
    competitor: str
    experiment_id: str
    trial_id: str
    prompt_index: int
    arena: str = "default"
    category: str | None = None
    reference: str | None = None
    latency_ms: float | None = None
    semascore: float | None = None
    extra_metrics: dict[str, float] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)
    occurred_at: str | None = None

    kind: Literal["trial"] = "trial"


Row = BattleRow | TrialRow
