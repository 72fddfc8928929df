"""The leaderboard's SQL and the assembly of its body: Elo standings from the ratings read model,
Bradley-Terry fitted from the pool's pair counts (cached in process memory), either now or as the
board stood at a log position or time, with each row's metric and score-vote averages.

The domain does the math (:mod:`arbiter.domain.bradley_terry`); this module only feeds it rows.
Voids: a voided result is out of every rating, pair count and average.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from arbiter.domain import bradley_terry as bt
from arbiter.projections import tracking
from psycopg import sql

from ..errors import bad_parameter
from ..models.ratings import Bootstrap, BTAnchorBody, Leaderboard
from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from . import bt_fits
from .board_rows import NAMED_METRICS, board_row
from .bt_board import (
    BT_ROUNDS,
    BT_SEED,
    BTOptions,
    controlled_rows,
    default_anchor_of,
    default_anchor_query,
)
from .game_scores import (
    BoardTotals,
    board_totals,
    board_totals_of,
    board_totals_queries,
    with_totals,
)
from .ratings import voided_at
from .snapshot import (
    POSITIONS,
    RATINGS,
    Query,
    Rows,
    Snapshot,
    positions_of,
    settings_of,
    settings_query,
    snapshot,
)
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s
from .unplayed import DEFAULT_INITIAL, with_unplayed

__all__ = [
    "BT_ROUNDS",
    "BT_SEED",
    "NAMED_METRICS",
    "leaderboard",
    "tracking_position",
]

log = logging.getLogger("arbiter.api.boards")

# -- the leaderboard ----------------------------------------------------------------------------


def _board_at() -> sql.Composable:
    """The pool's standings at log position ``%(p)s``: each competitor's latest history row at
    or before it (one primary-key lookup per registry entry; everyone with history is in the
    registry). A competitor whose latest row is a void that left it unrated is not on the
    board: skipping only that row would show a standing it no longer had."""
    return sql.SQL(
        "SELECT c.competitor, h.rating_after AS rating, h.games, h.wins, h.losses, h.ties "
        "FROM {competitors} c CROSS JOIN LATERAL ("
        "SELECT rating_after, games, wins, losses, ties FROM {history} h "
        "WHERE h.competitor = c.competitor AND h.arena = %(arena)s "
        "AND h.category = %(category)s AND h.position <= %(p)s "
        "ORDER BY h.position DESC LIMIT 1) h WHERE h.rating_after IS NOT NULL"
    ).format(competitors=_r("competitors"), history=_r("rating_history"))


def _pairs_at() -> sql.Composable:
    """Pairwise counts of the pool as they stood at ``%(p)s``, rebuilt from the history rows of
    the results that were live then (a game's pairs are recovered from its players' summed
    scores: a better rank always has a strictly higher sum, equal ranks equal sums)."""
    return sql.SQL(
        "WITH h AS (SELECT h.* FROM {history} h WHERE h.arena = %(arena)s "
        "AND h.category = %(category)s AND h.position <= %(p)s "
        "AND h.kind IN ('battle', 'vote', 'game') AND NOT {voided}), "
        "p AS ("
        "SELECT competitor AS x, opponent AS y, score AS s FROM h "
        "WHERE h.kind <> 'game' AND competitor < opponent "
        "UNION ALL "
        "SELECT g1.competitor, g2.competitor, CASE WHEN g1.score > g2.score THEN 1.0 "
        "WHEN g1.score = g2.score THEN 0.5 ELSE 0.0 END "
        "FROM h g1 JOIN h g2 ON g1.event_id = g2.event_id AND g1.competitor < g2.competitor "
        "WHERE g1.kind = 'game' AND g2.kind = 'game') "
        "SELECT x, y, count(*) FILTER (WHERE s = 1.0), count(*) FILTER (WHERE s = 0.0), "
        "count(*) FILTER (WHERE s = 0.5) FROM p GROUP BY x, y ORDER BY x, y"
    ).format(history=_r("rating_history"), voided=voided_at())


Extras = tuple[dict[str, dict[str, float]], dict[str, tuple[int, int]], dict[str, tuple[Any, Any]]]
"""Metric averages, score votes ``(sum, count)`` and ``(name, provider)``, by competitor."""


async def _extras(
    snap: Snapshot, arena: str, category: str, competitors: list[str], viewer: Viewer
) -> Extras:
    """Metric averages, score votes ``(sum, count)`` and ``(name, provider)`` per competitor,
    over the battles and the trials of experiments the viewer may read."""
    if not competitors:
        return {}, {}, {}
    return _extras_of(*await snap.many(*_extras_queries(arena, category, competitors, viewer)))


def _extras_queries(
    arena: str, category: str, competitors: list[str], viewer: Viewer
) -> list[Query]:
    """The queries of :func:`_extras`. The averages come in key order, (competitor, metric),
    so they are grouped as the key's index scan finds them; ordered by metric alone they were
    sorted first, a third of the query (each row's metrics map is in metric order either
    way)."""
    pool = {"arena": arena, "category": category, "competitors": competitors}
    visible = visible_trials(viewer, pool)
    return [
        (
            sql.SQL(
                "SELECT competitor, metric, (sum(total) / sum(count))::float8 FROM {} "
                "WHERE arena = %(arena)s AND category = %(category)s "
                "AND competitor = ANY(%(competitors)s) AND (NOT of_trials OR %(everyone)s "
                "OR owner = %(owner)s) GROUP BY competitor, metric HAVING sum(count) > 0 "
                "ORDER BY competitor, metric"
            ).format(_s("competitor_metrics")),
            {**pool, "everyone": viewer.everything, "owner": viewer.source},
        ),
        (
            sql.SQL(
                "SELECT competitor, sum(score_sum), sum(score_votes) FROM {} "
                "WHERE arena = %(arena)s AND (%(category)s = '' OR category = %(category)s) "
                "AND voided_by IS NULL AND competitor = ANY(%(competitors)s) {} "
                "GROUP BY competitor"
            ).format(_s("trials"), sql.SQL("") if visible is None else sql.SQL("AND ") + visible),
            pool,
        ),
        (
            sql.SQL("SELECT competitor, name, provider FROM {} WHERE competitor = ANY(%s)").format(
                _r("competitors")
            ),
            (competitors,),
        ),
    ]


def _extras_of(metrics: Rows, scores: Rows, names: Rows) -> Extras:
    by_metric: dict[str, dict[str, float]] = {}
    for competitor, metric, value in metrics:
        by_metric.setdefault(competitor, {})[metric] = float(value)
    return (
        by_metric,
        {c: (int(s or 0), int(n or 0)) for c, s, n in scores},
        {c: (name, provider) for c, name, provider in names},
    )


async def _page_extras(
    snap: Snapshot,
    arena: str,
    category: str,
    competitors: list[str],
    viewer: Viewer,
    *first: Query,
) -> tuple[list[Rows], Extras, BoardTotals]:
    """The rows of the queries ``first``, then the extras and game totals of ``competitors``:
    all in one round trip, the snapshot's last (its end goes in the same pipeline): a page's
    answer is recomputed at every commit while events stream in, and each round trip waits for
    the database's turn on the CPU."""
    rows = await snap.many(
        *first,
        *_extras_queries(arena, category, competitors, viewer),
        *board_totals_queries(arena, category, competitors),
        last=True,
    )
    n = len(first)
    return rows[:n], _extras_of(*rows[n : n + 3]), board_totals_of(*rows[n + 3 :])


