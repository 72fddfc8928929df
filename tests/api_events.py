"""Event builders and seeding for the boards and results API tests.

Events go through the real store (``EventLog.append``, with its decisions) and both projectors
(``ratings`` and ``results``) fold them, as in production. Each builder takes a label for its
event id (``ev-<label>``); ``at`` is minutes after :data:`T0` unless a datetime is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from arbiter.adapters.eventstore import EventLog
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    GameCompleted,
    Participant,
    ResultVoided,
    TrialCompleted,
    VoteCast,
)
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.projector import Projector

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _at(at: float | datetime) -> datetime:
    return at if isinstance(at, datetime) else T0 + timedelta(minutes=at)


def battle(
    label: str, a: str, b: str, outcome: str | None = "a", at: float | datetime = 0, **kw: Any
) -> BattleCompleted:
    return BattleCompleted(
        event_id=f"ev-{label}",
        occurred_at=_at(at),
        battle_id=label,
        a=a,
        b=b,
        outcome=outcome,  # type: ignore[arg-type]
        **kw,
    )


def game(
    label: str, *players: tuple[str, int] | tuple[str, int, float], at: float = 0, **kw: Any
) -> GameCompleted:
    return GameCompleted(
        event_id=f"ev-{label}",
        occurred_at=_at(at),
        game_id=label,
        participants=[
            Participant(competitor=p[0], rank=p[1], score=p[2] if len(p) > 2 else None)  # type: ignore[misc]
            for p in players
        ],
        **kw,
    )


def vote(label: str, battle_id: str, choice: str, voter: str = "u1", at: float = 0) -> VoteCast:
    return VoteCast(
        event_id=f"ev-{label}",
        occurred_at=_at(at),
        vote_id=label,
        voter=voter,
        battle_id=battle_id,
        choice=choice,  # type: ignore[arg-type]
    )


def score_vote(label: str, trial_id: str, score: int, voter: str = "u1", at: float = 0) -> VoteCast:
    return VoteCast(
        event_id=f"ev-{label}",
        occurred_at=_at(at),
        vote_id=label,
        voter=voter,
        trial_id=trial_id,
        score=score,
    )


def trial(
    label: str,
    experiment: str,
    competitor: str,
    prompt: int = 0,
    status: str = "completed",
    at: float = 0,
    **kw: Any,
) -> TrialCompleted:
    return TrialCompleted(
        event_id=f"ev-{label}",
        occurred_at=_at(at),
        experiment_id=experiment,
        trial_id=label,
        competitor=competitor,
        prompt_index=prompt,
        status=status,  # type: ignore[arg-type]
        **kw,
    )


def void(label: str, target: str, at: float = 0) -> ResultVoided:
    return ResultVoided(
        event_id=f"ev-{label}", occurred_at=_at(at), target_event_id=f"ev-{target}", reason="bad"
    )


def registered(competitor: str, at: float = 0, **kw: Any) -> CompetitorRegistered:
    return CompetitorRegistered(
        event_id=f"ev-reg-{competitor}", occurred_at=_at(at), competitor=competitor, **kw
    )


def retired(competitor: str, at: float = 0) -> CompetitorRetired:
    return CompetitorRetired(
        event_id=f"ev-ret-{competitor}", occurred_at=_at(at), competitor=competitor, reason="old"
    )


def configured(label: str, at: float = 0, **kw: Any) -> ArenaConfigured:
    return ArenaConfigured(event_id=f"ev-{label}", occurred_at=_at(at), **kw)


def seed(database_url: str, events: Iterable[Event]) -> None:
    """Append (every event must be accepted), then fold both projections."""
    log = EventLog(database_url)
    try:
        outcome = log.append(list(events))
        assert not outcome.rejected, outcome.rejected
    finally:
        log.close()
    for name in ("ratings", "results"):
        projector = Projector(database_url, PROJECTIONS[name])
        try:
            projector.catch_up()
        finally:
            projector.close()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]
