""":func:`~.decisions.decide` and :func:`~.decisions.facts_needed` with a fast lane for battles.

A bulk import is almost only ``battle.completed``, and the general rules spend most of their
time finding out, test by test, that a battle has no target, no owner, no thing and nothing to
retire (``isinstance`` chains, a ``Target`` built per event): about 12 us a battle, a third of
the append's CPU. The fast lane rules a battle in a few dictionary look-ups, and only when the
answer is certain to be *append*: its ``event_id`` is new, its ``battle_id`` stream is empty, no
competitor it names is retired, and the arena is not strict or both competitors are registered.
Every other battle, and every other event, goes through :func:`~.decisions.decide` itself, one
at a time and in order, on the same :class:`~.decisions.Facts`, so each event still sees the
ones before it. The fast lane leaves the facts exactly as the general rule does (``own`` records
nothing for a battle; a battle is a result about no thing, so its void target is ``Target(None,
source)``; both competitors become known).

Ownership needs no check here: a battle is its own thing, so ``not_owner`` never applies to one
(:func:`~.decisions._check_owner` returns early for it, key or no key).

``tests/test_batch_decisions.py`` checks, on random batches with duplicates, conflicting ids and
battle ids, retired competitors, strict arenas and key writers mixed with every other event
type, that both ways give the same decisions and leave the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .decisions import (
    CompetitorFacts,
    Decision,
    Facts,
    Needed,
    Target,
    Verdict,
    decide,
    facts_needed,
    is_key,
)
from .events import BattleCompleted, Event

__all__ = ["decide_batch", "needed_for"]


def decide_batch(events: Sequence[Event], digests: Sequence[bytes], facts: Facts) -> list[Decision]:
    """The same decisions as ``decide(events, digests, facts)``, and the same facts after."""
    out: list[Decision] = []
    ids, heads, competitors, strict = facts.ids, facts.heads, facts.competitors, facts.strict
    # ``Target(None, source)`` per source, frozen, so one instance serves every battle of the
    # batch; per call, not per process: sources are the publishers' to choose without end.
    targets: dict[str, Target] = {}
    for e, dig in zip(events, digests, strict=True):
        if type(e) is BattleCompleted:
            stream = f"battle:{e.battle_id}"
            a, b = competitors.get(e.a), competitors.get(e.b)
            if (
                e.event_id not in ids
                and not heads.get(stream)
                and not (a is not None and a.retired)
                and not (b is not None and b.retired)
                and not (
                    strict.get(e.arena, False)
                    and (a is None or not a.registered or b is None or not b.registered)
                )
            ):
                ids[e.event_id] = (dig, "battle.completed")
                heads[stream] = 1
                source = e.source or ""
                target = targets.get(source) or targets.setdefault(source, Target(None, source))
                facts.targets[e.event_id] = target
                if a is None:
                    competitors[e.a] = CompetitorFacts()
                if b is None:
                    competitors[e.b] = CompetitorFacts()
                out.append(Decision(Verdict.APPEND, stream, 1))
                continue
        out.extend(decide([e], [dig], facts))
    return out


def needed_for(events: Iterable[Event]) -> Needed:
    """``facts_needed(events)``, with a battle's keys gathered without the type tests."""
    battles: list[BattleCompleted] = []
    others: list[Event] = []
    for e in events:
        (battles if type(e) is BattleCompleted else others).append(e)  # type: ignore[arg-type]
    if not battles:
        return facts_needed(others)
    rest = facts_needed(others)
    return Needed(
        rest.event_ids.union(e.event_id for e in battles),
        rest.streams.union(f"battle:{e.battle_id}" for e in battles),
        rest.competitors.union(e.a for e in battles).union(e.b for e in battles),
        rest.arenas.union(e.arena for e in battles),
        rest.things,
        rest.targets,
        rest.writers.union(
            e.source.removeprefix("key:")  # type: ignore[union-attr]
            for e in battles
            if is_key(e.source)
        ),
    )
