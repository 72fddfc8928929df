"""Who may see an experiment, and the reads that keep private experiments out of shared routes.

An experiment belongs to the ``source`` of its first trial, as the event store records it in
``public.arbiter_owners`` under the append's lock (:mod:`arbiter.domain.decisions`): the same
owner the ingest enforces writes with, never a read model that may lag behind the log. While
keys are enforced, the experiment, its trials, the score votes on them and the voids of either
are seen only by that key and by admin keys; every other caller, keyed or not, sees nothing of
them: ``/experiments/{id}/...`` and ``/events/{id}`` answer the 404 of an unknown id, ``/events``
leaves their events out of its pages, and ``/stats`` counts only the trials of experiments the
caller may see. While keys are not enforced (``ARBITER_AUTH=off``, or ``auto`` before any key
was created) everyone sees everything, as every other route.

Trials rate nothing, but their metrics and score votes feed the leaderboard's averages, so
``/leaderboard`` and ``/leaderboard/stream`` average only the battles and the visible trials (the
results model keeps trials' metric sums apart per experiment owner). ``/evaluations/{id}/events``
sends an evaluation job, not log events. ``/summary`` stays a count of the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from arbiter.adapters.eventstore import StoredState
from arbiter.domain.decisions import thing_of
from arbiter.domain.events import ResultVoided
from litestar.connection import ASGIConnection
from psycopg import sql

from .models.log import LoggedEvent
from .store import EVENT_IDS, LOG, ReadStore

__all__ = [
    "EVERYONE",
    "NOBODY",
    "OWNERS",
    "Viewer",
    "experiment_owner",
    "set_viewer",
    "viewer_of",
    "visible",
    "visible_trials",
]

OWNERS = sql.Identifier("public", "arbiter_owners")
_VIEWER_KEY = "arbiter_viewer"
_PRIVATE = ("experiment:", "trial:")
"""Things that are private to their owner: an experiment, and a trial (its experiment's)."""
_STATE = msgspec.msgpack.Decoder(StoredState)


@dataclass(frozen=True)
class Viewer:
    """Whose experiments a request may see."""

    everything: bool
    """Keys not enforced, or an admin key."""
    source: str | None = None
    """The caller's key as a ``source`` (``key:<key_id>``); None without a key."""

    def sees(self, owner: str | None) -> bool:
        return self.everything or (self.source is not None and owner == self.source)


NOBODY = Viewer(everything=False)
EVERYONE = Viewer(everything=True)


def set_viewer(connection: ASGIConnection[Any, Any, Any, Any], viewer: Viewer) -> None:
    connection.scope[_VIEWER_KEY] = viewer  # type: ignore[literal-required]


def viewer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer:
    """The viewer the auth guard settled on; a request it did not judge sees no private data."""
    found = connection.scope.get(_VIEWER_KEY)
    return found if isinstance(found, Viewer) else NOBODY


async def experiment_owner(reads: ReadStore, experiment_id: str) -> str | None:
    """The ``source`` of the experiment's first trial ('' when it had none); None: no trials."""
    owners = await _owners(reads, {f"experiment:{experiment_id}"})
    return owners.get(f"experiment:{experiment_id}")


async def _owners(reads: ReadStore, things: set[str]) -> dict[str, str]:
    async with reads.pool.connection(timeout=reads.timeout) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT thing, owner FROM {} WHERE thing = ANY(%s)").format(OWNERS),
            (list(things),),
        )
        return {thing: owner for thing, owner in await cur.fetchall()}


async def _target_things(reads: ReadStore, event_ids: set[str]) -> dict[str, str | None]:
    """What the events that voids name are about (read from the log)."""
    async with reads.pool.connection(timeout=reads.timeout) as conn:
        cur = await conn.execute(
            sql.SQL(
                "SELECT i.event_id, e.state FROM {ids} i JOIN {log} e "
                "ON e.notification_id = i.notification_id WHERE i.event_id = ANY(%s)"
            ).format(ids=EVENT_IDS, log=LOG),
            (list(event_ids),),
        )
        rows = await cur.fetchall()
    return {event_id: thing_of(_STATE.decode(state).body) for event_id, state in rows}


async def visible(reads: ReadStore, viewer: Viewer, events: list[LoggedEvent]) -> list[LoggedEvent]:
    """``events`` without those about experiments the viewer may not see (two queries at most
    per page: the events voids name, and the owners)."""
    if viewer.everything or not events:
        return events
    targets = {e.event.target_event_id for e in events if isinstance(e.event, ResultVoided)}
    about = await _target_things(reads, targets) if targets else {}
    things: dict[int, str] = {}
    for logged in events:
        e = logged.event
        thing = about.get(e.target_event_id) if isinstance(e, ResultVoided) else thing_of(e)
        if thing is not None and thing.startswith(_PRIVATE):
            things[logged.position] = thing
    if not things:
        return events
    owners = await _owners(reads, set(things.values()))
    return [
        e
        for e in events
        if e.position not in things or viewer.sees(owners.get(things[e.position], ""))
    ]


def visible_trials(viewer: Viewer, params: dict[str, Any]) -> sql.Composable | None:
    """A condition on the results model's ``trials`` that keeps the viewer's experiments only
    (None: every trial); adds its parameter to ``params``."""
    if viewer.everything:
        return None
    params["viewer"] = viewer.source  # None matches no owner: a caller without a key sees none
    return sql.SQL(
        "EXISTS (SELECT 1 FROM {} o WHERE o.thing = 'experiment:' || experiment_id "
        "AND o.owner = %(viewer)s)"
    ).format(OWNERS)
