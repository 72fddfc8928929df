"""The SQL behind the board routes (leaderboard, head-to-head, history, summary, matchmaking),
the assembly of their bodies, and the snapshot helpers the results routes share
(:mod:`.api_results_queries`).

Every request reads in one snapshot: :func:`snapshot` opens a ``REPEATABLE READ, READ ONLY``
transaction on the API's pool and every query of the request runs in it (sequentially where a
query depends on an earlier answer, pipelined where not), so a page, its total and the positions
it reports always agree. Nothing here runs a query per row.

The domain does the math: Elo expectations (:mod:`arbiter.domain.elo`), Bradley-Terry
(:mod:`arbiter.domain.bradley_terry`), experiment results, grouped stats and placement; this
module only feeds them rows.

Two read models are involved, each at its own log position: ``arbiter_ratings`` (ratings,
history, pairs, registry; ``position`` in the bodies) and ``arbiter_results`` (battles, games,
votes, trials, metric sums; ``results_position``). They are folded by separate projectors, so
one may briefly be ahead of the other; both positions are reported so a client can tell.

Voids: a voided result is out of every aggregate (ratings, pair counts, metric averages, score
votes, experiment results, stats, summary counts) and stays visible in the lists, marked with
``voided_by`` (the void's event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from arbiter.domain import bradley_terry as bt
from arbiter.domain.elo import DEFAULT_SETTINGS, expected_score
from arbiter.domain.placement import (
    PLACEMENT_GAMES,
    most_informative_pair,
    next_opponent,
    registry_status,
)
from arbiter.projections import PROJECTIONS
from psycopg import AsyncConnection, sql

from .api import ApiError
from .api_models import Bootstrap, History, Leaderboard, LeaderboardRow
from .api_privacy import Viewer, visible_trials
from .api_results_models import (
    HeadToHeadPage,
    HeadToHeadRow,
    HistoryDay,
    Matchmaking,
    Summary,
    Voided,
)
from .api_store import ReadStore

Rows = list[tuple[Any, ...]]
Query = tuple[sql.Composable, Sequence[Any] | Mapping[str, Any]]

RATINGS = PROJECTIONS["ratings"]
RESULTS = PROJECTIONS["results"]

BT_ROUNDS = 100
BT_SEED = 0
BT_CACHE_SIZE = 64
BT_REFRESH_S = 2.0
"""While the log moves, a pool's live Bradley-Terry board is refitted at most this often: a fit
with 100 bootstrap rounds costs up to a second of CPU, and refitting for every new position made
``system=bt`` fall to about one request a second under a stream of 1,000 events/s (measured with
benchmarks/api_load.py). The body's ``bootstrap.position`` says which position the fit reflects."""
"""Bradley-Terry fits kept in process memory, least recently used evicted."""

NAMED_METRICS: dict[str, tuple[str, ...]] = {
    "wer": ("wer",),
    "semascore": ("semascore",),
    "prosody": ("prosody_score", "prosody"),
    "quality": ("quality_score", "quality"),
    "latency_ms": ("latency_ms",),
    "cost_usd": ("cost_usd",),
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
}
"""Leaderboard field -> the metric keys it is read from, first present wins (the evals publish
``prosody_score`` and ``quality_score``)."""


def _r(table: str) -> sql.Identifier:
    return sql.Identifier(RATINGS.schema, table)


def _s(table: str) -> sql.Identifier:
    return sql.Identifier(RESULTS.schema, table)


def bad_parameter(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message, field=field)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


# -- one snapshot per request -------------------------------------------------------------------


