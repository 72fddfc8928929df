"""Publishing one event the way ``POST /events`` does, for the routes and the evaluation jobs.

Its own room so that an evaluation job's event meets exactly the rules a client's event meets:
the owner's ``source`` replaces the event's, a trial into another key's experiment is refused
(403) when its owner is already recorded, and an event id the log already holds is answered from
the log (409 ``conflict`` with other content, ``duplicate`` with the same) before anything is
sent. What the ingest decides later (its own ``conflict``, ``not_owner``, ...) still goes to
``ARBITER_REJECTED``.
"""

from __future__ import annotations

import msgspec
from arbiter.domain.decisions import is_key
from arbiter.domain.events import (
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    TrialCompleted,
    content_digest,
    type_name,
)

from .bus import Bus
from .errors import ApiError
from .models.log import Accepted
from .privacy import experiment_owner
from .store import ReadStore

__all__ = ["check_experiment_owner", "publish_checked"]


async def check_experiment_owner(
    reads: ReadStore, experiment_id: str, own: str, event_id: str | None = None
) -> None:
    """403 when the log already records another key as the experiment's owner: the ingest's
    rule (``not_owner``), said early. Admin keys are not checked (the caller's business)."""
    owner = await experiment_owner(reads, experiment_id)
    if is_key(owner) and owner != own:
        raise ApiError(
            403,
            "forbidden",
            f"Experiment {experiment_id!r} belongs to another publisher; use another "
            "experiment_id.",
            field="experiment_id",
            event_id=event_id,
        )


async def publish_checked(
    reads: ReadStore, bus: Bus, event: Event, *, own: str | None, admin: bool
) -> Accepted:
    """Publish ``event`` as the key ``own`` (``key:<key_id>``; None without a key), after the
    checks that need the log. Raises :class:`ApiError` 403 / 409 / 503."""
    if own is not None:
        event = msgspec.structs.replace(event, source=own)
        about_experiment = TrialCompleted | ExperimentCreated | ExperimentCompleted
        if isinstance(event, about_experiment) and not admin:
            await check_experiment_owner(reads, event.experiment_id, own, event.event_id)
    recorded = await reads.recorded_digest(event.event_id)
    if recorded is not None:
        if recorded != content_digest(event):
            raise ApiError(
                409,
                "conflict",
                f"event_id {event.event_id!r} is already in the log with other content; "
                "use a new event_id for a new event, or resend the original unchanged.",
                field="event_id",
                event_id=event.event_id,
                type=type_name(event),
            )
        return Accepted(event_id=event.event_id, stream_seq=None, duplicate=True)
    return await bus.publish(event)
