"""The SQL behind the routes over pairs and series of the ratings read model (head-to-head,
matchmaking, a competitor's history per UTC day) and the assembly of their bodies.

The domain does the math: Elo expectations (:mod:`arbiter.domain.elo`) and placement
(:mod:`arbiter.domain.placement`); this module only feeds them rows. A voided result is out of
every pair count and placement walk. The walk is fed the competitor's rated results of every
kind in log order: battles and votes from the rating history, games from the history row joined
to the game's players and ranks in ``matches`` (the ratings model's own record of the result),
so it needs no state of its own and a rebuild or audit changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from arbiter.domain.elo import expected_score
from arbiter.domain.placement import (
    PLACEMENT_GAMES,
    game_result,
    most_informative_pair,
    next_opponent,
    registry_status,
)
from psycopg import sql

from ..errors import not_found
from ..models.ratings import HeadToHeadPage, HeadToHeadRow, History, HistoryDay, Matchmaking
from ..store import ReadStore
from .snapshot import (
    POSITIONS,
    Query,
    Rows,
    as_float,
    positions_of,
    settings_of,
    settings_query,
    snapshot,
)
from .snapshot import ratings_table as _r

__all__ = ["head_to_head", "history_days", "matchmaking", "voided_at"]

# Voided at P: the result itself, or (a vote) the battle it was cast on, voided at or before P.
_VOIDED_AT = """(
    EXISTS (SELECT 1 FROM {voids} v WHERE v.target_event_id = h.event_id AND v.position <= %(p)s)
    OR (h.kind = 'vote' AND EXISTS (
        SELECT 1 FROM {matches} m
        JOIN {matches} b ON b.kind = 'battle' AND b.battle_id = m.battle_id
        JOIN {voids} v ON v.target_event_id = b.event_id
        WHERE m.event_id = h.event_id AND m.kind = 'vote' AND v.position <= %(p)s))
)"""


def voided_at() -> sql.Composable:
    """True for a history row ``h`` whose result was voided at or before ``%(p)s``."""
    return sql.SQL(_VOIDED_AT).format(voids=_r("voids"), matches=_r("matches"))


# -- head-to-head -------------------------------------------------------------------------------


async def head_to_head(
    reads: ReadStore, arena: str, category: str, competitor: str | None, limit: int, offset: int
) -> HeadToHeadPage:
    """Pairs of the pool with their record, observed and Elo-expected win rates; the most
    played first. With ``competitor``: its pairs only, from its side."""
    params: dict[str, Any] = {
        "arena": arena,
        "category": category,
        "c": competitor,
        "limit": limit,
        "offset": offset,
    }
    if competitor is None:
        oriented = sql.SQL(
            "SELECT x AS competitor, y AS opponent, x_wins AS wins, y_wins AS losses, ties "
            "FROM {} WHERE arena = %(arena)s AND category = %(category)s "
            "AND x_wins + y_wins + ties > 0"
        ).format(_r("pairs"))
    else:
        # One branch per side, each found by an index (the key for x, pairs_second for y):
        # an OR of the two sides filtered every pair of the pool at each recomputation.
        oriented = sql.SQL(
            "SELECT x AS competitor, y AS opponent, x_wins AS wins, y_wins AS losses, ties "
            "FROM {p} WHERE arena = %(arena)s AND category = %(category)s AND x = %(c)s "
            "AND x_wins + y_wins + ties > 0 "
            "UNION ALL "
            "SELECT y, x, y_wins, x_wins, ties "
            "FROM {p} WHERE arena = %(arena)s AND category = %(category)s AND y = %(c)s "
            "AND x_wins + y_wins + ties > 0"
        ).format(p=_r("pairs"))
    known: Query = (
        sql.SQL("SELECT count(*) FROM {} WHERE competitor = %s").format(_r("competitors")),
        (competitor,),
    )
    async with snapshot(reads) as snap:  # one round trip: the answer is recomputed per commit
        found, positions, settings, total, page = await snap.many(
            known,
            POSITIONS,
            settings_query(arena),
            (sql.SQL("SELECT count(*) FROM ({}) p").format(oriented), params),
            (
                sql.SQL(
                    "SELECT p.competitor, p.opponent, p.wins, p.losses, p.ties, rc.rating, "
                    "ro.rating FROM ({}) p "
                    "LEFT JOIN {r} rc ON rc.arena = %(arena)s AND rc.category = %(category)s "
                    "AND rc.competitor = p.competitor "
                    "LEFT JOIN {r} ro ON ro.arena = %(arena)s AND ro.category = %(category)s "
                    "AND ro.competitor = p.opponent "
                    "ORDER BY p.wins + p.losses + p.ties DESC, p.competitor, p.opponent "
                    "LIMIT %(limit)s OFFSET %(offset)s"
                ).format(oriented, r=_r("ratings")),
                params,
            ),
            last=True,
        )
    if competitor is not None and not found[0][0]:
        raise not_found(f"Unknown competitor {competitor!r}.")
    position, _ = positions_of(positions)
    scale, base, _initial = settings_of(settings)
    rows = []
    for comp, opp, wins, losses, ties, rc, ro in page:
        games = wins + losses + ties
        expected = None if rc is None or ro is None else expected_score(rc, ro, scale, base)
        rows.append(
            HeadToHeadRow(
                competitor=comp,
                opponent=opp,
                games=games,
                wins=wins,
                losses=losses,
                ties=ties,
                win_rate=(wins + ties / 2) / games,
                expected_win_rate=expected,
                competitor_rating=as_float(rc),
                opponent_rating=as_float(ro),
            )
        )
    return HeadToHeadPage(
        arena=arena, category=category, competitor=competitor, total=int(total[0][0]),
        limit=limit, offset=offset, position=position, rows=rows,
    )  # fmt: skip


# -- history as a series ------------------------------------------------------------------------


async def history_days(
    reads: ReadStore, competitor: str, arena: str, category: str, limit: int, offset: int
) -> History | None:
    """One point per UTC day (by ``occurred_at``) of the competitor's rating in one pool."""
    params = {
        "c": competitor,
        "arena": arena,
        "category": category,
        "limit": limit,
        "offset": offset,
    }
    days = sql.SQL(
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, * FROM {} "
        "WHERE competitor = %(c)s AND arena = %(arena)s AND category = %(category)s"
    ).format(_r("rating_history"))
    async with snapshot(reads) as snap:
        known, total, page = await snap.many(
            (
                sql.SQL("SELECT 1 FROM {} WHERE competitor = %(c)s").format(_r("competitors")),
                params,
            ),
            (sql.SQL("SELECT count(DISTINCT day) FROM ({}) d").format(days), params),
            (
                sql.SQL(
                    "SELECT day, (array_agg(rating_after ORDER BY position DESC))[1], "
                    "min(rating_after), max(rating_after), count(*) FILTER (WHERE kind <> 'void'), "
                    "(array_agg(games ORDER BY position DESC))[1], "
                    "(array_agg(wins ORDER BY position DESC))[1], "
                    "(array_agg(losses ORDER BY position DESC))[1], "
                    "(array_agg(ties ORDER BY position DESC))[1], "
                    "max(position), (array_agg(occurred_at ORDER BY position DESC))[1] "
                    "FROM ({}) d GROUP BY day ORDER BY day LIMIT %(limit)s OFFSET %(offset)s"
                ).format(days),
                params,
            ),
        )
        position, _ = await snap.positions()
    if not known:
        return None
    points = [
        HistoryDay(
            day=day,
            rating=as_float(rating),
            low=as_float(low),
            high=as_float(high),
            games=int(games),
            total_games=int(total_games),
            wins=int(wins),
            losses=int(losses),
            ties=int(ties),
            position=int(last),
            occurred_at=at,
        )
        for day, rating, low, high, games, total_games, wins, losses, ties, last, at in page
    ]
    return History(
        competitor, arena, category, int(total[0][0]), limit, offset, position, [],
        bucket="day", days=points,
    )  # fmt: skip


