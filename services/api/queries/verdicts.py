"""The auto-judge's verdicts on battles (issue 13 point 4), for ``/battles`` and ``/battles/{id}``.

Read from the ratings read model rather than stored again: the ratings fold makes the decision
and writes it where it writes every rated result, the battle's ``matches`` row (its ``score``,
compared by the audit), while the results read model keeps the battle as published, outcome
null. A verdict is therefore a results battle without an outcome whose ``matches`` row (same
position, the table's primary key, and same event id) has a score. Its two composites are
recomputed here from the battle's stored metrics with the fold's own pure function
(:func:`arbiter.domain.composite.judge`): the metrics come back from ``jsonb`` as the same
floats, so the composites are the fold's to the bit, and there is no table of its own for the
projector, a rebuild and the audit to keep in step. One query per request, by primary key.
"""

from __future__ import annotations

from typing import Any

from arbiter.domain.composite import judge
from psycopg import sql

from ..models.results import AutoJudged
from .snapshot import Query, Rows
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s

__all__ = ["auto_judged", "verdicts_query"]

_OUTCOMES = {1.0: "a", 0.0: "b", 0.5: "tie"}

_VERDICTS = sql.SQL(
    "SELECT t.battle_id, t.metrics, m.score FROM {battles} t "
    "JOIN {matches} m ON m.position = t.position AND m.event_id = t.event_id "
    "WHERE t.battle_id = ANY(%s) AND t.outcome IS NULL AND m.score IS NOT NULL"
)


def verdicts_query(battle_ids: list[str]) -> Query:
    """The query that finds which of these battles the auto-judge decided."""
    return _VERDICTS.format(battles=_s("battles"), matches=_r("matches")), (battle_ids,)


def auto_judged(rows: Rows) -> dict[str, AutoJudged]:
    """battle_id -> the verdict, from :func:`verdicts_query`'s rows."""
    out: dict[str, AutoJudged] = {}
    for battle_id, metrics, score in rows:
        sides: dict[str, Any] = metrics if isinstance(metrics, dict) else {}
        found = judge(sides.get("a"), sides.get("b"))
        if found is None:  # pragma: no cover - the fold decides only what judge() decides
            continue
        out[battle_id] = AutoJudged(
            outcome=_OUTCOMES[float(score)],
            composite_a=found.composite_a,
            composite_b=found.composite_b,
        )
    return out
