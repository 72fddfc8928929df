"""The results model's ``experiments`` table: each experiment's declaration and its close.

Its own module so that :mod:`.results` only routes events here. A row has two halves, the
declaration (``experiment.created``: name, competitors, prompt count, trials per prompt, webhook
URL, its event, position, time and source) and the close (``experiment.completed``:
``closed_by``, ``closed_position``, ``closed_at``, ``close_reason``). Each half is written by one
event only (the ingest records each once per experiment) and an upsert of one half leaves the
other alone, so the table is the same whatever the batch split or which half comes first.
Status and counts are not stored: they depend on the trials (and their voids), and are derived
when read (:mod:`arbiter.services.api.queries.experiment_status`), so voiding a trial needs no
second bookkeeping here.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from arbiter.domain.events import ExperimentCompleted, ExperimentCreated
from arbiter.domain.experiments import TrialRecord
from psycopg import Cursor, sql

from .copy import qualified

__all__ = [
    "CLOSED_COLUMNS",
    "CREATED_COLUMNS",
    "STATUS_COLUMNS",
    "TRIAL_COLUMNS",
    "all_experiments",
    "closed_row",
    "created_row",
    "status_query",
    "store_experiments",
    "trial_record",
]

CREATED_COLUMNS = (
    "experiment_id", "event_id", "position", "occurred_at", "arena", "category", "name",
    "competitors", "prompt_count", "trials_per_prompt", "webhook_url", "source",
)  # fmt: skip
CLOSED_COLUMNS = ("experiment_id", "closed_by", "closed_position", "closed_at", "close_reason")


def created_row(position: int, e: ExperimentCreated) -> tuple[Any, ...]:
    return (
        e.experiment_id, e.event_id, position, e.occurred_at, e.arena, e.category, e.name,
        list(e.competitors), e.prompt_count, e.trials_per_prompt, e.webhook_url, e.source,
    )  # fmt: skip


def closed_row(position: int, e: ExperimentCompleted) -> tuple[Any, ...]:
    return (e.experiment_id, e.event_id, position, e.occurred_at, e.reason)


def _upsert(cur: Cursor[Any], schema: str, columns: tuple[str, ...], rows: list[Any]) -> None:
    if not rows:
        return
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
    )
    cur.executemany(
        sql.SQL(
            "INSERT INTO {table} ({names}) VALUES ({values}) "
            "ON CONFLICT (experiment_id) DO UPDATE SET {updates}"
        ).format(
            table=qualified(schema, "experiments"),
            names=names,
            values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            updates=updates,
        ),
        rows,
    )


def store_experiments(cur: Cursor[Any], schema: str, created: list[Any], closed: list[Any]) -> None:
    """Upsert the declarations and closes of a batch (few: one statement, pipelined)."""
    _upsert(cur, schema, CREATED_COLUMNS, created)
    _upsert(cur, schema, CLOSED_COLUMNS, closed)


STATUS_COLUMNS = (
    "experiment_id", "owner", "status", "name", "arena", "category", "competitors",
    "prompt_count", "trials_per_prompt", "webhook_url", "expected_trials", "trials",
    "counted_trials", "unexpected_trials", "failed_trials", "voided_trials", "ratings",
    "created_at", "first_trial_at", "last_trial_at", "completed_at", "completed_by",
    "close_reason", "first_position",
)  # fmt: skip
"""The columns of :func:`status_query`, in order."""

_STATUS = """
SELECT experiment_id, owner, status, name, arena, category, competitors, prompt_count,
       trials_per_prompt, webhook_url, expected_trials, trials, counted_trials,
       unexpected_trials, failed_trials, voided_trials, ratings, created_at, first_trial_at,
       last_trial_at,
       CASE WHEN status <> 'completed' THEN NULL
            WHEN counted_trials >= expected_trials THEN counted_at ELSE closed_at END,
       CASE WHEN status <> 'completed' THEN NULL
            WHEN counted_trials >= expected_trials THEN 'trials' ELSE 'closed' END,
       close_reason, first_position
