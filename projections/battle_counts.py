"""Battles per arena and scenario, live and voided, kept by the results projector as a running
count, and their second derivation for the audit.

``GET /summary?arena=`` shows an arena's battles (live and voided) and its scenarios. Counting
them at read time scanned every battle of the arena, and the API's response cache recomputes
``/summary`` at every commit of the results model (several a second while events stream in),
so the results read model keeps ``battle_counts`` instead
(``migrations/results/0008_battle_counts.sql``): per ``(arena, scenario)`` (``scenario`` ``''``
for battles without one: never an event's scenario, an id of at least one character) how many
battles are live and how many voided. The rules:

* a battle counts as live in its row when folded; a void of it moves it to ``voided``;
* a row stays when all its battles are voided (live 0): the store adds and subtracts, never
  deletes, so the state does not depend on batch boundaries.

:func:`add` is the store's SQL, run in the projector's transaction by
:func:`arbiter.projections.results.store`; :func:`replayed_rows` re-derives the same rows in
plain Python from the audit's replayed battles, so the audit checks the SQL instead of trusting
it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import Cursor, sql

from .tables import Table

__all__ = ["TABLE", "add", "replayed_rows"]

TABLE = Table("battle_counts", ("arena", "scenario"), ("live", "voided"))
"""The audited table: key columns, then the counts."""

_COUNTS = """
INSERT INTO {counts} (arena, scenario, live, voided)
SELECT b.arena, coalesce(b.scenario, ''), count(*) * %(live)s, count(*) * %(voided)s
FROM {battles} b WHERE {selector}
GROUP BY b.arena, coalesce(b.scenario, '')
ON CONFLICT (arena, scenario) DO UPDATE
SET live = {counts}.live + EXCLUDED.live, voided = {counts}.voided + EXCLUDED.voided
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


def replayed_rows(battles: Iterable[list[Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """The table's rows from the audit's replayed battle rows (``[event_id, position,
    occurred_at, arena, category, a, b, outcome, judge, scenario, ..., voided_by]``)."""
    out: dict[tuple[str, str], list[int]] = {}
    for row in battles:
        counts = out.setdefault((row[3], row[9] or ""), [0, 0])
        counts[0 if row[-1] is None else 1] += 1
    return {key: (live, voided) for key, (live, voided) in out.items()}
