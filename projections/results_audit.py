"""The results read model re-derived in memory, for the audit: every row of every table, with no
SQL.

The projector stores results with SQL doing part of the work (:mod:`.results`: void marks, vote
tallies, each trial's score votes, the exact metric sums per competitor and experiment owner,
event counts). An audit that trusted those statements would only check that SQL agrees with
itself, so :class:`ResultsReplay` computes the same state a second way, in plain Python, from
the log alone: it is what the tables must hold after the log up to a position, column by
column. The rules it follows are the ones :mod:`.results` documents:

* a void marks its target's ``voided_by`` (the first void of a target; the ingest refuses a
  second) and takes a battle's or completed trial's metrics out of the sums; the votes on a
  voided battle stay unmarked;
* a battle's ``votes_a`` / ``votes_b`` / ``votes_tie`` count its votes that are not voided;
* a trial's ``score_sum`` / ``score_votes`` sum and count each voter's latest score vote
  (highest position) that is not voided;
* ``competitor_metrics`` sums every metric of each side of a battle (whatever its outcome) and
  of each completed trial, per pool (``''`` arena-wide, and the category if there is one),
  exactly: each value is the decimal number the stored JSON holds (the digits
  ``msgspec`` writes, which PostgreSQL's ``numeric`` sums), added as :class:`~decimal.Decimal`.
  Trials' sums are kept apart per experiment owner (the source of the experiment's first trial
  in the log, ``''`` for none). A row once summed stays, with total and count 0, when every
  result in it is voided (the store subtracts; it never deletes);
* ``event_counts`` counts every event folded, by type;
* ``competitor_game_scores``: see :mod:`.game_scores` (each game's players, exact score sums).
* ``battle_counts``: see :mod:`.battle_counts` (live and voided battles per arena and scenario).
* ``experiments`` holds each experiment's declaration (``experiment.created``) and close
  (``experiment.completed``), each half from its own event, whichever came first.
* the log's index (``event_index`` and its lookup tables) is re-derived by
  :class:`.event_index_audit.IndexReplay`.
"""

from __future__ import annotations

from collections import Counter
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
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
from psycopg import Cursor

from . import battle_counts, game_scores
from .event_index_audit import TABLES as INDEX_TABLES
from .event_index_audit import IndexReplay
from .tables import Table, read_table

__all__ = ["TABLES", "ResultsReplay", "stored_tables"]

_JSON = msgspec.json.Encoder(order="sorted")
_PLAIN = msgspec.json.Decoder()

TABLES = (
    Table("battles", ("battle_id",), (
        "event_id", "position", "occurred_at", "arena", "category", "a", "b", "outcome", "judge",
        "scenario", "metrics", "meta", "source", "votes_a", "votes_b", "votes_tie", "voided_by")),
    Table("games", ("game_id",), (
        "event_id", "position", "occurred_at", "arena", "category", "participants",
        "competitors", "rounds", "replay_uri", "meta", "source", "voided_by")),
    Table("votes", ("event_id",), (
        "vote_id", "position", "occurred_at", "voter", "battle_id", "choice", "trial_id",
        "score", "voided_by")),
    Table("trials", ("trial_id",), (
        "event_id", "position", "occurred_at", "arena", "category", "experiment_id",
        "competitor", "prompt_index", "status", "error", "metrics", "dimensions", "source",
        "score_sum", "score_votes", "voided_by")),
    Table("competitor_metrics",
          ("arena", "category", "competitor", "metric", "of_trials", "owner"),
          ("total", "count")),
    Table("event_counts", ("type",), ("count",)),
    game_scores.TABLE,
    battle_counts.TABLE,
    Table("experiments", ("experiment_id",), (
        "event_id", "position", "occurred_at", "arena", "category", "name", "competitors",
        "prompt_count", "trials_per_prompt", "webhook_url", "source", "closed_by",
        "closed_position", "closed_at", "close_reason")),
    *INDEX_TABLES,
)  # fmt: skip
"""Every table of the results schema but bookkeeping, key columns first."""

