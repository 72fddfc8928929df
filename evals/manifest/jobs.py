"""One row's job: its identity (audio hashes, event id, timestamp), then its evaluation.

The identity is computed in the caller's process, before any evaluation, so rows already
published are skipped without being evaluated (resume); the evaluation runs in a worker
process and must reproduce the same event id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbiter.evals.audio import AudioLoadError, sha256_file
from arbiter.evals.judge import (
    battle_event,
    battle_event_id,
    rfc3339,
    trial_event,
    trial_event_id,
)
from arbiter.evals.manifest.rows import BattleRow, Row

__all__ = [
    "Job",
    "Options",
    "evaluate_job",
    "init_worker",
    "model_label",
    "prepare",
    "row_event_id",
]


@dataclass(frozen=True, slots=True)
class Job:
    """A row with everything computed in the parent: hashes, id and timestamp."""

    row: Row
    event_id: str
    hashes: tuple[str, ...]
    occurred_at: str


def _audio_paths(row: Row) -> tuple[Path, ...]:
    return (row.audio_a, row.audio_b) if isinstance(row, BattleRow) else (row.audio,)


def prepare(row: Row) -> Job:
    """Hash the row's audio and derive its event id and timestamp (no evaluation).

    Raises AudioLoadError when an audio file does not exist.
    """
    paths = _audio_paths(row)
    for p in paths:
        if not p.is_file():
            raise AudioLoadError(f"{p}: no such audio file")
    hashes = tuple(sha256_file(p) for p in paths)
    if isinstance(row, BattleRow):
        event_id = battle_event_id(
            a=row.competitor_a,
            b=row.competitor_b,
            audio_sha256_a=hashes[0],
            audio_sha256_b=hashes[1],
            battle_id=row.battle_id,
            arena=row.arena,
            category=row.category,
        )
    else:
        event_id = trial_event_id(
            experiment_id=row.experiment_id,
            trial_id=row.trial_id,
            competitor=row.competitor,
            prompt_index=row.prompt_index,
            audio_sha256=hashes[0],
            arena=row.arena,
        )
    occurred = row.occurred_at or rfc3339(
        datetime.fromtimestamp(max(p.stat().st_mtime for p in paths), UTC)
    )
    return Job(row=row, event_id=event_id, hashes=hashes, occurred_at=occurred)


def row_event_id(row: Row) -> str:
    """The event id this row will publish under (hashes its audio; no evaluation)."""
    return prepare(row).event_id


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Options:
    transcribe: bool
    whisper_model: str | None  # as given (None: $ARBITER_WHISPER_MODEL); resolved per process
    whisper_label: str | None  # the model's name or file name, recorded in battle meta
    tie_threshold: float
    source: str
    renormalise: bool = False
    """Renormalise the composite over measured components instead of seed 000's rule."""


def _transcriber(opts: Options) -> Callable[[Any], str] | None:
    if not opts.transcribe:
        return None
    from arbiter.evals.whisper_model import transcribe

    return lambda samples: transcribe(samples, spec=opts.whisper_model)


def evaluate_job(job: Job, opts: Options) -> dict[str, Any]:
    """Evaluate one prepared row and build its event (runs in a worker process)."""
    from arbiter.evals.evaluate import evaluate

    row = job.row
    transcriber = _transcriber(opts)
    if isinstance(row, BattleRow):
        sides = [
            evaluate(
                path,
                row.reference,
                latency,
                transcribe=opts.transcribe,
                semascore=sema,
                transcriber=transcriber,
                renormalise=opts.renormalise,
            )
            for path, latency, sema in (
                (row.audio_a, row.latency_a_ms, row.semascore_a),
                (row.audio_b, row.latency_b_ms, row.semascore_b),
            )
        ]
        meta: dict[str, Any] = {}
        if opts.transcribe:
            meta["transcripts"] = {"a": sides[0].transcript, "b": sides[1].transcript}
            meta["whisper_model"] = opts.whisper_label
        event = battle_event(
            a=row.competitor_a,
            b=row.competitor_b,
            metrics_a=sides[0].metrics,
            metrics_b=sides[1].metrics,
            audio_sha256_a=job.hashes[0],
            audio_sha256_b=job.hashes[1],
            occurred_at=job.occurred_at,
            battle_id=row.battle_id,
            arena=row.arena,
            category=row.category,
            scenario=row.scenario,
            source=opts.source,
            tie_threshold=opts.tie_threshold,
            meta=meta,
            renormalise=opts.renormalise,
        )
    else:
        common = {
            "experiment_id": row.experiment_id,
            "trial_id": row.trial_id,
            "competitor": row.competitor,
            "prompt_index": row.prompt_index,
            "audio_sha256": job.hashes[0],
            "occurred_at": job.occurred_at,
            "arena": row.arena,
            "category": row.category,
            "dimensions": row.dimensions,
            "source": opts.source,
        }
        try:
            result = evaluate(
                row.audio,
                row.reference,
                row.latency_ms,
                transcribe=opts.transcribe,
                semascore=row.semascore,
                transcriber=transcriber,
                extra_metrics=row.extra_metrics,
                renormalise=opts.renormalise,
            )
        except AudioLoadError as exc:
            # The competitor's output is unusable: that is the trial's result.
            return trial_event(**common, metrics=row.extra_metrics, status="failed", error=str(exc))
        event = trial_event(**common, metrics=result.metrics)
    if event["event_id"] != job.event_id:  # pragma: no cover - guards judge/prepare drift
        raise RuntimeError("event id changed between prepare and evaluation")
    return event


def init_worker(opts: Options, threads: int) -> None:
    """Per worker process: share the CPU fairly and load Whisper once, up front."""
    if opts.transcribe:
        import torch
        from arbiter.evals.whisper_model import get_model

        torch.set_num_threads(threads)
        get_model(opts.whisper_model)


def model_label(transcribe: bool, whisper_model: str | None) -> str | None:
    """Resolve the model in the caller's process, so missing weights fail before any work."""
    if not transcribe:
        return None
    from arbiter.evals.whisper_model import resolve_model

    return resolve_model(whisper_model).label
