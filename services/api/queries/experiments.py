"""The SQL behind the experiment and stats routes and the assembly of their bodies: the trials of
the ``arbiter_results`` read model fed to the domain's experiment results
(:mod:`arbiter.domain.experiments`) and grouped stats (:mod:`arbiter.domain.stats`). Voided
trials are listed, marked with ``voided_by``, and left out of every result."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from arbiter.domain.experiments import experiment_results
from arbiter.domain.stats import StatsGroup, group_stats
from arbiter.projections.experiments import TRIAL_COLUMNS, trial_record
from msgspec import structs
from psycopg import sql

from ..errors import ApiError, bad_parameter, not_found
from ..models.results import ExperimentReport, StatsPage
from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from .snapshot import POSITIONS, Rows, Snapshot, positions_of, snapshot, where_all
from .snapshot import results_table as _s

__all__ = ["experiment", "stats"]


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
                TRIAL_COLUMNS, _s("trials")
            ),
            (experiment_id,),
        )
    if not rows:
        raise _unknown_experiment(experiment_id)
    live = [trial_record(r) for r in rows if r[8] is None]
    results = experiment_results(live)
    return ExperimentReport(
        **structs.asdict(results),
        experiment_id=experiment_id,
        voided=len(rows) - len(live),
        results_position=results_position,
    )


GROUPED_KEPT = 8
"""How many groupings :func:`_grouped` keeps (one per ``group_by`` and ``order`` asked)."""
GROUPED_MAX_ROWS = 20_000
"""Trial rows above which a grouping is not kept (the rows are kept with it, to compare)."""
_GROUPED: OrderedDict[tuple[str, str], tuple[Rows, list[StatsGroup]]] = OrderedDict()


def _grouped(rows: Rows, group_by: str, order: str) -> list[StatsGroup]:
    """:func:`group_stats` of the trial rows, or the groups of the last rows read for this
    ``group_by`` and ``order`` when these are equal to them, value for value.

    Why: ``/stats`` is recomputed at every commit of the results model (several a second while
    battles stream in), and its trials seldom change meanwhile; decoding and grouping them was
    most of its cost (1.5 of 2.8 ms for 300 trials), comparing them is a fraction of that. The
    rows are still read in the request's snapshot, so the answer is as fresh as before; the
    grouping is a pure function of them (the filters and the viewer only choose the rows)."""
    key = (group_by, order)
    kept = _GROUPED.get(key)
    if kept is not None and kept[0] == rows:
        _GROUPED.move_to_end(key)
        return kept[1]
    groups = group_stats((trial_record(r) for r in rows), group_by, order)  # type: ignore[arg-type]
    if len(rows) <= GROUPED_MAX_ROWS:
        _GROUPED[key] = (rows, groups)
        _GROUPED.move_to_end(key)
        while len(_GROUPED) > GROUPED_KEPT:
            _GROUPED.popitem(last=False)
    return groups


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
    async with snapshot(reads) as snap:  # one round trip, the snapshot's end included
        positions, rows = await snap.many(
            POSITIONS,
            (  # in no order: the grouping's sums are fsum, order-free
                sql.SQL("SELECT {} FROM {} {}").format(
                    TRIAL_COLUMNS, _s("trials"), where_all(conditions)
                ),
                params,
            ),
            last=True,
        )
    _, results_position = positions_of(positions)
    try:
        groups = _grouped(rows, group_by, order)
    except ValueError as exc:
        raise bad_parameter("group_by" if "group_by" in str(exc) else "order", str(exc)) from exc
    return StatsPage(
        group_by=group_by, order=order, arena=arena, category=category,
        experiment_id=experiment_id, trials=len(rows), groups=groups[offset : offset + limit],
        total=len(groups), limit=limit, offset=offset, results_position=results_position,
    )  # fmt: skip
