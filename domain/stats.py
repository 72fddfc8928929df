"""Grouped statistics over trials: the read model behind ``GET /stats?group_by=...``.

The stats seed (seed 004, ``Repository.get_stats``) groups results by model or by one of their
attributes (persona, style, input type) and reports, per group: the number of results, the number
of ratings and their average (1-5), the total cost, and the average latency and input/output
tokens. Arbiter's trials carry those attributes as free-form ``dimensions``, so any dimension key
can be the grouping, and ``"competitor"`` plays the seed's ``"model"``. Failures are counted too,
since ``trial.completed`` has a status the seed's results lacked.

Two of the seed's SQL accidents are not reproduced: its ``LEFT JOIN`` on ratings counted a result
once per rating and added its cost once per rating, and its ``if row[x] else None`` turned a true
0 average into ``None``. Here a trial counts once, its cost once, and every score vote once.

Pure: sums are ``math.fsum`` (exactly rounded, and overflow-safe: :mod:`.aggregates`), so the
same rows in any order give the same floats, and groups come out in a fixed order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from msgspec import Struct

from .aggregates import mean, total
from .experiments import TrialRecord

__all__ = [
    "COMPETITOR",
    "COST",
    "INPUT_TOKENS",
    "LATENCY",
    "OUTPUT_TOKENS",
    "SEED_GROUP_NAMES",
    "StatsGroup",
    "StatsOrder",
    "group_key",
    "group_stats",
]


COMPETITOR = "competitor"
"""``group_by`` value that groups by competitor (the seed's ``model``) instead of a dimension."""

LATENCY = "latency_ms"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
COST = "cost_usd"

StatsOrder = Literal["key", "avg_score"]

SEED_GROUP_NAMES: dict[str, str] = {"model": COMPETITOR, "model_id": COMPETITOR}
"""``group_by`` values the seeds used for what Arbiter calls ``competitor`` (seed 004 grouped by
``model``). Not aliases: named in the refusal when no trial carries such a dimension."""


class StatsGroup(Struct, frozen=True, kw_only=True):
    """Aggregates of one group of trials.

    * ``key``: the competitor id or dimension value; ``None`` collects trials without the dimension.
    * ``count``: trials in the group, any status; ``failures``: those whose status is "failed"
      (any status other than "completed").
    * ``avg_latency_ms``, ``avg_input_tokens``, ``avg_output_tokens`` and ``metrics`` (every
      metric's average): over completed trials that measured the metric, ``None``/absent when
      none did. A failed call's latency is a timeout, not a speed, so it would only skew them.
    * ``total_cost_usd``: over every trial that reported a cost, failed ones included (a failed
      call is still paid for); 0.0 when none did, as the seed reports.
    * ``avg_score``, ``score_votes``: the mean of the individual 1-5 score votes on the group's
      trials (total vote sum / total votes, so a trial with ten votes weighs ten times one with
      one), ``None`` with no votes.
    """

    key: str | None
    count: int
    failures: int
    avg_latency_ms: float | None
    avg_input_tokens: float | None
    avg_output_tokens: float | None
    total_cost_usd: float
    avg_score: float | None
    score_votes: int
    metrics: dict[str, float]


def group_key(row: TrialRecord, group_by: str) -> str | None:
    """The group a row belongs to: its competitor, or its value of the dimension ``group_by``."""
    if group_by == COMPETITOR:
        return row.competitor
    return row.dimensions.get(group_by)


def _values(rows: Iterable[TrialRecord], name: str) -> list[float]:
    return [r.metrics[name] for r in rows if name in r.metrics]


def _aggregate(key: str | None, rows: Sequence[TrialRecord]) -> StatsGroup:
    done = [r for r in rows if r.completed]
    names = sorted({name for r in done for name in r.metrics})
    metrics: dict[str, float] = {}
    for name in names:
        values = _values(done, name)
        average = mean(values)
        if average is not None:
            metrics[name] = average
    votes = sum(r.score_votes for r in rows)
    return StatsGroup(
        key=key,
        count=len(rows),
        failures=len(rows) - len(done),
        avg_latency_ms=mean(_values(done, LATENCY)),
        avg_input_tokens=mean(_values(done, INPUT_TOKENS)),
        avg_output_tokens=mean(_values(done, OUTPUT_TOKENS)),
        total_cost_usd=total(_values(rows, COST)),
        avg_score=sum(r.score_sum for r in rows) / votes if votes else None,
        score_votes=votes,
        metrics=metrics,
    )


def _not_carried(group_by: str, rows: Sequence[TrialRecord]) -> str:
    carried = sorted({key for r in rows for key in r.dimensions})
    hint = ""
    if group_by in SEED_GROUP_NAMES:
        hint = f" (`{group_by}` is the seeds' name for `{SEED_GROUP_NAMES[group_by]}`)"
    shown = ", ".join(f"`{k}`" for k in carried[:20])
    if len(carried) > 20:
        shown += f" and {len(carried) - 20} more"
    choice = (
        f"group by `competitor` or a dimension they carry ({shown})"
        if carried
        else "they carry no dimension at all: group by `competitor`"
    )
    return (
        f"group_by {group_by!r} is a dimension that none of the {len(rows)} trials in scope "
        f"carries{hint}; {choice}."
    )


def group_stats(
    rows: Iterable[TrialRecord], group_by: str = COMPETITOR, order: StatsOrder = "key"
) -> list[StatsGroup]:
    """Group trials by competitor or by a dimension key and aggregate each group.

    ``group_by`` is ``"competitor"`` or any dimension key (``persona``, ``style``,
    ``input_type``, ...); a dimension named "competitor" is therefore not reachable, which is the
    price of one flat parameter. Trials lacking the dimension form one group with key ``None``
    rather than vanishing, so the counts always add up to the number of trials.

    A dimension that none of ``rows`` carries is a ValueError naming the dimensions they do carry:
    grouping by it would answer one ``None`` group holding every trial, which reads as an answer
    while it is a typo (``group_by=model``) or a key that was never published. With no rows at all
    there is nothing to check the key against, and nothing to group: the answer is no groups.

    Order: by key, the ``None`` group last (``order="key"``, the default and stable for paging);
    or, as the seed's dashboard did, by ``avg_score`` descending with unrated groups last and ties
    by key (``order="avg_score"``).
    """
    if not group_by:
        raise ValueError("group_by must be 'competitor' or a dimension key, not empty")
    if order not in ("key", "avg_score"):
        raise ValueError(f"order must be 'key' or 'avg_score', not {order!r}")
    groups: dict[str | None, list[TrialRecord]] = {}
    for row in rows:
        groups.setdefault(group_key(row, group_by), []).append(row)
    if list(groups) == [None]:
        raise ValueError(_not_carried(group_by, groups[None]))
    result = [_aggregate(key, members) for key, members in groups.items()]
    result.sort(key=lambda g: (g.key is None, g.key or ""))
    if order == "avg_score":
        result.sort(key=lambda g: (g.avg_score is None, -(g.avg_score or 0.0)))
    return result
