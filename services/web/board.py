"""``/ui/arenas/{arena}``: an arena's leaderboard. Elo or Bradley-Terry, a category selector,
metric averages with their units, a past board (``as_of``), the Bradley-Terry intervals as a
whisker plot, and (Elo now, the board ``/leaderboard/stream`` sends) live updates in place.

The board is ``GET /leaderboard``'s very query (:func:`..api.queries.leaderboard.leaderboard`)
with the same defaults, so its numbers are the JSON's; every numeric cell also carries the raw
value in ``data-value`` (what sorting uses, and what a test compares).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from ..api.models.ratings import LeaderboardRow
from ..api.parameters import CategoryParam, Limit, parse_as_of
from ..api.privacy import viewer_of
from ..api.queries import leaderboard as q
from ..api.queries.arenas import arena_categories
from ..api.queries.bt_board import bt_options
from ..api.store import ReadStore
from .charts import Whisker, whiskers

__all__ = ["HANDLERS", "METRIC_COLUMNS", "board_page", "metric_columns"]

METRIC_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    # (row field, header, unit, decimals)
    ("wer", "WER", "fraction", 3),
    ("semascore", "SeMaScore", "0–1", 3),
    ("prosody", "prosody", "score", 3),
    ("quality", "quality", "score", 3),
    ("latency_ms", "latency", "ms", 0),
    ("cost_usd", "cost", "USD", 4),
    ("input_tokens", "input", "tokens", 0),
    ("output_tokens", "output", "tokens", 0),
    ("avg_score", "score vote", "avg", 2),
)
"""The averages ``GET /leaderboard`` picks out, with the unit each is measured in."""


def metric_columns(rows: list[LeaderboardRow]) -> list[tuple[str, str, str, int]]:
    """The metric columns some row has a value for (an empty column is noise on a phone)."""
    return [c for c in METRIC_COLUMNS if any(getattr(r, c[0]) is not None for r in rows)]


@get("/ui/arenas/{arena:str}", name="web-board")
async def board_page(
    request: Request[Any, Any, Any],
    reads: NamedDependency[ReadStore],
    arena: FromPath[str],
    category: CategoryParam = "",
    system: Annotated[
        Literal["elo", "bt"],
        QueryParameter(description="`elo` (the folded ratings) or `bt` (Bradley-Terry)."),
    ] = "elo",
    as_of: Annotated[
        str | None,
        QueryParameter(max_length=64, description="A log position or an RFC 3339 time."),
    ] = None,
    limit: Limit = 100,
) -> Template:
    """The board; the form on the page sets the parameters (an empty ``as_of``: now)."""
    as_of = as_of.strip() or None if as_of is not None else None
    when = None if as_of is None else parse_as_of(as_of)
    options = bt_options() if system == "bt" else None
    board = await q.leaderboard(
        reads, arena, category, limit, 0, system, when, viewer=viewer_of(request), options=options
    )
    categories = await arena_categories(reads, arena)
    chart = None
    if system == "bt":
        level = board.bootstrap.level if board.bootstrap is not None else 0.95
        chart = whiskers(
            [Whisker(r.competitor, r.rating, r.lower, r.upper) for r in board.rows], level=level
        )
    live = None
    if system == "elo" and when is None:
        live = "/leaderboard/stream?" + urlencode(
            {"arena": arena, "category": category, "limit": limit}
        )
    return Template(
        template_name="board.html",
        context={
            "board": board,
            "arena": arena,
            "categories": categories,
            "as_of": as_of or "",
            "metrics": metric_columns(board.rows),
            "chart": chart,
            "live": live,
            "limit": limit,
        },
    )


HANDLERS = (board_page,)