class Snapshot:
    """Queries in one read-only ``REPEATABLE READ`` transaction."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def rows(self, query: sql.Composable, params: Any = ()) -> Rows:
        cur = await self.conn.execute(query, params)
        return await cur.fetchall()

    async def many(self, *queries: Query) -> list[Rows]:
        """Independent queries, pipelined (one round trip)."""
        async with self.conn.pipeline():
            cursors = [await self.conn.execute(q, p) for q, p in queries]
        return [await c.fetchall() for c in cursors]

    async def value(self, query: sql.Composable, params: Any = (), default: Any = 0) -> Any:
        rows = await self.rows(query, params)
        return rows[0][0] if rows and rows[0][0] is not None else default

    async def positions(self) -> tuple[int, int]:
        """``(ratings position, results position)``."""
        (row,) = await self.rows(
            sql.SQL(
                "SELECT (SELECT position FROM {} WHERE projection = %s), "
                "(SELECT position FROM {} WHERE projection = %s)"
            ).format(_r("tracking"), _s("tracking")),
            (RATINGS.name, RESULTS.name),
        )
        return int(row[0] or 0), int(row[1] or 0)

    async def settings(self, arena: str) -> tuple[float, float, float]:
        """The arena's ``(scale, base, initial)`` now (defaults 400, 10, 1500)."""
        rows = await self.rows(
            sql.SQL("SELECT scale, base, initial FROM {} WHERE arena = %s").format(_r("arenas")),
            (arena,),
        )
        if not rows:
            d = DEFAULT_SETTINGS
            return d.scale, d.base, d.initial
        return float(rows[0][0]), float(rows[0][1]), float(rows[0][2])


@contextlib.asynccontextmanager
async def snapshot(reads: ReadStore) -> AsyncIterator[Snapshot]:
    async with reads.pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield Snapshot(conn)


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- parameters ---------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+")
MAX_POSITION = 2**63 - 1


def parse_as_of(text: str) -> int | datetime:
    """A log position (a non-negative integer) or an RFC 3339 time with its offset."""
    value = text.strip()
    if _DIGITS.fullmatch(value):
        position = int(value)
        if position > MAX_POSITION:
            raise bad_parameter("as_of", f"Query parameter `as_of` ({text[:64]!r}) is too large.")
        return position
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or "T" not in value.upper():
        raise bad_parameter(
            "as_of",
            f"Query parameter `as_of` ({text[:64]!r}) is invalid: give a log position (an "
            "integer >= 0) or an RFC 3339 time with its offset, e.g. 2025-01-01T12:00:00Z.",
        )
    return when


# -- the leaderboard ----------------------------------------------------------------------------

_BT_CACHE: OrderedDict[tuple[Any, ...], bt.BTResult] = OrderedDict()
_BT_PENDING: dict[tuple[Any, ...], asyncio.Task[bt.BTResult]] = {}
_BT_LATEST: dict[tuple[Any, ...], tuple[int, float, bt.BTResult]] = {}
"""(database, arena, category, settings) -> (position, monotonic time, fit) of the latest live
fit of a pool: what :data:`BT_REFRESH_S` reuses."""


def _fit(rows: Rows, settings: tuple[float, float, float]) -> bt.BTResult:
    scale, base, initial = settings
    counts = bt.PairCounts.from_rows((x, y, float(a), float(b), float(t)) for x, y, a, b, t in rows)
    return bt.leaderboard(
        counts, rounds=BT_ROUNDS, seed=BT_SEED, scale=scale, base=base, initial=initial
    )


async def _bt_fit(
    key: tuple[Any, ...], rows: Rows, settings: tuple[float, float, float]
) -> bt.BTResult:
    """The Bradley-Terry leaderboard for pair rows, cached by ``key`` (database, pool, log
    position, settings): the pairs at a position never change, so neither does the fit.

    The fit runs in a worker thread, as a task of its own: concurrent requests for the same key
    share it, and a request that goes away does not cancel it (its result is cached for the
    next). Tasks are per event loop; results are plain data, shared by all."""
    cached = _BT_CACHE.get(key)
    if cached is not None:
        _BT_CACHE.move_to_end(key)
        return cached
    pending_key = (id(asyncio.get_running_loop()), key)
    task = _BT_PENDING.get(pending_key)
    if task is None:

        async def run() -> bt.BTResult:
            try:
                result = await asyncio.to_thread(_fit, rows, settings)
            finally:
                _BT_PENDING.pop(pending_key, None)
            _BT_CACHE[key] = result
            while len(_BT_CACHE) > BT_CACHE_SIZE:
                _BT_CACHE.popitem(last=False)
            return result

        task = asyncio.create_task(run())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # always retrieved
        _BT_PENDING[pending_key] = task
    return await asyncio.shield(task)


def clear_bt_cache() -> None:
    _BT_CACHE.clear()
    _BT_LATEST.clear()


