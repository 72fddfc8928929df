"""The SQL behind the battle and game routes and the assembly of their bodies: reads of the
``arbiter_results`` read model, one snapshot per request. Voided results stay in the lists,
marked with ``voided_by``."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..models.results import (
    BattleDetail,
    BattlePage,
    BattleSummary,
    BattleVote,
    EloDelta,
    GameDetail,
    GamePage,
    GameParticipant,
    GameSummary,
    VoteCounts,
)
from ..store import ReadStore
from .pages import filtered, read_page, voided_filter
from .snapshot import as_float, snapshot
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s
from .verdicts import auto_judged, verdicts_query

__all__ = ["battle", "battles", "game", "games"]

_BATTLE_COLUMNS = sql.SQL(
    "battle_id, event_id, position, occurred_at, arena, category, a, b, outcome, judge, "
    "scenario, votes_a, votes_b, votes_tie, voided_by"
)


def _battle(row: tuple[Any, ...]) -> dict[str, Any]:
    (battle_id, event_id, position, occurred_at, arena, category, a, b, outcome, judge,
     scenario, va, vb, vt, voided_by) = row  # fmt: skip
    return {
        "battle_id": battle_id,
        "event_id": event_id,
        "position": int(position),
        "occurred_at": occurred_at,
        "arena": arena,
        "category": category,
        "a": a,
        "b": b,
        "outcome": outcome,
        "judge": judge,
        "scenario": scenario,
        "votes": VoteCounts(int(va), int(vb), int(vt)),
        "voided_by": voided_by,
    }


async def battles(
    reads: ReadStore,
    *,
    arena: str | None,
    category: str | None,
    competitor: str | None,
    judge: str | None,
    scenario: str | None,
    voided: bool | None,
    limit: int,
    offset: int,
) -> BattlePage:
    where, params = filtered(
        {"limit": limit, "offset": offset},
        (
            ("arena", arena, "arena = %(arena)s"),
            ("category", category, "category = %(category)s"),
            ("competitor", competitor, "(a = %(competitor)s OR b = %(competitor)s)"),
            ("judge", judge, "judge = %(judge)s"),
            ("scenario", scenario, "scenario = %(scenario)s"),
        ),
        voided_filter(voided),
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        total, page = await read_page(
            snap, "battles", _BATTLE_COLUMNS, where, params, "position DESC"
        )
        judged = auto_judged(await snap.rows(*verdicts_query([r[0] for r in page])))
    return BattlePage(
        battles=[BattleSummary(**_battle(r), auto_judged=judged.get(r[0])) for r in page],
        total=total,
        limit=limit,
        offset=offset,
        results_position=results_position,
    )


# The history rows the battle's own outcome wrote in its arena-wide pool (category ''): found by
# primary key (arena, category, competitor, position); none when the battle is voided in either
# read model (a voided battle moved no rating that still counts).
_ELO_DELTA = sql.SQL(
    "SELECT h.competitor, h.rating_after - h.rating_before FROM {battles} t "
    "JOIN {history} h ON h.arena = t.arena AND h.category = '' AND h.position = t.position "
    "AND h.competitor IN (t.a, t.b) AND h.event_id = t.event_id AND h.kind = 'battle' "
    "WHERE t.battle_id = %s AND t.voided_by IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM {voids} v WHERE v.target_event_id = t.event_id)"
)


def _elo_delta(a: str, b: str, rows: list[tuple[Any, ...]]) -> EloDelta | None:
    delta = {competitor: as_float(change) for competitor, change in rows}
    da, db = delta.get(a), delta.get(b)
    return None if da is None or db is None else EloDelta(a=da, b=db)


async def battle(reads: ReadStore, battle_id: str) -> BattleDetail | None:
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        found, votes, deltas, verdict = await snap.many(
            (
                sql.SQL("SELECT {}, metrics, meta, source FROM {} WHERE battle_id = %s").format(
                    _BATTLE_COLUMNS, _s("battles")
                ),
                (battle_id,),
            ),
            (
                sql.SQL(
                    "SELECT vote_id, event_id, position, occurred_at, voter, choice, voided_by "
                    "FROM {} WHERE battle_id = %s ORDER BY position"
                ).format(_s("votes")),
                (battle_id,),
            ),
            (
                _ELO_DELTA.format(
                    battles=_s("battles"), history=_r("rating_history"), voids=_r("voids")
                ),
                (battle_id,),
            ),
            verdicts_query([battle_id]),
        )
    if not found:
        return None
    row = found[0]
    metrics, meta, source = row[-3:]
    fields = _battle(row[:-3])
    return BattleDetail(
        **fields,
        metrics=None
        if metrics is None
        else {side: {k: float(v) for k, v in values.items()} for side, values in metrics.items()},
        meta=meta if isinstance(meta, dict) else {},
        source=source,
        vote_list=[
            BattleVote(
                vote_id=v[0],
                event_id=v[1],
                position=int(v[2]),
                occurred_at=v[3],
                voter=v[4],
                choice=v[5],
                voided_by=v[6],
            )
            for v in votes
        ],
        elo_delta=_elo_delta(fields["a"], fields["b"], deltas),
        auto_judged=auto_judged(verdict).get(battle_id),
        results_position=results_position,
    )


_GAME_COLUMNS = sql.SQL(
    "game_id, event_id, position, occurred_at, arena, category, participants, rounds, "
    "replay_uri, voided_by"
)


def _game(row: tuple[Any, ...]) -> dict[str, Any]:
    (game_id, event_id, position, occurred_at, arena, category, participants, rounds,
     replay_uri, voided_by) = row  # fmt: skip
    players = [
        GameParticipant(
            competitor=p["competitor"],
            rank=int(p["rank"]),
            score=as_float(p.get("score")),
            meta=p.get("meta") or {},
        )
        for p in participants or []
    ]
    players.sort(key=lambda p: (p.rank, p.competitor))
    return {
        "game_id": game_id,
        "event_id": event_id,
        "position": int(position),
        "occurred_at": occurred_at,
        "arena": arena,
        "category": category,
        "participants": players,
        "rounds": rounds,
        "replay_uri": replay_uri,
        "voided_by": voided_by,
    }


async def games(
    reads: ReadStore,
    *,
    arena: str | None,
    category: str | None,
    competitor: str | None,
    voided: bool | None,
    limit: int,
    offset: int,
) -> GamePage:
    where, params = filtered(
        {"limit": limit, "offset": offset},
        (
            ("arena", arena, "arena = %(arena)s"),
            ("category", category, "category = %(category)s"),
            ("competitor", competitor, "competitors @> ARRAY[%(competitor)s]::text[]"),
        ),
        voided_filter(voided),
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        total, page = await read_page(snap, "games", _GAME_COLUMNS, where, params, "position DESC")
    return GamePage(
        games=[GameSummary(**_game(r)) for r in page],
        total=total,
        limit=limit,
        offset=offset,
        results_position=results_position,
    )


async def game(reads: ReadStore, game_id: str) -> GameDetail | None:
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        found = await snap.rows(
            sql.SQL("SELECT {}, meta, source FROM {} WHERE game_id = %s").format(
                _GAME_COLUMNS, _s("games")
            ),
            (game_id,),
        )
    if not found:
        return None
    row = found[0]
    return GameDetail(
        **_game(row[:-2]),
        meta=row[-2] if isinstance(row[-2], dict) else {},
        source=row[-1],
        results_position=results_position,
    )