_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Sums as ``numeric`` makes them: no rounding (the default context keeps 28 digits)."""
_VOIDED = -1
"""Index of ``voided_by`` in the battles, games, votes and trials rows."""


def _json(value: Any) -> Any:
    """A value as the jsonb column returns it: the JSON the store writes, decoded."""
    return None if value is None else _PLAIN.decode(_JSON.encode(value))


def _number(value: float) -> Decimal:
    """A metric value as ``numeric`` reads it: the decimal digits of the stored JSON."""
    return Decimal(_JSON.encode(value).decode())


class ResultsReplay:
    """The results tables after a stretch of the log, as plain Python rows."""

    def __init__(self) -> None:
        self.position = 0
        self.events = 0
        self.battles: dict[str, list[Any]] = {}
        self.games: dict[str, list[Any]] = {}
        self.votes: dict[str, list[Any]] = {}
        self.trials: dict[str, list[Any]] = {}
        self.sums: dict[tuple[Any, ...], list[Any]] = {}
        self.counts: Counter[str] = Counter()
        self.experiments: dict[str, list[Any]] = {}
        """experiment -> its row (declaration columns, then close columns)"""
        self.owners: dict[str, str] = {}
        """experiment -> the source of its first trial ('' for none)"""
        self.rows_by_event: dict[str, tuple[str, list[Any]]] = {}
        """event id -> (table, its row) in one of the four tables: what a void marks"""
        self.index = IndexReplay()

    def apply(self, position: int, event: Event) -> None:
        if position <= self.position:
            raise ValueError(f"position {position} is not after {self.position}")
        e = event
        common = [e.event_id, position, e.occurred_at]
        if isinstance(e, BattleCompleted):
            row = [*common, e.arena, e.category, e.a, e.b, e.outcome, e.judge, e.scenario,
                   _json(e.metrics), _json(e.meta), e.source, 0, 0, 0, None]  # fmt: skip
            self.battles[e.battle_id] = row
            self.rows_by_event[e.event_id] = ("battles", row)
            self._battle_sums(row, 1)
        elif isinstance(e, GameCompleted):
            row = [*common, e.arena, e.category, _json(msgspec.to_builtins(e.participants)),
                   [p.competitor for p in e.participants], e.rounds, e.replay_uri,
                   _json(e.meta), e.source, None]  # fmt: skip
            self.games[e.game_id] = row
            self.rows_by_event[e.event_id] = ("games", row)
        elif isinstance(e, VoteCast):
            row = [e.vote_id, position, e.occurred_at, e.voter, e.battle_id, e.choice,
                   e.trial_id, e.score, None]  # fmt: skip
            self.votes[e.event_id] = row
            self.rows_by_event[e.event_id] = ("votes", row)
        elif isinstance(e, TrialCompleted):
            self.owners.setdefault(e.experiment_id, e.source or "")
            row = [*common, e.arena, e.category, e.experiment_id, e.competitor, e.prompt_index,
                   e.status, e.error, _json(e.metrics), _json(e.dimensions), e.source, 0, 0,
                   None]  # fmt: skip
            self.trials[e.trial_id] = row
            self.rows_by_event[e.event_id] = ("trials", row)
            self._trial_sums(row, 1)
        elif isinstance(e, ResultVoided):
            self._void(e.event_id, e.target_event_id)
        elif isinstance(e, ExperimentCreated):
            row = self.experiments.setdefault(e.experiment_id, [None] * 15)
            row[:11] = [e.event_id, position, e.occurred_at, e.arena, e.category, e.name,
                        list(e.competitors), e.prompt_count, e.trials_per_prompt,
                        e.webhook_url, e.source]  # fmt: skip
        elif isinstance(e, ExperimentCompleted):
            row = self.experiments.setdefault(e.experiment_id, [None] * 15)
            row[11:] = [e.event_id, position, e.occurred_at, e.reason]
        self.counts[type_name(e)] += 1
        self.index.apply(position, e)
        self.position = position
        self.events += 1

    def _void(self, void: str, target: str) -> None:
        table, row = self.rows_by_event.get(target, ("", None))
        if row is None or row[_VOIDED] is not None:
            return
        row[_VOIDED] = void
        if table == "battles":
            self._battle_sums(row, -1)
        elif table == "trials":
            self._trial_sums(row, -1)

    def _add(self, key: tuple[Any, ...], value: float, sign: int) -> None:
        total = self.sums.setdefault(key, [Decimal(0), 0])
        total[0] = _EXACT.add(
            total[0], _number(value) if sign > 0 else _number(value).copy_negate()
        )
        total[1] += sign

    def _battle_sums(self, row: list[Any], sign: int) -> None:
        arena, category, a, b, metrics = row[3], row[4], row[5], row[6], row[10]
        if metrics is None:
            return
        for side, competitor in (("a", a), ("b", b)):
            for metric, value in (metrics.get(side) or {}).items():
                for pool in ("", category):
                    if pool is not None:
                        self._add((arena, pool, competitor, metric, False, ""), value, sign)

    def _trial_sums(self, row: list[Any], sign: int) -> None:
        arena, category, experiment, competitor, status, metrics = (
            row[3], row[4], row[5], row[6], row[8], row[10],
        )  # fmt: skip
        if status != "completed":
            return
        owner = self.owners[experiment]
        for metric, value in metrics.items():
            for pool in ("", category):
                if pool is not None:
                    self._add((arena, pool, competitor, metric, True, owner), value, sign)

    def rows(self) -> dict[str, dict[Any, tuple[Any, ...]]]:
        """Every row of every table (:data:`TABLES`), keyed as :func:`stored_tables` keys them."""
        tallies: dict[str, list[int]] = {}
        latest: dict[tuple[str, str], tuple[int, int | None]] = {}
        for vote in self.votes.values():
            _, position, _, voter, battle, choice, trial, score, voided = vote
            if voided is not None:
                continue
            if battle is not None and choice is not None:
                tally = tallies.setdefault(battle, [0, 0, 0])
                tally[("a", "b", "tie").index(choice)] += 1
            if trial is not None:
                seen = latest.get((trial, voter))
                if seen is None or seen[0] < position:
                    latest[(trial, voter)] = (position, score)
        scores: dict[str, list[int]] = {}
        for (trial, _), (_, score) in latest.items():
            if score is not None:
                s = scores.setdefault(trial, [0, 0])
                s[0] += score
                s[1] += 1
        battles = {}
        for battle_id, row in self.battles.items():
            tally = tallies.get(battle_id, (0, 0, 0))
            battles[battle_id] = (*row[:13], *tally, row[_VOIDED])
        trials = {}
        for trial_id, row in self.trials.items():
            score = scores.get(trial_id, (0, 0))
            trials[trial_id] = (*row[:13], *score, row[_VOIDED])
        return {
            "battles": battles,
            "games": {k: tuple(r) for k, r in self.games.items()},
            "votes": {k: tuple(r) for k, r in self.votes.items()},
            "trials": trials,
            "competitor_metrics": {k: tuple(v) for k, v in self.sums.items()},
            "event_counts": {k: (n,) for k, n in self.counts.items()},
            game_scores.TABLE.name: game_scores.replayed_rows(self.games.values()),
            battle_counts.TABLE.name: battle_counts.replayed_rows(self.battles.values()),
            "experiments": {k: tuple(r) for k, r in self.experiments.items()},
            **self.index.tables(),
        }


def stored_tables(cur: Cursor[Any], schema: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Every audited table of the stored results model, keyed as :meth:`ResultsReplay.rows`."""
    return {table.name: read_table(cur, schema, table) for table in TABLES}
