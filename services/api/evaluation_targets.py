"""Where an evaluation's result goes, and the event that takes it there.

An upload names one target (decided for issue 13 point 5):

* a **trial**: ``experiment_id``, ``trial_id`` and ``prompt_index``. The job publishes
  ``trial.completed`` with the clip's metrics (``status: completed``), or, when the audio cannot
  be measured, a ``failed`` trial carrying the reason: unusable output is a result about the
  competitor, as ``arbiter evals trial`` records it.
* one **side of a battle**: ``battle_id`` and ``side`` (``a`` or ``b``), optionally
  ``scenario``. Each side is its own upload and job; a side measured first waits (status
  ``waiting``), and the job that completes the pair publishes ``battle.completed`` judged
  ``auto`` by the composite, exactly as ``arbiter evals battle`` does (``meta.auto_judge``
  holds both composites, so anyone can re-derive the outcome). Both sides must agree on arena,
  category, scenario and uploader and name two competitors.

The events come from the pure builders of :mod:`arbiter.evals.judge`: the event id is derived
from the target and the audio's SHA-256, and ``occurred_at`` is the upload's ``occurred_at``
field, else the time it arrived (a battle's: its later side's), so a resumed job publishes the
same bytes again, a duplicate, never a conflict. A client that retries an upload (same clip,
target and ``occurred_at``) gets a ``duplicate``; a second upload without ``occurred_at`` is
another result for the same target, refused as a ``conflict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arbiter.domain.events import MAX_INT32
from arbiter.evals.judge import SOURCE, battle_event, trial_event

from .errors import ApiError
from .evaluation_store import JobRow
from .models.evaluations import Target

__all__ = [
    "BATTLE_FIELDS",
    "TARGET_FIELDS",
    "TRIAL_FIELDS",
    "event_for_battle",
    "event_for_trial",
    "mismatch",
    "parse_target",
    "source_of",
]  # fmt: skip

TRIAL_FIELDS = ("experiment_id", "trial_id", "prompt_index")
BATTLE_FIELDS = ("battle_id", "side", "scenario")
TARGET_FIELDS = frozenset(TRIAL_FIELDS + BATTLE_FIELDS)
_ACCEPTED = (
    "name where the result goes: `experiment_id`, `trial_id` and `prompt_index` (a trial), or "
    "`battle_id` and `side` (`a` or `b`; `scenario` optional) for one side of a battle"
)


def _bad(message: str, field: str) -> ApiError:
    return ApiError(400, "bad_parameter", f"{message}; {_ACCEPTED}.", field=field)


def parse_target(values: Mapping[str, str | None]) -> Target:
    """The target named by the upload's text fields (stripped, None when absent)."""
    trial = [name for name in TRIAL_FIELDS if values.get(name) is not None]
    battle = [name for name in BATTLE_FIELDS if values.get(name) is not None]
    if trial and battle:
        raise _bad(
            f"Both a trial ({', '.join(trial)}) and a battle ({', '.join(battle)})", trial[0]
        )
    if battle:
        for name in ("battle_id", "side"):
            if values.get(name) is None:
                raise _bad(f"Form field `{name}` is missing", name)
        side = values["side"]
        if side not in ("a", "b"):
            raise _bad(f"Form field `side` must be `a` or `b`, got {side!r}", "side")
        return Target(battle_id=values["battle_id"], side=side, scenario=values.get("scenario"))  # type: ignore[arg-type]
    if not trial:
        raise _bad("The upload names no target", "experiment_id")
    for name in TRIAL_FIELDS:
        if values.get(name) is None:
            raise _bad(f"Form field `{name}` is missing", name)
    text = str(values["prompt_index"])
    try:
        index = int(text)
    except ValueError:
        index = -1
    if not 0 <= index <= MAX_INT32:
        raise _bad(f"Form field `prompt_index` must be an integer 0 to {MAX_INT32}, got {text!r}",
                   "prompt_index")  # fmt: skip
    return Target(experiment_id=values["experiment_id"], trial_id=values["trial_id"],
                  prompt_index=index)  # fmt: skip


def source_of(job: JobRow) -> str:
    """The event's ``source``: the uploading key's (``key:<key_id>``), as ``POST /events`` sets
    it; an upload without a key publishes as the evals tools do."""
    return job.owner or SOURCE


def event_for_trial(job: JobRow) -> dict[str, Any]:
    """``trial.completed`` for a trial job: its metrics, or a failed trial with the reason its
    audio could not be measured (``error_message``)."""
    assert job.experiment_id and job.trial_id and job.prompt_index is not None
    common: dict[str, Any] = {
        "experiment_id": job.experiment_id, "trial_id": job.trial_id,
        "competitor": job.competitor, "prompt_index": job.prompt_index,
        "audio_sha256": job.audio_sha256, "occurred_at": job.occurred_at, "arena": job.arena,
        "category": job.category, "source": source_of(job),
    }  # fmt: skip
    if job.metrics is None:
        return trial_event(**common, metrics={}, status="failed",
                           error=(job.error_message or "unusable audio")[:4000])  # fmt: skip
    return trial_event(**common, metrics=job.metrics)


def event_for_battle(a: JobRow, b: JobRow) -> dict[str, Any]:
    """``battle.completed`` from the two measured sides (``a.side == "a"``), judged ``auto``."""
    assert a.metrics is not None and b.metrics is not None
    meta: dict[str, Any] = {"evaluation_jobs": {"a": a.job_id, "b": b.job_id}}
    if a.transcript is not None or b.transcript is not None:
        meta["transcripts"] = {"a": a.transcript, "b": b.transcript}
    return battle_event(
        a=a.competitor, b=b.competitor, metrics_a=a.metrics, metrics_b=b.metrics,
        audio_sha256_a=a.audio_sha256, audio_sha256_b=b.audio_sha256,
        occurred_at=max(a.occurred_at, b.occurred_at), battle_id=a.battle_id, arena=a.arena,
        category=a.category, scenario=a.scenario, source=source_of(a), meta=meta,
    )  # fmt: skip


def mismatch(mine: Mapping[str, Any], other: JobRow) -> str | None:
    """Why the live job ``other`` cannot be the other side of the battle side ``mine`` (its
    ``battle_id``, ``side``, ``arena``, ``category``, ``scenario``, ``owner``, ``competitor``)."""
    battle = mine["battle_id"]
    if other.side == mine["side"]:
        return f"battle {battle!r} side {other.side} already has job {other.job_id}"
    for name in ("arena", "category", "scenario", "owner"):
        if mine[name] != getattr(other, name):
            return (f"battle {battle!r}: side {other.side} (job {other.job_id}) has {name} "
                    f"{getattr(other, name)!r}, this side {mine[name]!r}")  # fmt: skip
    if other.competitor == mine["competitor"]:
        return f"battle {battle!r}: both sides name competitor {other.competitor!r}"
    return None