# Voided at P: the result itself, or (a vote) the battle it was cast on, voided at or before P.
_VOIDED_AT = """(
    EXISTS (SELECT 1 FROM {voids} v WHERE v.target_event_id = h.event_id AND v.position <= %(p)s)
    OR (h.kind = 'vote' AND EXISTS (
        SELECT 1 FROM {matches} m
        JOIN {matches} b ON b.kind = 'battle' AND b.battle_id = m.battle_id
        JOIN {voids} v ON v.target_event_id = b.event_id
        WHERE m.event_id = h.event_id AND m.kind = 'vote' AND v.position <= %(p)s))
)"""


def _voided_at() -> sql.Composable:
    return sql.SQL(_VOIDED_AT).format(voids=_r("voids"), matches=_r("matches"))


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
    ).format(history=_r("rating_history"), voided=_voided_at())


async def _extras(
    snap: Snapshot, arena: str, category: str, competitors: list[str], viewer: Viewer
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[int, int]], dict[str, tuple[Any, Any]]]:
    """Metric averages, score votes ``(sum, count)`` and ``(name, provider)`` per competitor,
    over the battles and the trials of experiments the viewer may read."""
    if not competitors:
        return {}, {}, {}
    pool = {"arena": arena, "category": category, "competitors": competitors}
    visible = visible_trials(viewer, pool)
    metrics, scores, names = await snap.many(
        (
            sql.SQL(
                "SELECT competitor, metric, (sum(total) / sum(count))::float8 FROM {} "
                "WHERE arena = %(arena)s AND category = %(category)s "
                "AND competitor = ANY(%(competitors)s) AND (NOT of_trials OR %(everyone)s "
                "OR owner = %(owner)s) GROUP BY competitor, metric HAVING sum(count) > 0 "
                "ORDER BY metric"
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
    )
    by_metric: dict[str, dict[str, float]] = {}
    for competitor, metric, value in metrics:
        by_metric.setdefault(competitor, {})[metric] = float(value)
    return (
        by_metric,
        {c: (int(s or 0), int(n or 0)) for c, s, n in scores},
        {c: (name, provider) for c, name, provider in names},
    )


def _row(
    rank: int,
    competitor: str,
    rating: float,
    counters: Sequence[int],
    names: dict[str, tuple[Any, Any]],
    metrics: dict[str, dict[str, float]],
    scores: dict[str, tuple[int, int]],
    lower: float | None = None,
    upper: float | None = None,
) -> LeaderboardRow:
    games, wins, losses, ties = (int(v) for v in counters)
    name, provider = names.get(competitor, (None, None))
    averages = metrics.get(competitor, {})
    named = {
        field: next((averages[k] for k in keys if k in averages), None)
        for field, keys in NAMED_METRICS.items()
    }
    score_sum, votes = scores.get(competitor, (0, 0))
    return LeaderboardRow(
        rank,
        competitor,
        name,
        provider,
        float(rating),
        games,
        wins,
        losses,
        ties,
        wins / games if games else 0.0,
        lower=lower,
        upper=upper,
        metrics=averages,
        avg_score=score_sum / votes if votes else None,
        score_votes=votes,
        **named,
    )


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
) -> Leaderboard:
    """The pool's standings by Elo (the ratings read model) or Bradley-Terry (fitted from the
    pool's pair counts), now or as they stood at a log position or time. The averages count the
    trials of the experiments ``viewer`` may read only."""
    async with snapshot(reads) as snap:
        position, results_position = await snap.positions()
        settings = await snap.settings(arena)
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

        if system == "elo":
            if at is None:
                source = sql.SQL(
                    "SELECT competitor, rating, games, wins, losses, ties FROM {} "
                    "WHERE arena = %(arena)s AND category = %(category)s"
                ).format(_r("ratings"))
            else:
                source = _board_at()
            total, page = await snap.many(
                (sql.SQL("SELECT count(*) FROM ({}) b").format(source), params),
                (
                    sql.SQL(
                        "SELECT * FROM ({}) b ORDER BY rating DESC, competitor "
                        "LIMIT %(limit)s OFFSET %(offset)s"
                    ).format(source),
                    params,
                ),
            )
            metrics, scores, names = await _extras(
                snap, arena, category, [r[0] for r in page], viewer
            )
            rows = [
                _row(offset + i, r[0], r[1], r[2:6], names, metrics, scores)
                for i, r in enumerate(page, start=1)
            ]
            return Leaderboard(
                arena, category, int(total[0][0]), limit, offset, position, rows,
                system="elo", as_of=at, results_position=results_position,
            )  # fmt: skip

        # Bradley-Terry: everything the page could need is read now, in this snapshot; the fit
        # runs after the transaction is closed (it may take a while on a cold cache).
        if at is None:
            pairs_q: sql.Composable = sql.SQL(
                "SELECT x, y, x_wins, y_wins, ties FROM {} WHERE arena = %(arena)s "
                "AND category = %(category)s AND x_wins + y_wins + ties > 0 ORDER BY x, y"
            ).format(_r("pairs"))
            counters_q: sql.Composable = sql.SQL(
                "SELECT competitor, games, wins, losses, ties FROM {} "
                "WHERE arena = %(arena)s AND category = %(category)s"
            ).format(_r("ratings"))
        else:
            pairs_q = _pairs_at()
            counters_q = sql.SQL("SELECT competitor, games, wins, losses, ties FROM ({}) b").format(
                _board_at()
            )
        pairs, counter_rows = await snap.many((pairs_q, params), (counters_q, params))
        counters = {r[0]: r[1:5] for r in counter_rows}
        members = sorted({*counters, *(r[0] for r in pairs), *(r[1] for r in pairs)})
        metrics, scores, names = await _extras(snap, arena, category, members, viewer)

    key = (reads.database_url, arena, category, params["p"], settings)
    live = (reads.database_url, arena, category, settings)
    recent = _BT_LATEST.get(live) if at is None else None
    if recent is not None and time.monotonic() - recent[1] < BT_REFRESH_S:
        fitted_at, result = recent[0], recent[2]
    else:
        result = await _bt_fit(key, pairs, settings)
        fitted_at = params["p"]
        if at is None:
            _BT_LATEST[live] = (fitted_at, time.monotonic(), result)
    lines = list(result.rows())
    rows = [
        _row(rank, competitor, rating, counters.get(competitor, (0, 0, 0, 0)), names, metrics,
             scores, lower=lower, upper=upper)
        for rank, competitor, rating, lower, upper in lines[offset : offset + limit]
    ]  # fmt: skip
    return Leaderboard(
        arena, category, len(lines), limit, offset, position, rows,
        system="bt", as_of=at, results_position=results_position,
        bootstrap=Bootstrap(result.rounds, result.seed, result.level, result.battles, fitted_at),
    )  # fmt: skip


async def tracking_position(reads: ReadStore) -> int:
    """The ratings projection's position (one cheap query; the stream polls it)."""
    async with reads.pool.connection() as conn:
        cur = await conn.execute(
            sql.SQL("SELECT position FROM {} WHERE projection = %s").format(_r("tracking")),
            (RATINGS.name,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


# -- head-to-head -------------------------------------------------------------------------------


async def _require_competitor(snap: Snapshot, competitor: str) -> None:
    known = await snap.rows(
        sql.SQL("SELECT 1 FROM {} WHERE competitor = %s").format(_r("competitors")),
        (competitor,),
    )
    if not known:
        raise not_found(f"Unknown competitor {competitor!r}.")


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
        oriented = sql.SQL(
            "SELECT %(c)s AS competitor, CASE WHEN x = %(c)s THEN y ELSE x END AS opponent, "
            "CASE WHEN x = %(c)s THEN x_wins ELSE y_wins END AS wins, "
            "CASE WHEN x = %(c)s THEN y_wins ELSE x_wins END AS losses, ties "
            "FROM {} WHERE arena = %(arena)s AND category = %(category)s "
            "AND (x = %(c)s OR y = %(c)s) AND x_wins + y_wins + ties > 0"
        ).format(_r("pairs"))
    async with snapshot(reads) as snap:
        if competitor is not None:
            await _require_competitor(snap, competitor)
        position, _ = await snap.positions()
        scale, base, _initial = await snap.settings(arena)
        total, page = await snap.many(
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
        )
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
                competitor_rating=_float(rc),
                opponent_rating=_float(ro),
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
            rating=_float(rating),
            low=_float(low),
            high=_float(high),
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


# -- battles and games --------------------------------------------------------------------------


async def summary(reads: ReadStore, arena: str | None) -> Summary:
    """Counts for a dashboard; with ``arena``, results and competitors of that arena only."""
    by_arena = sql.SQL("" if arena is None else "AND arena = %(arena)s")
    params = {"arena": arena}

    def counted(table: str, extra: str = "") -> sql.Composable:
        return sql.SQL(
            "SELECT count(*) FILTER (WHERE voided_by IS NULL {extra}), "
            "count(*) FILTER (WHERE voided_by IS NOT NULL) FROM {t} WHERE true {a}"
        ).format(extra=sql.SQL(extra), t=_s(table), a=by_arena)

    if arena is None:
        competitors_q: sql.Composable = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE retired) FROM {}"
        ).format(_r("competitors"))
        votes_q: sql.Composable = sql.SQL(
            "SELECT count(*) FILTER (WHERE voided_by IS NULL), "
            "count(*) FILTER (WHERE voided_by IS NOT NULL) FROM {}"
        ).format(_s("votes"))
    else:
        competitors_q = sql.SQL(
            "SELECT (SELECT count(*) FROM {r} WHERE arena = %(arena)s AND category = ''), "
            "(SELECT count(*) FROM {c} WHERE retired)"
        ).format(r=_r("ratings"), c=_r("competitors"))
        votes_q = sql.SQL(
            "SELECT count(*) FILTER (WHERE v.voided_by IS NULL), "
            "count(*) FILTER (WHERE v.voided_by IS NOT NULL) FROM {v} v "
            "WHERE EXISTS (SELECT 1 FROM {b} b WHERE b.battle_id = v.battle_id "
            "AND b.arena = %(arena)s) OR EXISTS (SELECT 1 FROM {t} t "
            "WHERE t.trial_id = v.trial_id AND t.arena = %(arena)s)"
        ).format(v=_s("votes"), b=_s("battles"), t=_s("trials"))
    async with snapshot(reads) as snap:
        position, results_position = await snap.positions()
        comp, battles_, games_, trials_, votes_, extra, events = await snap.many(
            (competitors_q, params),
            (counted("battles"), params),
            (counted("games"), params),
            (counted("trials"), params),
            (votes_q, params),
            (
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE status = 'completed'), "
                    "count(*) FILTER (WHERE status <> 'completed'), "
                    "count(DISTINCT experiment_id), "
                    "(SELECT count(DISTINCT scenario) FROM {b} WHERE voided_by IS NULL {a}) "
                    "FROM {t} WHERE voided_by IS NULL {a}"
                ).format(b=_s("battles"), t=_s("trials"), a=by_arena),
                params,
            ),
            (
                sql.SQL("SELECT type, count FROM {} WHERE count > 0 ORDER BY type").format(
                    _s("event_counts")
                ),
                (),
            ),
        )
    counts = {t: int(n) for t, n in events}
    completed, failed, experiments, scenarios = (int(v) for v in extra[0])
    return Summary(
        arena=arena,
        competitors=int(comp[0][0]),
        retired=int(comp[0][1]),
        battles=int(battles_[0][0]),
        games=int(games_[0][0]),
        trials=int(trials_[0][0]),
        completed_trials=completed,
        failed_trials=failed,
        experiments=experiments,
        votes=int(votes_[0][0]),
        scenarios=scenarios,
        voided=Voided(
            battles=int(battles_[0][1]),
            games=int(games_[0][1]),
            trials=int(trials_[0][1]),
            votes=int(votes_[0][1]),
        ),
        events=counts,
        events_total=sum(counts.values()),
        position=position,
        results_position=results_position,
    )


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
                    "SELECT c.retired, coalesce(r.games, 0) FROM {c} c LEFT JOIN {r} r "
                    "ON r.arena = %(arena)s AND r.category = '' AND r.competitor = c.competitor "
                    "WHERE c.competitor = %(competitor)s"
                ).format(c=_r("competitors"), r=_r("ratings")),
                {**pool, "competitor": competitor},
            )
            if not info:
                raise not_found(f"Unknown competitor {competitor!r}.")
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
                "SELECT h.opponent, h.score FROM {history} h WHERE h.competitor = %(competitor)s "
                "AND h.arena = %(arena)s AND h.category = %(category)s "
                "AND h.kind IN ('battle', 'vote') AND NOT {voided} "
                "ORDER BY h.position LIMIT %(n)s"
            ).format(history=_r("rating_history"), voided=_voided_at()),
            {**pool, "competitor": competitor, "p": position, "n": PLACEMENT_GAMES},
        )
    is_retired, rated = bool(info[0][0]), int(info[0][1])
    status = registry_status(rated, is_retired)
    results = [(opponent, float(score)) for opponent, score in placement]
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
