"""Reading a manifest file (CSV, JSON Lines or a JSON array) into checked, typed rows.

Every row is checked before anything is evaluated, and every bad row is reported at once
(up to 20), so a long run never stops half-way on a typo.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from arbiter.evals.judge import rfc3339
from arbiter.evals.manifest.rows import (
    BATTLE_COLUMNS,
    DIMENSION_PREFIX,
    METRIC_PREFIX,
    TRIAL_COLUMNS,
    TRIAL_PASSTHROUGH,
    BattleRow,
    ManifestError,
    Row,
    TrialRow,
)

__all__ = ["read_manifest"]


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw record) pairs of a CSV, JSONL or JSON manifest."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            for record in reader:
                if None in record:
                    raise ManifestError(f"{path}:{reader.line_num}: more cells than columns")
                yield reader.line_num, dict(record)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise ManifestError(f"{path}:{number}: expected a JSON object per line")
                yield number, record
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ManifestError(f"{path}: expected a JSON array of objects")
        yield from enumerate(data, start=1)
    else:
        raise ManifestError(f"{path}: unknown manifest format (use .csv, .jsonl or .json)")


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Nested "metrics"/"dimensions" objects -> metric_/dim_ columns; blanks -> absent."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("metrics", "dimensions") and isinstance(value, Mapping):
            prefix = METRIC_PREFIX if key == "metrics" else DIMENSION_PREFIX
            flat.update({prefix + str(k): v for k, v in value.items()})
        else:
            flat[str(key).strip()] = value
    return {
        k: v
        for k, v in flat.items()
        if v is not None and not (isinstance(v, str) and not v.strip())
    }


class _RowReader:
    """Typed access to one record's fields, collecting errors instead of stopping."""

    def __init__(self, record: dict[str, Any], errors: list[str]) -> None:
        self.record = record
        self.errors = errors

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.record.get(name)
        if value is None:
            if required:
                self.errors.append(f"missing required column {name!r}")
            return None
        return str(value).strip()

    def number(self, name: str) -> float | None:
        value = self.record.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.errors.append(f"{name} must be a number, got {value!r}")
            return None
        if number != number or number in (float("inf"), float("-inf")):
            self.errors.append(f"{name} must be finite")
            return None
        return number


def _parse(line: int, record: dict[str, Any], base: Path, errors: list[str]) -> Row | None:
    r = _RowReader(record, errors)
    kind = r.text("kind") or ("battle" if "audio_a" in record else "trial")
    if kind not in ("battle", "trial"):
        errors.append(f'kind must be "battle" or "trial", got {kind!r}')
        return None
    allowed = BATTLE_COLUMNS if kind == "battle" else TRIAL_COLUMNS
    prefixes = () if kind == "battle" else (METRIC_PREFIX, DIMENSION_PREFIX)
    unknown = sorted(k for k in record if k not in allowed and not k.startswith(prefixes))
    if unknown:
        errors.append(f"unknown column(s) for a {kind} row: {', '.join(unknown)}")
    occurred_at = r.text("occurred_at")
    if occurred_at is not None:
        try:
            occurred_at = rfc3339(occurred_at)
        except ValueError as exc:
            errors.append(str(exc))
    common = {
        "line": line,
        "arena": r.text("arena") or "default",
        "category": r.text("category"),
        "reference": r.text("reference"),
        "occurred_at": occurred_at,
    }

    def audio(name: str) -> Path | None:
        value = r.text(name, required=True)
        return None if value is None else (base / value).expanduser()

    if kind == "battle":
        fields = {
            "audio_a": audio("audio_a"),
            "audio_b": audio("audio_b"),
            "competitor_a": r.text("competitor_a", required=True),
            "competitor_b": r.text("competitor_b", required=True),
            "battle_id": r.text("battle_id"),
            "scenario": r.text("scenario"),
            "latency_a_ms": r.number("latency_a_ms"),
            "latency_b_ms": r.number("latency_b_ms"),
            "semascore_a": r.number("semascore_a"),
            "semascore_b": r.number("semascore_b"),
        }
        if fields["competitor_a"] and fields["competitor_a"] == fields["competitor_b"]:
            errors.append("competitor_a and competitor_b must differ")
        return None if errors else BattleRow(**common, **fields)

    index_text = r.text("prompt_index", required=True)
    prompt_index = -1
    if index_text is not None:
        prompt_index = int(index_text) if index_text.isdigit() else -1
        if prompt_index < 0:
            errors.append(f"prompt_index must be an integer >= 0, got {index_text!r}")
    extra: dict[str, float] = {}
    for name in TRIAL_PASSTHROUGH:
        value = r.number(name)
        if value is not None:
            extra[name] = value
    for key in record:
        if key.startswith(METRIC_PREFIX):
            value = r.number(key)
            if value is not None:
                extra[key.removeprefix(METRIC_PREFIX)] = value
    dimensions = {
        key.removeprefix(DIMENSION_PREFIX): str(value)
        for key, value in record.items()
        if key.startswith(DIMENSION_PREFIX)
    }
    fields = {
        "audio": audio("audio"),
        "competitor": r.text("competitor", required=True),
        "experiment_id": r.text("experiment_id", required=True),
        "trial_id": r.text("trial_id", required=True),
        "prompt_index": prompt_index,
        "latency_ms": r.number("latency_ms"),
        "semascore": r.number("semascore"),
        "extra_metrics": extra,
        "dimensions": dimensions,
    }
    return None if errors else TrialRow(**common, **fields)


def read_manifest(path: str | os.PathLike[str]) -> list[Row]:
    """Parse and check a manifest; raise ManifestError listing every bad row (up to 20)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest file")
    rows: list[Row] = []
    problems: list[str] = []
    for line, record in _records(p):
        errors: list[str] = []
        row = _parse(line, _flatten(record), p.parent, errors)
        if errors:
            problems.append(f"{p}:{line}: " + "; ".join(errors))
        elif row is not None:
            rows.append(row)
    if problems:
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ManifestError("invalid manifest rows:\n" + "\n".join(problems[:20]) + more)
    return rows
