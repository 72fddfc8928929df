"""The bodies of ``/evaluations``: a job as reported (status, progress, metrics, composite or
error) and the answer to an upload. Their own room so the job registry
(:mod:`..evaluation_jobs`) and the routes share them without importing each other."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

__all__ = ["CompositeView", "Evaluation", "EvaluationAccepted", "JobError", "Status"]

Status = Literal["queued", "running", "done", "failed"]


class JobError(Struct):
    code: str
    message: str


class CompositeView(Struct):
    score: float
    """Weighted mean of the measured components (0..1)."""
    components: dict[str, float]
    weights: dict[str, float]
    """Weights actually applied (renormalised over the measured components)."""
    missing: list[str]
    renormalised: bool


class Evaluation(Struct, omit_defaults=True):
    """One evaluation job. ``metrics`` (names and units as in ``arbiter.evals.evaluate``) and
    ``composite`` are set when ``status`` is ``done``; ``error`` when it is ``failed``."""

    id: str
    status: Status
    stage: str
    progress: float
    competitor: str
    arena: str
    size_bytes: int
    audio_sha256: str
    transcribe: bool
    created_at: datetime
    category: str | None = None
    filename: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metrics: dict[str, float] | None = None
    composite: CompositeView | None = None
    transcript: str | None = None
    error: JobError | None = None


class EvaluationAccepted(Struct):
    id: str
    status: Status
    status_url: str
    events_url: str
