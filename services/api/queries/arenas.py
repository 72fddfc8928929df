"""The SQL behind the web's arenas page: every arena with its competitors, results and last
activity, and the categories of an arena (for the leaderboard's category selector).

The counts are defined as ``GET /summary?arena=`` defines them (competitors with a standing in
the arena-wide pool; battles, games and trials that count, voided ones apart; a private
experiment's trials only for its owner), so the page and the JSON agree; here they are grouped
by arena in one pass per table instead of one request per arena. Battles come from the results
model's running counts (``battle_counts``: live, voided and the latest producer time per arena
and scenario, :mod:`arbiter.projections.battle_counts`), as ``/summary``'s do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s
from .snapshot import snapshot

__all__ = ["ArenaOverview", "arena_categories", "arenas"]


@dataclass(frozen=True)
class ArenaOverview:
    arena: str
    competitors: int
    battles: int
    games: int
    trials: int
    voided: int
    last_activity: datetime | None
    """The latest producer time (``occurred_at``) of a result in the arena, voided ones too."""

    @property
    def results(self) -> int:
        return self.battles + self.games + self.trials


def _per_arena(table: str, seen: sql.Composable) -> sql.Composable:
    return sql.SQL(
        "SELECT arena, count(*) FILTER (WHERE voided_by IS NULL), "
        "count(*) FILTER (WHERE voided_by IS NOT NULL), max(occurred_at) FROM {} "
        "WHERE true {} GROUP BY arena"
    ).format(_s(table), seen)


async def arenas(reads: ReadStore, viewer: Viewer) -> tuple[int, int, list[ArenaOverview]]:
    """``(ratings position, results position, arenas by name)``: every arena that is configured,
    rated or holds a result."""
    params: dict[str, Any] = {}
    private = visible_trials(viewer, params)
    seen = sql.SQL("") if private is None else sql.SQL(" AND ") + private
    async with snapshot(reads) as snap:
        position, results_position = await snap.positions()
        configured, rated, battles, games, trials = await snap.many(
            (sql.SQL("SELECT arena FROM {}").format(_r("arenas")), ()),
            (
                sql.SQL("SELECT arena, count(*) FROM {} WHERE category = '' GROUP BY arena").format(
                    _r("ratings")
                ),
                (),
            ),
            (
                # The running counts, not a scan of every battle (540 ms at 1.67M battles).
                sql.SQL(
                    "SELECT arena, sum(live), sum(voided), max(last_occurred) FROM {} "
                    "GROUP BY arena"
                ).format(_s("battle_counts")),
                (),
            ),
            (_per_arena("games", sql.SQL("")), params),
            (_per_arena("trials", seen), params),
        )
    names = {row[0] for rows in (configured, rated, battles, games, trials) for row in rows}
    counts = {row[0]: int(row[1]) for row in rated}
    tables = [{row[0]: row[1:] for row in rows} for rows in (battles, games, trials)]
    out = []
    for name in sorted(names):
        found = [t.get(name, (0, 0, None)) for t in tables]
        times = [f[2] for f in found if f[2] is not None]
        out.append(
            ArenaOverview(
                arena=name,
                competitors=counts.get(name, 0),
                battles=int(found[0][0]),
                games=int(found[1][0]),
                trials=int(found[2][0]),
                voided=sum(int(f[1]) for f in found),
                last_activity=max(times, default=None),
            )
        )
    return position, results_position, out


async def arena_categories(reads: ReadStore, arena: str) -> list[str]:
    """The pools of an arena: '' (arena-wide) first, then its categories by name."""
    async with snapshot(reads) as snap:
        rows = await snap.rows(
            sql.SQL("SELECT DISTINCT category FROM {} WHERE arena = %s ORDER BY category").format(
                _r("ratings")
            ),
            (arena,),
        )
    found = [row[0] for row in rows]
    return found if "" in found else ["", *found]
