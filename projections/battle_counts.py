"""Battles per arena and scenario, live and voided, kept by the results projector as a running
count, and their second derivation for the audit.

``GET /summary?arena=`` shows an arena's battles (live and voided) and its scenarios. Counting
them at read time scanned every battle of the arena, and the API's response cache recomputes
``/summary`` at every commit of the results model (several a second while events stream in),
so the results read model keeps ``battle_counts`` instead
(``migrations/results/0008_battle_counts.sql``): per ``(arena, scenario)`` (``scenario`` ``''``
for battles without one: never an event's scenario, an id of at least one character) how many
battles are live and how many voided, and the latest producer time (``occurred_at``) of its
battles, voided ones too (``migrations/results/0009_battle_counts_last.sql``: the arenas page's
"last activity", which took a max over every battle). The rules:

* a battle counts as live in its row when folded; a void of it moves it to ``voided``;
* a row stays when all its battles are voided (live 0): the store adds and subtracts, never
  deletes, so the state does not depend on batch boundaries;
* ``last_occurred`` only ever takes the greater of its value and a new battle's (a void leaves
  it: a voided battle was activity too), so it is the max in any batch split.

:func:`add` is the store's SQL, run in the projector's transaction by
:func:`arbiter.projections.results.store`; :func:`replayed_rows` re-derives the same rows in
plain Python from the audit's replayed battles, so the audit checks the SQL instead of trusting
it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from psycopg import Cursor, sql

from .tables import Table

__all__ = ["TABLE", "add", "replayed_rows"]

TABLE = Table("battle_counts", ("arena", "scenario"), ("live", "voided", "last_occurred"))
"""The audited table: key columns, then the counts and the latest producer time."""

_COUNTS = """
INSERT INTO {counts} (arena, scenario, live, voided, last_occurred)
SELECT b.arena, coalesce(b.scenario, ''), count(*) * %(live)s, count(*) * %(voided)s,
       max(b.occurred_at)
FROM {battles} b WHERE {selector}
GROUP BY b.arena, coalesce(b.scenario, '')
ON CONFLICT (arena, scenario) DO UPDATE
SET live = {counts}.live + EXCLUDED.live, voided = {counts}.voided + EXCLUDED.voided,
    last_occurred = greatest({counts}.last_occurred, EXCLUDED.last_occurred)
"""


def add(
    cur: Cursor[Any],
    tables: Mapping[str, sql.Composable],
    selector: sql.Composable,
    args: dict[str, Any],
    voiding: bool = False,
) -> None:
    """Count the battles ``selector`` picks (a condition on ``b``, the battles table) as new and
    live, or with ``voiding`` as moved from live to voided. ``tables``: the results tables by
    name, qualified with the schema being written (live, or a rebuild's fresh one)."""
    cur.execute(
        sql.SQL(_COUNTS).format(
            counts=tables[TABLE.name], battles=tables["battles"], selector=selector
        ),
        {**args, "live": -1 if voiding else 1, "voided": 1 if voiding else 0},
    )


def replayed_rows(
    battles: Iterable[list[Any]],
) -> dict[tuple[str, str], tuple[int, int, datetime]]:
    """The table's rows from the audit's replayed battle rows (``[event_id, position,
    occurred_at, arena, category, a, b, outcome, judge, scenario, ..., voided_by]``)."""
    out: dict[tuple[str, str], list[Any]] = {}
    for row in battles:
        counts = out.setdefault((row[3], row[9] or ""), [0, 0, row[2]])
        counts[0 if row[-1] is None else 1] += 1
        counts[2] = max(counts[2], row[2])
    return {key: (live, voided, last) for key, (live, voided, last) in out.items()}
