"""The results read model: every battle, game, vote and trial as a row, plus what is summed over
them (vote tallies, a trial's score votes, per-competitor metric sums, event counts).

Unlike the ratings, nothing here depends on order except which rows exist and which are voided,
so the fold keeps no state between batches: :class:`ResultsFold` turns a batch of events into
rows (pure), and :func:`write` stores them and brings the sums up to date in SQL, in the
projector's transaction. Every sum is exact (integers, and ``numeric`` for metric sums fed from
the JSON digits the producer sent), so a batch added and a voided result taken away give the same
digits in any batch split: incremental equals rebuild.

Decisions recorded here:

* A battle's metrics count towards its competitors' averages whatever its outcome (they measure
  the audio, not the verdict); a trial's only when it completed.
* A void marks its target ``voided_by`` (the void's event id) and takes it out of every sum.
  Only the target is marked: the votes on a voided battle keep ``voided_by`` null (they count for
  nothing in the ratings, and the battle's own ``voided_by`` says why). Marking them too would
  make ``voided_by`` depend on how voids of a battle and of its votes fall into batches.
* A trial's score is the sum and count of each voter's latest score vote that is not voided
  (a later vote by the same voter replaces the earlier; voiding it brings the earlier back).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
from arbiter.domain.events import (
    BattleCompleted,
    Event,
    ExperimentCompleted,
    ExperimentCreated,
    GameCompleted,
    ResultVoided,
    TrialCompleted,
    VoteCast,
    type_name,
)
from psycopg import Cursor, sql

from . import battle_counts, event_index, game_scores, tracking
from .copy import copy_rows, qualified
from .experiments import closed_row, created_row, store_experiments

__all__ = [
    "DEFERRED_INDEXES",
    "NAME",
    "Batch",
    "ResultsFold",
    "load",
    "prepare",
    "store",
    "stored_rows",
    "write",
]

NAME = "results"
_JSON = msgspec.json.Encoder(order="sorted")
DEFERRED_INDEXES = (
    "battles_a",
    "battles_b",
    "games_competitors",
    "trials_arena",
    *event_index.DEFERRED_INDEXES,
)
"""Indexes a rebuild builds once the tables are full (see ``ProjectionSpec.deferred_indexes``):
those only readers use. The keys stay, and so do the indexes on position and the votes' ones:
the store's own statements (sums over a batch's new rows, voids, vote tallies) look rows up
through them while the rebuild fills the tables."""


def _json(value: Any) -> bytes | None:
    """JSON as UTF-8 bytes, the form the jsonb columns take it in (``projections/copy.py``)."""
    return None if value is None else _JSON.encode(value)


@dataclass
class Batch:
    """The rows a stretch of the log adds, and the voids it applies, in log order."""

    start: int = 0
    """The position before the batch: rows after it are new."""
    battles: list[tuple[Any, ...]] = field(default_factory=list)
    games: list[tuple[Any, ...]] = field(default_factory=list)
    votes: list[tuple[Any, ...]] = field(default_factory=list)
    trials: list[tuple[Any, ...]] = field(default_factory=list)
    voids: list[tuple[str, str]] = field(default_factory=list)
    """(void event id, target event id)"""
    experiments_created: list[tuple[Any, ...]] = field(default_factory=list)
    experiments_closed: list[tuple[Any, ...]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    index: event_index.IndexBatch = field(default_factory=event_index.IndexBatch)
    """The log's index rows (:mod:`.event_index`)."""
    events: int = 0
    position: int = 0
    """The fold's position after the batch (what tracking records)."""
    total: int = 0
    """Events folded in all, after the batch."""


