"""``arbiter leaderboard``: an arena's leaderboard (Elo or Bradley-Terry, now or as it stood at a
log position or time, metric averages on demand) as a terminal table or as the API's JSON body.

Its own room: it shows what the API's query (:func:`arbiter.services.api.queries.leaderboard.
leaderboard`) computes, run here on the API's own :class:`~arbiter.services.api.store.ReadStore`,
so the terminal and ``GET /leaderboard`` can never disagree on a number (it read its own SQL
before and had no Bradley-Terry, no past boards and no averages). The command reads the database
directly, as the operator: it sees every experiment's trials in the averages, like an admin key.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, fail, servers

if TYPE_CHECKING:
    from datetime import datetime

    from arbiter.services.api.models.ratings import Leaderboard

__all__ = ["SYSTEMS", "leaderboard"]

SYSTEMS = ("elo", "bt")


def leaderboard(
    arena: Annotated[str, typer.Option(help="The arena.")] = "default",
    category: Annotated[
        str, typer.Option(help="One category's pool; empty (the default): the arena-wide pool.")
    ] = "",
    system: Annotated[
        str,
        typer.Option(help="elo (the folded ratings) or bt (Bradley-Terry, 95% intervals)."),
    ] = "elo",
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="The board as it stood at a log position (an integer) or an RFC 3339 time "
            "with its offset (by the producers' occurred_at), as the API's as_of.",
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option("--metrics", help="Add the metric averages (wer, latency_ms, ...) columns."),
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print the JSON body GET /leaderboard answers instead."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows shown (the top N).")] = 20,
) -> None:
    """Print the leaderboard of an arena (or one category of it): the numbers GET /leaderboard
    serves for the same parameters."""
    # Lazy: the API's modules load Litestar, which `arbiter --help` need not pay.
    import msgspec
    import psycopg
    from arbiter.services.api.errors import ApiError
    from arbiter.services.api.parameters import parse_as_of

    if system not in SYSTEMS:
        raise fail(f"--system {escape(system)!r} is not one of: {', '.join(SYSTEMS)}")
    try:
        when = None if as_of is None else parse_as_of(as_of)
    except ApiError as exc:
        raise fail(escape(exc.body.message.replace("Query parameter `as_of`", "--as-of"))) from None
    with servers() as rt:
        try:
            board = asyncio.run(_read(rt.database_url, arena, category, limit, system, when))
        except psycopg.errors.UndefinedTable:
            raise fail("no read model yet: run 'arbiter migrate' or 'arbiter up'") from None
    if json_out:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(board), indent=2).decode())
        sys.stdout.write("\n")
        return
    _print(board, metrics)


async def _read(
    database_url: str,
    arena: str,
    category: str,
    limit: int,
    system: str,
    when: int | datetime | None,
) -> Leaderboard:
    from arbiter.services.api.privacy import EVERYONE
    from arbiter.services.api.queries.leaderboard import leaderboard as query
    from arbiter.services.api.store import ReadStore

    reads = ReadStore(database_url, max_size=2)
    await reads.open()
    try:
        return await query(reads, arena, category, limit, 0, system, when, viewer=EVERYONE)
    finally:
        await reads.close()


def _metric_columns(board: Leaderboard) -> list[str]:
    """The metrics any shown row has an average of, in the API's ``metrics`` names."""
    return sorted({name for row in board.rows for name in row.metrics})


def _print(board: Leaderboard, with_metrics: bool) -> None:
    pool = board.arena + (f" / {board.category}" if board.category else "")
    if not board.rows:
        console.print(f"no rated competitors in {escape(pool)}")
        return
    name = "Bradley-Terry" if board.system == "bt" else "Elo"
    when = f", as of position {board.as_of}" if board.as_of is not None else ""
    title = f"Leaderboard ({name}{when}): {pool}"
    table = Table(title=escape(title))
    columns = ["#", "competitor", "name", name if board.system == "elo" else "BT"]
    if board.system == "bt":
        columns.append("95% interval")
    columns += ["games", "W", "L", "T", "win rate"]
    extra = _metric_columns(board) if with_metrics else []
    if with_metrics:
        columns += [*extra, "avg score"]
    for col in columns:
        table.add_column(escape(col), justify="left" if col in ("competitor", "name") else "right")
    for row in board.rows:
        cells = [str(row.rank), escape(row.competitor), escape(row.name or ""), f"{row.rating:.1f}"]
        if board.system == "bt":
            interval = (
                "-"
                if row.lower is None or row.upper is None
                else f"{row.lower:.1f} .. {row.upper:.1f}"
            )
            cells.append(interval)
        cells += [str(row.games), str(row.wins), str(row.losses), str(row.ties)]
        cells.append(f"{row.win_rate:.1%}" if row.games else "-")
        if with_metrics:
            cells += [_number(row.metrics.get(m)) for m in extra]
            cells.append(_number(row.avg_score))
        table.add_row(*cells)
    console.print(table)
    if board.total > len(board.rows):
        console.print(f"top {len(board.rows)} of {board.total}; --limit shows more")


def _number(value: float | None) -> str:
    """Four significant digits: a WER of 0.0312 and a latency of 1234 ms both read right."""
    return "-" if value is None else f"{value:.4g}"
