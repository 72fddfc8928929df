"""The bodies of the routes over the results read model: battles, games, experiments, grouped
stats and the summary counts.

As msgspec structs, so Litestar documents them in OpenAPI. Every list carries ``total``,
``limit``, ``offset`` and the position of the read model it was read from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from arbiter.domain.experiments import ExperimentResults
from arbiter.domain.stats import StatsGroup
from msgspec import Struct

__all__ = [
    "AutoJudged",
    "BattleDetail",
    "BattlePage",
    "BattleSummary",
    "BattleVote",
    "EloDelta",
    "ExperimentReport",
    "GameDetail",
    "GamePage",
    "GameParticipant",
    "GameSummary",
    "StatsPage",
    "Summary",
    "Trial",
    "TrialPage",
    "Voided",
    "VoteCounts",
]


# -- battles ------------------------------------------------------------------------------------


class VoteCounts(Struct):
    """Pairwise votes so far on a battle, voided votes excluded."""

    a: int
    b: int
    tie: int


class AutoJudged(Struct, kw_only=True):
    """The auto-judge's decision on a battle published without an outcome, in an arena that had
    opted in (issue 13 point 4; :mod:`arbiter.domain.composite`)."""

    outcome: str
    """``a``, ``b`` or ``tie``, as the ratings fold decided and rated it."""
    composite_a: float
    """Seed 000's composite of side a's metrics (a missing metric counted as the seed does)."""
    composite_b: float


class BattleSummary(Struct, kw_only=True):
    battle_id: str
    event_id: str
    position: int
    occurred_at: datetime
    arena: str
    category: str | None
    a: str
    b: str
    outcome: str | None
    """``a``, ``b``, ``tie``, or null while the battle awaits votes."""
    judge: str
    scenario: str | None
    votes: VoteCounts
    voided_by: str | None
    """Event id of the ``result.voided`` that took this battle out of every rating."""
    auto_judged: AutoJudged | None = None
    """Set when the auto-judge decided the battle (``outcome`` stays the published null); null
    for a battle published with an outcome, one whose arena had not opted in or whose metrics
    did not suffice (it awaits votes), or one the ratings read model has not folded yet."""


class BattleVote(Struct, kw_only=True):
    vote_id: str
    event_id: str
    position: int
    occurred_at: datetime
    voter: str
    choice: str | None
    voided_by: str | None


class EloDelta(Struct):
    """Each side's rating change from one battle's own outcome, in the arena-wide pool."""

    a: float
    b: float


class BattleDetail(BattleSummary, kw_only=True):
    metrics: dict[str, dict[str, float]] | None
    """Per side (``a``, ``b``), the eval metrics the battle carried."""
    meta: dict[str, Any]
    source: str | None
    vote_list: list[BattleVote]
    """Every vote cast on the battle, in log order, voided ones included (with ``voided_by``)."""
    elo_delta: EloDelta | None
    """``rating_after - rating_before`` of each side in the arena-wide pool (category pools
    aside) from the battle's own outcome; null when that outcome moved no rating: the battle
    came without one and the auto-judge did not decide it (votes decide it; each vote is its
    own rating change), it was voided, or
    the ratings read model has not folded it yet (it reports its own ``position``)."""
    results_position: int


class BattlePage(Struct, kw_only=True):
    battles: list[BattleSummary]
    total: int
    limit: int
    offset: int
    results_position: int
    """Log position of the results read model this page was read from."""


# -- games --------------------------------------------------------------------------------------


class GameParticipant(Struct, kw_only=True):
    competitor: str
    rank: int
    score: float | None
    meta: dict[str, Any]


class GameSummary(Struct, kw_only=True):
    game_id: str
    event_id: str
    position: int
    occurred_at: datetime
    arena: str
    category: str | None
    participants: list[GameParticipant]
    """Best rank first (equal ranks tie), then by competitor id."""
    rounds: int | None
    replay_uri: str | None
    voided_by: str | None


class GameDetail(GameSummary, kw_only=True):
    meta: dict[str, Any]
    source: str | None
    results_position: int


class GamePage(Struct, kw_only=True):
    games: list[GameSummary]
    total: int
    limit: int
    offset: int
    results_position: int


# -- experiments and stats ----------------------------------------------------------------------


class Trial(Struct, kw_only=True):
    trial_id: str
    event_id: str
    position: int
    occurred_at: datetime
    arena: str
    category: str | None
    experiment_id: str
    competitor: str
    prompt_index: int
    status: str
    error: str | None
    metrics: dict[str, float]
    dimensions: dict[str, str]
    score_sum: int
    """Sum of the current score votes (each voter's latest, voided votes excluded)."""
    score_votes: int
    avg_score: float | None
    voided_by: str | None
    my_rating: int | None = None
    """With ``voter=V``: V's current score vote on this trial (its latest that is not voided);
    null when V has none, or without ``voter``."""


class TrialPage(Struct, kw_only=True):
    experiment_id: str
    trials: list[Trial]
    total: int
    limit: int
    offset: int
    results_position: int
    voter: str | None = None
    """The ``voter`` whose ``my_rating`` each row carries."""


class ExperimentReport(ExperimentResults, frozen=True, kw_only=True):
    """:class:`~arbiter.domain.experiments.ExperimentResults` over the experiment's trials that
    are not voided, plus where it was read."""

    experiment_id: str
    voided: int
    """Trials left out because a ``result.voided`` named them."""
    results_position: int


class StatsPage(Struct, kw_only=True):
    group_by: str
    order: str
    arena: str | None
    category: str | None
    experiment_id: str | None
    trials: int
    """Trials aggregated (not voided, matching the filters)."""
    groups: list[StatsGroup]
    total: int
    """Number of groups."""
    limit: int
    offset: int
    results_position: int


# -- summary ------------------------------------------------------------------------------------


class Voided(Struct, kw_only=True):
    battles: int
    games: int
    trials: int
    votes: int


class Summary(Struct, kw_only=True):
    """Counts for a dashboard (seed 000's analytics summary). Battles, games, trials and votes
    count only what is not voided; ``voided`` says how many were taken out."""

    arena: str | None
    competitors: int
    """Registry size; with ``arena``, competitors rated in the arena-wide pool."""
    retired: int
    """Registry entries marked retired (the registry is global)."""
    battles: int
    games: int
    trials: int
    completed_trials: int
    failed_trials: int
    experiments: int
    votes: int
    """Pairwise votes on battles and score votes on trials."""
    scenarios: int
    """Distinct battle scenarios."""
    voided: Voided
    events: dict[str, int]
    """Events in the log by type (global: the log does not count per arena)."""
    events_total: int
    position: int
    results_position: int
