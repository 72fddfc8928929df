"""Game scores on the read routes: the totals on the leaderboard rows of game pools, and a
competitor's totals per pool and recent games on ``GET /competitors/{id}``.

Every total is a primary-key read of the results model's running sums
(``competitor_game_scores``, kept by :mod:`arbiter.projections.game_scores`), never a sum over
the games at read time (that cost about 105 ms per leaderboard on a 20k-game arena).

Which pools are *game pools*: those where some game that is not voided was played (a row with
``games > 0``). Their leaderboard rows all carry ``games_played`` and ``games_scored`` (0 for a
competitor rated by battles only) and ``games_score`` (null while it had no scored game); other
pools' rows carry nulls, so a battle arena's board does not grow columns of zeros.

Games are not private (only experiments are, :mod:`..privacy`), so these views are the same
for every caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from psycopg import sql

from ..models.game_scores import GameScoreTotal, RecentGame
from ..models.ratings import CompetitorDetail, LeaderboardRow
from ..store import ReadStore
from .snapshot import POSITIONS, Query, Rows, Snapshot, as_float, positions_of, snapshot
from .snapshot import results_table as _s

__all__ = [
    "MAX_RECENT_GAMES",
    "BoardTotals",
    "board_totals",
    "board_totals_of",
    "board_totals_queries",
    "competitor_detail",
    "with_games",
    "with_totals",
]

MAX_RECENT_GAMES = 100

BoardTotals = dict[str, tuple[int, int, float | None]] | None
"""competitor -> (games played, games scored, score total) in a game pool; None: not one."""


async def board_totals(
    snap: Snapshot, arena: str, category: str, competitors: list[str]
) -> BoardTotals:
    """The game totals of ``competitors`` in the pool, or None when it is not a game pool."""
    return board_totals_of(*await snap.many(*board_totals_queries(arena, category, competitors)))


def board_totals_queries(arena: str, category: str, competitors: list[str]) -> list[Query]:
    """The queries of :func:`board_totals`, for a route that pipelines them with others."""
    pool = {"arena": arena, "category": category, "competitors": competitors}
    return [
        (
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE arena = %(arena)s "
                "AND category = %(category)s AND games > 0)"
            ).format(_s("competitor_game_scores")),
            pool,
        ),
        (
            sql.SQL(
                "SELECT competitor, games, scored, total::float8 FROM {} "
                "WHERE arena = %(arena)s AND category = %(category)s "
                "AND competitor = ANY(%(competitors)s)"
            ).format(_s("competitor_game_scores")),
            pool,
        ),
    ]


def board_totals_of(is_game_pool: Rows, rows: Rows) -> BoardTotals:
    """The rows of :func:`board_totals_queries` as :data:`BoardTotals`."""
    if not is_game_pool[0][0]:
        return None
    return {c: (int(games), int(scored), float(total)) for c, games, scored, total in rows}


def with_totals(rows: Sequence[LeaderboardRow], totals: BoardTotals) -> list[LeaderboardRow]:
    """The rows with their game totals (unchanged outside a game pool)."""
    if totals is None:
        return list(rows)
    out = []
    for row in rows:
        games, scored, total = totals.get(row.competitor, (0, 0, None))
        out.append(
            msgspec.structs.replace(
                row,
                games_played=games,
                games_scored=scored,
                games_score=total if scored else None,
            )
        )
    return out


def _games_queries(competitor: str, recent: int) -> list[Query]:
    """The competitor's game totals per pool and its last ``recent`` games."""
    return [
        (
            sql.SQL(
                "SELECT arena, category, games, scored, total::float8 FROM {} "
                "WHERE competitor = %s AND games > 0 ORDER BY arena, category"
            ).format(_s("competitor_game_scores")),
            (competitor,),
        ),
        (
            # The GIN index on the players finds its games; the newest are kept by a top-N sort.
            sql.SQL(
                "SELECT game_id, event_id, position, occurred_at, arena, category, "
                "participants, voided_by FROM {} WHERE competitors @> ARRAY[%s]::text[] "
                "ORDER BY position DESC LIMIT %s"
            ).format(_s("games")),
            (competitor, recent),
        ),
    ]


def _with_games_of(
    found: CompetitorDetail, totals: Rows, games: Rows, positions: Rows
) -> CompetitorDetail:
    """``found`` with the rows of :func:`_games_queries` and :data:`POSITIONS`."""
    competitor = found.competitor
    _, results_position = positions_of(positions)
    return msgspec.structs.replace(
        found,
        game_scores=[
            GameScoreTotal(
                arena=arena,
                category=category,
                games=int(n),
                scored=int(scored),
                score_total=float(total) if scored else None,
                score_avg=float(total) / int(scored) if scored else None,
            )
            for arena, category, n, scored, total in totals
        ],
        recent_games=[_recent(competitor, row) for row in games],
        results_position=results_position,
    )


async def with_games(reads: ReadStore, found: CompetitorDetail, recent: int) -> CompetitorDetail:
    """``found`` with its game totals per pool and its last ``recent`` games, read in one
    snapshot of the results model."""
    async with snapshot(reads) as snap:
        rows = await snap.many(*_games_queries(found.competitor, recent), POSITIONS, last=True)
    return _with_games_of(found, *rows)


async def competitor_detail(
    reads: ReadStore, competitor: str, arena: str, recent: int
) -> CompetitorDetail | None:
    """``GET /competitors/{id}``: the registry entry and standings (:meth:`ReadStore.competitor`)
    with the game totals and last ``recent`` games (:func:`with_games`), all in one snapshot and
    one round trip (the answer is recomputed at every commit of either model while events
    stream in; two snapshots took four round trips, and their positions were of two moments);
    None if the competitor is unknown."""
    info, position, standings, totals, games, positions = await reads.snapshot(
        *reads.competitor_queries(competitor, arena),
        *_games_queries(competitor, recent),
        POSITIONS,
    )
    found = reads.competitor_of(info, position, standings)
    return None if found is None else _with_games_of(found, totals, games, positions)


def _recent(competitor: str, row: tuple[Any, ...]) -> RecentGame:
    game_id, event_id, position, occurred_at, arena, category, participants, voided_by = row
    ordered = sorted(participants, key=lambda p: (int(p["rank"]), p["competitor"]))
    mine = next(p for p in ordered if p["competitor"] == competitor)
    return RecentGame(
        game_id=game_id,
        event_id=event_id,
        position=int(position),
        occurred_at=occurred_at,
        arena=arena,
        category=category,
        rank=int(mine["rank"]),
        score=as_float(mine.get("score")),
        players=[p["competitor"] for p in ordered],
        voided_by=voided_by,
    )
