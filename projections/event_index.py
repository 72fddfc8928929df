"""The log's index: what ``GET /events`` filters on, one row per event, kept by the results fold.

Each event is indexed by its type, arena, category, source and producer time, and by the
competitors and entities (battles, games, trials, experiments) it names. :func:`names` is the
one place that says what an event names: a new event type is one line in :data:`_NAMES` (a type
missing from it is still indexed by its envelope, and names nothing).

An event may name more than its own fields: a vote names the competitors of the battle or trial
it is on (and a score vote that trial's experiment), and a void everything its target names.
Those come from earlier in the log. Decision: the pure fold does not remember them (that would
be every result's names in memory, and again after each restart); it records a reference
(``event:<event_id>`` for a void, ``battle:<id>`` / ``trial:<id>`` for a vote) and the store
resolves it in SQL against the index itself, in the same transaction, one statement per
reference kind for the whole batch:

* an entity reference resolves to the earliest event naming that entity (its creator: the log
  holds no vote before its battle, since the ingest defers it), an event reference to that
  event; the referring event's arrays become the sorted union of its own and its target's;
* entity references resolve first, then event references, so a void of a vote inherits the
  battle's competitors the vote has just inherited (a void never targets a void).

The audit re-derives the same rows in plain Python (:mod:`.event_index_audit`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from arbiter.domain.events import (
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
from psycopg import Cursor, sql

from .copy import copy_rows, qualified

__all__ = [
    "COLUMNS",
    "DEFERRED_INDEXES",
    "TABLES",
    "IndexBatch",
    "Names",
    "entity_id",
    "merged",
    "names",
    "row",
    "store",
]


class Names(NamedTuple):
    """What one event names by its own fields, and the earlier event it refers to."""

    entities: tuple[str, ...] = ()
    """``<kind>:<id>``: battle, game, trial, experiment."""
    competitors: tuple[str, ...] = ()
    refers: str | None = None
    """``event:<event_id>`` or ``<kind>:<id>``: whose names this event names too."""


def _vote(e: VoteCast) -> Names:
    thing = f"battle:{e.battle_id}" if e.battle_id is not None else f"trial:{e.trial_id}"
    return Names((thing,), (), thing)


_NAMES: dict[type[Any], Callable[[Any], Names]] = {
    BattleCompleted: lambda e: Names((f"battle:{e.battle_id}",), (e.a, e.b)),
    GameCompleted: lambda e: Names(
        (f"game:{e.game_id}",), tuple(p.competitor for p in e.participants)
    ),
    TrialCompleted: lambda e: Names(
        (f"trial:{e.trial_id}", f"experiment:{e.experiment_id}"), (e.competitor,)
    ),
    VoteCast: _vote,
    ResultVoided: lambda e: Names(refers=f"event:{e.target_event_id}"),
    CompetitorRegistered: lambda e: Names(competitors=(e.competitor,)),
    CompetitorRetired: lambda e: Names(competitors=(e.competitor,)),
    ExperimentCreated: lambda e: Names((f"experiment:{e.experiment_id}",), tuple(e.competitors)),
    ExperimentCompleted: lambda e: Names((f"experiment:{e.experiment_id}",)),
}
"""Event type -> what it names. Types not here (``arena.configured``) name nothing."""

_NOTHING = Names()


def names(event: Event) -> Names:
    """What ``event`` names by its own fields (pure)."""
    found = _NAMES.get(type(event))
    return _NOTHING if found is None else found(event)


def entity_id(entity: str) -> str:
    """The id of ``<kind>:<id>`` (kinds hold no colon; ids may)."""
    return entity.partition(":")[2]


def _experiment(entities: list[str]) -> str | None:
    for entity in entities:
        if entity.startswith("experiment:"):
            return entity_id(entity)
    return None


def merged(own: list[str], inherited: list[str]) -> list[str]:
    """The sorted union, as the store's SQL makes it (``COLLATE "C"``: code point order)."""
    return sorted(set(own) | set(inherited))


COLUMNS = (
    ("position", "event_id", "type", "arena", "category", "source", "occurred_at",
     "experiment", "competitors", "entities"),
    ("int8", "text", "text", "text", "text", "text", "timestamptz", "text", "text[]", "text[]"),
)  # fmt: skip
"""event_index's columns and types, in the order of :func:`row`'s tuples."""