class ResultsFold:
    """Events to rows. Keeps only its position: everything else lives in the tables."""

    def __init__(self, position: int = 0, events: int = 0) -> None:
        self.position = position
        self.events = events
        self.batch = Batch(start=position)

    def apply(self, position: int, event: Event) -> None:
        if position <= self.position:
            raise ValueError(f"position {position} is not after {self.position}")
        b, e = self.batch, event
        common = (e.event_id, position, e.occurred_at)
        if isinstance(e, BattleCompleted):
            b.battles.append(
                (e.battle_id, *common, e.arena, e.category, e.a, e.b, e.outcome, e.judge,
                 e.scenario, _json(e.metrics), _json(e.meta), e.source)
            )  # fmt: skip
        elif isinstance(e, GameCompleted):
            participants = [msgspec.to_builtins(p) for p in e.participants]
            b.games.append(
                (e.game_id, *common, e.arena, e.category, _json(participants),
                 [p.competitor for p in e.participants], e.rounds, e.replay_uri, _json(e.meta),
                 e.source)
            )  # fmt: skip
        elif isinstance(e, VoteCast):
            b.votes.append(
                (*common[:1], e.vote_id, *common[1:], e.voter, e.battle_id, e.choice,
                 e.trial_id, e.score)
            )  # fmt: skip
        elif isinstance(e, TrialCompleted):
            b.trials.append(
                (e.trial_id, *common, e.arena, e.category, e.experiment_id, e.competitor,
                 e.prompt_index, e.status, e.error, _json(e.metrics), _json(e.dimensions),
                 e.source)
            )  # fmt: skip
        elif isinstance(e, ResultVoided):
            b.voids.append((e.event_id, e.target_event_id))
        elif isinstance(e, ExperimentCreated):
            b.experiments_created.append(created_row(position, e))
        elif isinstance(e, ExperimentCompleted):
            b.experiments_closed.append(closed_row(position, e))
        b.counts[type_name(e)] += 1
        b.index.add(position, e)
        b.events += 1
        self.position = position
        self.events += 1

    def take_changes(self) -> Batch:
        batch, self.batch = self.batch, Batch(start=self.position)
        batch.position, batch.total = self.position, self.events
        return batch


def load(cur: Cursor[Any], schema: str) -> ResultsFold:
    stored = tracking.read(cur, schema, NAME)
    return ResultsFold(*stored) if stored else ResultsFold()


_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "battles": (
        ("battle_id", "event_id", "position", "occurred_at", "arena", "category", "a", "b",
         "outcome", "judge", "scenario", "metrics", "meta", "source"),
        ("text", "text", "int8", "timestamptz", "text", "text", "text", "text", "text", "text",
         "text", "jsonb", "jsonb", "text"),
    ),
    "games": (
        ("game_id", "event_id", "position", "occurred_at", "arena", "category", "participants",
         "competitors", "rounds", "replay_uri", "meta", "source"),
        ("text", "text", "int8", "timestamptz", "text", "text", "jsonb", "text[]", "int4", "text",
         "jsonb", "text"),
    ),
    "votes": (
        ("event_id", "vote_id", "position", "occurred_at", "voter", "battle_id", "choice",
         "trial_id", "score"),
        ("text", "text", "int8", "timestamptz", "text", "text", "text", "text", "int4"),
    ),
    "trials": (
        ("trial_id", "event_id", "position", "occurred_at", "arena", "category", "experiment_id",
         "competitor", "prompt_index", "status", "error", "metrics", "dimensions", "source"),
        ("text", "text", "int8", "timestamptz", "text", "text", "text", "text", "int4", "text",
         "text", "jsonb", "jsonb", "text"),
    ),
}  # fmt: skip
"""Each table's columns and their types, in the order of the fold's row tuples."""

# Metric sums, per pool, of the battles (each side) and completed trials a selector picks,
# times a sign: +1 for new rows, -1 for rows just voided. Trials' sums are kept apart per
# experiment owner (the source of the experiment's first trial), so that the API can leave out
# those of experiments a caller may not read (arbiter.services.api.privacy).
_BATTLE_METRICS = """
INSERT INTO {metrics} (arena, category, competitor, metric, total, count)
SELECT arena, cat, competitor, key, sum(value::numeric) * %(sign)s, count(*) * %(sign)s
FROM (
    SELECT b.arena, c.cat, CASE s.side WHEN 'a' THEN b.a ELSE b.b END AS competitor, m.key,
           m.value
    FROM {battles} b
    CROSS JOIN LATERAL (VALUES ('a'), ('b')) AS s(side)
    CROSS JOIN LATERAL jsonb_each_text(b.metrics -> s.side) AS m
    CROSS JOIN LATERAL (VALUES (''), (b.category)) AS c(cat)
    WHERE b.metrics IS NOT NULL AND c.cat IS NOT NULL AND {selector}
) x
GROUP BY arena, cat, competitor, key
ON CONFLICT (arena, category, competitor, metric, of_trials, owner) DO UPDATE
SET total = {metrics}.total + EXCLUDED.total, count = {metrics}.count + EXCLUDED.count
"""
_TRIAL_METRICS = """
INSERT INTO {metrics} (arena, category, competitor, metric, of_trials, owner, total, count)
SELECT arena, cat, competitor, key, true, owner, sum(value::numeric) * %(sign)s,
       count(*) * %(sign)s
FROM (
    SELECT t.arena, c.cat, t.competitor, m.key, m.value,
           coalesce((SELECT f.source FROM {trials} f WHERE f.experiment_id = t.experiment_id
                     ORDER BY f.position LIMIT 1), '') AS owner
    FROM {trials} t
    CROSS JOIN LATERAL jsonb_each_text(t.metrics) AS m
    CROSS JOIN LATERAL (VALUES (''), (t.category)) AS c(cat)
    WHERE t.status = 'completed' AND c.cat IS NOT NULL AND {selector}
) x
GROUP BY arena, cat, competitor, key, owner
ON CONFLICT (arena, category, competitor, metric, of_trials, owner) DO UPDATE
SET total = {metrics}.total + EXCLUDED.total, count = {metrics}.count + EXCLUDED.count
"""