async def leaderboard(
    reads: ReadStore,
    arena: str,
    category: str,
    limit: int,
    offset: int,
    system: str = "elo",
    as_of: int | datetime | None = None,
    *,
    viewer: Viewer,
    options: BTOptions | None = None,
    reused: Callable[[float], None] | None = None,
) -> Leaderboard:
    """The pool's standings by Elo (the ratings read model) or Bradley-Terry (fitted from the
    pool's pair counts), now or as they stood at a log position or time. The averages count the
    trials of the experiments ``viewer`` may read only. ``options``: the bootstrap, anchor and
    controlled metrics of a Bradley-Terry board (:mod:`.bt_board`). ``reused``: called with the
    seconds the fit may still be reused when the board is built on a live fit of an earlier
    position (right for now, and for that long at most: the route caches it no longer)."""
    opts = options or BTOptions()
    if system == "elo" and as_of is None:
        return await _live_elo(reads, arena, category, limit, offset, viewer)
    async with snapshot(reads) as snap:
        # What the board is built on, in one round trip (a live BT board on a reused fit reads
        # its page's rows in one more, and that is all).
        positions, settings_rows, anchor_rows = await snap.many(
            POSITIONS, settings_query(arena), default_anchor_query(arena)
        )
        position, results_position = positions_of(positions)
        settings = settings_of(settings_rows)
        pool = {"arena": arena, "category": category}
        at: int | None = None
        if isinstance(as_of, datetime):
            at = int(
                await snap.value(
                    sql.SQL(
                        "SELECT max(position) FROM {} WHERE arena = %(arena)s "
                        "AND category = %(category)s AND occurred_at <= %(t)s"
                    ).format(_r("rating_history")),
                    {**pool, "t": as_of},
                )
            )
        elif as_of is not None:
            at = as_of
        if at is not None:
            at = min(at, position)
        params = {**pool, "p": position if at is None else at, "limit": limit, "offset": offset}

        if system == "elo":  # as of a position (the live board is _live_elo's)
            params["default_initial"] = DEFAULT_INITIAL
            total, page = await snap.many(*_elo_page(_board_at(), params))
            metrics, scores, names = await _extras(
                snap, arena, category, [r[0] for r in page], viewer
            )
            rows = [
                board_row(offset + i, r[0], r[1], r[2:6], names, metrics, scores)
                for i, r in enumerate(page, start=1)
            ]
            totals = await board_totals(snap, arena, category, [r[0] for r in page])
            rows = with_totals(rows, totals)
            return Leaderboard(
                arena, category, int(total[0][0]), limit, offset, position, rows,
                system="elo", as_of=at, results_position=results_position,
            )  # fmt: skip

        # Bradley-Terry. A live board whose pool was fitted less than BT_REFRESH_S ago reuses
        # that fit: only what its page shows is read (the counters, averages and totals of
        # ``limit`` rows), not the pool's pairs, so its cost is that of an Elo page. An older
        # fit is refitted in the background, and serves until the refit lands (bt_fits.refit).
        default = default_anchor_of(anchor_rows) if opts.anchor is None else None
        live = (reads.database_url, arena, category, settings, opts, default)
        recent = bt_fits.latest(live) if at is None else None
        age = 0.0 if recent is None else time.monotonic() - recent.at
        if recent is not None and age >= bt_fits.BT_REFRESH_S:
            bt_fits.refit(reads, live, recent)
        if recent is not None:
            result, fitted_at, left_out = recent.fit, recent.position, recent.left_out
            board = result.board if isinstance(result, bt.ControlledResult) else result
            lines = list(board.rows())
            page = [line[1] for line in lines[offset : offset + limit]]
            counters, metrics, scores, names, game_totals = await _page_reads(
                snap, arena, category, page, viewer
            )
            if reused is not None and fitted_at != (results_position if opts.control else position):
                reused(max(bt_fits.BT_REFRESH_S - age, bt_fits.REFIT_POLL_S))
            return _bt_page(
                arena, category, limit, offset, position, results_position, None, result, lines,
                fitted_at, left_out, counters, metrics, scores, names, game_totals,
            )  # fmt: skip
        # A fit to make (or found in the fit cache): everything the page could need is read
        # now, in this snapshot; the fit runs after the transaction is closed.
        if opts.control and at is not None:
            raise bad_parameter("control", "control cannot be combined with as_of")
        if at is None:
            pairs_q: sql.Composable = bt_fits.live_pairs()
            counters_q: sql.Composable = sql.SQL(
                "SELECT competitor, games, wins, losses, ties FROM {} "
                "WHERE arena = %(arena)s AND category = %(category)s"
            ).format(_r("ratings"))
        else:
            pairs_q = _pairs_at()
            counters_q = sql.SQL("SELECT competitor, games, wins, losses, ties FROM ({}) b").format(
                _board_at()
            )
        left_out: int | None = None
        fit_position = params["p"]
        if opts.control:  # the battles' rows, not the pairs, at the results' position
            (counter_rows,) = await snap.many((counters_q, params))
            pairs, left_out = await controlled_rows(snap, arena, category, opts.control)
            fit_position = results_position
        else:
            pairs, counter_rows = await snap.many((pairs_q, params), (counters_q, params))
        counters = {r[0]: r[1:5] for r in counter_rows}
        members = sorted({*counters, *(r[0] for r in pairs), *(r[1] for r in pairs)})
        metrics, scores, names = await _extras(snap, arena, category, members, viewer)
        game_totals = await board_totals(snap, arena, category, members)

    try:
        result = await bt_fits.fit_rows(live, fit_position, pairs)
    except ValueError as exc:  # a controlled metric that does not vary, or no battle has
        if not opts.control:
            raise
        raise bad_parameter("control", str(exc)) from None
    if at is None:
        bt_fits.remember(live, bt_fits.Latest(fit_position, time.monotonic(), result, left_out))
    board = result.board if isinstance(result, bt.ControlledResult) else result
    return _bt_page(
        arena, category, limit, offset, position, results_position, at, result,
        list(board.rows()), fit_position, left_out, counters, metrics, scores, names, game_totals,
    )  # fmt: skip


