"""The bodies of ``GET /experiments``, ``GET /experiments/{id}`` and
``GET /experiments/{id}/deliveries``: an experiment's lifecycle, counts and times, and the
webhook deliveries of its results with every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

__all__ = ["Delivery", "DeliveryAttempt", "DeliveryPage", "ExperimentPage", "ExperimentStatus"]


class ExperimentStatus(Struct, kw_only=True):
    """One experiment: declared (``experiment.created``) and/or seen through its trials."""

    experiment_id: str
    status: Literal["created", "running", "completed"]
    name: str | None
    """Null when the experiment was never declared (trials only)."""
    arena: str | None
    category: str | None
    competitors: list[str] | None
    prompt_count: int | None
    trials_per_prompt: int | None
    webhook_url: str | None
    expected_trials: int | None
    """competitors x prompt_count x trials_per_prompt; null when never declared."""
    trials: int
    """Trials recorded, voided ones left out."""
    counted_trials: int
    """Trials towards the expected ones: per (competitor, prompt) at most trials_per_prompt."""
    unexpected_trials: int | None
    """Trials naming a competitor not declared or a prompt_index beyond prompt_count."""
    failed_trials: int
    voided_trials: int
    ratings: int
    """Score votes on its trials (each voter's latest, voided ones left out)."""
    created_at: datetime | None
    first_trial_at: datetime | None
    last_trial_at: datetime | None
    completed_at: datetime | None
    completed_by: Literal["trials", "closed"] | None
    close_reason: str | None


class ExperimentPage(Struct, kw_only=True):
    experiments: list[ExperimentStatus]
    total: int
    limit: int
    offset: int
    results_position: int


class DeliveryAttempt(Struct, kw_only=True):
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    """The receiver's HTTP status; null when no answer came (see ``error``)."""
    error: str | None


class Delivery(Struct, kw_only=True):
    delivery_id: str
    """Also the ``Idempotency-Key`` header of every attempt."""
    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    history: list[DeliveryAttempt]


class DeliveryPage(Struct, kw_only=True):
    experiment_id: str
    deliveries: list[Delivery]