def prepare(fold: ResultsFold, batch: Batch) -> Batch:
    """A batch is its own rows: nothing to copy out of the fold."""
    return batch


def write(cur: Cursor[Any], schema: str, fold: ResultsFold, batch: Batch) -> None:
    store(cur, schema, batch)


def store(cur: Cursor[Any], schema: str, batch: Batch) -> None:
    """Store a batch's rows, apply its voids and bring the sums up to date."""
    t = {
        name: qualified(schema, name) for name in (*_COLUMNS, "competitor_metrics", "event_counts")
    } | {
        table.name: qualified(schema, table.name)
        for table in (game_scores.TABLE, battle_counts.TABLE)
    }
    for table, rows in (
        ("battles", batch.battles),
        ("games", batch.games),
        ("votes", batch.votes),
        ("trials", batch.trials),
    ):
        copy_rows(cur, schema, table, *_COLUMNS[table], rows)
    store_experiments(cur, schema, batch.experiments_created, batch.experiments_closed)
    new = sql.SQL("{}.position > %(start)s")
    args = {"start": batch.start, "sign": 1}
    if batch.battles:
        _sums(cur, _BATTLE_METRICS, t, new.format(sql.Identifier("b")), args)
        battle_counts.add(cur, t, new.format(sql.Identifier("b")), args)
    if batch.trials:
        _sums(cur, _TRIAL_METRICS, t, new.format(sql.Identifier("t")), args)
    if batch.games:
        ids = {"ids": [r[0] for r in batch.games], "sign": 1}
        game_scores.add(cur, t, sql.SQL("g.game_id = ANY(%(ids)s)"), ids)
    battles: set[str] = {r[5] for r in batch.votes if r[5] is not None}
    trials: set[str] = {r[7] for r in batch.votes if r[7] is not None}
    if batch.voids:
        _apply_voids(cur, t, batch, battles, trials)
    if battles:
        cur.execute(
            sql.SQL(
                "UPDATE {battles} b SET votes_a = s.a, votes_b = s.b, votes_tie = s.tie FROM ("
                "SELECT id, count(v.choice) FILTER (WHERE v.choice = 'a') AS a, "
                "count(v.choice) FILTER (WHERE v.choice = 'b') AS b, "
                "count(v.choice) FILTER (WHERE v.choice = 'tie') AS tie "
                "FROM unnest(%s::text[]) AS id LEFT JOIN {votes} v "
                "ON v.battle_id = id AND v.voided_by IS NULL GROUP BY id) s "
                "WHERE b.battle_id = s.id"
            ).format(battles=t["battles"], votes=t["votes"]),
            (sorted(battles),),
        )
    if trials:
        cur.execute(
            sql.SQL(
                "UPDATE {trials} t SET score_sum = coalesce(s.total, 0), score_votes = s.n FROM ("
                "SELECT id, sum(latest.score) AS total, count(latest.score) AS n "
                "FROM unnest(%s::text[]) AS id LEFT JOIN LATERAL ("
                "SELECT DISTINCT ON (v.voter) v.score FROM {votes} v "
                "WHERE v.trial_id = id AND v.voided_by IS NULL "
                "ORDER BY v.voter, v.position DESC) latest ON true GROUP BY id) s "
                "WHERE t.trial_id = s.id"
            ).format(trials=t["trials"], votes=t["votes"]),
            (sorted(trials),),
        )
    if batch.counts:
        types = sorted(batch.counts)
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (type, count) SELECT * FROM unnest(%s::text[], %s::int8[]) "
                "ON CONFLICT (type) DO UPDATE SET count = {}.count + EXCLUDED.count"
            ).format(t["event_counts"], t["event_counts"]),
            (types, [batch.counts[k] for k in types]),
        )
    event_index.store(cur, schema, batch.start, batch.index)
    tracking.write(cur, schema, NAME, batch.position, batch.total)


