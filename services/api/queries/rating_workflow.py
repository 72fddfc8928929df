"""Seed 004's rating workflow over the results read model: an experiment's trials filtered by who
rated them and by any dimension, each with the asking voter's own rating, and a voter's votes.

What a rating is: a score vote (``vote.cast`` with ``trial_id`` and ``score``). A voter's
*current* rating of a trial is its latest score vote on it that is not voided (a later vote
replaces the earlier; voiding the later brings the earlier back), the same rule the trial's
``score_sum`` follows (:mod:`arbiter.projections.results`).

* ``rated_by=V``: trials V has a current rating of; ``unrated_by=V``: trials V has none of (what
  is left for V to rate). ``voter=V`` adds ``my_rating`` to each row.
* Dimension filters: ``persona=x`` (any dimension key the experiment's trials carry), or
  ``dim.persona=x``, which always means the dimension (a dimension named like one of the route's
  own parameters, ``status`` say, is filtered only that way). A key given twice matches either
  value. Every other name is a 400 naming the route's parameters *and* the experiment's
  dimension keys, so a misspelt dimension is never a filter that matches everything. The
  dimension keys are named only to whom the route already serves the experiment (its owner, an
  admin): the owner check runs before the handler.
* ``GET /votes?voter=V``: V's current score votes, newest first, each with its trial's
  experiment and competitor. Votes on trials of experiments the caller may not read are left
  out, as ``/events`` leaves them out (:mod:`..privacy`): the list may be shorter for one caller
  than for another, never different in what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arbiter.domain.identifiers import DIMENSION_VALUE_MAX
from psycopg import sql

from ..errors import bad_parameter, not_found
from ..models.results import Trial, TrialPage
from ..models.votes import ScoreVote, ScoreVotePage
from ..parameters import refusal
from ..privacy import Viewer, visible_trials
from ..store import ReadStore
from .snapshot import results_table as _s
from .snapshot import snapshot, where_all

__all__ = ["DIMENSION_PREFIX", "ExtraQuery", "trials", "votes"]

DIMENSION_PREFIX = "dim."
ExtraQuery = tuple[str, list[str], frozenset[str]]
"""What the parameter guard handed on: the route, the names it does not declare, those it does."""

_COLUMNS = sql.SQL(
    "t.trial_id, t.event_id, t.position, t.occurred_at, t.arena, t.category, t.experiment_id, "
    "t.competitor, t.prompt_index, t.status, t.error, t.metrics, t.dimensions, t.score_sum, "
    "t.score_votes, t.voided_by"
)
_CURRENT = (
    "SELECT {pick} FROM {votes} v WHERE v.trial_id = t.trial_id AND v.voter = %({voter})s "
    "AND v.score IS NOT NULL AND v.voided_by IS NULL"
)


def _current(voter: str, pick: str) -> sql.Composable:
    """A subquery over voter ``%(voter)s``'s live score votes on trial ``t``."""
    return sql.SQL(_CURRENT.format(pick=pick, votes="{votes}", voter=voter)).format(
        votes=_s("votes")
    )


