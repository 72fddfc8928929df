"""``/ui/arenas/{arena}/head-to-head``: a pool's pairs as two heatmaps, the row competitor's
win fraction against the column's and the number of results between them.

The pairs are ``GET /head-to-head``'s query (:func:`..api.queries.ratings.head_to_head`), all of
them at once (a pool of n competitors has at most n(n-1)/2 pairs); the competitors are ordered
by their current Elo rating, best first (as the board lists them), so the strong corner of
the map is the top left.
"""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from ..api.models.ratings import HeadToHeadRow
from ..api.parameters import CategoryParam
from ..api.queries.arenas import arena_categories
from ..api.queries.ratings import head_to_head
from ..api.store import ReadStore
from .charts import heatmap

__all__ = ["HANDLERS", "MAX_PAIRS", "TABLE_ROWS", "board_order", "head_to_head_page", "matrices"]

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


@get("/ui/arenas/{arena:str}/head-to-head", name="web-head-to-head")
async def head_to_head_page(
    reads: NamedDependency[ReadStore],
    arena: FromPath[str],
    category: CategoryParam = "",
) -> Template:
    """Both heatmaps and the pairs as a sortable table."""
    pairs = await head_to_head(reads, arena, category, None, MAX_PAIRS, 0)
    order = board_order(pairs.rows)
    wins, counts = matrices(order, pairs.rows)
    most = max((p.games for p in pairs.rows), default=1)
    return Template(
        template_name="head_to_head.html",
        context={
            "arena": arena,
            "category": category,
            "categories": await arena_categories(reads, arena),
            "pairs": pairs,
            "competitors": order,
            "table_rows": TABLE_ROWS,
            "win_map": heatmap(
                wins, order, lambda v: f"{v * 100:.1f} % won", scale=(0.0, 1.0),
                unit="win fraction", title="win fraction, row against column", percent=True,
            ),
            "count_map": heatmap(
                counts, order, lambda v: f"{v:,.0f} results", scale=(0.0, float(most)),
                unit="results", title="results between row and column",
            ),
        },
    )  # fmt: skip


HANDLERS = (head_to_head_page,)