FROM (
    SELECT s.*,
           CASE WHEN s.closed_by IS NOT NULL OR s.counted_trials >= s.expected_trials
                THEN 'completed'
                WHEN s.any_trials > 0 THEN 'running' ELSE 'created' END AS status
    FROM (
        SELECT i.experiment_id, coalesce(o.owner, '') AS owner, x.name, x.arena, x.category,
               x.competitors, x.prompt_count, x.trials_per_prompt, x.webhook_url,
               cardinality(x.competitors)::int8 * x.prompt_count * x.trials_per_prompt
                   AS expected_trials,
               coalesce(t.trials, 0) AS trials, coalesce(c.counted, 0) AS counted_trials,
               CASE WHEN x.competitors IS NOT NULL
                    THEN coalesce(t.trials, 0) - coalesce(c.expected, 0) END
                   AS unexpected_trials, coalesce(t.failed_trials, 0) AS failed_trials,
               coalesce(t.voided_trials, 0) AS voided_trials, coalesce(t.ratings, 0) AS ratings,
               x.occurred_at AS created_at, t.first_trial_at, t.last_trial_at, c.counted_at,
               x.closed_by, x.closed_at, x.close_reason, coalesce(t.any_trials, 0) AS any_trials,
               least(x.position, t.first_position) AS first_position
        FROM ({ids}) i (experiment_id)
        LEFT JOIN {experiments} x ON x.experiment_id = i.experiment_id
        LEFT JOIN {owners} o ON o.thing = 'experiment:' || i.experiment_id
        LEFT JOIN (
            SELECT experiment_id, count(*) AS any_trials,
                   count(*) FILTER (WHERE voided_by IS NULL) AS trials,
                   count(*) FILTER (WHERE voided_by IS NULL AND status = 'failed')
                       AS failed_trials,
                   count(*) FILTER (WHERE voided_by IS NOT NULL) AS voided_trials,
                   coalesce(sum(score_votes) FILTER (WHERE voided_by IS NULL), 0)::int8
                       AS ratings,
                   min(occurred_at) FILTER (WHERE voided_by IS NULL) AS first_trial_at,
                   max(occurred_at) FILTER (WHERE voided_by IS NULL) AS last_trial_at,
                   min(position) AS first_position
            FROM {trials} WHERE {among}
            GROUP BY experiment_id
        ) t ON t.experiment_id = i.experiment_id
        LEFT JOIN (
            SELECT cells.experiment_id,
                   sum(least(cells.n, d.trials_per_prompt))::int8 AS counted,
                   sum(cells.n)::int8 AS expected,
                   max((SELECT max(a) FROM unnest(cells.ats[1:d.trials_per_prompt]) a))
                       AS counted_at
            FROM (SELECT experiment_id, competitor, prompt_index, count(*) AS n,
                         array_agg(occurred_at ORDER BY position) AS ats
                  FROM {trials} WHERE voided_by IS NULL AND {among}
                  GROUP BY experiment_id, competitor, prompt_index) cells
            JOIN {experiments} d ON d.experiment_id = cells.experiment_id
            WHERE cells.competitor = ANY(d.competitors) AND cells.prompt_index < d.prompt_count
            GROUP BY cells.experiment_id
        ) c ON c.experiment_id = i.experiment_id
    ) s
) e
"""


def all_experiments(schema: str) -> sql.Composed:
    """The ids of every experiment: declared, or with a trial (for :func:`status_query`)."""
    return sql.SQL(
        "SELECT experiment_id FROM {} UNION SELECT DISTINCT experiment_id FROM {}"
    ).format(qualified(schema, "experiments"), qualified(schema, "trials"))


def status_query(schema: str, ids: sql.Composable | None = None) -> sql.Composed:
    """Every experiment with its status, counts and times, derived from ``experiments`` and
    ``trials`` of the results model in ``schema`` and the owners the event store records.

    An experiment is listed when it was declared or has a trial. Its status: ``completed`` once
    it was closed or every expected trial (``len(competitors) x prompt_count x
    trials_per_prompt``) has arrived, counting per (competitor, prompt) at most
    ``trials_per_prompt`` trials that are not voided (failed ones count: they arrived);
    ``running`` with a trial; else ``created``. An experiment that has trials but was never
    declared expects nothing it can count, so it stays ``running`` until an
    ``experiment.completed`` closes it. ``completed_by`` says which (``trials`` wins when both
    hold), and ``completed_at`` is then the latest producer time of a counted trial (the trials
    that count in a cell are its first ``trials_per_prompt`` in log order, so an extra trial
    does not move it), or the close's. A voided trial can take a trials-completed experiment
    back to ``running``; its webhook, once sent, is not sent again.

    ``ids`` is a query of the experiment ids to report on (None: every one, and the trials are
    read in one pass; given, their trials are read through the ``(experiment_id, position)``
    index). The trials are grouped once per experiment and once per (experiment, competitor,
    prompt), not per experiment in a loop. Wrap the result to filter it:
    ``SELECT ... FROM (<this>) e``."""
    among = sql.SQL("true") if ids is None else sql.SQL("experiment_id IN ({})").format(ids)
    return sql.SQL(_STATUS).format(
        ids=all_experiments(schema) if ids is None else ids,
        among=among,
        experiments=qualified(schema, "experiments"),
        trials=qualified(schema, "trials"),
        owners=sql.Identifier("public", "arbiter_owners"),
    )


TRIAL_COLUMNS = sql.SQL(
    "trial_id, competitor, prompt_index, status, metrics::text, dimensions::text, score_sum, "
    "score_votes, voided_by"
)
"""The trial columns the experiment results, the stats and the webhook's body read: what
:func:`trial_record` needs (``voided_by`` last, for the readers that list voided trials) and no
more (every trial of an experiment, or of the stats' filters, is read). The JSON columns come as
text and are decoded by :func:`_json`: psycopg's ``jsonb`` loader (``json.loads`` per value) was
most of the read, 75 of 100 ms for the 5,000 trials of benchmarks/web_detail_pages.py's
experiment, where msgspec takes a quarter of that."""

_DECODE = msgspec.json.Decoder()


def _json(text: str | None) -> Any:
    """A JSON column's value; ``json.loads``' answer for anything msgspec refuses (a number out
    of float range, which ``json.loads`` reads as infinity), so the values never differ."""
    if text is None:
        return None
    try:
        return _DECODE.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _metrics(value: Any) -> dict[str, float]:
    return {k: float(v) for k, v in (value or {}).items()}


def trial_record(row: tuple[Any, ...]) -> TrialRecord:
    """A trial row (``TRIAL_COLUMNS``) as the domain's :class:`TrialRecord`."""
    return TrialRecord(
        trial_id=row[0],
        competitor=row[1],
        prompt_index=int(row[2]),
        status=row[3],
        metrics=_metrics(_json(row[4])),
        dimensions={k: str(v) for k, v in (_json(row[5]) or {}).items()},
        score_sum=int(row[6]),
        score_votes=int(row[7]),
    )
