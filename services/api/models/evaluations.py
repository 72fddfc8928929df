"""The bodies of ``/evaluations``: a job as reported (status, progress, metrics, composite or
error) and the answer to an upload. Their own room so the job registry
(:mod:`..evaluation_jobs`) and the routes share them without importing each other."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

__all__ = [
    "STATUSES",
    "CompositeView",
    "Evaluation",
    "EvaluationAccepted",
    "EvaluationPage",
    "JobError",
    "Status",
    "Target",
    "Verdict",
]

Status = Literal["queued", "running", "waiting", "done", "failed"]
"""``waiting``: one side of a battle, measured, waiting for the other side's job."""
STATUSES: tuple[str, ...] = ("queued", "running", "waiting", "done", "failed")
Verdict = Literal["recorded", "duplicate", "conflict", "refused", "pending"]
"""What became of the published event: ``recorded`` (the log holds it, this content),
``duplicate`` (the log held it already, nothing sent), ``conflict`` (the log holds the id with
other content), ``refused`` (the ingest refused it: the job's ``error`` carries its code and
sentence from ``ARBITER_REJECTED``), ``pending`` (published, no word from the ingest within a
few seconds, e.g. none is running)."""


class Target(Struct, omit_defaults=True):
    """Where the job's result goes: a trial (``experiment_id``, ``trial_id``,
    ``prompt_index``) or one side of a battle (``battle_id``, ``side``, ``scenario``)."""

    experiment_id: str | None = None
    trial_id: str | None = None
    prompt_index: int | None = None
    battle_id: str | None = None
    side: Literal["a", "b"] | None = None
    scenario: str | None = None


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
    target: Target | None = None
    attempts: int = 0
    """Runs started: more than 1 when an API restart interrupted it and it was resumed."""
    event_id: str | None = None
    """The event published with the result (also on a failed trial: its audio was unusable)."""
    verdict: Verdict | None = None
    occurred_at: datetime | None = None
    """The result's time in its event: the upload's ``occurred_at``, else when it arrived."""


class EvaluationPage(Struct):
    """``GET /evaluations``: jobs newest first."""

    jobs: list[Evaluation]
    total: int
    limit: int
    offset: int


class EvaluationAccepted(Struct):
    id: str
    status: Status
    status_url: str
    events_url: str
