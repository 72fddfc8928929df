"""The ingest's rules on an experiment's own events (``experiment.created``,
``experiment.completed``), as :mod:`.decisions` applies them. Pure.

Decisions recorded here (issue 13 leaves them open):

* An experiment is declared once (stream ``experiment:<id>``) and closed once
  (``experiment-closed:<id>``): another declaration or close is ``conflict``.
* A declaration may follow trials already in the log; it belongs to their owner, so another key
  declaring it is ``not_owner`` (like a trial into it). A close needs the experiment in the
  log, as a declaration or a trial (else ``unknown_target``, after the retries votes get); a
  close by another key than the owner (or an admin) is ``not_owner``.
* Neither is a result: they cannot be voided (``invalid_target``).
* A trial into a closed experiment is ``conflict``: the close announced the results as final
  (the webhook has gone out), and a trial after it would change them without a word.
* A trial naming a competitor the declaration does not list, or a ``prompt_index`` beyond its
  ``prompt_count``, is accepted (the log records what ran) but does not count towards the
  expected trials; ``GET /experiments/{id}`` shows it in ``unexpected_trials``. Refusing it
  would need the declaration's lists under the append lock for every trial, and a worker that
  ran an extra competitor did run it.
"""

from __future__ import annotations

from .events import ExperimentCompleted, ExperimentCreated, TrialCompleted, type_name
from .rejections import Code, Rejection

__all__ = [
    "STREAMS",
    "closed_stream",
    "declared_twice",
    "experiment_stream",
    "trial_after_close",
    "unknown_experiment",
]

STREAMS = ("experiment:", "experiment-closed:")
"""Streams that hold one event only."""


def experiment_stream(e: ExperimentCreated | ExperimentCompleted) -> str:
    if isinstance(e, ExperimentCreated):
        return f"experiment:{e.experiment_id}"
    return closed_stream(e.experiment_id)


def closed_stream(experiment_id: str) -> str:
    """The stream of an experiment's close: a trial is refused once it has an event."""
    return f"experiment-closed:{experiment_id}"


def trial_after_close(e: TrialCompleted) -> Rejection:
    return _about_experiment(
        e,
        Code.CONFLICT,
        f"experiment {e.experiment_id!r} is closed: its results were announced as final "
        "(experiment.completed); record the trial in a new experiment.",
    )


def declared_twice(e: ExperimentCreated | ExperimentCompleted) -> Rejection:
    done = "declared" if isinstance(e, ExperimentCreated) else "closed"
    return _about_experiment(
        e,
        Code.CONFLICT,
        f"experiment {e.experiment_id!r} was already {done} by another event; an experiment is "
        f"{done} once (use a new experiment_id for a new experiment).",
    )


def unknown_experiment(e: ExperimentCompleted) -> Rejection:
    return _about_experiment(
        e,
        Code.UNKNOWN_TARGET,
        f"experiment {e.experiment_id!r} is not in the log (no experiment.created and no "
        "trial); declare it before closing it (Arbiter waited and retried before refusing "
        "this event).",
    )


def _about_experiment(
    e: ExperimentCreated | ExperimentCompleted | TrialCompleted, code: Code, message: str
) -> Rejection:
    return Rejection(code, message, field="experiment_id", event_id=e.event_id, type=type_name(e))
