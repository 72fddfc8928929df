"""The SQL behind ``GET /summary``: counts for a dashboard over both read models (the registry
from the ratings model; battles, games, trials, votes and event counts from the results model),
voided results counted apart."""

from __future__ import annotations

from psycopg import sql

from ..models.results import Summary, Voided
from ..store import ReadStore
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s
from .snapshot import snapshot

__all__ = ["summary"]


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