def _elo_page(source: sql.Composable, params: dict[str, Any]) -> tuple[Query, Query]:
    """How many competitors an Elo board has, and its page: of ``source`` (the standings) with
    the registered competitors that have not played yet (at the initial rating)."""
    board = with_unplayed(source)
    return (
        (sql.SQL("SELECT count(*) FROM ({}) b").format(board), params),
        (
            sql.SQL(
                "SELECT * FROM ({}) b ORDER BY rating DESC, competitor "
                "LIMIT %(limit)s OFFSET %(offset)s"
            ).format(board),
            params,
        ),
    )


async def _live_elo(
    reads: ReadStore, arena: str, category: str, limit: int, offset: int, viewer: Viewer
) -> Leaderboard:
    """The Elo board now: the answer the response cache recomputes at every commit while
    events stream in, so read in two round trips (positions, count and page; then what the
    page's rows show), each pipelined."""
    pool = {"arena": arena, "category": category, "limit": limit, "offset": offset}
    source = sql.SQL(
        "SELECT competitor, rating, games, wins, losses, ties FROM {} "
        "WHERE arena = %(arena)s AND category = %(category)s"
    ).format(_r("ratings"))
    # Unplayed competitors as of the snapshot's position: every row of the ratings model is at
    # or before it (written in the transaction that moved it), so no bound is the same bound,
    # and the position need not be read first.
    params = {**pool, "default_initial": DEFAULT_INITIAL, "p": 2**63 - 1}
    async with snapshot(reads) as snap:
        positions, total, page = await snap.many(POSITIONS, *_elo_page(source, params))
        names = [r[0] for r in page]
        if names:
            _, (metrics, scores, named), totals = await _page_extras(
                snap, arena, category, names, viewer
            )
        else:
            (metrics, scores, named), totals = ({}, {}, {}), None
    position, results_position = positions_of(positions)
    rows = [
        board_row(offset + i, r[0], r[1], r[2:6], named, metrics, scores)
        for i, r in enumerate(page, start=1)
    ]
    return Leaderboard(
        arena, category, int(total[0][0]), limit, offset, position, with_totals(rows, totals),
        system="elo", as_of=None, results_position=results_position,
    )  # fmt: skip


