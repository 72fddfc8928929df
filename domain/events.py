"""Wire format v1: the events workers publish, as msgspec structs.

Every event is one JSON object tagged by ``type``. The structs below are the whole contract:
decoding a message with :data:`EVENT_DECODER` either yields a fully typed event or raises, and
:mod:`arbiter.domain.validation` turns the failure into a rejection a person can act on.

Decisions recorded here (DESIGN.md is silent on them):

* Unknown fields are rejected (``unknown_field``), not ignored: an ignored field is a silently
  dropped fact, and a typo such as ``outcom`` would otherwise turn a result into "awaiting votes".
* Identifiers (competitors, arenas, categories, ids) are 1-128 characters; free text (names,
  reasons) at most 1,024; a whole message at most ``MAX_EVENT_BYTES``.
* ``occurred_at`` must carry a timezone; it is producer time and never orders anything (the log's
  notification id does).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "DEFAULT_ARENA",
    "EVENT_DECODER",
    "EVENT_TYPES",
    "MAX_EXPERIMENT_COMPETITORS",
    "MAX_INT32",
    "MAX_PARTICIPANTS",
    "RESULT_TYPES",
    "TYPE_NAMES",
    "ArenaConfigured",
    "BTAnchor",
    "BattleCompleted",
    "CompetitorRegistered",
    "CompetitorRetired",
    "Event",
    "ExperimentCompleted",
    "ExperimentCreated",
    "GameCompleted",
    "Id",
    "Participant",
    "PositiveFloat",
    "ResultVoided",
    "Text",
    "Timestamp",
    "TrialCompleted",
    "VoteCast",
    "canonical_json",
    "content_digest",
    "to_builtins",
    "type_name",
]


Id = Annotated[str, Meta(min_length=1, max_length=128)]
Text = Annotated[str, Meta(max_length=1024)]
Timestamp = Annotated[datetime, Meta(tz=True)]
PositiveFloat = Annotated[float, Meta(gt=0)]
Meta_ = dict[str, Any]

DEFAULT_ARENA = "default"
MAX_PARTICIPANTS = 64
MAX_INT32 = 2**31 - 1
"""Largest count or index (``rounds``, ``prompt_index``): the read models store them as integer."""


class _Event(Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    """The common envelope: fields every event carries."""

    event_id: Id
    occurred_at: Timestamp
    source: Id | None = None
    arena: Id = DEFAULT_ARENA
    category: Id | None = None


class BTAnchor(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An arena's default Bradley-Terry anchor: ``competitor`` is shown at ``rating`` (see
    :mod:`arbiter.domain.bradley_terry.anchor`)."""

    competitor: Id
    rating: Annotated[float, Meta(ge=-1e9, le=1e9)]


class ArenaConfigured(_Event, frozen=True, tag="arena.configured"):
    """Rating settings of an arena from this point of the log on.

    Fields left out keep their current value (the event is a patch, so a producer that only wants
    to make an arena strict does not have to restate K). ``initial`` applies to competitors first
    rated after the event.
    """

    # Upper bounds keep every rating finite (K x weight x 63 opponents per game is at most 6e10).
    k: Annotated[float, Meta(gt=0, le=1_000_000)] | None = None
    initial: Annotated[float, Meta(ge=-1e9, le=1e9)] | None = None
    scale: PositiveFloat | None = None
    base: Annotated[float, Meta(gt=1)] | None = None
    weights: dict[Id, Annotated[float, Meta(ge=0, le=1000)]] | None = None
    strict: bool | None = None
    auto_judge: bool | None = None
    """True: from here on, a ``battle.completed`` with ``outcome`` null and both metric sets is
    decided by seed 000's composite (:mod:`arbiter.domain.composite`) in the ratings fold;
    False turns that off again."""
    bt_anchor: BTAnchor | Literal["mean"] | None = None
    """Default anchor of the arena's Bradley-Terry boards; ``"mean"`` goes back to the mean."""


class CompetitorRegistered(_Event, frozen=True, tag="competitor.registered"):
    """A competitor (a model, an agent) joins the registry, which is global across arenas."""

    competitor: Id
    name: Text | None = None
    provider: Text | None = None
    meta: Meta_ = {}


class BattleCompleted(_Event, frozen=True, tag="battle.completed"):
    """A pairwise battle between ``a`` and ``b``.

    ``outcome`` null means the battle awaits votes: it is recorded but moves no rating.
    """

    battle_id: Id
    a: Id
    b: Id
    outcome: Literal["a", "b", "tie"] | None
    judge: Id = "auto"
    metrics: dict[Literal["a", "b"], dict[Id, float]] | None = None
    scenario: Id | None = None
    meta: Meta_ = {}


class CompetitorRetired(_Event, frozen=True, tag="competitor.retired"):
    """A competitor leaves: its ratings stay on record, new results naming it are rejected
    (``competitor_retired``). A later ``competitor.registered`` brings it back."""

    competitor: Id
    reason: Text | None = None


