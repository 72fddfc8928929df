"""The SQL behind the results routes (battles, games, experiments, stats) and the assembly of
their bodies: reads of the ``arbiter_results`` read model, one snapshot per request."""

from __future__ import annotations

from typing import Any

from arbiter.domain.experiments import TrialRecord, experiment_results
from arbiter.domain.stats import group_stats
from msgspec import structs
from psycopg import sql

from .api import ApiError
from .api_privacy import Viewer, visible_trials
from .api_queries import Rows, Snapshot, _float, _s, _where, bad_parameter, not_found, snapshot
from .api_results_models import (
    BattleDetail,
    BattlePage,
    BattleSummary,
    BattleVote,
    ExperimentReport,
    GameDetail,
    GamePage,
    GameParticipant,
    GameSummary,
    StatsPage,
    Trial,
    TrialPage,
    VoteCounts,
)
from .api_store import ReadStore

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


def _voided_filter(voided: bool | None) -> list[sql.Composable]:
    if voided is None:
        return []
    return [sql.SQL("voided_by IS NOT NULL" if voided else "voided_by IS NULL")]


Filter = tuple[str, Any, str]
"""(parameter name, value, SQL clause): the clause applies when the value is given."""


def _filtered(
    base: dict[str, Any], filters: tuple[Filter, ...], conditions: list[sql.Composable]
) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE clause and parameters of a list route from its optional filters."""
    params = dict(base)
    for name, value, clause in filters:
        if value:
            conditions.append(sql.SQL(clause))
            params[name] = value
    return _where(conditions), params


async def _page(
    snap: Snapshot,
    table: str,
    columns: sql.Composable,
    where: sql.Composable,
    params: dict[str, Any],
    order: str,
) -> tuple[int, Rows]:
    """A list route's total and page, in the request's snapshot (one round trip for both)."""
    total, page = await snap.many(
        (sql.SQL("SELECT count(*) FROM {} {}").format(_s(table), where), params),
        (
            sql.SQL(f"SELECT {{}} FROM {{}} {{}} ORDER BY {order} "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(columns, _s(table), where),
            params,
        ),
    )  # fmt: skip
    return int(total[0][0]), page


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
    where, params = _filtered(
        {"limit": limit, "offset": offset},
        (
            ("arena", arena, "arena = %(arena)s"),
            ("category", category, "category = %(category)s"),
            ("competitor", competitor, "(a = %(competitor)s OR b = %(competitor)s)"),
            ("judge", judge, "judge = %(judge)s"),
            ("scenario", scenario, "scenario = %(scenario)s"),
        ),
        _voided_filter(voided),
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        total, page = await _page(snap, "battles", _BATTLE_COLUMNS, where, params, "position DESC")
    return BattlePage(
        battles=[BattleSummary(**_battle(r)) for r in page],
        total=total,
        limit=limit,
        offset=offset,
        results_position=results_position,
    )


async def battle(reads: ReadStore, battle_id: str) -> BattleDetail | None:
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        found, votes = await snap.many(
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
        )
    if not found:
        return None
    row = found[0]
    metrics, meta, source = row[-3:]
    return BattleDetail(
        **_battle(row[:-3]),
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
            score=_float(p.get("score")),
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
    where, params = _filtered(
        {"limit": limit, "offset": offset},
        (
            ("arena", arena, "arena = %(arena)s"),
            ("category", category, "category = %(category)s"),
            ("competitor", competitor, "competitors @> ARRAY[%(competitor)s]::text[]"),
        ),
        _voided_filter(voided),
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        total, page = await _page(snap, "games", _GAME_COLUMNS, where, params, "position DESC")
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


# -- experiments and stats ----------------------------------------------------------------------

_TRIAL_COLUMNS = sql.SQL(
    "trial_id, event_id, position, occurred_at, arena, category, experiment_id, competitor, "
    "prompt_index, status, error, metrics, dimensions, score_sum, score_votes, voided_by"
)


def _metrics(value: Any) -> dict[str, float]:
    return {k: float(v) for k, v in (value or {}).items()}


def _record(row: tuple[Any, ...]) -> TrialRecord:
    """A trial row (``_TRIAL_COLUMNS``) as the domain's :class:`TrialRecord`."""
    return TrialRecord(
        trial_id=row[0],
        competitor=row[7],
        prompt_index=int(row[8]),
        status=row[9],
        metrics=_metrics(row[11]),
        dimensions={k: str(v) for k, v in (row[12] or {}).items()},
        score_sum=int(row[13]),
        score_votes=int(row[14]),
    )