TABLES = ("event_index", "event_competitors", "event_entities")
DEFERRED_INDEXES = (
    "event_index_type",
    "event_index_arena",
    "event_index_category",
    "event_index_source",
    "event_index_occurred",
    "event_competitors_type",
)
"""Only readers use these; the store's own lookups go through the keys and ``event_id``."""


def row(position: int, event: Event, own: Names) -> tuple[Any, ...]:
    """The event's index row before any reference is resolved."""
    entities = sorted(set(own.entities))
    occurred: datetime = event.occurred_at
    return (
        position, event.event_id, type_name(event), event.arena, event.category, event.source,
        occurred, _experiment(entities), sorted(set(own.competitors)), entities,
    )  # fmt: skip


@dataclass
class IndexBatch:
    """A batch's index rows and the references they make, in log order."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    refers: list[tuple[int, str]] = field(default_factory=list)
    """(position, reference)"""

    def add(self, position: int, event: Event) -> None:
        own = names(event)
        self.rows.append(row(position, event, own))
        if own.refers is not None:
            self.refers.append((position, own.refers))


# Each referring event takes its target's names. The arrays are rewritten as sorted unions; the
# lookup rows for the names it gained are added (ON CONFLICT: those it named itself are there).
_RESOLVE = """
WITH r AS (SELECT * FROM unnest(%(positions)s::int8[], %(refs)s::text[]) AS r(position, ref)),
t AS (
    SELECT r.position, {target} AS target FROM r
),
u AS (
    UPDATE {index} i SET
        competitors = ARRAY(SELECT c FROM unnest(i.competitors || x.competitors) AS c
                            GROUP BY c ORDER BY c COLLATE "C"),
        entities = ARRAY(SELECT n FROM unnest(i.entities || x.entities) AS n
                         GROUP BY n ORDER BY n COLLATE "C"),
        experiment = coalesce(i.experiment, x.experiment)
    FROM t JOIN {index} x ON x.position = t.target
    WHERE i.position = t.position
    RETURNING i.position, i.type, i.competitors, i.entities
),
c AS (
    INSERT INTO {competitors} (competitor, position, type)
    SELECT c, u.position, u.type FROM u, unnest(u.competitors) AS c ON CONFLICT DO NOTHING
)
INSERT INTO {entities} (entity, position)
SELECT DISTINCT substr(n, strpos(n, ':') + 1), u.position FROM u, unnest(u.entities) AS n
ON CONFLICT DO NOTHING
"""
_BY_EVENT = "(SELECT x.position FROM {index} x WHERE x.event_id = substr(r.ref, 7))"
_BY_ENTITY = (
    "(SELECT min(e.position) FROM {entities} e JOIN {index} x ON x.position = e.position "
    "WHERE e.entity = substr(r.ref, strpos(r.ref, ':') + 1) AND e.position < r.position "
    "AND r.ref = ANY(x.entities))"
)
_OWN_NAMES = """
WITH n AS (SELECT position, type, competitors, entities FROM {index} WHERE position > %(start)s),
c AS (INSERT INTO {competitors} (competitor, position, type)
      SELECT c, n.position, n.type FROM n, unnest(n.competitors) AS c)
INSERT INTO {entities} (entity, position)
SELECT DISTINCT substr(e, strpos(e, ':') + 1), n.position FROM n, unnest(n.entities) AS e
"""


def store(cur: Cursor[Any], schema: str, start: int, batch: IndexBatch) -> None:
    """Store a batch's index rows (positions after ``start``), then resolve its references:
    entity references first, event references second (see the module's docstring)."""
    if not batch.rows:
        return
    copy_rows(cur, schema, "event_index", *COLUMNS, batch.rows)
    t = {
        "index": qualified(schema, "event_index"),
        "competitors": qualified(schema, "event_competitors"),
        "entities": qualified(schema, "event_entities"),
    }
    cur.execute(sql.SQL(_OWN_NAMES).format(**t), {"start": start})
    for by_event, target in ((False, _BY_ENTITY), (True, _BY_EVENT)):
        refs = [(p, r) for p, r in batch.refers if r.startswith("event:") == by_event]
        if not refs:
            continue
        cur.execute(
            sql.SQL(_RESOLVE).format(target=sql.SQL(target).format(**t), **t),
            {"positions": [p for p, _ in refs], "refs": [r for _, r in refs]},
        )
