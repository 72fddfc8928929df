"""The auto-judge in the ratings fold (issue 13 point 4): which battles it decides, and how a
reloaded fold learns which arenas have it on.

An arena opts in with ``arena.configured`` ``auto_judge: true`` (and out with ``false``); from
that position of the log on, a ``battle.completed`` there with ``outcome`` null is decided by
seed 000's composite (:func:`arbiter.domain.composite.judge`) when both metric sets suffice, and
keeps awaiting votes when they do not. The decision is made in the fold, from the event and the
setting in force at its position, so the projector, a rebuild and the audit make it alike, and
it is stored where every rated result is: the battle's ``matches`` row carries the decided score
(and is compared by the audit), its history rows are ordinary ``battle`` rows.

Decisions:

* **K** is ``K x weights["auto"]`` whatever the event's ``judge`` says: the composite decided
  it, not the judge the battle was waiting for (usually ``human``).
* **Votes** on an auto-judged battle rate exactly as votes on a battle published with an
  outcome: each is one more result, ``K x weights["human"]``, beside the battle's own. That is
  what a vote has always meant in this fold (a battle awaiting votes differs only in having no
  result of its own), so a battle reads the same whether its producer or the composite decided
  it; the composite's verdict is never replaced by votes.
* **Opting in is not retroactive**: battles before the ``auto_judge: true`` stay as they were
  (awaiting votes), as every setting applies from its position on.
* **Where the setting lives.** The fold keeps the set of opted-in arenas in memory
  (:attr:`RatingsFold.judged`). The ratings schema has no column for it, so a fold loaded from
  its tables (a restarted projector, a rebuild's last step) re-derives it from the log itself:
  :func:`restore` reads the ``arena:<name>`` streams of the arenas the ``arenas`` table lists (an
  index lookup per arena; an arena only gets there through ``arena.configured``) up to the
  model's position, skipping quarantined positions as the fold did. The log is the source of
  truth, so this cannot disagree with a fold from position 0 (the property test restarts the
  projector between batches).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid5

from arbiter.adapters.eventstore import NAMESPACE, decode_state
from arbiter.domain.composite import judge
from arbiter.domain.elo import SCORES
from arbiter.domain.events import ArenaConfigured, BattleCompleted
from psycopg import Cursor, sql

from ..copy import qualified

__all__ = ["auto_outcome", "restore"]

_LOG = sql.Identifier("public", "arbiter_events")


def auto_outcome(e: BattleCompleted) -> float | None:
    """Side ``a``'s score as the auto-judge decides the battle, or None (metrics insufficient).
    The caller has checked that the battle has no outcome and that its arena opted in."""
    if not e.metrics:
        return None
    verdict = judge(e.metrics.get("a"), e.metrics.get("b"))
    return None if verdict is None else SCORES[verdict.outcome]


def restore(cur: Cursor[Any], schema: str, arenas: list[str], position: int) -> set[str]:
    """The arenas whose auto-judge is on at ``position``, from their ``arena.configured``
    events in the log (the stream key is :func:`arbiter.domain.decisions.stream_key`'s)."""
    if not arenas or position <= 0:
        return set()
    streams = [uuid5(NAMESPACE, f"arena:{arena}") for arena in arenas]
    cur.execute(
        sql.SQL(
            "SELECT e.state FROM {log} e WHERE e.originator_id = ANY(%s) "
            "AND e.notification_id <= %s AND NOT EXISTS "
            "(SELECT 1 FROM {quarantine} q WHERE q.position = e.notification_id) "
            "ORDER BY e.notification_id"
        ).format(log=_LOG, quarantine=qualified(schema, "quarantine")),
        (streams, position),
    )
    on: set[str] = set()
    for (state,) in cur.fetchall():
        event = decode_state(bytes(state))
        if isinstance(event, ArenaConfigured) and event.auto_judge is not None:
            (on.add if event.auto_judge else on.discard)(event.arena)
    return on
