"""``arbiter leaderboard``: an arena's Elo leaderboard (or one category's) as a terminal table.

Its own room: it is the one command that reads a read model directly (one SQL query) and shows
it; the HTTP API serves the same boards with more options (:mod:`arbiter.services.api`).
"""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer
from rich.table import Table

from .common import console, fail, servers

__all__ = ["leaderboard"]


def leaderboard(
    arena: Annotated[str, typer.Option()] = "default",
    category: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """Print the Elo leaderboard of an arena (or one category of it) as a table."""
    with servers() as rt, psycopg.connect(rt.database_url) as conn:
        try:
            rows = conn.execute(
                "SELECT r.competitor, c.name, r.rating, r.games, r.wins, r.losses, r.ties "
                "FROM arbiter_ratings.ratings r LEFT JOIN arbiter_ratings.competitors c "
                "USING (competitor) WHERE r.arena = %s AND r.category = %s "
                "ORDER BY r.rating DESC, r.competitor LIMIT %s",
                (arena, category or "", limit),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            raise fail("no read model yet: run 'arbiter migrate' or 'arbiter up'") from None
    title = f"Leaderboard: {arena}" + (f" / {category}" if category else "")
    table = Table(title=title)
    for col in ("#", "competitor", "name", "Elo", "games", "W", "L", "T", "win rate"):
        table.add_column(col, justify="right" if col not in ("competitor", "name") else "left")
    for rank, (comp, name, rating, games, w, lost, t) in enumerate(rows, 1):
        rate = f"{w / games:.1%}" if games else "-"
        table.add_row(
            str(rank), comp, name or "", f"{rating:.1f}", str(games), str(w), str(lost), str(t),
            rate,
        )  # fmt: skip
    console.print(table if rows else f"no rated competitors in {title.split(': ', 1)[1]}")