class Participant(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One player of a game. ``rank`` 1 is best; equal ranks tie."""

    competitor: Id
    rank: Annotated[int, Meta(ge=1, le=1_000_000)]
    score: float | None = None
    meta: Meta_ = {}


class GameCompleted(_Event, frozen=True, tag="game.completed"):
    """An N-player game (2 to 64). Rated by pairwise decomposition over pre-game ratings."""

    game_id: Id
    participants: Annotated[list[Participant], Meta(min_length=2, max_length=MAX_PARTICIPANTS)]
    rounds: Annotated[int, Meta(ge=0, le=MAX_INT32)] | None = None
    replay_uri: Annotated[str, Meta(max_length=2048)] | None = None
    meta: Meta_ = {}


class VoteCast(_Event, frozen=True, tag="vote.cast"):
    """A person's judgement: pairwise on a battle (``battle_id`` + ``choice``), or a 1-5 score on
    a trial (``trial_id`` + ``score``). Exactly one of the two forms."""

    vote_id: Id
    voter: Id
    battle_id: Id | None = None
    choice: Literal["a", "b", "tie"] | None = None
    trial_id: Id | None = None
    score: int | None = None


class TrialCompleted(_Event, frozen=True, tag="trial.completed"):
    """One trial of an experiment (a prompt run against a competitor) and what it measured."""

    experiment_id: Id
    trial_id: Id
    competitor: Id
    prompt_index: Annotated[int, Meta(ge=0, le=MAX_INT32)]
    status: Literal["completed", "failed"]
    error: Text | None = None
    metrics: dict[Id, float] = {}
    dimensions: dict[Id, Annotated[str, Meta(max_length=256)]] = {}


MAX_EXPERIMENT_COMPETITORS = 64


class ExperimentCreated(_Event, frozen=True, tag="experiment.created"):
    """An experiment is declared: which competitors run how many prompts, how many times each.

    It expects ``len(competitors) x prompt_count x trials_per_prompt`` trials and is completed
    once they have all arrived (or an ``experiment.completed`` closes it). ``webhook_url`` (http
    or https) receives its results when it completes (``arbiter webhooks``)."""

    experiment_id: Id
    name: Text
    competitors: Annotated[list[Id], Meta(min_length=1, max_length=MAX_EXPERIMENT_COMPETITORS)]
    prompt_count: Annotated[int, Meta(ge=1, le=1_000_000)]
    trials_per_prompt: Annotated[int, Meta(ge=1, le=1_000_000)] = 1
    webhook_url: Annotated[str, Meta(max_length=2048)] | None = None


class ExperimentCompleted(_Event, frozen=True, tag="experiment.completed"):
    """An experiment is closed: it counts as completed whatever trials are still missing."""

    experiment_id: Id
    reason: Text | None = None


class ResultVoided(_Event, frozen=True, tag="result.voided"):
    """A result stops counting, as if it had never happened; the void itself stays on record."""

    target_event_id: Id
    reason: Text | None = None


Event = (
    ArenaConfigured
    | CompetitorRegistered
    | CompetitorRetired
    | BattleCompleted
    | GameCompleted
    | VoteCast
    | TrialCompleted
    | ResultVoided
    | ExperimentCreated
    | ExperimentCompleted
)
EVENT_TYPES: tuple[type[_Event], ...] = (
    ArenaConfigured,
    CompetitorRegistered,
    CompetitorRetired,
    BattleCompleted,
    GameCompleted,
    VoteCast,
    TrialCompleted,
    ResultVoided,
    ExperimentCreated,
    ExperimentCompleted,
)
TYPE_NAMES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in EVENT_TYPES)  # type: ignore[misc]
RESULT_TYPES: tuple[type[_Event], ...] = (BattleCompleted, GameCompleted, VoteCast, TrialCompleted)
"""What a ``result.voided`` may target."""

EVENT_DECODER: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_ENCODER = msgspec.json.Encoder(order="sorted")


def type_name(event: Event) -> str:
    """The wire ``type`` tag of an event."""
    return event.__struct_config__.tag  # type: ignore[return-value]


def canonical_json(event: Event) -> bytes:
    """The event as canonical JSON (sorted keys, no whitespace).

    Two messages that mean the same event encode identically here whatever their key order or
    spacing, so the idempotency check compares meaning, not bytes.
    """
    return _ENCODER.encode(event)


def content_digest(event: Event) -> bytes:
    """SHA-256 of the event's canonical JSON: equal exactly when two messages mean the same event.

    The event store keeps it per ``event_id`` (a resend with the same digest is a no-op, another
    digest is a ``conflict``), and publishers put it in the NATS message id, so that JetStream's
    duplicate window drops only resends of the same content, never a changed one.
    """
    return hashlib.sha256(_ENCODER.encode(event)).digest()


def to_builtins(event: Event) -> dict[str, Any]:
    """The event as plain JSON-compatible Python objects (for the API and the CLI)."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]
