"""The SQL behind ``GET /summary``: counts for a dashboard over both read models (the registry
from the ratings model; battles, games, trials, votes and event counts from the results model),
voided results counted apart.

The battles, the most numerous rows, are never scanned: their counts and scenarios come from the
running counts per arena and scenario (``battle_counts``, :mod:`arbiter.projections.battle_counts`),
and an arena's votes are found from the votes (each looks up its battle or trial by key), not by
hashing every battle of the arena. The response cache recomputes this answer at every commit of
either read model, so its cost is paid several times a second while events stream in."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..models.results import Summary, Voided
from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from .snapshot import POSITIONS, positions_of, snapshot
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s

__all__ = ["summary"]


def _hidden_events(private: sql.Composable | None) -> sql.Composable:
    """How many trial, score-vote and void events of the log concern trials the viewer may not
    read (taken out of the events by type)."""
    if private is None:
        return sql.SQL("SELECT 0, 0, 0")
    return sql.SQL(
        "WITH h AS (SELECT trial_id, voided_by FROM {t} WHERE NOT ({p})), "
        "hv AS (SELECT v.voided_by FROM {v} v JOIN h ON h.trial_id = v.trial_id) "
        "SELECT (SELECT count(*) FROM h), (SELECT count(*) FROM hv), "
        "(SELECT count(voided_by) FROM h) + (SELECT count(voided_by) FROM hv)"
    ).format(t=_s("trials"), v=_s("votes"), p=private)


def _hidden_experiment_events(private: sql.Composable | None) -> sql.Composable:
    """How many ``experiment.created`` and ``experiment.completed`` events are of experiments
    the viewer may not read (taken out of the events by type, as their trials are)."""
    if private is None:
        return sql.SQL("SELECT 0, 0")
    return sql.SQL("SELECT count(event_id), count(closed_by) FROM {} WHERE NOT ({})").format(
        _s("experiments"), private
    )


async def summary(reads: ReadStore, arena: str | None, viewer: Viewer) -> Summary:
    """Counts for a dashboard; with ``arena``, every count is of that arena only: competitors
    (and retired ones) with a standing in its arena-wide pool, its results, the votes on them,
    and the events by type it holds: its ``battle.completed``, ``game.completed`` and
    ``trial.completed``, the ``vote.cast`` on its battles and trials, the ``result.voided`` of
    its results and votes (a void belongs to its target's arena). ``arena.configured``,
    ``competitor.registered`` and ``competitor.retired`` are counted only without ``arena``: a
    competitor belongs to no one arena, and the read models keep an arena's settings in force,
    not each configuration event (counting those would scan the log). What
    the viewer may not read (a private experiment's trials, the score votes on them, the voids
    of either) is counted nowhere: not in the trials, votes and experiments, nor in the events
    by type."""
    by_arena = sql.SQL("" if arena is None else "AND arena = %(arena)s")
    params: dict[str, Any] = {"arena": arena}
    private = visible_trials(viewer, params)
    # Trials (and their experiments) the viewer may read; score votes on trials it may not read.
    seen = sql.SQL("") if private is None else sql.SQL(" AND ") + private
    hidden_trial = (
        sql.SQL("false")
        if private is None
        else sql.SQL(
            "EXISTS (SELECT 1 FROM {t} t WHERE t.trial_id = v.trial_id AND NOT ({p}))"
        ).format(t=_s("trials"), p=private)
    )

    def counted(table: str, condition: sql.Composable = sql.SQL("")) -> sql.Composable:
        return sql.SQL(
            "SELECT count(*) FILTER (WHERE voided_by IS NULL), "
            "count(*) FILTER (WHERE voided_by IS NOT NULL) FROM {t} WHERE true {a}{c}"
        ).format(t=_s(table), a=by_arena, c=condition)

    if arena is None:
        competitors_q: sql.Composable = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE retired) FROM {}"
        ).format(_r("competitors"))
        votes_q: sql.Composable = sql.SQL(
            "SELECT count(*) FILTER (WHERE voided_by IS NULL), "
            "count(*) FILTER (WHERE voided_by IS NOT NULL) FROM {} v WHERE NOT {}"
        ).format(_s("votes"), hidden_trial)
    else:
        competitors_q = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE c.retired) FROM {r} r "
            "JOIN {c} c ON c.competitor = r.competitor "
            "WHERE r.arena = %(arena)s AND r.category = ''"
        ).format(r=_r("ratings"), c=_r("competitors"))
        # Each vote's target looked up by key (a correlated subquery per vote), not joined:
        # planned as a join, PostgreSQL hashed every battle of the log at each recomputation
        # (17 ms at 40,000 battles and growing, against 2 ms for 350 votes by key).
        votes_q = sql.SQL(
            "SELECT count(*) FILTER (WHERE v.voided_by IS NULL), "
            "count(*) FILTER (WHERE v.voided_by IS NOT NULL) FROM {v} v "
            "WHERE coalesce((SELECT b.arena FROM {b} b WHERE b.battle_id = v.battle_id), "
            "(SELECT t.arena FROM {t} t WHERE t.trial_id = v.trial_id)) = %(arena)s "
            "AND NOT {h}"
        ).format(v=_s("votes"), b=_s("battles"), t=_s("trials"), h=hidden_trial)
    async with snapshot(reads) as snap:
        (
            positions,
            comp,
            battles_,
            games_,
            trials_,
            votes_,
            extra,
            events,
            hidden,
            declared,
        ) = await snap.many(
            POSITIONS,
            (competitors_q, params),
            (
                sql.SQL(
                    "SELECT coalesce(sum(live), 0), coalesce(sum(voided), 0) FROM {} WHERE true {}"
                ).format(_s("battle_counts"), by_arena),
                params,
            ),
            (counted("games"), params),
            (counted("trials", seen), params),
            (votes_q, params),
            (
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE status = 'completed'), "
                    "count(*) FILTER (WHERE status <> 'completed'), "
                    "count(DISTINCT experiment_id), "
                    "(SELECT count(DISTINCT scenario) FROM {b} "
                    "WHERE live > 0 AND scenario <> '' {a}) "
                    "FROM {t} WHERE voided_by IS NULL {a}{c}"
                ).format(b=_s("battle_counts"), t=_s("trials"), a=by_arena, c=seen),
                params,
            ),
            (
                sql.SQL("SELECT type, count FROM {} WHERE count > 0 ORDER BY type").format(
                    _s("event_counts")
                ),
                (),
            ),
            (_hidden_events(private), params),
            (_hidden_experiment_events(private), params),
            last=True,  # the snapshot's end in the same round trip
        )
    position, results_position = positions_of(positions)
    if arena is None:
        counts = {t: int(n) for t, n in events}
        for type_, n in zip(
            ("trial.completed", "vote.cast", "result.voided", "experiment.created",
             "experiment.completed"), (*hidden[0], *declared[0]), strict=True
        ):  # fmt: skip
            if n and type_ in counts:
                counts[type_] -= int(n)
    else:
        # The arena's own events, from the rows they made (live and voided alike): each result
        # event is one row, each vote one row (its target's arena), each void marks one target.
        made = {
            "battle.completed": battles_[0],
            "game.completed": games_[0],
            "trial.completed": trials_[0],
            "vote.cast": votes_[0],
        }
        counts = {t: int(live) + int(gone) for t, (live, gone) in made.items()}
        counts["result.voided"] = sum(int(gone) for _, gone in made.values())
    counts = {t: n for t, n in counts.items() if n > 0}
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
