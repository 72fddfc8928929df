"""Game score totals per competitor and pool, kept by the results projector as a running sum,
and their second derivation for the audit.

Seed 003 showed each competitor's apples eaten (the sum of its game ``score``) beside its
rating. Summing the games' participants at read time cost about 105 ms per leaderboard on a
20k-game arena, so the results read model keeps ``competitor_game_scores`` instead
(``migrations/results/0007_game_scores.sql``): per ``(arena, category, competitor)`` (category
``''`` the arena-wide pool; a game with a category counts in both) the exact sum of the scores
its games carried (``numeric``, the digits of the stored JSON), how many of its games carried a
score, and how many it played. The rules:

* a game counts for each of its players whatever their rank; a player without a score counts in
  ``games`` only;
* a void of a game takes it out of all three; the row stays (zeros when nothing is left), since
  the store subtracts and never deletes, so the state does not depend on batch boundaries.

:func:`add` is the store's SQL (new games, sign +1; games just voided, sign -1), run in the
projector's transaction by :func:`arbiter.projections.results.store`. :func:`replayed_rows`
re-derives the same rows in plain Python from the audit's replayed games, so the audit checks
the SQL instead of trusting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

import msgspec
from psycopg import Cursor, sql

from .tables import Table

__all__ = ["TABLE", "add", "replayed_rows"]

TABLE = Table("competitor_game_scores", ("arena", "category", "competitor"),
              ("total", "scored", "games"))  # fmt: skip
"""The audited table: key columns, then the sums."""

_SUMS = """
INSERT INTO {scores} (arena, category, competitor, total, scored, games)
SELECT g.arena, c.cat, p.value ->> 'competitor',
       coalesce(sum((p.value ->> 'score')::numeric), 0) * %(sign)s,
       count(p.value ->> 'score') * %(sign)s, count(*) * %(sign)s
FROM {games} g
CROSS JOIN LATERAL jsonb_array_elements(g.participants) AS p
CROSS JOIN LATERAL (VALUES (''), (g.category)) AS c(cat)
WHERE c.cat IS NOT NULL AND {selector}
GROUP BY g.arena, c.cat, p.value ->> 'competitor'
ON CONFLICT (arena, category, competitor) DO UPDATE
SET total = {scores}.total + EXCLUDED.total, scored = {scores}.scored + EXCLUDED.scored,
    games = {scores}.games + EXCLUDED.games
"""


def add(
    cur: Cursor[Any],
    tables: Mapping[str, sql.Composable],
    selector: sql.Composable,
    args: dict[str, Any],
) -> None:
    """Add (``args["sign"]`` 1) or take away (-1) the games ``selector`` picks (a condition on
    ``g``, the games table) from the totals of their players. ``tables``: the results tables by
    name, qualified with the schema being written (live, or a rebuild's fresh one)."""
    cur.execute(
        sql.SQL(_SUMS).format(scores=tables[TABLE.name], games=tables["games"], selector=selector),
        args,
    )


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Sums as ``numeric`` makes them: no rounding."""
_JSON = msgspec.json.Encoder()


def replayed_rows(games: Iterable[list[Any]]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """The table's rows from the audit's replayed game rows (``[event_id, position,
    occurred_at, arena, category, participants, ..., voided_by]``, participants as decoded
    JSON): every player of every game has its row, voided games add nothing to it."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    for row in games:
        arena, category, participants, voided = row[3], row[4], row[5], row[-1]
        for pool in ("", category):
            if pool is None:
                continue
            for p in participants:
                sums = out.setdefault((arena, pool, p["competitor"]), [Decimal(0), 0, 0])
                if voided is not None:
                    continue
                sums[2] += 1
                if p["score"] is not None:
                    # The digits the stored JSON holds, which ``numeric`` reads.
                    sums[0] = _EXACT.add(sums[0], Decimal(_JSON.encode(p["score"]).decode()))
                    sums[1] += 1
    return {key: tuple(v) for key, v in out.items()}
