"""The log's index re-derived in memory, for the audit: every row of ``event_index``,
``event_competitors`` and ``event_entities`` after the log up to a position, with no SQL.

What an event names by its own fields is :func:`.event_index.names`, the pure rule both sides
share (as the ratings audit shares the ratings fold); what the store does in SQL (resolving a
vote's or a void's reference against earlier rows, the sorted unions, the lookup rows with the
kind cut off) is done here a second way, so a wrong statement shows up as a mismatch.
"""

from __future__ import annotations

from typing import Any

from arbiter.domain.events import Event

from .event_index import entity_id, merged, names, row
from .tables import Table

__all__ = ["TABLES", "IndexReplay"]

TABLES = (
    Table("event_index", ("position",), (
        "event_id", "type", "arena", "category", "source", "occurred_at", "experiment",
        "competitors", "entities")),
    Table("event_competitors", ("competitor", "position"), ("type",)),
    Table("event_entities", ("entity", "position"), ()),
)  # fmt: skip


class IndexReplay:
    """The index tables as plain Python rows."""

    def __init__(self) -> None:
        self.rows: dict[int, list[Any]] = {}
        self.by_event: dict[str, int] = {}
        self.first: dict[str, int] = {}
        """``<kind>:<id>`` -> the earliest position naming it (what an entity reference finds)"""

    def apply(self, position: int, event: Event) -> None:
        own = names(event)
        new = list(row(position, event, own))
        if own.refers is not None:
            kind, _, ident = own.refers.partition(":")
            target = self.by_event.get(ident) if kind == "event" else self.first.get(own.refers)
            if target is not None:
                old = self.rows[target]
                new[8] = merged(new[8], old[8])
                new[9] = merged(new[9], old[9])
                new[7] = new[7] if new[7] is not None else old[7]
        self.rows[position] = new
        self.by_event[event.event_id] = position
        for entity in new[9]:
            self.first.setdefault(entity, position)

    def tables(self) -> dict[str, dict[Any, tuple[Any, ...]]]:
        """Every row of :data:`TABLES`, keyed as the audit reads the stored ones."""
        competitors: dict[Any, tuple[Any, ...]] = {}
        entities: dict[Any, tuple[Any, ...]] = {}
        for position, r in self.rows.items():
            for competitor in r[8]:
                competitors[(competitor, position)] = (r[2],)
            for entity in r[9]:
                entities[(entity_id(entity), position)] = ()
        return {
            "event_index": {p: tuple(r[1:]) for p, r in self.rows.items()},
            "event_competitors": competitors,
            "event_entities": entities,
        }
