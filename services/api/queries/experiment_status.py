"""The SQL behind ``GET /experiments``, ``GET /experiments/{id}`` and
``GET /experiments/{id}/deliveries``: the results model's experiments and trials folded into a
status per experiment (:func:`arbiter.projections.experiments.status_query`), and the webhook
worker's deliveries (schema ``arbiter_webhooks``, operational state, not a read model).

Who sees what: the list holds the caller's experiments (those whose owner, as the event store
records it, is the caller's key); admin keys, and everyone while keys are not enforced, see all.
"""

from __future__ import annotations

from typing import Any

from arbiter.projections.experiments import STATUS_COLUMNS, status_query
from psycopg import sql

from ..errors import not_found
from ..models.experiment_status import (
    Delivery,
    DeliveryAttempt,
    DeliveryPage,
    ExperimentPage,
    ExperimentStatus,
)
from ..privacy import OWNERS, Viewer
from ..store import ReadStore
from .snapshot import RESULTS, snapshot

__all__ = ["deliveries", "experiment_status", "experiments"]

_FIELDS = tuple(c for c in STATUS_COLUMNS if c not in ("owner", "first_position"))
_WEBHOOKS = "arbiter_webhooks"


def _status(row: tuple[Any, ...]) -> ExperimentStatus:
    values = dict(zip(STATUS_COLUMNS, row, strict=True))
    return ExperimentStatus(**{k: values[k] for k in _FIELDS})


async def experiments(
    reads: ReadStore, *, viewer: Viewer, status: str | None, limit: int, offset: int
) -> ExperimentPage:
    """The viewer's experiments (every one for an admin or with keys off), newest first (by the
    log position of the declaration or first trial)."""
    params: dict[str, Any] = {"limit": limit, "offset": offset, "status": status}
    ids: sql.Composable | None = None
    if not viewer.everything:
        params["viewer"] = viewer.source  # None matches no owner: no key sees none
        ids = sql.SQL(
            "SELECT substr(thing, 12) FROM {} WHERE owner = %(viewer)s "
            "AND thing LIKE 'experiment:%%'"
        ).format(OWNERS)
    statuses = status_query(RESULTS.schema, ids)
    # Not yet in the read model (the store records owners at append): not listed yet.
    where = sql.SQL(
        "WHERE first_position IS NOT NULL AND (%(status)s::text IS NULL OR status = %(status)s)"
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        counted, rows = await snap.many(
            (sql.SQL("SELECT count(*) FROM ({}) e {}").format(statuses, where), params),
            (
                sql.SQL(
                    "SELECT * FROM ({}) e {} ORDER BY first_position DESC NULLS LAST, "
                    "experiment_id LIMIT %(limit)s OFFSET %(offset)s"
                ).format(statuses, where),
                params,
            ),
        )
    return ExperimentPage(
        experiments=[_status(r) for r in rows],
        total=int(counted[0][0]),
        limit=limit,
        offset=offset,
        results_position=results_position,
    )


async def experiment_status(reads: ReadStore, experiment_id: str) -> ExperimentStatus:
    async with snapshot(reads) as snap:
        rows = await snap.rows(
            status_query(RESULTS.schema, sql.SQL("SELECT %(id)s::text")), {"id": experiment_id}
        )
    rows = [r for r in rows if r[STATUS_COLUMNS.index("first_position")] is not None]
    if not rows:
        raise not_found(f"Experiment {experiment_id!r} is neither declared nor has trials.")
    return _status(rows[0])


async def deliveries(reads: ReadStore, experiment_id: str) -> DeliveryPage:
    """The webhook deliveries of an experiment's results, each with every attempt, oldest
    first (none before the experiment completes, or without a ``webhook_url``)."""
    async with snapshot(reads) as snap:
        found, tried = await snap.many(
            (
                sql.SQL(
                    "SELECT delivery_id, url, state, attempts, next_attempt_at, created_at, "
                    "delivered_at, last_error FROM {} WHERE experiment_id = %s "
                    "ORDER BY created_at, delivery_id"
                ).format(sql.Identifier(_WEBHOOKS, "deliveries")),
                (experiment_id,),
            ),
            (
                sql.SQL(
                    "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, "
                    "a.status_code, a.error FROM {} a JOIN {} d USING (delivery_id) "
                    "WHERE d.experiment_id = %s ORDER BY a.delivery_id, a.attempt"
                ).format(
                    sql.Identifier(_WEBHOOKS, "attempts"), sql.Identifier(_WEBHOOKS, "deliveries")
                ),
                (experiment_id,),
            ),
        )
    history: dict[str, list[DeliveryAttempt]] = {}
    for d_id, n, started, ms, code, error in tried:
        history.setdefault(d_id, []).append(
            DeliveryAttempt(
                attempt=n, started_at=started, duration_ms=ms, status_code=code, error=error
            )
        )
    return DeliveryPage(
        experiment_id=experiment_id,
        deliveries=[
            Delivery(
                delivery_id=r[0], url=r[1], state=r[2], attempts=r[3], next_attempt_at=r[4],
                created_at=r[5], delivered_at=r[6], last_error=r[7], history=history.get(r[0], []),
            )
            for r in found
        ],
    )  # fmt: skip
