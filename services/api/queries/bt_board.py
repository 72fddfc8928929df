"""What ``system=bt`` boards take beyond the pair counts: the bootstrap's ``rounds``, ``seed`` and
``level``, the anchor (``anchor=COMPETITOR:RATING``, ``mean``, or the arena's default from
``arena.configured``'s ``bt_anchor``) and ``control`` (Bradley-Terry with covariates from the
battles' metrics, :mod:`arbiter.domain.bradley_terry.controlled`).

Decisions:

* A default anchor whose competitor has no battles in the pool (a category pool it never played
  in) is not applied: the board falls back to the mean and ``bootstrap.anchor`` is null, so the
  body always says which anchor it shows. An ``anchor`` *parameter* naming such a competitor is
  a 400: the caller asked for something that cannot be done.
* ``control`` reads the results read model's ``battles`` (not the pair counts, which have no
  metrics): every battle of the pool that is not voided, with its own outcome and its pairwise
  vote tallies (votes on it that are not voided) as its results, and the named metrics of both
  sides from its ``metrics``. A battle lacking a named metric on either side is left out and
  counted (``bootstrap.left_out``); games carry no per-side metrics and are not in a controlled
  fit. One row per battle, so its cost grows with the battles, unlike the pair-count fit: see
  the README. Not with ``as_of`` (the battles table keeps a void's mark, not when it happened).
"""

from __future__ import annotations

from typing import Literal

from arbiter.domain import bradley_terry as bt
from arbiter.domain.identifiers import ID_MAX, identifier_problem
from psycopg import sql

from ...bt_fitting import (
    BT_LEVEL,
    BT_ROUNDS,
    BT_SEED,
    BTOptions,
    fit_controlled,
    fit_pairs,
    one_blas_thread,
    steady_heap,
)
from ..errors import bad_parameter
from .snapshot import Query, Rows, Snapshot
from .snapshot import ratings_table as _r
from .snapshot import results_table as _s

__all__ = [
    "BT_LEVEL",
    "BT_ROUNDS",
    "BT_SEED",
    "MAX_CONTROL",
    "MAX_ROUNDS",
    "BTOptions",
    "bt_options",
    "controlled_rows",
    "default_anchor_of",
    "default_anchor_query",
    "fit_controlled",
    "fit_pairs",
    "one_blas_thread",
    "resolve_anchor",
    "steady_heap",
]

MAX_ROUNDS = 1000
"""A fit of 129 competitors plus 1,000 rounds is about 3 s of CPU (benchmarks/bt_fit.py)."""
MAX_CONTROL = 16
"""Metrics one controlled fit may name."""
MAX_SEED = 2**63 - 1


def bt_options(
    rounds: int | None = None,
    seed: int | None = None,
    level: float | None = None,
    anchor: str | None = None,
    control: str | None = None,
) -> BTOptions:
    """Parse the parameters; a 400 naming the accepted values for any that is out of range."""
    if rounds is not None and not 1 <= rounds <= MAX_ROUNDS:
        raise bad_parameter("rounds", f"rounds must be 1 to {MAX_ROUNDS:,} (got {rounds})")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise bad_parameter("seed", f"seed must be 0 to 2^63-1 (got {seed})")
    if level is not None and not 0 < level < 1:
        raise bad_parameter(
            "level", f"level must be strictly between 0 and 1, e.g. 0.95 (got {level})"
        )
    parsed: bt.Anchor | Literal["mean"] | None = None
    if anchor == "mean":
        parsed = "mean"
    elif anchor is not None:
        try:
            parsed = bt.parse_anchor(anchor)
        except ValueError as exc:
            raise bad_parameter("anchor", f"{exc}; or `mean` for the mean anchoring") from None
    metrics: tuple[str, ...] = ()
    if control is not None:
        metrics = tuple(control.split(","))
        if any(not m or m != m.strip() or len(m) > ID_MAX for m in metrics):
            raise bad_parameter(
                "control",
                f"control {control!r} must be metric names (1-{ID_MAX} characters, no "
                "surrounding spaces) separated by commas, e.g. control=output_tokens,latency_ms",
            )
        for metric in metrics:  # a NUL or control character would never name a stored metric
            problem = identifier_problem(metric, "control metric")
            if problem is not None:
                raise bad_parameter("control", problem)
        if len(set(metrics)) != len(metrics) or len(metrics) > MAX_CONTROL:
            raise bad_parameter(
                "control",
                f"control must name 1 to {MAX_CONTROL} distinct metrics (got {control!r})",
            )
    return BTOptions(
        BT_ROUNDS if rounds is None else rounds,
        BT_SEED if seed is None else seed,
        BT_LEVEL if level is None else level,
        parsed,
        metrics,
    )