async def _experiment_known(snap: Snapshot, experiment_id: str) -> bool:
    return bool(
        await snap.rows(
            sql.SQL("SELECT 1 FROM {} WHERE experiment_id = %s LIMIT 1").format(_s("trials")),
            (experiment_id,),
        )
    )


def _unknown_experiment(experiment_id: str) -> ApiError:
    return not_found(f"Experiment {experiment_id!r} has no trials.")


async def trials(
    reads: ReadStore,
    experiment_id: str,
    *,
    competitor: str | None,
    status: str | None,
    voided: bool | None,
    limit: int,
    offset: int,
) -> TrialPage:
    where, params = _filtered(
        {"experiment": experiment_id, "limit": limit, "offset": offset},
        (
            ("competitor", competitor, "competitor = %(competitor)s"),
            ("status", status, "status = %(status)s"),
        ),
        [sql.SQL("experiment_id = %(experiment)s"), *_voided_filter(voided)],
    )
    async with snapshot(reads) as snap:
        if not await _experiment_known(snap, experiment_id):
            raise _unknown_experiment(experiment_id)
        _, results_position = await snap.positions()
        total, page = await _page(snap, "trials", _TRIAL_COLUMNS, where, params, "position")
    return TrialPage(
        experiment_id=experiment_id,
        trials=[
            Trial(
                trial_id=r[0],
                event_id=r[1],
                position=int(r[2]),
                occurred_at=r[3],
                arena=r[4],
                category=r[5],
                experiment_id=r[6],
                competitor=r[7],
                prompt_index=int(r[8]),
                status=r[9],
                error=r[10],
                metrics=_metrics(r[11]),
                dimensions={k: str(v) for k, v in (r[12] or {}).items()},
                score_sum=int(r[13]),
                score_votes=int(r[14]),
                avg_score=r[13] / r[14] if r[14] else None,
                voided_by=r[15],
            )
            for r in page
        ],
        total=total,
        limit=limit,
        offset=offset,
        results_position=results_position,
    )


async def experiment(reads: ReadStore, experiment_id: str) -> ExperimentReport:
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        rows = await snap.rows(
            sql.SQL("SELECT {} FROM {} WHERE experiment_id = %s ORDER BY position").format(
                _TRIAL_COLUMNS, _s("trials")
            ),
            (experiment_id,),
        )
    if not rows:
        raise _unknown_experiment(experiment_id)
    live = [_record(r) for r in rows if r[15] is None]
    results = experiment_results(live)
    return ExperimentReport(
        **structs.asdict(results),
        experiment_id=experiment_id,
        voided=len(rows) - len(live),
        results_position=results_position,
    )


async def stats(
    reads: ReadStore,
    *,
    group_by: str,
    order: str,
    arena: str | None,
    category: str | None,
    experiment_id: str | None,
    limit: int,
    offset: int,
    viewer: Viewer,
) -> StatsPage:
    """:func:`~arbiter.domain.stats.group_stats` over the trials (not voided) the filters pick,
    of experiments the viewer may read. Every matching trial is read (the grouping is the
    domain's, in Python)."""
    conditions: list[sql.Composable] = [sql.SQL("voided_by IS NULL")]
    params: dict[str, Any] = {}
    for name, value, clause in (
        ("arena", arena, "arena = %(arena)s"),
        ("category", category, "category = %(category)s"),
        ("experiment", experiment_id, "experiment_id = %(experiment)s"),
    ):
        if value:
            conditions.append(sql.SQL(clause))
            params[name] = value
    if (private := visible_trials(viewer, params)) is not None:
        conditions.append(private)
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        rows = await snap.rows(
            sql.SQL("SELECT {} FROM {} {} ORDER BY position").format(
                _TRIAL_COLUMNS, _s("trials"), _where(conditions)
            ),
            params,
        )
    try:
        groups = group_stats((_record(r) for r in rows), group_by, order)  # type: ignore[arg-type]
    except ValueError as exc:
        raise bad_parameter("group_by" if "group_by" in str(exc) else "order", str(exc)) from exc
    return StatsPage(
        group_by=group_by, order=order, arena=arena, category=category,
        experiment_id=experiment_id, trials=len(rows), groups=groups[offset : offset + limit],
        total=len(groups), limit=limit, offset=offset, results_position=results_position,
    )  # fmt: skip


# -- summary ------------------------------------------------------------------------------------
