"""``arbiter_owners``: who owns each shared thing (``experiment:<id>``, ``trial:<id>``,
``arena:<name>``), the first writer's ``source``, as :func:`arbiter.domain.decisions.own` rules.

The append writes it in its own transaction (:meth:`.eventstore.ArbiterRecorder.append_checked`).
It is derived from the log alone, so it is filled from the log where the log came first: when
the table is created beside an older log, and by a restore, which loads the log but not this
table (a backup need not hold what the log implies; :mod:`arbiter.services.backup`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arbiter.domain.decisions import Facts, own
from arbiter.domain.events import Event
from psycopg.sql import SQL, Composable

__all__ = ["fill", "store"]


def fill(
    curs: Any,
    events_table: Composable,
    owners_table: Composable,
    decode: Callable[[bytes], Event],
) -> None:
    """Add the owners the log in ``events_table`` implies, in log order (``decode``: a row's
    ``state`` to its event). Rows as tuples or as dicts (the recorder's cursors)."""
    facts = Facts()
    position = 0
    while True:
        curs.execute(
            SQL(
                "SELECT notification_id, state FROM {} WHERE notification_id > %s "
                "ORDER BY notification_id LIMIT 10000"
            ).format(events_table),
            (position,),
        )
        rows = curs.fetchall()
        if not rows:
            break
        for row in rows:
            position, state = (
                (row["notification_id"], row["state"]) if isinstance(row, dict) else row
            )
            own(decode(state), facts)
    store(curs, owners_table, facts)


def store(curs: Any, owners_table: Composable, facts: Facts) -> None:
    """Insert the owners ``facts`` gained (the first writer stays: a thing is owned once)."""
    if facts.new_owners:
        curs.execute(
            SQL(
                "INSERT INTO {} (thing, owner) SELECT * FROM unnest(%s::text[], %s::text[]) "
                "ON CONFLICT (thing) DO NOTHING"
            ).format(owners_table),
            (list(facts.new_owners), list(facts.new_owners.values())),
        )