async def _page_reads(
    snap: Snapshot, arena: str, category: str, page: list[str], viewer: Viewer
) -> tuple[
    dict[str, Sequence[int]],
    dict[str, dict[str, float]],
    dict[str, tuple[int, int]],
    dict[str, tuple[Any, Any]],
    BoardTotals,
]:
    """What the rows of a page built on a reused fit show besides the fit: counters, averages,
    score votes, names and game totals of ``page``'s competitors, now, in one round trip.

    The counters are read for the whole pool (the key's prefix, as the Elo board reads them),
    not ``competitor = ANY(page)``: on a ratings table whose statistics are stale (it is
    rewritten at every commit) the planner took that from the (arena, category, rating)
    index, skipping through every rating of the pool for each competitor (1.5 to 2.5 ms of the
    route's 7 at 40,000 battles, against 0.03 ms for the whole pool of 100)."""
    counters_q: Query = (
        sql.SQL(
            "SELECT competitor, games, wins, losses, ties FROM {} "
            "WHERE arena = %s AND category = %s"
        ).format(_r("ratings")),
        (arena, category),
    )
    (counter_rows,), (metrics, scores, names), game_totals = await _page_extras(
        snap, arena, category, page, viewer, counters_q
    )
    return {r[0]: r[1:5] for r in counter_rows}, metrics, scores, names, game_totals


def _bt_page(
    arena: str,
    category: str,
    limit: int,
    offset: int,
    position: int,
    results_position: int,
    as_of: int | None,
    result: bt_fits.Fit,
    lines: list[tuple[Any, ...]],
    fitted_at: int,
    left_out: int | None,
    counters: dict[str, Sequence[int]],
    metrics: dict[str, dict[str, float]],
    scores: dict[str, tuple[int, int]],
    names: dict[str, tuple[Any, Any]],
    game_totals: BoardTotals,
) -> Leaderboard:
    """The body of a Bradley-Terry page: the fit's rows ``offset`` to ``offset + limit``."""
    board = result.board if isinstance(result, bt.ControlledResult) else result
    control = list(result.covariates) if isinstance(result, bt.ControlledResult) else None
    rows = [
        board_row(rank, competitor, rating, counters.get(competitor, (0, 0, 0, 0)), names, metrics,
             scores, lower=lower, upper=upper)
        for rank, competitor, rating, lower, upper in lines[offset : offset + limit]
    ]  # fmt: skip
    rows = with_totals(rows, game_totals)
    return Leaderboard(
        arena, category, len(lines), limit, offset, position, rows,
        system="bt", as_of=as_of, results_position=results_position,
        bootstrap=Bootstrap(
            board.rounds, board.seed, board.level, board.battles, fitted_at,
            anchor=None if board.anchor is None else BTAnchorBody(*board.anchor),
            control=control, left_out=left_out,
        ),
    )  # fmt: skip


async def tracking_position(reads: ReadStore) -> int:
    """The ratings projection's position (one cheap query; the stream polls it)."""
    async with reads.pool.connection() as conn:
        cur = await conn.execute(tracking.position_query(RATINGS.schema, RATINGS.name))
        row = await cur.fetchone()
    return int(row[0]) if row else 0