def _sums(
    cur: Cursor[Any],
    template: str,
    t: dict[str, sql.Composed],
    selector: sql.Composable,
    args: dict[str, Any],
) -> None:
    cur.execute(
        sql.SQL(template).format(
            metrics=t["competitor_metrics"],
            battles=t["battles"],
            trials=t["trials"],
            selector=selector,
        ),
        args,
    )


def _apply_voids(
    cur: Cursor[Any],
    t: dict[str, sql.Composed],
    batch: Batch,
    battles: set[str],
    trials: set[str],
) -> None:
    """Mark every void's target and take it out of the sums."""
    by_target = {target: void for void, target in batch.voids}
    targets, voids = list(by_target), [by_target[k] for k in by_target]
    mark = (
        "UPDATE {table} x SET voided_by = v.void FROM unnest(%s::text[], %s::text[]) "
        "AS v(target, void) WHERE x.event_id = v.target AND x.voided_by IS NULL "
        "RETURNING x.event_id"
    )
    cur.execute(sql.SQL(mark + ", x.battle_id").format(table=t["battles"]), (targets, voids))
    voided_battles = cur.fetchall()
    if voided_battles:
        ids = [r[0] for r in voided_battles]
        battles.update(r[1] for r in voided_battles)
        _sums(
            cur,
            _BATTLE_METRICS,
            t,
            sql.SQL("b.event_id = ANY(%(ids)s)"),
            {"ids": ids, "sign": -1},
        )
        battle_counts.add(cur, t, sql.SQL("b.event_id = ANY(%(ids)s)"), {"ids": ids}, True)
    cur.execute(sql.SQL(mark + ", x.trial_id").format(table=t["trials"]), (targets, voids))
    voided_trials = cur.fetchall()
    if voided_trials:
        _sums(
            cur,
            _TRIAL_METRICS,
            t,
            sql.SQL("t.event_id = ANY(%(ids)s)"),
            {"ids": [r[0] for r in voided_trials], "sign": -1},
        )
    cur.execute(
        sql.SQL(mark + ", x.battle_id, x.trial_id").format(table=t["votes"]), (targets, voids)
    )
    for _, battle_id, trial_id in cur.fetchall():
        if battle_id is not None:
            battles.add(battle_id)
        if trial_id is not None:
            trials.add(trial_id)
    cur.execute(sql.SQL(mark).format(table=t["games"]), (targets, voids))
    voided_games = [r[0] for r in cur.fetchall()]
    if voided_games:
        ids = {"ids": voided_games, "sign": -1}
        game_scores.add(cur, t, sql.SQL("g.event_id = ANY(%(ids)s)"), ids)


def stored_rows(cur: Cursor[Any], schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but tracking, sorted: for comparing two builds exactly."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, key in (
        ("battles", "battle_id"),
        ("games", "game_id"),
        ("votes", "event_id"),
        ("trials", "trial_id"),
        ("competitor_metrics", "arena, category, competitor, metric, of_trials, owner"),
        ("event_counts", "type"),
        (game_scores.TABLE.name, ", ".join(game_scores.TABLE.key)),
        (battle_counts.TABLE.name, ", ".join(battle_counts.TABLE.key)),
        ("experiments", "experiment_id"),
        ("event_index", "position"),
        ("event_competitors", "competitor, position"),
        ("event_entities", "entity, position"),
    ):
        cur.execute(sql.SQL(f"SELECT * FROM {{}} ORDER BY {key}").format(qualified(schema, table)))
        out[table] = [tuple(r) for r in cur.fetchall()]
    return out