# -- matchmaking --------------------------------------------------------------------------------


async def matchmaking(
    reads: ReadStore, arena: str, category: str, competitor: str | None
) -> Matchmaking:
    """The next game: for ``competitor``, its next placement opponent (seed 003's walk from the
    pool's median); without, the pair whose result would most cut the board's uncertainty."""
    pool = {"arena": arena, "category": category}
    async with snapshot(reads) as snap:
        position, _ = await snap.positions()
        scale, base, _initial = await snap.settings(arena)
        info: Rows = []
        if competitor is not None:
            info = await snap.rows(
                sql.SQL(
                    "SELECT c.retired, coalesce(r.games, 0), p.competitor IS NOT NULL "
                    "FROM {c} c LEFT JOIN {r} r "
                    "ON r.arena = %(arena)s AND r.category = '' AND r.competitor = c.competitor "
                    "LEFT JOIN {p} p ON p.arena = %(arena)s AND p.competitor = c.competitor "
                    "WHERE c.competitor = %(competitor)s"
                ).format(c=_r("competitors"), r=_r("ratings"), p=_r("arena_competitors")),
                {**pool, "competitor": competitor},
            )
            if not info:
                raise not_found(f"Unknown competitor {competitor!r}.")
            if not info[0][2]:  # status and placement are per arena (issue 13 point 7)
                raise not_found(
                    f"Competitor {competitor!r} is neither registered in nor seen in arena "
                    f"{arena!r}: publish competitor.registered with arena {arena!r} to place it."
                )
        ratings_rows, retired_rows = await snap.many(
            (
                sql.SQL(
                    "SELECT competitor, rating, games FROM {} "
                    "WHERE arena = %(arena)s AND category = %(category)s"
                ).format(_r("ratings")),
                pool,
            ),
            (sql.SQL("SELECT competitor FROM {} WHERE retired").format(_r("competitors")), ()),
        )
        retired = {r[0] for r in retired_rows}
        ratings = {r[0]: float(r[1]) for r in ratings_rows}
        candidates = sum(1 for c in ratings if c not in retired and c != competitor)
        if competitor is None:
            pair_rows = await snap.rows(
                sql.SQL(
                    "SELECT x, y, x_wins + y_wins + ties FROM {} WHERE arena = %(arena)s "
                    "AND category = %(category)s AND x_wins + y_wins + ties > 0"
                ).format(_r("pairs")),
                pool,
            )
            proposal = most_informative_pair(
                ratings,
                pair_counts={(x, y): int(n) for x, y, n in pair_rows},
                exclude=retired,
                scale=scale,
                base=base,
            )
            reason = (
                proposal.reason
                if proposal is not None
                else f"Fewer than two active rated competitors in {arena!r} ({candidates})."
            )
            return Matchmaking(
                arena=arena, category=category, mode="pair", competitor=None, status=None,
                placement_results=None, candidates=candidates, proposal=proposal, reason=reason,
                position=position,
            )  # fmt: skip
        placement = await snap.rows(
            sql.SQL(
                "SELECT h.opponent, h.score, m.players, m.ranks FROM {history} h "
                "LEFT JOIN {matches} m ON h.kind = 'game' AND m.position = h.position "
                "WHERE h.competitor = %(competitor)s "
                "AND h.arena = %(arena)s AND h.category = %(category)s "
                "AND h.kind IN ('battle', 'vote', 'game') AND NOT {voided} "
                "ORDER BY h.position LIMIT %(n)s"
            ).format(history=_r("rating_history"), matches=_r("matches"), voided=voided_at()),
            {**pool, "competitor": competitor, "p": position, "n": PLACEMENT_GAMES},
        )
    is_retired, rated = bool(info[0][0]), int(info[0][1])
    status = registry_status(rated, is_retired)
    results = [
        (opponent, float(score))
        if players is None
        else game_result(competitor, json.loads(players), json.loads(ranks))
        for opponent, score, players, ranks in placement
    ]
    if is_retired:
        proposal, reason = None, f"{competitor} is retired: it takes no new results."
    else:
        proposal = next_opponent(
            competitor, ratings, results, exclude=retired, scale=scale, base=base
        )
        reason = (
            proposal.reason
            if proposal is not None
            else f"No active rated opponent for {competitor} in {arena!r}."
        )
    return Matchmaking(
        arena=arena, category=category, mode="placement", competitor=competitor, status=status,
        placement_results=len(results), candidates=candidates, proposal=proposal, reason=reason,
        position=position,
    )  # fmt: skip
