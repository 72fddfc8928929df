"""The SQL behind the experiment and stats routes and the assembly of their bodies: the trials of
the ``arbiter_results`` read model fed to the domain's experiment results
(:mod:`arbiter.domain.experiments`) and grouped stats (:mod:`arbiter.domain.stats`). Voided
trials are listed, marked with ``voided_by``, and left out of every result."""

from __future__ import annotations

from typing import Any

from arbiter.domain.experiments import TrialRecord, experiment_results
from arbiter.domain.stats import group_stats
from msgspec import structs
from psycopg import sql

from ..errors import ApiError, bad_parameter, not_found
from ..models.results import ExperimentReport, StatsPage
from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from .snapshot import Snapshot, snapshot, where_all
from .snapshot import results_table as _s

__all__ = ["experiment", "stats"]


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
                _TRIAL_COLUMNS, _s("trials"), where_all(conditions)
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
