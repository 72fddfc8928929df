"""The decisions that accept or refuse a valid event, given what the log already holds. Pure.

Validation (:mod:`.validation`) judges one message alone. The rules here need the log: is this
id new, is this battle already recorded, has this voter voted on it, is the target of a vote or
a void there yet, is the competitor retired, is the arena strict. The event store looks up exactly
the facts a batch needs (:func:`facts_needed`), under its table lock, and :func:`decide` rules
on the batch in order, each event seeing the ones accepted before it in the same batch.

Streams. Every accepted event lands in one stream, named by its natural key (:func:`stream_key`).
A stream that holds one event only (a battle's result, a game's, a trial's, one voter's vote on
a battle, a void) makes "already there" a decision (``conflict``, ``duplicate_vote``,
``already_voided``) that the store's primary key on (stream, version) enforces too.

Decisions recorded here (DESIGN.md is silent on them):

* A pairwise vote counts in addition to the battle's own outcome (when that is not null). A vote
  on a voided battle is accepted but counts for nothing, so a late vote is never lost unseen.
* Votes are not checked for retired competitors: they judge a battle that was accepted earlier.
* ``competitor.retired`` for a competitor the log has never seen is ``unknown_competitor``;
  ``competitor.registered`` after a retirement brings the competitor back.
* Only results (battle, game, vote, trial) can be voided, else ``invalid_target``.
* Experiments' own events, and trials into a closed one: :mod:`.experiment_rules`.

Ownership (``not_owner``). A thing belongs to the ``source`` of the event that created it, when
that source is an API key (``key:<key_id>``): an experiment (with its trials and the score votes
on them) to its first trial's, an arena to its first ``arena.configured``'s, a battle, a game or
a pairwise vote to its own event's (:func:`thing_of` names the experiment or arena an event is
about; :func:`own` records their owners as events are accepted). A thing created without a key
source (NATS, or before any key) belongs to nobody. A write about a thing that a key owns, namely
a trial into its experiment, a score vote on one of its trials, an ``arena.configured`` of its
arena, or a void of any of its results or votes, is accepted only from that key, from a key with
the ``admin`` scope, or from whoever published the voided event itself (one may always take back
one's own result or vote). Pairwise votes on a battle stay open to every voter. A writer whose
``source`` is not a key is the trusted path (NATS credentials are full trust, and the API stamps
``key:<id>`` on everything it publishes while keys are enforced), so ownership is not checked
for it. Ruled under the store's lock from the log, never from a read model that may lag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .events import (
    RESULT_TYPES,
    TYPE_NAMES,
    ArenaConfigured,
    BattleCompleted,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    GameCompleted,
    ResultVoided,
    TrialCompleted,
    VoteCast,
    type_name,
)
from .experiment_rules import (
    STREAMS,
    closed_stream,
    declared_twice,
    experiment_stream,
    trial_after_close,
    unknown_experiment,
)
from .rejections import Code, Rejection

__all__ = [
    "RESULT_TYPE_NAMES",
    "CompetitorFacts",
    "Decision",
    "Facts",
    "Needed",
    "Target",
    "Verdict",
    "competitors_of",
    "decide",
    "facts_needed",
    "is_key",
    "own",
    "stream_key",
    "target_stream",
    "thing_of",
]


RESULT_TYPE_NAMES = frozenset(t.__struct_config__.tag for t in RESULT_TYPES)  # type: ignore[misc]
_SEP = "\x1f"


def stream_key(event: Event) -> str:
    """The natural key of the stream an event belongs to (fixed forever: it keys the log)."""
    if isinstance(event, BattleCompleted):
        return f"battle:{event.battle_id}"
    if isinstance(event, CompetitorRegistered | CompetitorRetired):
        return f"competitor:{event.competitor}"
    if isinstance(event, ArenaConfigured):
        return f"arena:{event.arena}"
    if isinstance(event, GameCompleted):
        return f"game:{event.game_id}"
    if isinstance(event, TrialCompleted):
        return f"trial:{event.trial_id}"
    if isinstance(event, VoteCast):
        if event.battle_id is not None:
            return f"vote:{event.battle_id}{_SEP}{event.voter}"
        return f"score:{event.trial_id}{_SEP}{event.voter}"
    if isinstance(event, ResultVoided):
        return f"void:{event.target_event_id}"
    if isinstance(event, ExperimentCreated | ExperimentCompleted):
        return experiment_stream(event)
    return f"event:{event.event_id}"


_UNIQUE = ("battle:", "game:", "trial:", "vote:", "void:", *STREAMS)


def target_stream(event: Event) -> str | None:
    """The stream that must exist before a vote can be accepted (its battle or trial)."""
    if isinstance(event, VoteCast):
        if event.battle_id is not None:
            return f"battle:{event.battle_id}"
        return f"trial:{event.trial_id}"
    return None


def competitors_of(event: Event) -> tuple[str, ...]:
    """The competitors a new result names (checked for retirement and strict arenas)."""
    if isinstance(event, BattleCompleted):
        return (event.a, event.b)
    if isinstance(event, GameCompleted):
        return tuple(p.competitor for p in event.participants)
    if isinstance(event, TrialCompleted):
        return (event.competitor,)
    return ()


@dataclass
class CompetitorFacts:
    """What the decisions need to know about a competitor."""

    registered: bool = False
    retired: bool = False


def thing_of(event: Event) -> str | None:
    """The shared thing an event creates or writes about, whose owner the store records
    (``experiment:``, ``trial:`` or ``arena:`` and its id): a trial is about its experiment, a
    score vote about its trial (which belongs to the experiment's owner). None for the rest: a
    battle, a game or a pairwise vote is its own thing, owned by its own ``source``; a void is
    about what its target is about (``Facts.targets``)."""
    if isinstance(event, TrialCompleted | ExperimentCreated | ExperimentCompleted):
        return f"experiment:{event.experiment_id}"
    if isinstance(event, VoteCast) and event.trial_id is not None:
        return f"trial:{event.trial_id}"
    if isinstance(event, ArenaConfigured):
        return f"arena:{event.arena}"
    return None


def is_key(source: str | None) -> bool:
    """Whether a ``source`` names an API key (the API stamps ``key:<key_id>``)."""
    return source is not None and source.startswith("key:")


@dataclass(frozen=True)
class Target:
    """What a void needs to know about the event it voids."""

    thing: str | None
    """What the target is about (:func:`thing_of`); None: it is its own thing."""
    source: str
    """Who published the target ('' for no source): its owner when ``thing`` is None."""


@dataclass
class Facts:
    """What the log says about the keys one batch touches (looked up by the store)."""

    ids: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """event_id -> (digest of its canonical JSON, its type)"""
    heads: dict[str, int] = field(default_factory=dict)
    """stream key -> number of events in it"""
    competitors: dict[str, CompetitorFacts] = field(default_factory=dict)
    strict: dict[str, bool] = field(default_factory=dict)
    """arena -> whether unknown competitors are refused"""
    owners: dict[str, str] = field(default_factory=dict)
    """thing (:func:`thing_of`) -> the source of the event that created it ('' for none);
    absent: not created yet"""
    targets: dict[str, Target] = field(default_factory=dict)
    """event_id of a void's target -> what it is about and who published it"""
    admins: set[str] = field(default_factory=set)
    """the writers (``key:<key_id>``) of this batch whose key has the admin scope"""
    new_owners: dict[str, str] = field(default_factory=dict)
    """owners recorded by this batch's accepted events (for the store to write back)"""


@dataclass(frozen=True)
class Needed:
    """The keys whose facts a batch needs."""

    event_ids: frozenset[str]
    streams: frozenset[str]
    competitors: frozenset[str]
    arenas: frozenset[str]
    things: frozenset[str] = frozenset()
    """things the batch is about (:func:`thing_of`); a void's target adds its own, which the
    store finds when it reads the target"""
    targets: frozenset[str] = frozenset()
    """event_ids that voids name: the store reads those events"""
    writers: frozenset[str] = frozenset()
    """key ids (without ``key:``) that published events of the batch: are they admins?"""


def facts_needed(events: Iterable[Event]) -> Needed:
    ids: set[str] = set()
    streams: set[str] = set()
    competitors: set[str] = set()
    arenas: set[str] = set()
    things: set[str] = set()
    targets: set[str] = set()
    writers: set[str] = set()
    for e in events:
        ids.add(e.event_id)
        streams.add(stream_key(e))
        if (target := target_stream(e)) is not None:
            streams.add(target)
        if isinstance(e, TrialCompleted):  # whether its experiment was closed
            streams.add(closed_stream(e.experiment_id))
        if (thing := thing_of(e)) is not None:
            things.add(thing)
        if is_key(e.source):
            writers.add(e.source.removeprefix("key:"))  # type: ignore[union-attr]
        if isinstance(e, ResultVoided):
            ids.add(e.target_event_id)
            targets.add(e.target_event_id)
        if isinstance(e, CompetitorRegistered | CompetitorRetired):
            competitors.add(e.competitor)
        named = competitors_of(e)
        if named:
            competitors.update(named)
            arenas.add(e.arena)
    return Needed(
        frozenset(ids),
        frozenset(streams),
        frozenset(competitors),
        frozenset(arenas),
        frozenset(things),
        frozenset(targets),
        frozenset(writers),
    )


class Verdict(Enum):
    APPEND = "append"
    DUPLICATE = "duplicate"
    """Same event_id, same content: already recorded, nothing to do."""
    REJECT = "reject"
    DEFER = "defer"
    """The target is not in the log yet: try again later, then reject with the rejection."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    stream: str
    version: int = 0
    """The event's version in its stream (for APPEND)."""
    rejection: Rejection | None = None


def decide(events: Sequence[Event], digests: Sequence[bytes], facts: Facts) -> list[Decision]:
    """Rule on a batch in order. ``facts`` is updated with what the accepted events change, so
    that each event sees the ones accepted before it."""
    return [_decide_one(e, d, facts) for e, d in zip(events, digests, strict=True)]


def _reject(event: Event, stream: str, code: Code, message: str, field: str | None) -> Decision:
    rejection = Rejection(
        code, message, field=field, event_id=event.event_id, type=type_name(event)
    )
    return Decision(Verdict.REJECT, stream, rejection=rejection)


def _decide_one(e: Event, dig: bytes, facts: Facts) -> Decision:
    stream = stream_key(e)
    seen = facts.ids.get(e.event_id)
    if seen is not None:
        if seen[0] == dig:
            return Decision(Verdict.DUPLICATE, stream)
        return _reject(
            e,
            stream,
            Code.CONFLICT,
            f"event_id {e.event_id!r} was already recorded with different content; use a new "
            "event_id for a new event, or resend the original unchanged.",
            "event_id",
        )
    head = facts.heads.get(stream, 0)
    if head and stream.startswith(_UNIQUE):
        return _unique_taken(e, stream)
    problem = (
        _check_references(e, stream, facts)
        or _check_owner(e, stream, facts)
        or _check_competitors(e, stream, facts)
    )
    if problem is not None:
        return problem
    _remember(e, dig, stream, head, facts)
    return Decision(Verdict.APPEND, stream, head + 1)


def _unique_taken(e: Event, stream: str) -> Decision:
    if isinstance(e, VoteCast):
        return _reject(
            e,
            stream,
            Code.DUPLICATE_VOTE,
            f"voter {e.voter!r} has already voted on battle {e.battle_id!r}; one pairwise vote "
            "per voter per battle, voided or not (a voided vote counts for nothing but is not "
            "replaced).",
            "voter",
        )
    if isinstance(e, ResultVoided):
        return _reject(
            e,
            stream,
            Code.ALREADY_VOIDED,
            f"{e.target_event_id!r} is already voided.",
            "target_event_id",
        )
    if isinstance(e, ExperimentCreated | ExperimentCompleted):
        return Decision(Verdict.REJECT, stream, rejection=declared_twice(e))
    kind, key = stream.split(":", 1)
    return _reject(
        e,
        stream,
        Code.CONFLICT,
        f"{kind}_id {key!r} already has a recorded result under another event_id; a {kind} is "
        f"recorded once (void it and record a new {kind} to correct it).",
        f"{kind}_id",
    )


def _check_references(e: Event, stream: str, facts: Facts) -> Decision | None:
    if isinstance(e, ExperimentCompleted) and f"experiment:{e.experiment_id}" not in facts.owners:
        return Decision(Verdict.DEFER, stream, rejection=unknown_experiment(e))
    if isinstance(e, TrialCompleted) and facts.heads.get(closed_stream(e.experiment_id)):
        return Decision(Verdict.REJECT, stream, rejection=trial_after_close(e))
    target = target_stream(e)
    if target is not None and not facts.heads.get(target):
        kind, key = target.split(":", 1)
        return Decision(
            Verdict.DEFER,
            stream,
            rejection=Rejection(
                Code.UNKNOWN_TARGET,
                f"{kind} {key!r} is not in the log; publish the {kind} before votes on it "
                "(Arbiter waited and retried before refusing this vote).",
                field=f"{kind}_id",
                event_id=e.event_id,
                type=type_name(e),
            ),
        )
    if isinstance(e, ResultVoided):
        known = facts.ids.get(e.target_event_id)
        if known is None:
            return Decision(
                Verdict.DEFER,
                stream,
                rejection=Rejection(
                    Code.UNKNOWN_TARGET,
                    f"target_event_id {e.target_event_id!r} is not in the log (Arbiter waited "
                    "and retried before refusing this void); check the id.",
                    field="target_event_id",
                    event_id=e.event_id,
                    type=type_name(e),
                ),
            )
        if known[1] not in RESULT_TYPE_NAMES:
            results = ", ".join(t for t in TYPE_NAMES if t in RESULT_TYPE_NAMES)
            return _reject(
                e,
                stream,
                Code.INVALID_TARGET,
                f"{e.target_event_id!r} is a {known[1]} event; only results ({results}) can be "
                "voided.",
                "target_event_id",
            )
    return None


_WRITES = {
    "experiment": "publish trials into experiment",
    "trial": "score-vote on trials of the experiment of trial",
    "arena": "reconfigure arena",
}


def _check_owner(e: Event, stream: str, facts: Facts) -> Decision | None:
    """``not_owner`` for a key writing about a thing another key owns (module docstring)."""
    writer = e.source
    if not is_key(writer) or writer in facts.admins:
        return None  # the trusted path (not a key), or an admin key
    if isinstance(e, ResultVoided):
        target = facts.targets.get(e.target_event_id)
        if target is None or target.source == writer:
            return None  # one's own result or vote may always be voided
        thing = target.thing
        owner = target.source if thing is None else facts.owners.get(thing, "")
    else:
        thing = thing_of(e)
        if thing is None:
            return None  # a new battle, game or pairwise vote: its writer's own
        owner = facts.owners.get(thing, "")
    if not is_key(owner) or owner == writer:
        return None
    if isinstance(e, ResultVoided):
        what = f"void {e.target_event_id!r}"
        kind, key = ("event", e.target_event_id) if thing is None else thing.split(":", 1)
        field_name = "target_event_id"
    else:
        assert thing is not None
        kind, key = thing.split(":", 1)
        what = f"{_WRITES[kind]} {key!r}"
        if isinstance(e, ExperimentCreated | ExperimentCompleted):
            what = f"declare or close experiment {key!r}"
        field_name = {"experiment": "experiment_id", "trial": "trial_id"}.get(kind, kind)
    return _reject(
        e,
        stream,
        Code.NOT_OWNER,
        f"{kind} {key!r} belongs to {owner}; only that key or a key with the admin scope may "
        f"{what} ({writer} may not). Use your own {kind} or ask its owner.",
        field_name,
    )


def own(e: Event, facts: Facts) -> None:
    """Record the owners an accepted event creates: an experiment's and an arena's first
    writer, a trial's (its experiment's owner, for the score votes on it)."""
    if isinstance(e, TrialCompleted | ArenaConfigured | ExperimentCreated):
        thing = thing_of(e)
        assert thing is not None
        if thing not in facts.owners:
            facts.owners[thing] = facts.new_owners[thing] = e.source or ""
        if isinstance(e, TrialCompleted):
            trial = f"trial:{e.trial_id}"
            facts.owners[trial] = facts.new_owners[trial] = facts.owners[thing]


def _check_competitors(e: Event, stream: str, facts: Facts) -> Decision | None:
    if isinstance(e, CompetitorRetired) and e.competitor not in facts.competitors:
        return _reject(
            e,
            stream,
            Code.UNKNOWN_COMPETITOR,
            f"competitor {e.competitor!r} was never registered nor seen in a result; "
            "nothing to retire.",
            "competitor",
        )
    strict = facts.strict.get(e.arena, False)
    for c in competitors_of(e):
        known = facts.competitors.get(c)
        if known is not None and known.retired:
            return _reject(
                e,
                stream,
                Code.COMPETITOR_RETIRED,
                f"competitor {c!r} is retired; register it again to record new results.",
                "competitor",
            )
        if strict and (known is None or not known.registered):  # seen in a result is not enough
            return _reject(
                e,
                stream,
                Code.UNKNOWN_COMPETITOR,
                f"competitor {c!r} is not registered and arena {e.arena!r} is strict; publish "
                "competitor.registered first.",
                "competitor",
            )
    return None


def _remember(e: Event, dig: bytes, stream: str, head: int, facts: Facts) -> None:
    facts.ids[e.event_id] = (dig, type_name(e))
    facts.heads[stream] = head + 1
    if isinstance(e, CompetitorRegistered):
        facts.competitors[e.competitor] = CompetitorFacts(registered=True, retired=False)
    elif isinstance(e, CompetitorRetired):
        facts.competitors[e.competitor].retired = True
    elif isinstance(e, ArenaConfigured) and e.strict is not None:
        facts.strict[e.arena] = e.strict
    own(e, facts)
    if type_name(e) in RESULT_TYPE_NAMES:
        facts.targets[e.event_id] = Target(thing_of(e), e.source or "")
    for c in competitors_of(e):
        facts.competitors.setdefault(c, CompetitorFacts())
