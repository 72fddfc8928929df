"""``/ui/arenas/{arena}/head-to-head``: a pool's pairs as two heatmaps, the row competitor's
win fraction against the column's and the number of results between them.

The pairs are ``GET /head-to-head``'s query (:func:`..api.queries.ratings.head_to_head`), all of
them at once (a pool of n competitors has at most n(n-1)/2 pairs); the competitors are ordered
by their current Elo rating, best first (as the board lists them): the favourites' wins fill
the top right, their losses the bottom left.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from arbiter.projections import tracking
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template
from psycopg import sql

from ..api.models.ratings import HeadToHeadRow
from ..api.parameters import CategoryParam
from ..api.queries.arenas import arena_categories
from ..api.queries.ratings import head_to_head
from ..api.queries.snapshot import RATINGS
from ..api.store import ReadStore
from .charts import heatmap

__all__ = [
    "HANDLERS",
    "MAPS_KEPT",
    "MAX_PAIRS",
    "TABLE_ROWS",
    "board_order",
    "head_to_head_page",
    "matrices",
    "pool_maps",
]

TABLE_ROWS = 200
"""Pairs listed in the table under the maps (the most played): the maps show them all."""

MAX_PAIRS = 200_000
"""Pairs read for one page (n = 633 competitors); a pool with more shows its most played ones."""

Matrix = list[list[float | None]]


def matrices(order: list[str], rows: list[HeadToHeadRow]) -> tuple[Matrix, Matrix]:
    """(win fraction, results) with cell [i][j] from ``order[i]``'s side against ``order[j]``;
    None where the two never met (and on the diagonal). A pair listed once fills both cells."""
    at = {c: i for i, c in enumerate(order)}
    n = len(order)
    wins: Matrix = [[None] * n for _ in range(n)]
    counts: Matrix = [[None] * n for _ in range(n)]
    for r in rows:
        i, j = at.get(r.competitor), at.get(r.opponent)
        if i is None or j is None:
            continue
        wins[i][j], wins[j][i] = r.win_rate, 1.0 - r.win_rate
        counts[i][j] = counts[j][i] = float(r.games)
    return wins, counts


def board_order(rows: list[HeadToHeadRow]) -> list[str]:
    """The pairs' competitors as the Elo board orders them (rating, highest first, then id),
    from the ratings the pairs carry; unrated ones last, by id."""
    rating: dict[str, float | None] = {}
    for r in rows:
        rating[r.competitor] = r.competitor_rating
        rating[r.opponent] = r.opponent_rating
    return sorted(rating, key=lambda c: (rating[c] is None, -(rating[c] or 0.0), c))


MAPS_KEPT = 16
"""Pools whose rendered maps are kept (see :func:`pool_maps`)."""

_MAPS: OrderedDict[tuple[str, str, str, int, int], dict[str, Any]] = OrderedDict()


async def _ratings_state(reads: ReadStore) -> tuple[int, int]:
    """The ratings model's position and generation: a rebuild swaps in a fresh model that may
    end at the same position, so the position alone does not name what was drawn."""
    query = sql.SQL("SELECT position, generation FROM {} WHERE projection = %s").format(
        tracking.table(RATINGS.schema)
    )
    async with reads.pool.connection() as conn:
        row = await (await conn.execute(query, (RATINGS.name,))).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def pool_maps(reads: ReadStore, arena: str, category: str) -> dict[str, Any]:
    """The pairs and both maps of a pool, kept per database and ratings position and
    generation: a read model at a given position of one generation is always the same, so what
    was drawn from it stays right and another view of the pool at that state skips the query
    and the 2 x n^2 cells (most of the page's time at 100 competitors). Nothing here depends
    on who asks (pairs hold no private trial)."""
    position, generation = await _ratings_state(reads)
    key = (reads.database_url, arena, category, position, generation)
    kept = _MAPS.get(key)
    if kept is not None:
        _MAPS.move_to_end(key)
        return kept
    pairs = await head_to_head(reads, arena, category, None, MAX_PAIRS, 0)
    order = board_order(pairs.rows)
    wins, counts = matrices(order, pairs.rows)
    most = max((p.games for p in pairs.rows), default=1)
    drawn = {
        "pairs": pairs,
        "competitors": order,
        "win_map": heatmap(
            wins, order, lambda v: f"{v * 100:.1f} % won", scale=(0.0, 1.0),
            unit="win fraction", title="win fraction, row against column", percent=True,
        ),
        "count_map": heatmap(
            counts, order, lambda v: f"{v:,.0f} results", scale=(0.0, float(most)),
            unit="results", title="results between row and column",
        ),
    }  # fmt: skip
    if pairs.position == position:  # else the model moved meanwhile: keep nothing
        _MAPS[key] = drawn
    while len(_MAPS) > MAPS_KEPT:
        _MAPS.popitem(last=False)
    return drawn


@get("/ui/arenas/{arena:str}/head-to-head", name="web-head-to-head")
async def head_to_head_page(
    reads: NamedDependency[ReadStore],
    arena: FromPath[str],
    category: CategoryParam = "",
) -> Template:
    """Both heatmaps and the pairs as a sortable table."""
    drawn = await pool_maps(reads, arena, category)
    context = {
        "arena": arena,
        "category": category,
        "categories": await arena_categories(reads, arena),
        "table_rows": TABLE_ROWS,
        **drawn,
    }
    return Template(template_name="head_to_head.html", context=context)


HANDLERS = (head_to_head_page,)
