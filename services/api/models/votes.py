"""The body of ``GET /votes``: a voter's score votes (seed 004's ratings list)."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

__all__ = ["ScoreVote", "ScoreVotePage"]


class ScoreVote(Struct, kw_only=True):
    """One current score vote: the voter's latest on the trial that is not voided."""

    vote_id: str
    event_id: str
    position: int
    occurred_at: datetime
    voter: str
    trial_id: str
    experiment_id: str
    competitor: str
    score: int
    trial_voided_by: str | None
    """Set when the trial itself was voided: the vote then counts for nothing."""


class ScoreVotePage(Struct, kw_only=True):
    voter: str
    experiment_id: str | None
    votes: list[ScoreVote]
    total: int
    limit: int
    offset: int
    results_position: int