def _dimension_filters(
    extra: ExtraQuery | None, values: dict[str, list[str]], keys: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """``(dimension key, accepted values)`` for each undeclared parameter, or the 400."""
    if extra is None:
        return []
    route, unknown, declared = extra
    known = set(keys)
    # One filter per key: `persona=a` and `dim.persona=b` name the same key and match either.
    out: dict[str, list[str]] = {}
    wrong: list[str] = []
    for name in unknown:
        key = name.removeprefix(DIMENSION_PREFIX)
        if key not in known:
            wrong.append(name)
            continue
        given = values.get(name, [])
        if any(not v or len(v) > DIMENSION_VALUE_MAX for v in given):  # what a trial may carry
            raise bad_parameter(
                name, f"Query parameter `{name[:64]}` takes 1 to {DIMENSION_VALUE_MAX} characters."
            )
        out.setdefault(key, []).extend(given)
    if wrong:
        shown = ", ".join(f"`{k}`" for k in keys[:50]) if keys else "none"
        raise refusal(
            route,
            wrong,
            declared,
            f"or a dimension key this experiment's trials carry (as `KEY=` or "
            f"`{DIMENSION_PREFIX}KEY=`): {shown}",
        )
    return list(out.items())


async def trials(
    reads: ReadStore,
    experiment_id: str,
    *,
    filters: dict[str, Any],
    extra: ExtraQuery | None,
    extra_values: dict[str, list[str]],
    limit: int,
    offset: int,
) -> TrialPage:
    """The experiment's trials in log order, filtered; ``my_rating`` for ``filters["voter"]``.
    ``filters`` holds ``competitor``, ``status``, ``voided``, ``rated_by``, ``unrated_by`` and
    ``voter`` (None: not given)."""
    params: dict[str, Any] = {"experiment": experiment_id, "limit": limit, "offset": offset}
    conditions: list[sql.Composable] = [sql.SQL("t.experiment_id = %(experiment)s")]
    for name, clause in (
        ("competitor", "t.competitor = %(competitor)s"),
        ("status", "t.status = %(status)s"),
    ):
        if filters.get(name) is not None:
            conditions.append(sql.SQL(clause))
            params[name] = filters[name]
    if filters.get("voided") is not None:
        conditions.append(
            sql.SQL("t.voided_by IS NOT NULL" if filters["voided"] else "t.voided_by IS NULL")
        )
    if filters.get("rated_by") is not None:
        params["rated_by"] = filters["rated_by"]
        conditions.append(sql.SQL("EXISTS ({})").format(_current("rated_by", "1")))
    if filters.get("unrated_by") is not None:
        params["unrated_by"] = filters["unrated_by"]
        conditions.append(sql.SQL("NOT EXISTS ({})").format(_current("unrated_by", "1")))
    voter = filters.get("voter")
    params["voter"] = voter
    mine = (
        sql.SQL("NULL::int")
        if voter is None
        else sql.SQL("({} ORDER BY v.position DESC LIMIT 1)").format(_current("voter", "v.score"))
    )
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        exists, keys = await snap.many(
            (
                sql.SQL("SELECT 1 FROM {} WHERE experiment_id = %s LIMIT 1").format(_s("trials")),
                (experiment_id,),
            ),
            (
                sql.SQL(
                    "SELECT DISTINCT jsonb_object_keys(dimensions) FROM {} "
                    "WHERE experiment_id = %s ORDER BY 1"
                ).format(_s("trials")),
                (experiment_id,),
            ),
        )
        # Parameters first: a name that is no parameter and no dimension key is a 400 even for
        # an experiment without trials (it has no dimension keys), as on every other route.
        dims = _dimension_filters(extra, extra_values, [k for (k,) in keys])
        if not exists:
            raise not_found(f"Experiment {experiment_id!r} has no trials.")
        for i, (key, values) in enumerate(dims):
            params[f"dk{i}"], params[f"dv{i}"] = key, values
            conditions.append(sql.SQL(f"t.dimensions ->> %(dk{i})s = ANY(%(dv{i})s)"))
        where = where_all(conditions)
        total, page = await snap.many(
            (sql.SQL("SELECT count(*) FROM {} t {}").format(_s("trials"), where), params),
            (
                sql.SQL(
                    "SELECT {}, {} FROM {} t {} ORDER BY t.position LIMIT %(limit)s "
                    "OFFSET %(offset)s"
                ).format(_COLUMNS, mine, _s("trials"), where),
                params,
            ),
        )
    return TrialPage(
        experiment_id=experiment_id,
        trials=[_trial(r) for r in page],
        total=int(total[0][0]),
        limit=limit,
        offset=offset,
        results_position=results_position,
        voter=voter,
    )


def _trial(r: tuple[Any, ...]) -> Trial:
    return Trial(
        trial_id=r[0], event_id=r[1], position=int(r[2]), occurred_at=r[3], arena=r[4],
        category=r[5], experiment_id=r[6], competitor=r[7], prompt_index=int(r[8]),
        status=r[9], error=r[10], metrics={k: float(v) for k, v in (r[11] or {}).items()},
        dimensions={k: str(v) for k, v in (r[12] or {}).items()}, score_sum=int(r[13]),
        score_votes=int(r[14]), avg_score=r[13] / r[14] if r[14] else None, voided_by=r[15],
        my_rating=None if r[16] is None else int(r[16]),
    )  # fmt: skip


async def votes(
    reads: ReadStore,
    voter: str,
    experiment_id: str | None,
    limit: int,
    offset: int,
    *,
    viewer: Viewer,
) -> ScoreVotePage:
    """``voter``'s current score votes, newest first, on trials ``viewer`` may read."""
    params: dict[str, Any] = {
        "voter": voter,
        "experiment": experiment_id,
        "limit": limit,
        "offset": offset,
    }
    conditions: list[sql.Composable] = []
    if experiment_id is not None:
        conditions.append(sql.SQL("t.experiment_id = %(experiment)s"))
    if (private := visible_trials(viewer, params)) is not None:
        conditions.append(private)
    source = sql.SQL(
        "(SELECT DISTINCT ON (v.trial_id) v.* FROM {votes} v WHERE v.voter = %(voter)s "
        "AND v.trial_id IS NOT NULL AND v.score IS NOT NULL AND v.voided_by IS NULL "
        "ORDER BY v.trial_id, v.position DESC) c JOIN {trials} t ON t.trial_id = c.trial_id {where}"
    ).format(votes=_s("votes"), trials=_s("trials"), where=where_all(conditions))
    async with snapshot(reads) as snap:
        _, results_position = await snap.positions()
        total, page = await snap.many(
            (sql.SQL("SELECT count(*) FROM {}").format(source), params),
            (
                sql.SQL(
                    "SELECT c.vote_id, c.event_id, c.position, c.occurred_at, c.voter, c.trial_id, "
                    "t.experiment_id, t.competitor, c.score, t.voided_by FROM {} "
                    "ORDER BY c.position DESC LIMIT %(limit)s OFFSET %(offset)s"
                ).format(source),
                params,
            ),
        )
    return ScoreVotePage(
        voter=voter,
        experiment_id=experiment_id,
        votes=[
            ScoreVote(
                vote_id=r[0],
                event_id=r[1],
                position=int(r[2]),
                occurred_at=r[3],
                voter=r[4],
                trial_id=r[5],
                experiment_id=r[6],
                competitor=r[7],
                score=int(r[8]),
                trial_voided_by=r[9],
            )
            for r in page
        ],
        total=int(total[0][0]),
        limit=limit,
        offset=offset,
        results_position=results_position,
    )