def default_anchor_query(arena: str) -> Query:
    """The arena's default anchor (``arena.configured`` ``bt_anchor``), for a board that reads it
    in the pipeline of its first queries (:func:`default_anchor_of` reads the answer)."""
    return (
        sql.SQL(
            "SELECT bt_anchor, bt_anchor_rating FROM {} WHERE arena = %s AND bt_anchor IS NOT NULL"
        ).format(_r("arenas")),
        (arena,),
    )


def default_anchor_of(rows: Rows) -> bt.Anchor | None:
    """:func:`default_anchor_query`'s rows as the anchor, None when unset."""
    return (rows[0][0], float(rows[0][1])) if rows else None


def resolve_anchor(
    options: BTOptions, default: bt.Anchor | None, members: set[str]
) -> bt.Anchor | None:
    """The anchor a board uses: the parameter's (a 400 when its competitor has no battles in
    the pool), else the arena's default when its competitor is in the pool, else none."""
    if options.anchor == "mean":
        return None
    if options.anchor is not None:
        if options.anchor[0] not in members:
            which = (  # a controlled fit sees only the battles with every named metric
                f"no battles in this pool with {', '.join(options.control)} on both sides"
                if options.control
                else "no battles in this pool"
            )
            raise bad_parameter(
                "anchor",
                f"anchor competitor {options.anchor[0]!r} has {which}: name one that has, or "
                "`mean`",
            )
        return options.anchor
    return default if default is not None and default[0] in members else None


async def controlled_rows(
    snap: Snapshot, arena: str, category: str, metrics: tuple[str, ...]
) -> tuple[Rows, int]:
    """``(rows, left out)``: per battle of the pool with every named metric on both sides,
    ``(a, b, wins_a, wins_b, ties, [a's values], [b's values])``; and how many battles with
    results lacked one. One query; the metric values are read out of the JSON in SQL."""
    keys = {f"m{c}": m for c, m in enumerate(metrics)}
    values = [
        sql.SQL("ARRAY[{}]::float8[]").format(
            sql.SQL(", ").join(
                sql.SQL("(metrics -> {} ->> {})::float8").format(
                    sql.Literal(side), sql.Placeholder(k)
                )
                for k in keys
            )
        )
        for side in ("a", "b")
    ]
    every = sql.SQL(" AND ").join(
        sql.SQL("coalesce(jsonb_typeof(metrics -> {} -> {}) = 'number', false)").format(
            sql.Literal(side), sql.Placeholder(k)
        )
        for side in ("a", "b")
        for k in keys
    )
    rows = await snap.rows(
        sql.SQL(
            "WITH r AS (SELECT a, b, metrics, "
            "(outcome IS NOT DISTINCT FROM 'a')::int + votes_a AS wa, "
            "(outcome IS NOT DISTINCT FROM 'b')::int + votes_b AS wb, "
            "(outcome IS NOT DISTINCT FROM 'tie')::int + votes_tie AS t FROM {battles} "
            "WHERE arena = %(arena)s AND (%(category)s = '' OR category = %(category)s) "
            "AND voided_by IS NULL) "
            "SELECT a, b, wa, wb, t, {va}, {vb} FROM r WHERE wa + wb + t > 0 "
            "AND metrics IS NOT NULL AND {every} "
            "UNION ALL SELECT NULL, NULL, count(*), 0, 0, NULL, NULL FROM r "
            "WHERE wa + wb + t > 0 AND NOT (metrics IS NOT NULL AND {every})"
        ).format(battles=_s("battles"), va=values[0], vb=values[1], every=every),
        {"arena": arena, "category": category, **keys},
    )
    left_out = next(int(r[2]) for r in rows if r[0] is None)
    return [r for r in rows if r[0] is not None], left_out
